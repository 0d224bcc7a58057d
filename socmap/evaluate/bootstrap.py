"""Evaluation's metric tables: every shared metric of :mod:`socmap.metrics` with a paired bootstrap 95 % interval.

Scales (see :mod:`socmap.metrics`). Point metrics (MAE, RMSE, MAPE, R2) are computed on the original SOC scale,
g/kg, from the model's point prediction. Every metric that scores the predictive distribution (ECE, NLL, CRPS,
coverage and interval width, epistemic fraction) is computed on log(1 + SOC), where the model's Gaussian
lives; the interval width is also given in g/kg (``mpiw_gkg``: the mean width of ``expm1`` of the log-scale
interval ends).

The metric functions themselves live in :mod:`socmap.metrics` (train and tune report the same ones); this
module adds what only evaluation needs: the bootstrap and the nested result dictionaries of the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from socmap.metrics import (
    ECE_LEVELS,
    coverage_width,
    crps_gaussian,
    ece,
    epistemic_fraction,
    error_sigma_correlation,
    gaussian_nll,
    interval_k,
    mae,
    mape,
    r2,
    reliability_curve,
    rmse,
)

__all__ = ["N_BOOT", "bootstrap", "point_metrics", "rmse_ratio", "uncertainty_metrics"]

N_BOOT = 1000
"""Default bootstrap resamples of every interval (``socmap evaluate --bootstrap``)."""


# ------------------------------------------------------------------------------------------- bootstrap
def bootstrap(stat: Callable[..., np.ndarray], *arrays: np.ndarray, n_boot: int = N_BOOT, seed: int = 0,
              level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(*arrays)`` over ``n_boot`` resamples of the N rows.

    The resample indices depend only on (N, n_boot, seed), so two calls with the same seed on the same rows
    are *paired* (e.g. pre- and post-calibration, or SpTGNN and XGBoost): their intervals come from the very
    same resamples. ``stat`` must reduce over the last axis (every metric of :mod:`socmap.metrics` does).
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


def point_metrics(y_gkg: np.ndarray, pred_gkg: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """MAE, RMSE (g/kg), MAPE (%) and R2 of point predictions on the original SOC scale, each with a 95 % CI.

    Returns ``{"n": N, "mae": {"value": v, "ci95": [lo, hi]}, "rmse": ..., "mape": ..., "r2": ...}``
    (no ``ci95`` when ``n_boot`` is 0).
    """
    y, p = np.asarray(y_gkg, float), np.asarray(pred_gkg, float)
    out: dict[str, Any] = {"n": len(y)}
    for name, fn in (("mae", mae), ("rmse", rmse), ("mape", mape), ("r2", r2)):
        out[name] = _with_ci(fn, y, p, n_boot=n_boot, seed=seed)
    return out


def rmse_ratio(y_gkg: np.ndarray, pred_gkg: np.ndarray, ref_gkg: np.ndarray, *, n_boot: int = N_BOOT,
               seed: int = 0) -> dict[str, Any]:
    """RMSE of ``pred_gkg`` over RMSE of ``ref_gkg`` on the same rows, with a *paired* bootstrap 95 % interval
    (both RMSEs from the same resamples), so the interval says whether one model is really ahead: two separate
    RMSE intervals of a few hundred held-out sites overlap even where a paired comparison separates them.
    ``{"value": r, "ci95": [lo, hi]}``; below 1 means ``pred`` is better."""

    def ratio(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(rmse(y, a)) / np.asarray(rmse(y, b))

    y, a, b = (np.asarray(v, float) for v in (y_gkg, pred_gkg, ref_gkg))
    return _with_ci(ratio, y, a, b, n_boot=n_boot, seed=seed)


# ------------------------------------------------------------------------------------- uncertainty metrics
def uncertainty_metrics(y_log: np.ndarray, mu_log: np.ndarray, aleatoric_var: np.ndarray,
                        epistemic_var: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0,
                        level: float = 0.95, dof: float | np.ndarray | None = None) -> dict[str, Any]:
    """Every uncertainty metric of one predictive on log(1 + SOC) with mean mu and variance aleatoric + epistemic.

    ``y_log`` = log1p(observed SOC in g/kg); variances in log units squared; ``dof``: the predictive's tail shape
    (Student's t at the same variance, :func:`socmap.metrics.std_quantile`; one value, one per point for pooled
    folds, or None for a Gaussian). Returns the ECE and reliability curve of the predictive's own central intervals
    (``ece``; ``ece_gaussian`` scores Gaussian intervals on the same sigma, the paper's definition), the Gaussian
    NLL and CRPS, PICP and MPIW of the Gaussian, the predictive and the Vysochanskij-Petunin ``level`` intervals
    (widths in log units and in g/kg), the epistemic fraction, the variance means and the |error| - sigma
    correlations; ECE, NLL, CRPS, the coverages and the epistemic fraction carry paired bootstrap 95 % intervals.
    """
    y, mu = np.asarray(y_log, float), np.asarray(mu_log, float)
    a, e = np.asarray(aleatoric_var, float), np.asarray(epistemic_var, float)
    var = a + e
    sigma = np.sqrt(var)
    out: dict[str, Any] = {"n": len(y), "scale": "log(1 + SOC g/kg)", "level": level}
    per_point = dof is not None and np.ndim(dof) > 0
    nu = np.broadcast_to(np.asarray(dof, float), y.shape) if per_point else None

    def with_dof(fn: Callable[..., np.ndarray], *arrays: np.ndarray, **kw: Any) -> dict[str, Any]:
        """``fn(*arrays, dof=...)`` with a CI; a per-point dof is resampled with the rows."""
        if nu is None:
            return _with_ci(lambda *x: fn(*x, dof=dof, **kw), *arrays, n_boot=n_boot, seed=seed)
        return _with_ci(lambda *x: fn(*x[:-1], dof=x[-1], **kw), *arrays, nu, n_boot=n_boot, seed=seed)

    out["ece"] = with_dof(ece, y, mu, sigma)
    out["ece_gaussian"] = _with_ci(ece, y, mu, sigma, n_boot=n_boot, seed=seed)
    out["nll"] = _with_ci(gaussian_nll, y, mu, var, n_boot=n_boot, seed=seed)
    out["crps"] = _with_ci(crps_gaussian, y, mu, sigma, n_boot=n_boot, seed=seed)
    for method in ("gaussian", "predictive", "vp"):
        k = interval_k(level, method, dof)

        def picp(y_: np.ndarray, mu_: np.ndarray, s_: np.ndarray, dof: Any = None, _m: str = method) -> np.ndarray:
            return coverage_width(y_, mu_, s_, level=level, method=_m, dof=dof)[0]

        out[f"picp_{method}"] = with_dof(picp, y, mu, sigma)
        out[f"mpiw_{method}"] = float(np.mean(2.0 * k * sigma))
        out[f"mpiw_{method}_gkg"] = float(np.mean(np.expm1(mu + k * sigma) - np.expm1(mu - k * sigma)))
    out["tail_dof"] = None if dof is None else (float(dof) if not per_point else sorted(set(np.ravel(dof).tolist())))
    out["epistemic_fraction"] = _with_ci(epistemic_fraction, a, e, n_boot=n_boot, seed=seed)
    out["aleatoric_var_mean"] = float(a.mean())
    out["epistemic_var_mean"] = _with_ci(lambda x: np.mean(x, axis=-1), e, n_boot=n_boot, seed=seed)
    out["total_var_mean"] = float(var.mean())
    out["corr_abs_error_sigma"] = error_sigma_correlation(y, mu, sigma)
    out["reliability"] = {"levels": ECE_LEVELS.tolist(), "coverage": reliability_curve(y, mu, sigma, dof=dof).tolist()}
    return out
