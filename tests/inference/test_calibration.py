"""The calibration's fits on synthetic held-out sites: temperature (eq. 7), its distance growth, the mean cap and
the tail shape."""

from __future__ import annotations

import numpy as np
import pytest

from socmap.inference import (
    EnsemblePrediction,
    fit_distance_temperature,
    fit_mean_var_cap,
    fit_tail_dof,
    fit_temperature,
)


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

@pytest.mark.parametrize("power", [0.0, 0.3, 0.8])
def test_fit_distance_temperature_recovers_the_growth(power: float) -> None:
    """Errors whose variance is T^2 (1 + d)^power sigma^2: the fit finds T and the power; power 0 is eq. 7's T
    exactly (a growth that does not help is not fitted), and the power never goes negative."""
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
