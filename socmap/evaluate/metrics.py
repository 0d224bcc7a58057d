"""Point and uncertainty metrics (paper section 5, Tables 4, 7-10), with paired bootstrap confidence intervals.

Scales. Point metrics (MAE, RMSE, MAPE, R2) are computed on the original SOC scale, g/kg, from the model's point
prediction ``expm1(mean)`` (the median of the log-normal). The model's predictive distribution is a Gaussian on
``log(1 + SOC)``, so every metric that scores a distribution (ECE, NLL, CRPS, coverage and interval width,
epistemic fraction, the z diagnostics) is computed on that scale, where the Gaussian assumption actually holds:
its units are log(1 + g/kg). Coverage is the same on both scales (expm1 is monotone, an interval maps to an
interval); the interval width is also given in g/kg (``mpiw_gkg``: the mean width of ``expm1`` of the log-scale
interval ends).

Every metric function reduces over the LAST axis, so the same function scores one array of shape (N,) or a
stack of bootstrap resamples of shape (B, N) in one vectorised call (:func:`bootstrap`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "ECE_LEVELS",
    "VP_K95",
    "bootstrap",
    "coverage_width",
    "crps_gaussian",
    "ece",
    "epistemic_fraction",
    "error_sigma_correlation",
    "gaussian_nll",
    "interval_k",
    "mae",
    "mape",
    "point_metrics",
    "r2",
    "reliability_curve",
    "rmse",
    "uncertainty_metrics",
]

ECE_LEVELS = (np.arange(1, 21) - 0.5) / 20.0
"""The 20 nominal confidence levels of the ECE: 0.025, 0.075, ..., 0.975 (central Gaussian intervals)."""

VP_K95 = float(np.sqrt(4.0 / (9.0 * 0.05)))
"""Vysochanskij-Petunin half-width at 95 %, in sigmas (~2.981): P(|X - mu| >= k sigma) <= 4 / (9 k^2) for any
unimodal distribution with finite variance, so mu +- 2.98 sigma covers at least 95 % without assuming a Gaussian."""


# ------------------------------------------------------------------------------------------ point metrics
def mae(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Mean absolute error, in the units of ``y``."""
    return np.mean(np.abs(np.asarray(y) - np.asarray(pred)), axis=-1)


