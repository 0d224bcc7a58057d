"""The cap on the variance that lifts the calibrated expectation above the median, fitted on held-out sites."""

from __future__ import annotations

import numpy as np

from socmap.inference.predictive import EnsemblePrediction

__all__ = ["MEAN_CAP_GRID", "fit_mean_var_cap"]


MEAN_CAP_GRID = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
"""Candidate caps of :func:`fit_mean_var_cap`, log(1+SOC)^2 (sd 0.14 to 1.7 on the log scale)."""


def fit_mean_var_cap(pred: EnsemblePrediction, y_gkg: np.ndarray, *, tol: float = 1e-3) -> float | None:
    """The cap on the variance in :meth:`EnsemblePrediction.mean_gkg` that minimises the RMSE (g/kg) of the
    expectation on held-out sites ``y_gkg`` (the validation split), from :data:`MEAN_CAP_GRID` and None (no cap).

    The largest cap (None first) whose RMSE is within ``tol`` (relative) of the best is chosen, so a cap is set
    only where the validation sites show the uncapped mean overshooting. Like T, it is fitted on validation only.
    """
    y = np.asarray(y_gkg, np.float64)
    ok = np.isfinite(y)
    if not ok.any():
        return None
    cands: list[float | None] = [None, *sorted(MEAN_CAP_GRID, reverse=True)]
    scores = [float(np.sqrt(np.mean((pred.with_mean_cap(c).mean_gkg()[ok] - y[ok]) ** 2))) for c in cands]
    best = min(scores)
    return next(c for c, r in zip(cands, scores, strict=True) if r <= best * (1.0 + tol))
