"""The one set of point and uncertainty metrics that train, tune, evaluate, predict and aggregate report.

Scales. Point metrics (MAE, RMSE, MAPE, R2, bias) are in the units of what they are given: socmap scores SOC in
g/kg (MAPE in %, R2 dimensionless). The model's predictive distribution is a Gaussian on ``log(1 + SOC)``, so
the metrics that score a distribution (ECE, NLL, CRPS, the coverage and width of ``mu +- k sigma``, the
epistemic fraction) are computed on that scale, where the Gaussian assumption holds: their units are
log(1 + g/kg). :func:`interval_coverage` scores intervals given by their ends, on any scale (expm1 is monotone,
so a log-scale interval and its g/kg image cover the same points).

Every array metric reduces over the LAST axis, so the same function scores one array of shape (N,) or a stack
of bootstrap resamples of shape (B, N) in one vectorised call (``socmap.evaluate.metrics.bootstrap``). The
argument order is always observed first: ``(y, pred)``, ``(y, mu, sigma)``, ``(y, lo, hi)``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = [
    "ECE_LEVELS",
    "VP_K95",
    "bias",
    "coverage_width",
    "crps_gaussian",
    "ece",
    "epistemic_fraction",
    "error_sigma_correlation",
    "gaussian_nll",
    "interval_coverage",
    "interval_k",
    "mae",
    "mape",
    "r2",
    "regression_metrics",
    "reliability_curve",
    "rmse",
]

ECE_LEVELS = (np.arange(1, 21) - 0.5) / 20.0
"""The 20 nominal confidence levels of the ECE: 0.025, 0.075, ..., 0.975 (central Gaussian intervals)."""

VP_K95 = float(np.sqrt(4.0 / (9.0 * 0.05)))
"""Vysochanskij-Petunin half-width at 95 %, in sigmas (~2.981): P(|X - mu| >= k sigma) <= 4 / (9 k^2) for any
unimodal distribution with finite variance, so mu +- 2.98 sigma covers at least 95 % without assuming a Gaussian."""

_EPS = float(np.finfo(np.float64).eps)
"""Smallest |y| MAPE divides by (as scikit-learn's ``mean_absolute_percentage_error``)."""

_VAR_FLOOR = 1e-12
"""Smallest variance the NLL takes (a zero variance would give an infinite score)."""


# ------------------------------------------------------------------------------------------ point metrics
def mae(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Mean absolute error, in the units of ``y``."""
    return np.mean(np.abs(np.asarray(y, float) - np.asarray(pred, float)), axis=-1)


def rmse(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Root-mean-square error, in the units of ``y``."""
    return np.sqrt(np.mean((np.asarray(y, float) - np.asarray(pred, float)) ** 2, axis=-1))


def bias(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Mean error ``pred - y``, in the units of ``y`` (positive: the prediction is too high)."""
    return np.mean(np.asarray(pred, float) - np.asarray(y, float), axis=-1)


def mape(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Mean absolute percentage error, % (``y`` should be > 0; SOC is, after harmonisation)."""
    y = np.asarray(y, float)
    return 100.0 * np.mean(np.abs(y - np.asarray(pred, float)) / np.maximum(np.abs(y), _EPS), axis=-1)


def r2(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination 1 - SS_res / SS_tot (dimensionless, <= 1); NaN where ``y`` is constant."""
    y = np.asarray(y, dtype=float)
    ss_res = np.sum((y - np.asarray(pred, float)) ** 2, axis=-1)
    ss_tot = np.sum((y - y.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.nan)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``{"mape": %, "rmse": ..., "mae": ..., "r2": ...}`` of one set of point predictions (units of ``y``).

    What training logs each epoch (``val_*``), what the training summary and the tune trials report.
    """
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    return {"mape": float(mape(y, pred)), "rmse": float(rmse(y, pred)), "mae": float(mae(y, pred)),
            "r2": float(r2(y, pred))}


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


def interval_coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """PICP: fraction of ``y`` inside its interval [lo, hi] (ends included); e.g. PICP95 with the 2.5 % and
    97.5 % quantiles as ends."""
    y = np.asarray(y, float)
    return np.mean((np.asarray(lo, float) <= y) & (y <= np.asarray(hi, float)), axis=-1)


def coverage_width(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, *, level: float = 0.95,
                   method: str = "gaussian") -> tuple[np.ndarray, np.ndarray]:
    """(PICP, MPIW) of the central interval mu +- k sigma: fraction of ``y`` inside and mean width (units of y)."""
    k = interval_k(level, method)
    y, mu, sigma = np.asarray(y, float), np.asarray(mu, float), np.asarray(sigma, float)
    inside = np.abs(y - mu) <= k * sigma
    return np.mean(inside, axis=-1), np.mean(2.0 * k * sigma, axis=-1)


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
    """Mean Gaussian negative log-likelihood 0.5 log(2 pi var) + (y - mu)^2 / (2 var), in nats per point.

    ``var`` is in the units of ``y`` squared (floored at 1e-12).
    """
    var = np.maximum(np.asarray(var, float), _VAR_FLOOR)
    return np.mean(0.5 * np.log(2.0 * np.pi * var) + (np.asarray(y, float) - np.asarray(mu, float)) ** 2
                   / (2.0 * var), axis=-1)


def crps_gaussian(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Mean continuous ranked probability score of N(mu, sigma^2) (scoringrules.crps_normal), units of ``y``."""
    import scoringrules as sr

    return np.mean(np.asarray(sr.crps_normal(np.asarray(y, float), np.asarray(mu, float), np.asarray(sigma, float))),
                   axis=-1)


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
