"""The one set of point and uncertainty metrics that train, tune, evaluate, predict and aggregate report.

Scales. Point metrics (MAE, RMSE, MAPE, R2, bias) are in the units of what they are given: socmap scores SOC in
g/kg (MAPE in %, R2 dimensionless). The model's predictive distribution is a Gaussian on ``log(1 + SOC)``, so
the metrics that score a distribution (ECE, NLL, CRPS, the coverage and width of ``mu +- k sigma``, the
epistemic fraction) are computed on that scale, where the Gaussian assumption holds: their units are
log(1 + g/kg). Where ``socmap train`` fitted a tail shape (``tail_dof``: the calibrated errors are heavier-tailed
than a Gaussian), the predictive's quantiles and central intervals are those of Student's t with ``dof`` degrees
of freedom scaled to the same variance (:func:`std_quantile`); the coverage metrics take that ``dof``, and the NLL
and CRPS stay Gaussian (the paper's, on the same variance). :func:`interval_coverage` scores intervals given by
their ends, on any scale (expm1 is monotone, so a log-scale interval and its g/kg image cover the same points).

Every array metric reduces over the LAST axis, so the same function scores one array of shape (N,) or a stack
of bootstrap resamples of shape (B, N) in one vectorised call (``socmap.evaluate.bootstrap.bootstrap``). The
argument order is always observed first: ``(y, pred)``, ``(y, mu, sigma)``, ``(y, lo, hi)``.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = [
    "ECE_LEVELS",
    "VP_K95",
    "bias",
    "coverage_width",
    "crps_gaussian",
    "crps_log1p_normal",
    "crps_quantiles",
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
    "std_quantile",
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
def std_quantile(q: float | np.ndarray, dof: float | np.ndarray | None = None) -> np.ndarray:
    """Quantile ``q`` of the unit-variance predictive shape: the standard normal (``dof`` None or inf) or Student's t
    with ``dof`` > 2 degrees of freedom scaled to unit variance, :math:`t_\\nu \\sqrt{(\\nu - 2) / \\nu}`. A predictive
    with mean mu and variance s^2 has quantile ``mu + s * std_quantile(q, dof)``. Broadcasts ``q`` against ``dof``
    (per-point dof, e.g. pooled cross-validation folds)."""
    q = np.asarray(q, np.float64)
    if dof is None:
        return np.asarray(special.ndtri(q))
    nu = np.asarray(dof, np.float64)
    return np.asarray(special.stdtrit(nu, q) * np.sqrt(1.0 - 2.0 / nu))


def interval_k(level: float, method: str = "gaussian", dof: float | np.ndarray | None = None) -> np.ndarray:
    """Half-width, in sigmas, of the central interval of nominal ``level``.

    ``gaussian``: the normal quantile Phi^-1((1 + level) / 2) (1.96 at 95 %). ``predictive``: the model's own
    predictive shape, :func:`std_quantile` at (1 + level) / 2 with ``dof`` (Gaussian where None; an array for
    per-point dof). ``vp``: the Vysochanskij-Petunin bound sqrt(4 / (9 (1 - level))) (2.98 at 95 %), valid for
    unimodal errors (and for k >= sqrt(8/3)).
    """
    if method == "gaussian":
        return std_quantile(0.5 + level / 2.0)
    if method == "predictive":
        return std_quantile(0.5 + level / 2.0, dof)
    if method == "vp":
        return np.asarray(np.sqrt(4.0 / (9.0 * (1.0 - level))))
    raise ValueError(f"unknown interval method {method!r} (gaussian, predictive or vp)")


def interval_coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """PICP: fraction of ``y`` inside its interval [lo, hi] (ends included); e.g. PICP95 with the 2.5 % and
    97.5 % quantiles as ends."""
    y = np.asarray(y, float)
    return np.mean((np.asarray(lo, float) <= y) & (y <= np.asarray(hi, float)), axis=-1)


def coverage_width(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, *, level: float = 0.95,
                   method: str = "gaussian", dof: float | np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(PICP, MPIW) of the central interval mu +- k sigma: fraction of ``y`` inside and mean width (units of y);
    ``k`` by :func:`interval_k` (``dof`` for ``method="predictive"``, per point when an array)."""
    k = interval_k(level, method, dof)
    y, mu, sigma = np.asarray(y, float), np.asarray(mu, float), np.asarray(sigma, float)
    inside = np.abs(y - mu) <= k * sigma
    return np.mean(inside, axis=-1), np.mean(2.0 * k * sigma, axis=-1)