def rmse(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Root-mean-square error, in the units of ``y``."""
    return np.sqrt(np.mean((np.asarray(y) - np.asarray(pred)) ** 2, axis=-1))


def mape(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Mean absolute percentage error, % (``y`` must be > 0; SOC is, after harmonisation)."""
    y = np.asarray(y)
    return 100.0 * np.mean(np.abs(y - np.asarray(pred)) / np.abs(y), axis=-1)


def r2(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination 1 - SS_res / SS_tot (dimensionless, <= 1)."""
    y = np.asarray(y, dtype=float)
    ss_res = np.sum((y - np.asarray(pred)) ** 2, axis=-1)
    ss_tot = np.sum((y - y.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    return 1.0 - ss_res / ss_tot


# ------------------------------------------------------------------------------------------- bootstrap
def bootstrap(stat: Callable[..., np.ndarray], *arrays: np.ndarray, n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(*arrays)`` over ``n_boot`` resamples of the N rows.

    The resample indices depend only on (N, n_boot, seed), so two calls with the same seed on the same rows
    are *paired* (e.g. pre- and post-calibration, or SpTGNN and XGBoost): their intervals come from the very
    same resamples. ``stat`` must reduce over the last axis (all functions of this module do).
    """
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    vals = np.asarray(stat(*(np.asarray(a)[idx] for a in arrays)), dtype=float)
    lo, hi = np.nanquantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _with_ci(stat: Callable[..., np.ndarray], *arrays: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"value": float(stat(*arrays))}
    if n_boot > 0:
        out["ci95"] = list(bootstrap(stat, *arrays, n_boot=n_boot, seed=seed))
    return out


def point_metrics(y_gkg: np.ndarray, pred_gkg: np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """MAE, RMSE (g/kg), MAPE (%) and R2 of point predictions on the original SOC scale, each with a 95 % CI.

    Returns ``{"n": N, "mae": {"value": v, "ci95": [lo, hi]}, "rmse": ..., "mape": ..., "r2": ...}``
    (no ``ci95`` when ``n_boot`` is 0).
    """
    y, p = np.asarray(y_gkg, float), np.asarray(pred_gkg, float)
    out: dict[str, Any] = {"n": len(y)}
    for name, fn in (("mae", mae), ("rmse", rmse), ("mape", mape), ("r2", r2)):
        out[name] = _with_ci(fn, y, p, n_boot=n_boot, seed=seed)
    return out


# ------------------------------------------------------------------------------------- uncertainty metrics
def interval_k(level: float, method: str = "gaussian") -> float:
    """Half-width, in sigmas, of the central interval of nominal ``level``.

    ``gaussian``: the normal quantile Phi^-1((1 + level) / 2) (1.96 at 95 %). ``vp``: the Vysochanskij-Petunin
    bound sqrt(4 / (9 (1 - level))) (2.98 at 95 %), valid for unimodal errors (and for k >= sqrt(8/3)).
    """
    if method == "gaussian":
        return float(stats.norm.ppf(0.5 + level / 2.0))
    if method == "vp":
        return float(np.sqrt(4.0 / (9.0 * (1.0 - level))))
    raise ValueError(f"unknown interval method {method!r} (gaussian or vp)")


def reliability_curve(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                      levels: np.ndarray = ECE_LEVELS) -> np.ndarray:
    """Empirical coverage of the central Gaussian interval mu +- Phi^-1((1+p)/2) sigma at each nominal level p.

    Shape ``(..., len(levels))``: the reliability diagram's y values (x = ``levels``).
    """
    k = stats.norm.ppf(0.5 + np.asarray(levels) / 2.0)
    absz = np.abs((np.asarray(y) - np.asarray(mu)) / np.asarray(sigma))
    return np.mean(absz[..., None, :] <= k[:, None], axis=-1)


def ece(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, levels: np.ndarray = ECE_LEVELS) -> np.ndarray:
    """Expected calibration error: mean over the nominal levels of |empirical coverage - level| (0 is perfect)."""
    return np.mean(np.abs(reliability_curve(y, mu, sigma, levels) - np.asarray(levels)), axis=-1)


def gaussian_nll(y: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Mean Gaussian negative log-likelihood 0.5 log(2 pi var) + (y - mu)^2 / (2 var), in nats per point."""
    var = np.asarray(var, float)
    return np.mean(0.5 * np.log(2.0 * np.pi * var) + (np.asarray(y) - np.asarray(mu)) ** 2 / (2.0 * var), axis=-1)


def crps_gaussian(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Mean continuous ranked probability score of N(mu, sigma^2) (scoringrules.crps_normal), units of ``y``."""
    import scoringrules as sr

    return np.mean(np.asarray(sr.crps_normal(np.asarray(y, float), np.asarray(mu, float), np.asarray(sigma, float))),
                   axis=-1)


def coverage_width(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, *, level: float = 0.95,
                   method: str = "gaussian") -> tuple[np.ndarray, np.ndarray]:
    """(PICP, MPIW) of the central interval mu +- k sigma: fraction of ``y`` inside and mean width (units of y)."""
    k = interval_k(level, method)
    y, mu, sigma = np.asarray(y), np.asarray(mu), np.asarray(sigma)
    inside = np.abs(y - mu) <= k * sigma
    return np.mean(inside, axis=-1), np.mean(2.0 * k * sigma, axis=-1)


def epistemic_fraction(aleatoric_var: np.ndarray, epistemic_var: np.ndarray) -> np.ndarray:
    """Mean over points of sigma^2_epistemic / sigma^2_total (0 for a single member)."""
    a, e = np.asarray(aleatoric_var, float), np.asarray(epistemic_var, float)
    return np.mean(e / (a + e), axis=-1)


def error_sigma_correlation(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation of |y - mu| with sigma (does a larger sigma flag a larger error?)."""
    err = np.abs(np.asarray(y) - np.asarray(mu))
    sigma = np.asarray(sigma)
    if np.ptp(sigma) == 0 or np.ptp(err) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {"pearson": float(stats.pearsonr(err, sigma).statistic),
            "spearman": float(stats.spearmanr(err, sigma).statistic)}


def uncertainty_metrics(y_log: np.ndarray, mu_log: np.ndarray, aleatoric_var: np.ndarray,
                        epistemic_var: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict[str, Any]:
    """Every uncertainty metric of one predictive Gaussian N(mu, aleatoric + epistemic) on log(1 + SOC).

    ``y_log`` = log1p(observed SOC in g/kg); variances in log units squared. Returns ECE, NLL, CRPS, PICP and
    MPIW of the Gaussian and the Vysochanskij-Petunin ``level`` intervals (widths in log units and in g/kg),
    the epistemic fraction, the variance means and the |error| - sigma correlations; ECE, NLL, CRPS, the
    coverages and the epistemic fraction carry paired bootstrap 95 % intervals.
    """
    y, mu = np.asarray(y_log, float), np.asarray(mu_log, float)
    a, e = np.asarray(aleatoric_var, float), np.asarray(epistemic_var, float)
    var = a + e
    sigma = np.sqrt(var)
    out: dict[str, Any] = {"n": len(y), "scale": "log(1 + SOC g/kg)", "level": level}
    out["ece"] = _with_ci(ece, y, mu, sigma, n_boot=n_boot, seed=seed)
    out["nll"] = _with_ci(gaussian_nll, y, mu, var, n_boot=n_boot, seed=seed)
    out["crps"] = _with_ci(crps_gaussian, y, mu, sigma, n_boot=n_boot, seed=seed)
    for method in ("gaussian", "vp"):
        k = interval_k(level, method)

        def picp(y_: np.ndarray, mu_: np.ndarray, s_: np.ndarray, _m: str = method) -> np.ndarray:
            return coverage_width(y_, mu_, s_, level=level, method=_m)[0]

        out[f"picp_{method}"] = _with_ci(picp, y, mu, sigma, n_boot=n_boot, seed=seed)
        out[f"mpiw_{method}"] = float(coverage_width(y, mu, sigma, level=level, method=method)[1])
        out[f"mpiw_{method}_gkg"] = float(np.mean(np.expm1(mu + k * sigma) - np.expm1(mu - k * sigma)))
    out["epistemic_fraction"] = _with_ci(epistemic_fraction, a, e, n_boot=n_boot, seed=seed)
    out["aleatoric_var_mean"] = float(a.mean())
    out["epistemic_var_mean"] = _with_ci(lambda x: np.mean(x, axis=-1), e, n_boot=n_boot, seed=seed)
    out["total_var_mean"] = float(var.mean())
    out["corr_abs_error_sigma"] = error_sigma_correlation(y, mu, sigma)
    out["reliability"] = {"levels": ECE_LEVELS.tolist(), "coverage": reliability_curve(y, mu, sigma).tolist()}
    return out
