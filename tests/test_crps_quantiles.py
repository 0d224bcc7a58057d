"""CRPS from predictive quantiles (the pinball-loss form) against the closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from socmap.metrics import crps_gaussian, crps_log1p_normal, crps_quantiles

GRID = (np.arange(1, 101) - 0.5) / 100.0


def test_crps_quantiles_matches_gaussian_closed_form() -> None:
    # N(0, 1) at y = 0: 2 phi(0) - 1 / sqrt(pi) = 0.797885 - 0.564190 = 0.233695 (by hand)
    q = stats.norm.ppf(GRID)[None, :]
    assert float(crps_gaussian(np.zeros(1), np.zeros(1), np.ones(1))) == pytest.approx(0.233695, abs=1e-6)
    assert float(crps_quantiles(np.zeros(1), q, GRID)) == pytest.approx(0.233695, rel=0.01)
    rng = np.random.default_rng(0)
    mu, sd = rng.normal(size=400), rng.uniform(0.3, 2.0, 400)
    y = mu + sd * rng.standard_normal(400)
    qs = mu[:, None] + sd[:, None] * stats.norm.ppf(GRID)[None, :]
    assert float(crps_quantiles(y, qs, GRID)) == pytest.approx(float(crps_gaussian(y, mu, sd)), rel=0.01)


def test_crps_quantiles_matches_log_normal_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu, sd = rng.normal(2.5, 0.5, 300), rng.uniform(0.2, 0.8, 300)
    y = np.expm1(mu + sd * rng.standard_normal(300))
    qs = np.expm1(mu[:, None] + sd[:, None] * stats.norm.ppf(GRID)[None, :])
    assert float(crps_quantiles(y, qs, GRID)) == pytest.approx(float(crps_log1p_normal(y, mu, sd)), rel=0.01)
    # a point forecast (zero spread) scores its absolute error, on either form
    assert float(crps_log1p_normal(np.array([9.0]), np.array([np.log(5.0)]), np.array([1e-9]))) == pytest.approx(5.0)


def test_crps_quantiles_per_point_by_adding_an_axis() -> None:
    q = stats.norm.ppf(GRID)[None, :] + np.array([[0.0], [1.0]])
    per = crps_quantiles(np.zeros((2, 1)), q[:, None, :], GRID)
    assert per.shape == (2,) and per[1] > per[0]
