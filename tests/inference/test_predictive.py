"""Eq. (6) against numpy and the predictive's views: calibration, mixture expectation, mean cap, tails, g/kg
moments."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from socmap.inference import EnsemblePrediction, combine_members


def test_combine_members_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    mm, mv = rng.normal(size=(5, 30)), rng.uniform(0.1, 2, size=(5, 30))
    mean, alea, epi = combine_members(mm, mv)
    np.testing.assert_allclose(mean, mm.sum(0) / 5)
    np.testing.assert_allclose(alea, mv.sum(0) / 5)
    np.testing.assert_allclose(epi, ((mm - mm.mean(0)) ** 2).sum(0) / 4)  # Bessel
    _, _, epi1 = combine_members(mm[:1], mv[:1])
    assert (epi1 == 0).all()

def test_ensemble_prediction_views() -> None:
    rng = np.random.default_rng(3)
    mm, mv = rng.normal(3, 0.2, size=(3, 10)), rng.uniform(0.01, 0.1, size=(3, 10))
    raw = EnsemblePrediction.from_members(mm, mv)
    cal = raw.calibrate(2.0)
    np.testing.assert_allclose(cal.total_var, 4 * raw.total_var)
    np.testing.assert_allclose(EnsemblePrediction.from_members(mm, mv, 2.0).total_var, cal.total_var)
    np.testing.assert_allclose(cal.soc_gkg(), np.expm1(mm.mean(0)))
    np.testing.assert_allclose(cal.quantile_gkg(0.95), np.expm1(cal.mean + norm.ppf(0.95) * np.sqrt(cal.total_var)))
    v = cal.total_var
    np.testing.assert_allclose(cal.var_gkg("total"), np.exp(2 * cal.mean + v) * np.expm1(v))
    np.testing.assert_allclose(cal.var_gkg("aleatoric") + cal.var_gkg("epistemic"), cal.var_gkg("total"))
    np.testing.assert_allclose(cal.var_gkg("aleatoric") / cal.var_gkg("total"), cal.aleatoric_var / v)
    sub = cal.subset([0, 2])
    np.testing.assert_allclose(sub.mean, mm[[0, 2]].mean(0))
    assert sub.temperature == 2.0
    np.testing.assert_allclose(sub.epistemic_var, 4 * mm[[0, 2]].var(0, ddof=1))
    with pytest.raises(ValueError):
        cal.var_gkg("bogus")

def test_mean_is_the_calibrated_mixture_expectation() -> None:
    """``mean_gkg`` is the expectation of the calibrated mixture of member log-normals (checked by sampling it),
    ``soc_gkg`` its median-of-the-log-mean; the members' expectations average to the ensemble's."""
    rng = np.random.default_rng(5)
    mm, mv = rng.normal(2.5, 0.3, size=(3, 4)), rng.uniform(0.05, 0.4, size=(3, 4))
    t = 1.7
    cal = EnsemblePrediction.from_members(mm, mv, t)
    centres = mm.mean(0) + t * (mm - mm.mean(0))
    np.testing.assert_allclose(cal.member_centres(), centres)
    np.testing.assert_allclose(cal.member_centres().var(0, ddof=1), cal.epistemic_var)
    np.testing.assert_allclose(cal.member_means_gkg().mean(0), cal.mean_gkg())
    # Monte Carlo: pick a member, draw log(1+SOC) ~ N(c_m, T^2 sigma_m^2), average SOC
    n = 400_000
    pick = rng.integers(0, 3, n)
    for j in range(mm.shape[1]):
        z = centres[pick, j] + t * np.sqrt(mv[pick, j]) * rng.standard_normal(n)
        assert cal.mean_gkg()[j] == pytest.approx(np.expm1(z).mean(), rel=0.01)
    assert (cal.mean_gkg() > cal.soc_gkg()).all()
    # one member: the closed form exp(mu + s^2 / 2) - 1 with s^2 = T^2 sigma^2
    one = EnsemblePrediction.from_members(mm[:1], mv[:1], t)
    np.testing.assert_allclose(one.mean_gkg(), np.expm1(mm[0] + 0.5 * t * t * mv[0]))
    np.testing.assert_allclose(one.mean_gkg(), np.expm1(one.mean + 0.5 * one.total_var))

@pytest.mark.parametrize("members", [1, 3])
def test_mean_var_cap_shrinks_only_above_the_cap(members: int) -> None:
    """Below the cap the expectation is the exact mixture mean; above it the mixture is shrunk about mu to the cap
    (one member: exp(mu + cap / 2) - 1), so it stays between the median and the uncapped mean and is continuous in
    the variance."""
    rng = np.random.default_rng(7)
    mm = rng.normal(2.5, 0.3, size=(members, 6))
    mv = np.array([0.01, 0.05, 0.2, 0.8, 2.0, 4.0])[None, :] * rng.uniform(0.8, 1.2, size=(members, 6))
    cal = EnsemblePrediction.from_members(mm, mv, 1.3).add_epistemic(np.full(6, 0.05))
    capped = cal.with_mean_cap(0.3)
    v = (cal.member_centres() - cal.mean).var(0) + (1.69 * mv + 0.05).mean(0)  # the mixture's log variance
    below = v <= 0.3
    assert below.any() and (~below).any()
    np.testing.assert_allclose(capped.mean_gkg()[below], cal.mean_gkg()[below])
    assert (capped.mean_gkg()[~below] < cal.mean_gkg()[~below]).all()
    assert (capped.mean_gkg() > capped.soc_gkg()).all()
    if members == 1:
        np.testing.assert_allclose(capped.mean_gkg()[~below], np.expm1(cal.mean[~below] + 0.15))
    # continuity at the cap: a cap a hair above a point's variance and one a hair below give nearly the same mean
    j = int(np.flatnonzero(~below)[0])
    hi, lo = cal.with_mean_cap(v[j] * (1 + 1e-9)), cal.with_mean_cap(v[j] * (1 - 1e-9))
    assert hi.mean_gkg()[j] == pytest.approx(lo.mean_gkg()[j], rel=1e-6)
    assert capped.subset([0]).mean_var_cap == 0.3  # a sub-ensemble keeps the cap
    with pytest.raises(ValueError, match="mean_var_cap"):
        cal.with_mean_cap(0.0)

def test_tail_dof_changes_quantiles_only() -> None:
    """Student t tails move the quantiles (narrower at the middle levels, wider far out) and nothing else: the
    variance, median, expectation and member views are the Gaussian's; sub-ensembles keep the tails."""
    from scipy import stats

    rng = np.random.default_rng(4)
    mm, mv = rng.normal(3, 0.2, size=(3, 10)), rng.uniform(0.01, 0.1, size=(3, 10))
    g = EnsemblePrediction.from_members(mm, mv, 1.5)
    t = g.with_tail_dof(4.0)
    for view in ("soc_gkg", "mean_gkg", "member_means_gkg"):
        np.testing.assert_array_equal(getattr(t, view)(), getattr(g, view)())
    np.testing.assert_array_equal(t.total_var, g.total_var)
    k = stats.t.ppf(0.75, 4.0) * np.sqrt(0.5)
    np.testing.assert_allclose(t.quantile_gkg(0.75), np.expm1(t.mean + k * np.sqrt(t.total_var)))
    assert (t.quantile_gkg(0.75) < g.quantile_gkg(0.75)).all() and (t.quantile_gkg(0.999) > g.quantile_gkg(0.999)).all()
    np.testing.assert_allclose(t.quantile_gkg(0.5), g.soc_gkg())
    assert t.subset([0, 1]).tail_dof == 4.0 and t.calibrate(2.0).tail_dof == 4.0
    assert t.with_tail_dof(None).tail_dof is None
    with pytest.raises(ValueError, match="tail_dof"):
        g.with_tail_dof(2.0)

@pytest.mark.parametrize("v", [0.01, 0.3, 1.0])
def test_var_gkg_is_the_lognormal_variance(v: float) -> None:
    """The sd layers are the calibrated predictive's own moments in g/kg: SOC = exp(X) - 1 with X ~ N(mu, v) drawn
    a million times has the variance ``var_gkg`` gives; the delta method (exp(2 mu) v) falls short of it, more
    the larger v is."""
    mu = 2.5
    pred = EnsemblePrediction.from_members(np.full((2, 1), mu), np.full((2, 1), v))
    draws = np.expm1(np.random.default_rng(0).normal(mu, np.sqrt(v), 1_000_000))
    got = float(pred.var_gkg()[0])
    assert got == pytest.approx(float(draws.var()), rel=0.03)
    assert got / (np.exp(2 * mu) * v) == pytest.approx(np.exp(v) * np.expm1(v) / v)
    assert np.exp(2 * mu) * v < 0.99 * got or v < 0.02
