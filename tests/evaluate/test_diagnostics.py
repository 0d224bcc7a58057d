"""z diagnostics against scipy / statsmodels and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from socmap.evaluate.diagnostics import breusch_pagan, z_diagnostics


def test_breusch_pagan_by_hand() -> None:
    # LM = n R^2 of the auxiliary regression of z^2 on [1, x] (Koenker's studentised form, statsmodels' default)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, 400)
    z = rng.normal(size=400) * x  # variance grows with x
    lm, p = breusch_pagan(z, x)
    u = z**2
    slope, intercept = np.polyfit(x, u, 1)
    r2 = 1 - np.sum((u - (slope * x + intercept)) ** 2) / np.sum((u - u.mean()) ** 2)
    assert lm == pytest.approx(len(z) * r2, rel=1e-6)
    assert p == pytest.approx(stats.chi2.sf(lm, 1))
    assert p < 1e-3


def test_z_diagnostics_well_specified_and_not() -> None:
    rng = np.random.default_rng(1)
    mu = rng.normal(2.0, 0.5, 500)
    sigma = rng.uniform(0.2, 0.6, 500)
    y = mu + sigma * rng.normal(size=500)
    d = z_diagnostics(y, mu, sigma)
    z = (y - mu) / sigma
    assert d["mean_z"] == pytest.approx(z.mean())
    assert d["var_z"] == pytest.approx(z.var(ddof=1))
    assert d["shapiro_w"] == pytest.approx(stats.shapiro(z).statistic)
    assert d["shapiro_p"] > 0.01 and d["bp_sigma_p"] > 0.01
    # sigma twice too small where it is large: z^2 then depends on sigma, and z is heavy-tailed
    y_bad = mu + (sigma**2 * 8) * rng.standard_t(3, size=500)
    bad = z_diagnostics(y_bad, mu, sigma)
    assert bad["bp_sigma_p"] < 0.01
    assert bad["shapiro_p"] < 1e-6
    assert bad["var_z"] > 1.5
