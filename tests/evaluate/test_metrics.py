"""Every metric against a hand computation or a reference library on small fixed arrays."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from socmap.evaluate import metrics as m

Y = np.array([1.0, 2.0, 4.0, 8.0])
P = np.array([2.0, 2.0, 3.0, 10.0])


def test_point_metrics_by_hand() -> None:
    # errors: -1, 0, 1, -2
    assert m.mae(Y, P) == pytest.approx(4 / 4)
    assert m.rmse(Y, P) == pytest.approx(np.sqrt((1 + 0 + 1 + 4) / 4))
    assert m.mape(Y, P) == pytest.approx(100 * (1 / 1 + 0 + 1 / 4 + 2 / 8) / 4)
    ss_tot = np.sum((Y - 3.75) ** 2)
    assert m.r2(Y, P) == pytest.approx(1 - 6 / ss_tot)


def test_point_metrics_match_sklearn() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(1)
    y = rng.gamma(2.0, 5.0, 50) + 0.5
    p = y + rng.normal(0, 2, 50)
    assert m.mae(y, p) == pytest.approx(skm.mean_absolute_error(y, p))
    assert m.rmse(y, p) == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert m.mape(y, p) == pytest.approx(100 * skm.mean_absolute_percentage_error(y, p))
    assert m.r2(y, p) == pytest.approx(skm.r2_score(y, p))


def test_metrics_reduce_over_last_axis() -> None:
    stack = np.stack([P, Y])
    np.testing.assert_allclose(m.rmse(np.stack([Y, Y]), stack), [m.rmse(Y, P), 0.0])


def test_bootstrap_is_seeded_paired_and_brackets_the_value() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(10, 2, 200)
    p = y + rng.normal(0, 1, 200)
    lo, hi = m.bootstrap(m.rmse, y, p, n_boot=1000, seed=3)
    assert (lo, hi) == m.bootstrap(m.rmse, y, p, n_boot=1000, seed=3)
    assert lo < float(m.rmse(y, p)) < hi
    # by hand: the same resample indices
    idx = np.random.default_rng(3).integers(0, 200, size=(1000, 200))
    vals = [float(m.rmse(y[i], p[i])) for i in idx]
    assert lo == pytest.approx(np.quantile(vals, 0.025))
    assert hi == pytest.approx(np.quantile(vals, 0.975))
    out = m.point_metrics(y, p, n_boot=200, seed=0)
    assert out["n"] == 200 and len(out["r2"]["ci95"]) == 2


def test_ece_by_hand() -> None:
    # |z| = 0, 0.5, 1, 3: coverage at level p is the fraction of |z| <= Phi^-1((1+p)/2)
    y = np.array([0.0, 0.5, 1.0, 3.0])
    mu, sigma = np.zeros(4), np.ones(4)
    ks = stats.norm.ppf(0.5 + m.ECE_LEVELS / 2)
    cov = np.array([np.mean(np.abs(y) <= k) for k in ks])
    assert m.ece(y, mu, sigma) == pytest.approx(np.mean(np.abs(cov - m.ECE_LEVELS)))
    assert len(m.ECE_LEVELS) == 20 and m.ECE_LEVELS[0] == pytest.approx(0.025)
    # a well-specified Gaussian has a small ECE, a 3x too wide one a large ECE
    rng = np.random.default_rng(0)
    z = rng.normal(size=20000)
    assert m.ece(z, np.zeros_like(z), np.ones_like(z)) < 0.01
    assert m.ece(z, np.zeros_like(z), 3 * np.ones_like(z)) > 0.2


def test_nll_matches_scipy() -> None:
    mu = np.array([0.0, 1.0, -1.0, 2.0])
    var = np.array([1.0, 0.25, 4.0, 0.5])
    ref = -np.mean(stats.norm.logpdf(Y, mu, np.sqrt(var)))
    assert m.gaussian_nll(Y, mu, var) == pytest.approx(ref)


def test_crps_matches_closed_form() -> None:
    mu = np.array([0.0, 1.0, -1.0, 2.0])
    sigma = np.array([1.0, 0.5, 2.0, 0.7])
    w = (Y - mu) / sigma
    ref = sigma * (w * (2 * stats.norm.cdf(w) - 1) + 2 * stats.norm.pdf(w) - 1 / np.sqrt(np.pi))
    assert m.crps_gaussian(Y, mu, sigma) == pytest.approx(ref.mean())


def test_coverage_width_gaussian_and_vp() -> None:
    assert m.VP_K95 == pytest.approx(2.9814, abs=1e-4)
    assert m.interval_k(0.95, "vp") == pytest.approx(m.VP_K95)
    assert m.interval_k(0.95) == pytest.approx(1.959964, abs=1e-6)
    y = np.array([0.0, 1.5, 2.5, 3.5])  # |z| with sigma 1
    mu, sigma = np.zeros(4), np.ones(4)
    picp, mpiw = m.coverage_width(y, mu, sigma)
    assert picp == pytest.approx(2 / 4) and mpiw == pytest.approx(2 * 1.959964, abs=1e-5)
    picp, mpiw = m.coverage_width(y, mu, sigma, method="vp")
    assert picp == pytest.approx(3 / 4) and mpiw == pytest.approx(2 * m.VP_K95)
    with pytest.raises(ValueError):
        m.interval_k(0.95, "chebyshev")


def test_epistemic_fraction_and_correlations() -> None:
    a = np.array([1.0, 1.0, 3.0])
    e = np.array([1.0, 3.0, 1.0])
    assert m.epistemic_fraction(a, e) == pytest.approx((0.5 + 0.75 + 0.25) / 3)
    assert m.epistemic_fraction(a, np.zeros(3)) == 0.0
    y = np.array([0.0, 1.0, 3.0, -2.0, 0.5])
    mu = np.zeros(5)
    sigma = np.array([0.1, 0.9, 4.0, 1.0, 0.2])
    c = m.error_sigma_correlation(y, mu, sigma)
    assert c["pearson"] == pytest.approx(stats.pearsonr(np.abs(y), sigma)[0])
    assert c["spearman"] == pytest.approx(stats.spearmanr(np.abs(y), sigma)[0])


def test_uncertainty_metrics_bundle_of_numbers() -> None:
    rng = np.random.default_rng(4)
    mu = rng.normal(2.5, 0.5, 300)
    a, e = np.full(300, 0.09), np.full(300, 0.03)
    y = mu + rng.normal(0, np.sqrt(a + e))
    out = m.uncertainty_metrics(y, mu, a, e, n_boot=100, seed=0)
    assert out["epistemic_fraction"]["value"] == pytest.approx(0.25)
    assert 0.9 < out["picp_gaussian"]["value"] <= 1.0
    assert out["picp_vp"]["value"] >= out["picp_gaussian"]["value"]
    assert out["mpiw_vp"] == pytest.approx(2 * m.VP_K95 * np.sqrt(0.12))
    assert out["ece"]["value"] < 0.06
    lo, hi = out["nll"]["ci95"]
    assert lo < out["nll"]["value"] < hi
    assert len(out["reliability"]["coverage"]) == 20
