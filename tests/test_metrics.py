"""socmap.metrics, the one set of metrics train, tune, evaluate, predict and aggregate report: every metric on
small fixed arrays against a value worked out by hand (in the comments), then against reference libraries."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats

from socmap import metrics as m

Y = np.array([1.0, 2.0, 4.0, 8.0])
P = np.array([2.0, 2.0, 3.0, 10.0])
"""Observed and predicted, g/kg. Errors P - Y: 1, 0, -1, 2; mean(Y) = 3.75, SS_tot = 28.75, SS_res = 6."""

Z = np.array([0.0, 0.5, 1.0, 3.0])
"""|z| of four points under N(0, 1). Phi^-1((1+p)/2) passes 0.5 at p = 0.3829 and 1 at p = 0.6827, never 3 for
p <= 0.975: coverage is 1/4 at the 8 levels 0.025..0.375, 2/4 at the 6 levels 0.425..0.675, 3/4 at the 6 levels
0.725..0.975; the |coverage - p| sum to 0.85 + 0.50 + 0.65 = 2.0 over 20 levels: ECE 0.1."""

ZEROS, ONES = np.zeros(4), np.ones(4)
RELIABILITY = np.array([0.25] * 8 + [0.5] * 6 + [0.75] * 6)
LOG_2PI_HALF = 0.5 * np.log(2 * np.pi)  # 0.918939

CASES: list[Any] = [
    pytest.param(m.mae, (Y, P), 1.0, id="mae"),  # (1 + 0 + 1 + 2) / 4
    pytest.param(m.rmse, (Y, P), np.sqrt(1.5), id="rmse"),  # sqrt((1 + 0 + 1 + 4) / 4)
    pytest.param(m.bias, (Y, P), 0.5, id="bias"),  # (1 + 0 - 1 + 2) / 4
    pytest.param(m.mape, (Y, P), 37.5, id="mape"),  # 100 (1/1 + 0/2 + 1/4 + 2/8) / 4
    pytest.param(m.r2, (Y, P), 1 - 6 / 28.75, id="r2"),
    pytest.param(m.r2, (np.full(3, 2.0), np.array([1.0, 2.0, 3.0])), np.nan, id="r2-constant-y"),
    pytest.param(m.regression_metrics, (Y, P), {"mape": 37.5, "rmse": np.sqrt(1.5), "mae": 1.0, "r2": 1 - 6 / 28.75},
                 id="regression_metrics"),
    pytest.param(m.interval_k, (0.95,), 1.959964, id="interval_k-gaussian"),
    pytest.param(m.interval_k, (0.95, "vp"), np.sqrt(4 / (9 * 0.05)), id="interval_k-vp"),  # 2.981424
    pytest.param(m.interval_k, (0.5,), 0.674490, id="interval_k-50"),
    # Student t, 5 dof: t_0.975 = 2.570582, scaled to unit variance by sqrt(3/5): 1.991164
    pytest.param(m.interval_k, (0.95, "predictive", 5.0), 2.570582 * np.sqrt(0.6), id="interval_k-predictive-t5"),
    pytest.param(m.interval_k, (0.95, "predictive", None), 1.959964, id="interval_k-predictive-gaussian"),
    pytest.param(m.std_quantile, (0.975,), 1.959964, id="std_quantile-gaussian"),
    pytest.param(m.std_quantile, (0.975, np.inf), 1.959964, id="std_quantile-inf-dof"),
    # t_3 quantiles: 0.9 -> 1.637744, 0.5 -> 0; unit variance: x sqrt(1/3); one dof per q
    pytest.param(m.std_quantile, (np.array([0.9, 0.5]), np.array([3.0, 3.0])), [1.637744 / np.sqrt(3), 0.0],
                 id="std_quantile-t3"),
    # 1 in [0, 1] (end included), 2 not in [2.5, 3], 4 in [3, 4], 8 not in [9, 10]
    pytest.param(m.interval_coverage, (Y, np.array([0.0, 2.5, 3.0, 9.0]), np.array([1.0, 3.0, 4.0, 10.0])), 0.5,
                 id="interval_coverage"),
    # |z| = 0, 1.5, 2.5, 3.5: 2 inside 1.96, 3 inside 2.98; widths 2k
    pytest.param(m.coverage_width, (np.array([0.0, 1.5, 2.5, 3.5]), ZEROS, ONES), (0.5, 2 * 1.959964),
                 id="coverage_width-gaussian"),
    pytest.param(lambda *a: m.coverage_width(*a, method="vp"), (np.array([0.0, 1.5, 2.5, 3.5]), ZEROS, ONES),
                 (0.75, 2 * 2.981424), id="coverage_width-vp"),
    pytest.param(m.reliability_curve, (Z, ZEROS, ONES), RELIABILITY, id="reliability_curve"),
    pytest.param(m.ece, (Z, ZEROS, ONES), 0.1, id="ece"),
    # y = 0, 2 under N(0, 1), N(0, 4): 0.5 log(2 pi) + 0; 0.5 log(2 pi) + 0.5 log 4 + 4 / 8
    pytest.param(m.gaussian_nll, (np.array([0.0, 2.0]), np.zeros(2), np.array([1.0, 4.0])),
                 LOG_2PI_HALF + (np.log(2.0) + 0.5) / 2, id="gaussian_nll"),
    # sigma (w (2 Phi(w) - 1) + 2 phi(w) - 1/sqrt(pi)) at w = 0: 0.233695; at w = 1: 0.602441
    pytest.param(m.crps_gaussian, (np.array([0.0, 1.0]), np.zeros(2), np.ones(2)), (0.233695 + 0.602441) / 2,
                 id="crps_gaussian"),
    # 1 + SOC ~ LogNormal(0, 1) at SOC = 0 (w = 0): -2 exp(1/2) (Phi(-1) + Phi(1/sqrt 2) - 1) = 0.267405
    pytest.param(m.crps_log1p_normal, (np.zeros(1), np.zeros(1), np.ones(1)), 0.267405, id="crps_log1p_normal"),
    # y = 0, quantiles -1, 1 at 0.25, 0.75: pinball 0.25 * 1 and (1 - 0.75) * 1, mean 0.25, times 2
    pytest.param(m.crps_quantiles, (np.zeros(1), np.array([[-1.0, 1.0]]), np.array([0.25, 0.75])), 0.5,
                 id="crps_quantiles"),
    # e / (a + e) = 1/2, 3/4, 1/4
    pytest.param(m.epistemic_fraction, (np.array([1.0, 1.0, 3.0]), np.array([1.0, 3.0, 1.0])), 0.5,
                 id="epistemic_fraction"),
    # |error| 0, 1, 2 rises with sigma 1, 2, 3: both correlations 1
    pytest.param(m.error_sigma_correlation, (np.array([0.0, -1.0, 2.0]), np.zeros(3), np.array([1.0, 2.0, 3.0])),
                 {"pearson": 1.0, "spearman": 1.0}, id="error_sigma_correlation"),
    pytest.param(m.error_sigma_correlation, (np.array([0.0, -1.0, 2.0]), np.zeros(3), np.ones(3)),
                 {"pearson": np.nan, "spearman": np.nan}, id="error_sigma_correlation-constant-sigma"),
]


@pytest.mark.parametrize(("fn", "args", "expected"), CASES)
def test_metric_by_hand(fn: Callable[..., Any], args: tuple[Any, ...], expected: Any) -> None:
    got = fn(*args)
    if isinstance(expected, dict):
        assert set(got) == set(expected)
        for k, v in expected.items():
            assert got[k] == pytest.approx(v, abs=1e-6, nan_ok=True), k
    else:
        np.testing.assert_allclose(np.asarray(got, float), np.asarray(expected, float), atol=1e-6)


def test_every_metric_has_a_hand_checked_case() -> None:
    covered = {p.values[0].__name__ for p in CASES}
    functions = {n for n in m.__all__ if inspect.isfunction(getattr(m, n))}
    assert functions - covered == set()


def test_constants() -> None:
    assert len(m.ECE_LEVELS) == 20 and m.ECE_LEVELS[0] == pytest.approx(0.025) and m.ECE_LEVELS[-1] == 0.975
    assert m.VP_K95 == pytest.approx(2.9814, abs=1e-4) == m.interval_k(0.95, "vp")
    with pytest.raises(ValueError, match="gaussian, predictive or vp"):
        m.interval_k(0.95, "chebyshev")


def test_point_metrics_match_sklearn() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(1)
    y = rng.gamma(2.0, 5.0, 50) + 0.5
    p = y + rng.normal(0, 2, 50)
    assert m.mae(y, p) == pytest.approx(skm.mean_absolute_error(y, p))
    assert m.rmse(y, p) == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert m.mape(y, p) == pytest.approx(100 * skm.mean_absolute_percentage_error(y, p))
    assert m.r2(y, p) == pytest.approx(skm.r2_score(y, p))


def test_distribution_metrics_match_scipy() -> None:
    mu = np.array([0.0, 1.0, -1.0, 2.0])
    var = np.array([1.0, 0.25, 4.0, 0.5])
    assert m.gaussian_nll(Y, mu, var) == pytest.approx(-np.mean(stats.norm.logpdf(Y, mu, np.sqrt(var))))
    sigma = np.sqrt(var)
    w = (Y - mu) / sigma
    ref = sigma * (w * (2 * stats.norm.cdf(w) - 1) + 2 * stats.norm.pdf(w) - 1 / np.sqrt(np.pi))
    assert m.crps_gaussian(Y, mu, sigma) == pytest.approx(ref.mean())
    # a well-specified Gaussian has a small ECE and covers ~95 %, a 3x too wide one a large ECE
    z = np.random.default_rng(0).normal(size=20000)
    assert m.ece(z, np.zeros_like(z), np.ones_like(z)) < 0.01
    assert m.ece(z, np.zeros_like(z), 3 * np.ones_like(z)) > 0.2
    assert m.coverage_width(z, np.zeros_like(z), np.ones_like(z))[0] == pytest.approx(0.95, abs=0.01)


@pytest.mark.parametrize("dof", [3.0, 5.0, 12.0])
def test_student_t_shape_is_unit_variance_and_scores_t_errors(dof: float) -> None:
    """std_quantile is the quantile of t(dof) x sqrt((dof - 2) / dof), whose variance is 1; on errors drawn from
    that shape the t intervals are calibrated (ECE near 0, 95 % covered) where Gaussian intervals of the same
    variance are not (they over-cover the middle levels), and a per-point dof equals the scalar one."""
    q = np.linspace(0.01, 0.99, 9)
    scale = np.sqrt((dof - 2) / dof)
    np.testing.assert_allclose(m.std_quantile(q, dof), stats.t.ppf(q, dof) * scale, rtol=1e-9)
    assert stats.t.var(dof, scale=scale) == pytest.approx(1.0)
    z = stats.t.rvs(dof, scale=scale, size=40000, random_state=np.random.default_rng(3))
    mu, sd = np.zeros_like(z), np.ones_like(z)
    assert m.ece(z, mu, sd, dof=dof) < 0.01
    assert m.coverage_width(z, mu, sd, method="predictive", dof=dof)[0] == pytest.approx(0.95, abs=0.005)
    if dof <= 5:
        assert m.ece(z, mu, sd) > 2 * m.ece(z, mu, sd, dof=dof) + 0.01
    np.testing.assert_allclose(m.reliability_curve(z, mu, sd, dof=np.full(z.shape, dof)),
                               m.reliability_curve(z, mu, sd, dof=dof))
    np.testing.assert_allclose(m.reliability_curve(z, mu, sd, dof=np.full(z.shape, np.inf)),
                               m.reliability_curve(z, mu, sd))
    # a stack of resamples with per-point dof (the pooled cross-validation folds): row by row
    both = np.stack([z[:100], z[100:200]])
    dofs = np.stack([np.full(100, dof), np.r_[np.full(50, dof), np.full(50, np.inf)]])
    got = m.ece(both, np.zeros((2, 100)), np.ones((2, 100)), dof=dofs)
    want = [m.ece(z[:100], mu[:100], sd[:100], dof=dof), m.ece(z[100:200], mu[:100], sd[:100], dof=dofs[1])]
    np.testing.assert_allclose(got, want)


def test_metrics_reduce_over_the_last_axis() -> None:
    """A (B, N) stack of resamples is scored row by row in one call (what the bootstrap relies on)."""
    np.testing.assert_allclose(m.rmse(np.stack([Y, Y]), np.stack([P, Y])), [np.sqrt(1.5), 0.0])
    np.testing.assert_allclose(m.r2(np.stack([Y, np.full(4, 1.0)]), np.stack([P, P])), [1 - 6 / 28.75, np.nan])
    lo, hi = np.stack([Y - 1, Y + 1]), np.stack([Y + 1, Y + 2])
    np.testing.assert_allclose(m.interval_coverage(np.stack([Y, Y]), lo, hi), [1.0, 0.0])
    np.testing.assert_allclose(m.ece(np.stack([Z, Z]), np.zeros((2, 4)), np.ones((2, 4))), [0.1, 0.1])