def reliability_curve(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, levels: np.ndarray = ECE_LEVELS,
                      dof: float | np.ndarray | None = None) -> np.ndarray:
    """Empirical coverage of the central interval mu +- k_p sigma at each nominal level p: k_p = Phi^-1((1+p)/2)
    (Gaussian, ``dof`` None) or the unit-variance Student t's (:func:`std_quantile`; ``dof`` scalar or per point,
    shaped like ``y``).

    Shape ``(..., len(levels))``: the reliability diagram's y values (x = ``levels``).
    """
    lv = np.asarray(levels, np.float64)
    absz = np.abs((np.asarray(y) - np.asarray(mu)) / np.asarray(sigma))
    if dof is None or np.ndim(dof) == 0:
        k = std_quantile(0.5 + lv / 2.0, dof)[:, None]  # (L, 1)
    else:  # per-point dof: few distinct values (one per fold), so invert the t once per value
        u, inv = np.unique(np.asarray(dof, np.float64), return_inverse=True)
        k_u = std_quantile(0.5 + lv[:, None] / 2.0, u[None, :])  # (L, U)
        k = np.moveaxis(k_u[:, inv.reshape(np.shape(dof))], 0, -2)  # (..., L, N)
    return np.mean(absz[..., None, :] <= k, axis=-1)


def ece(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, levels: np.ndarray = ECE_LEVELS,
        dof: float | np.ndarray | None = None) -> np.ndarray:
    """Expected calibration error: mean over the nominal levels of |empirical coverage - level| (0 is perfect),
    of the Gaussian central intervals or, with ``dof``, the unit-variance Student t's (:func:`reliability_curve`)."""
    return np.mean(np.abs(reliability_curve(y, mu, sigma, levels, dof) - np.asarray(levels)), axis=-1)


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


def crps_log1p_normal(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Mean CRPS, in the units of ``y`` (SOC g/kg), of a predictive with log(1 + SOC) ~ N(mu, sigma^2).

    ``1 + SOC`` is then log-normal and the CRPS is shift-invariant, so this is the closed-form log-normal CRPS
    (scoringrules.crps_lognormal) of ``1 + y``: the score of the g/kg predictive the map's expectation and
    intervals come from, where :func:`crps_gaussian` scores the same predictive on log(1 + SOC).
    """
    import scoringrules as sr

    y1 = 1.0 + np.asarray(y, float)
    return np.mean(np.asarray(sr.crps_lognormal(y1, np.asarray(mu, float), np.asarray(sigma, float))), axis=-1)


def crps_quantiles(y: np.ndarray, q: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Mean CRPS, in the units of ``y``, of a predictive given only by its quantiles ``q`` at ``levels``.

    The CRPS is twice the integral over levels tau in (0, 1) of the pinball loss of the tau-quantile
    (Berrisch and Ziel 2023; scoringrules.crps_quantile): with ``levels`` a dense, evenly spaced midpoint grid,
    e.g. (i - 0.5) / K for i = 1..K, the mean pinball loss times 2 is that integral by the midpoint rule (K = 100
    is within about 1 % of a Gaussian's closed form). ``q`` has shape ``(..., N, K)``: one row of K quantiles
    per value of ``y`` ``(..., N)``; the score is averaged over the last axis of ``y``.
    """
    import scoringrules as sr

    lv = np.asarray(levels, float)
    return np.mean(np.asarray(sr.crps_quantile(np.asarray(y, float), np.asarray(q, float), lv)), axis=-1)


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
