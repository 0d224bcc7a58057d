"""Losses against hand computations, eq. (6) against numpy, temperature scaling on synthetic Gaussians."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from socmap.config import TrainConfig
from socmap.train import (
    EnsemblePrediction,
    beta_nll_loss,
    combine_members,
    fit_mean_var_cap,
    fit_tail_dof,
    fit_temperature,
    gaussian_nll_loss,
    main_loss,
    mse_loss,
)

PRED = [0.5, -1.0, 2.0, 0.1]
LOGVAR = [0.2, -0.5, 1.0, 0.0]
Y = [1.0, -1.5, 0.0, float("nan")]  # the NaN target is skipped


def _t(x: list[float], grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def _hand_nll(weight: np.ndarray | None = None) -> float:
    p, s, y = (np.array(a[:3]) for a in (PRED, LOGVAR, Y))
    w = np.ones(3) if weight is None else weight
    return float(np.mean(0.5 * w * (np.exp(-s) * (y - p) ** 2 + s)))


def test_mse_and_nll_match_hand_computation() -> None:
    p, s, y = _t(PRED), _t(LOGVAR), _t(Y)
    assert float(mse_loss(p, y)) == pytest.approx(np.mean((np.array(PRED[:3]) - np.array(Y[:3])) ** 2))
    assert float(gaussian_nll_loss(p, s, y)) == pytest.approx(_hand_nll())
    mask = torch.tensor([True, False, True, True])
    assert float(mse_loss(p, y, mask)) == pytest.approx(((0.5 - 1.0) ** 2 + 2.0**2) / 2)


def test_huber_matches_hand_computation() -> None:
    cfg = TrainConfig(loss="huber")
    r = np.abs(np.array(PRED[:3]) - np.array(Y[:3]))  # 0.5, 0.5, 2.0
    hand = np.mean(np.where(r <= 1.0, 0.5 * r**2, 1.0 * (r - 0.5)))
    got = main_loss("huber", _t(PRED), _t(LOGVAR), _t(Y), None, epoch=0, cfg=cfg, huber_delta=1.0)
    assert float(got) == pytest.approx(hand)


def test_beta_nll_value_and_stop_gradient_weight() -> None:
    beta = 0.5
    p, s, y = _t(PRED, grad=True), _t(LOGVAR, grad=True), _t(Y)
    loss = beta_nll_loss(p, s, y, beta=beta)
    pv, sv, yv = (np.array(a[:3]) for a in (PRED, LOGVAR, Y))
    w = np.exp(beta * sv)  # sigma^(2 beta) = exp(beta s)
    assert float(loss.detach()) == pytest.approx(_hand_nll(w))
    loss.backward()
    n = 3
    # The weight is a constant: d/dp = w e^-s (p - y) / n, d/ds = 0.5 w (1 - e^-s r^2) / n.
    np.testing.assert_allclose(p.grad.numpy()[:3], w * np.exp(-sv) * (pv - yv) / n, rtol=1e-12)
    np.testing.assert_allclose(s.grad.numpy()[:3], 0.5 * w * (1 - np.exp(-sv) * (yv - pv) ** 2) / n, rtol=1e-12)
    assert p.grad[3] == 0 and s.grad[3] == 0
    # with a weight that carried gradient, d/ds would gain 0.5 beta w (e^-s r^2 + s) / n: it must not be there
    with_grad = 0.5 * w * (1 - np.exp(-sv) * (yv - pv) ** 2) / n + 0.5 * beta * w * (
        np.exp(-sv) * (yv - pv) ** 2 + sv) / n
    assert not np.allclose(s.grad.numpy()[:3], with_grad)


def test_beta_zero_is_plain_nll() -> None:
    p, s, y = _t(PRED), _t(LOGVAR), _t(Y)
    assert float(beta_nll_loss(p, s, y, beta=0.0)) == pytest.approx(float(gaussian_nll_loss(p, s, y)))


def test_hybrid_switches_after_warm_start() -> None:
    cfg = TrainConfig(loss="hybrid", warm_start_epochs=3, nll_weight=0.25)
    p, s, y = _t(PRED), _t(LOGVAR), _t(Y)
    mse, nll = float(mse_loss(p, y)), _hand_nll()
    for epoch in (0, 2):
        assert float(main_loss("hybrid", p, s, y, None, epoch=epoch, cfg=cfg)) == pytest.approx(mse)
    for epoch in (3, 10):
        assert float(main_loss("hybrid", p, s, y, None, epoch=epoch, cfg=cfg)) == pytest.approx(mse + 0.25 * nll)


def test_combine_members_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    mm, mv = rng.normal(size=(5, 30)), rng.uniform(0.1, 2, size=(5, 30))
    mean, alea, epi = combine_members(mm, mv)
    np.testing.assert_allclose(mean, mm.sum(0) / 5)
    np.testing.assert_allclose(alea, mv.sum(0) / 5)
    np.testing.assert_allclose(epi, ((mm - mm.mean(0)) ** 2).sum(0) / 4)  # Bessel
    _, _, epi1 = combine_members(mm[:1], mv[:1])
    assert (epi1 == 0).all()


def test_temperature_recovers_known_t() -> None:
    rng = np.random.default_rng(2)
    n, t_true = 20000, 2.5
    mean = rng.normal(size=n)
    var = rng.uniform(0.05, 1.0, n)
    y = mean + t_true * np.sqrt(var) * rng.normal(size=n)
    t = fit_temperature(mean, var, y)
    assert t == pytest.approx(t_true, rel=0.02)
    # it is the NLL minimiser: a nudge either way does worse
    def nll(tt: float) -> float:
        v = tt**2 * var
        return float(np.mean(0.5 * (np.log(2 * np.pi * v) + (y - mean) ** 2 / v)))
    assert nll(t) < nll(t * 1.02) and nll(t) < nll(t / 1.02)


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


def test_fit_mean_var_cap_caps_only_where_validation_overshoots() -> None:
    """Validation targets drawn from the model's own log-normal predictive: no cap (the exact mean is right).
    Targets whose log residuals are far narrower than the stated variance (as on held-out blocks): a cap."""
    rng = np.random.default_rng(8)
    n = 4000
    mu, var = rng.normal(2.5, 0.4, n), rng.uniform(0.05, 2.0, n)
    pred = EnsemblePrediction.from_members(mu[None, :], var[None, :])
    honest = np.expm1(mu + np.sqrt(var) * rng.standard_normal(n))
    assert fit_mean_var_cap(pred, honest) is None
    narrow = np.expm1(mu + 0.3 * rng.standard_normal(n))
    cap = fit_mean_var_cap(pred, narrow)
    assert cap is not None and cap <= 0.3
    r = lambda p: float(np.sqrt(np.mean((p - narrow) ** 2)))  # noqa: E731
    assert r(pred.with_mean_cap(cap).mean_gkg()) < r(pred.mean_gkg())


@pytest.mark.parametrize(("shape", "dof"), [("gaussian", None), ("t4", 4.0), ("t8", 8.0)])
def test_fit_tail_dof_recovers_the_error_shape(shape: str, dof: float | None) -> None:
    """Errors with exactly the stated variance: Gaussian ones give None (no change), Student t ones their dof."""
    from scipy import stats

    rng = np.random.default_rng(11)
    n = 20000
    mean, var = rng.normal(2.5, 0.5, n), rng.uniform(0.05, 0.5, n)
    if dof is None:
        z = rng.standard_normal(n)
    else:
        z = stats.t.rvs(dof, scale=np.sqrt((dof - 2) / dof), size=n, random_state=rng)
    got = fit_tail_dof(mean, var, mean + np.sqrt(var) * z)
    if dof is None:
        assert got is None
    else:
        assert got == pytest.approx(dof, rel=0.2)
    assert fit_tail_dof(mean[:5], var[:5], mean[:5]) is None  # too few sites to tell


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


@pytest.mark.parametrize("power", [0.0, 0.3, 0.8])
def test_fit_distance_temperature_recovers_the_growth(power: float) -> None:
    """Errors whose variance is T^2 (1 + d)^power sigma^2: the fit finds T and the power; power 0 is eq. 7's T
    exactly (a growth that does not help is not fitted), and the power never goes negative."""
    from socmap.train import fit_distance_temperature

    rng = np.random.default_rng(12)
    n, t_true = 20000, 1.4
    mean, var = rng.normal(size=n), rng.uniform(0.05, 1.0, n)
    dist = np.exp(rng.uniform(np.log(0.1), np.log(300.0), n))  # km, 0.1 to 300
    y = mean + t_true * np.sqrt(var * (1 + dist) ** power) * rng.normal(size=n)
    t, p = fit_distance_temperature(mean, var, y, dist)
    assert p == pytest.approx(power, abs=0.03) and t == pytest.approx(t_true, rel=0.05)
    if power == 0.0:
        assert (t, p) == (fit_temperature(mean, var, y), 0.0)
    shrinking = mean + t_true * np.sqrt(var / (1 + dist) ** 0.5) * rng.normal(size=n)
    assert fit_distance_temperature(mean, var, shrinking, dist)[1] == 0.0


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
