"""Goodness-of-fit diagnostics on standardised residuals z = (y - mu) / sigma (paper section 5.6, Table 12).

Under a correctly specified heteroscedastic Gaussian, z ~ N(0, 1) independently of sigma and of mu. Three checks:
Shapiro-Wilk for normality of z (scipy), Breusch-Pagan for a dependence of z^2 on sigma and on mu (statsmodels'
``het_breuschpagan`` with z as the residual and [1, regressor] as the design), and the mean and variance of z
(targets 0 and 1). Computed on the log(1 + SOC) scale, where the model's Gaussian lives. Shapiro-Wilk and
Breusch-Pagan are invariant to temperature scaling (z is divided by T everywhere); the moments of z are not.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["breusch_pagan", "z_diagnostics"]

SHAPIRO_MAX_N = 5000
"""scipy's Shapiro-Wilk p-value is exact only up to 5,000 points; larger sets are tested on a seeded subsample."""


def breusch_pagan(z: np.ndarray, regressor: np.ndarray) -> tuple[float, float]:
    """Breusch-Pagan LM statistic and p-value of z^2 regressed on [1, regressor] (statsmodels)."""
    from statsmodels.stats.diagnostic import het_breuschpagan

    x = np.asarray(regressor, float)
    exog = np.column_stack([np.ones_like(x), x])
    lm, lm_p, _, _ = het_breuschpagan(np.asarray(z, float), exog)
    return float(lm), float(lm_p)


def z_diagnostics(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Shapiro-Wilk W / p, Breusch-Pagan z^2 ~ sigma and z^2 ~ mu (LM / p), mean(z) and var(z) (ddof 1)."""
    y, mu, sigma = (np.asarray(a, float) for a in (y, mu, sigma))
    z = (y - mu) / sigma
    zs = z
    if len(z) > SHAPIRO_MAX_N:
        zs = np.random.default_rng(seed).choice(z, SHAPIRO_MAX_N, replace=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on ties / small n; the numbers are still what we report
        sw = stats.shapiro(zs)
    out: dict[str, Any] = {
        "n": len(z),
        "shapiro_w": float(sw.statistic),
        "shapiro_p": float(sw.pvalue),
        "mean_z": float(np.mean(z)),
        "var_z": float(np.var(z, ddof=1)),
    }
    for name, reg in (("sigma", sigma), ("mu", mu)):
        if np.ptp(reg) > 0:
            lm, p = breusch_pagan(z, reg)
        else:  # a constant regressor explains nothing; statsmodels would fail on the singular design
            lm, p = 0.0, 1.0
        out[f"bp_{name}_lm"], out[f"bp_{name}_p"] = lm, p
    return out
