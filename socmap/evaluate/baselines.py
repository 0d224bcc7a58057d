r"""Baselines on the same split and the same inputs as the SpTGNN: XGBoost and an RFSI-like spatial XGBoost.

Inputs: the tabular ``feat_*`` columns of samples.parquet (already standardised / one-hot / imputed by prepare,
fitted on train) plus lon, lat (degrees) and year. Target: log(1 + SOC g/kg); predictions are returned in g/kg as
expm1 of the prediction (the median of the implied log-normal, like the SpTGNN's point prediction).

- ``xgboost``: the paper's settings (500 trees, depth 8, eta 0.05) with subsample and colsample 0.8.
- ``rfsi``: the same booster with spatial-lag features of the nearest *training* targets, as in random-forest
  spatial interpolation (Sekulic et al. 2020): the k nearest training sites' log-SOC values and great-circle
  distances (km), and their inverse-distance mean (weights 1 / d). For a training row its own site is left out of
  its neighbour set (leave-one-out), otherwise the model would learn to copy the first neighbour, its own label.
  Val and test rows only ever see training labels.

Each baseline also gives its mean prediction by Duan's smearing (``smeared_gkg``): expm1 of a log prediction is
the median of the implied log-normal, below the mean that RMSE rewards; the smearing factor
:math:`\bar s = \overline{\exp(y - \hat y)}` over out-of-fold training residuals (5 folds, log scale) turns it
into :math:`(1 + \mathrm{median})\,\bar s - 1`, the mean, without assuming normal residuals. The SpTGNN's
expectation is compared with both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from socmap.errors import DataError
from socmap.geo import sphere_knn

__all__ = [
    "XGB_PARAMS",
    "BaselineResult",
    "baseline_inputs",
    "fit_predict_xgboost",
    "fit_xgboost",
    "haversine_knn",
    "run_baselines",
    "smearing_factor",
    "spatial_lag_features",
]

XGB_PARAMS: dict[str, Any] = {
    "n_estimators": 500,
    "max_depth": 8,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "tree_method": "hist",
    "objective": "reg:squarederror",
}
"""The paper's XGBoost (section 5.5: 500 trees, depth 8, eta 0.05) plus row / column subsampling 0.8."""


@dataclass
class BaselineResult:
    """One baseline's predictions for the rows it was asked about."""

    name: str
    pred_gkg: np.ndarray
    """Point predictions, g/kg (expm1 of the log-scale prediction)."""
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    smeared_gkg: np.ndarray | None = None
    """Mean predictions, g/kg, by Duan's smearing factor (``params['smear_factor']``); None when not asked."""


def fit_and_eval_rows(samples: pd.DataFrame, train_mask: np.ndarray | None,
                      eval_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows a baseline fits on (default ``samples.split == "train"``: the very rows the SpTGNN learnt from)
    and the rows it predicts, as boolean masks; a one-line :class:`DataError` when either is empty."""
    if train_mask is None:
        train_mask = (samples["split"] == "train").to_numpy()
    train_mask, eval_mask = np.asarray(train_mask, bool), np.asarray(eval_mask, bool)
    if not train_mask.any() or not eval_mask.any():
        raise DataError("the baselines need training rows and rows to evaluate; check the split column")
    return train_mask, eval_mask


def baseline_inputs(samples: pd.DataFrame, feature_columns: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """The input matrix (feature columns + lon, lat, year) and its column names.

    ``feature_columns`` defaults to every ``feat_*`` column in file order; pass the bundle's ``feature_columns``
    (preprocessor output names, stored as ``feat_<name>`` in samples.parquet) so both see the same inputs.
    """
    if feature_columns is None:
        cols = [c for c in samples.columns if c.startswith("feat_")]
    else:  # the bundle names the preprocessor's outputs (``mat``), samples.parquet stores them as ``feat_mat``
        cols = [c if c.startswith("feat_") else f"feat_{c}" for c in feature_columns]
    cols = [*cols, "lon", "lat", "year"]
    missing = [c for c in cols if c not in samples.columns]
    if missing:
        raise DataError(f"samples.parquet lacks the baseline input columns {missing}; re-run `socmap prepare`")
    x = samples[cols].to_numpy(dtype=np.float64)
    return x, cols


def fit_xgboost(x_train: np.ndarray, y_train_gkg: np.ndarray, *, seed: int = 0, n_jobs: int | None = None) -> Any:
    """XGBoost (:data:`XGB_PARAMS`) fitted on log1p(SOC): its ``predict`` gives log1p(SOC) predictions."""
    import xgboost as xgb

    model = xgb.XGBRegressor(**XGB_PARAMS, random_state=seed, n_jobs=n_jobs)
    return model.fit(x_train, np.log1p(np.asarray(y_train_gkg, float)))


def fit_predict_xgboost(x_train: np.ndarray, y_train_gkg: np.ndarray, x_eval: np.ndarray, *, seed: int = 0,
                        n_jobs: int | None = None) -> np.ndarray:
    """Fit XGBoost (:func:`fit_xgboost`) and return expm1 of its predictions for ``x_eval`` (g/kg)."""
    model = fit_xgboost(x_train, y_train_gkg, seed=seed, n_jobs=n_jobs)
    return np.expm1(model.predict(x_eval).astype(np.float64))


def smearing_factor(x_train: np.ndarray, y_train_gkg: np.ndarray, *, folds: int = 5, seed: int = 0,
                    n_jobs: int | None = None) -> float:
    """Duan's smearing factor: the mean of exp(out-of-fold log residual) over the training rows (``folds``-fold,
    seeded), so that ``(1 + median) * factor - 1`` estimates the mean in g/kg."""
    from sklearn.model_selection import KFold

    y_log = np.log1p(np.asarray(y_train_gkg, float))
    oof = np.empty_like(y_log)
    for fit_idx, held in KFold(folds, shuffle=True, random_state=seed).split(x_train):
        oof[held] = np.log1p(fit_predict_xgboost(x_train[fit_idx], y_train_gkg[fit_idx], x_train[held], seed=seed,
                                                 n_jobs=n_jobs))
    return float(np.mean(np.exp(y_log - oof)))


def _result(name: str, x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, params: dict[str, Any], *,
            smear: bool, seed: int, n_jobs: int | None) -> BaselineResult:
    t0 = time.perf_counter()
    pred = fit_predict_xgboost(x_train, y_train, x_eval, seed=seed, n_jobs=n_jobs)
    smeared = None
    if smear:
        factor = smearing_factor(x_train, y_train, seed=seed, n_jobs=n_jobs)
        smeared, params = (1.0 + pred) * factor - 1.0, {**params, "smear_factor": factor}
    return BaselineResult(name, pred, time.perf_counter() - t0, params, smeared)


def haversine_knn(ref_lonlat: np.ndarray, query_lonlat: np.ndarray, k: int, *,
                  exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``ref`` and great-circle distances (km) of each query point's k nearest reference points.

    With ``exclude_self`` the query points ARE the reference points (same rows, same order) and each row's own
    index is removed from its neighbour list (leave-one-out); co-located other sites are kept.
    """
    ref, qry = np.asarray(ref_lonlat, float), np.asarray(query_lonlat, float)
    kk = k + 1 if exclude_self else k
    if kk > len(ref):
        raise DataError(f"need at least {kk} training sites for k = {k} spatial-lag neighbours, have {len(ref)}")
    dist_km, idx = sphere_knn(ref, qry, kk)
    if exclude_self:
        own = idx == np.arange(len(qry))[:, None]
        # drop the own index where it was found, else the farthest (the own site is always among the k+1 nearest
        # unless k+1 co-located sites tie, in which case any of them is as good)
        drop = np.where(own.any(axis=1), own.argmax(axis=1), kk - 1)
        keep = np.ones_like(own)
        keep[np.arange(len(qry)), drop] = False
        dist_km = dist_km[keep].reshape(len(qry), k)
        idx = idx[keep].reshape(len(qry), k)
    return idx, dist_km


def spatial_lag_features(train_lonlat: np.ndarray, train_y_log: np.ndarray, query_lonlat: np.ndarray, *,
                         k: int = 10, exclude_self: bool = False, min_km: float = 0.01) -> np.ndarray:
    """RFSI spatial-lag features: (N, 2k + 1) = k neighbour values, k distances (km), inverse-distance mean.

    ``train_y_log`` are the training targets (log1p SOC); ``min_km`` floors the distances in the IDW weights so
    a co-located neighbour does not get an infinite weight.
    """
    idx, dist = haversine_knn(train_lonlat, query_lonlat, k, exclude_self=exclude_self)
    vals = np.asarray(train_y_log, float)[idx]
    w = 1.0 / np.maximum(dist, min_km)
    idw = np.sum(w * vals, axis=1) / np.sum(w, axis=1)
    return np.column_stack([vals, dist, idw])


def run_baselines(samples: pd.DataFrame, feature_columns: list[str] | None = None, *, eval_mask: np.ndarray,
                  train_mask: np.ndarray | None = None, k: int = 10, seed: int = 0,
                  n_jobs: int | None = None, smear: bool = True) -> dict[str, BaselineResult]:
    """Fit both baselines on the training rows and predict the ``eval_mask`` rows (g/kg), as the paper runs them
    (the median) and, with ``smear``, as means by Duan's smearing (five more fits each).

    ``train_mask`` defaults to ``samples.split == "train"``: the very rows the SpTGNN learnt from.
    """
    train_mask, eval_mask = fit_and_eval_rows(samples, train_mask, eval_mask)
    x, cols = baseline_inputs(samples, feature_columns)
    y = samples["soc_gkg"].to_numpy(dtype=np.float64)
    out: dict[str, BaselineResult] = {}

    out["xgboost"] = _result("xgboost", x[train_mask], y[train_mask], x[eval_mask],
                             {**XGB_PARAMS, "inputs": cols, "target": "log1p(soc_gkg)"},
                             smear=smear, seed=seed, n_jobs=n_jobs)
    lonlat = samples[["lon", "lat"]].to_numpy(dtype=np.float64)
    ylog_train = np.log1p(y[train_mask])
    lag_train = spatial_lag_features(lonlat[train_mask], ylog_train, lonlat[train_mask], k=k, exclude_self=True)
    lag_eval = spatial_lag_features(lonlat[train_mask], ylog_train, lonlat[eval_mask], k=k)
    out["rfsi"] = _result("rfsi", np.column_stack([x[train_mask], lag_train]), y[train_mask],
                          np.column_stack([x[eval_mask], lag_eval]),
                          {**XGB_PARAMS, "inputs": cols, "spatial_lag_k": k,
                           "spatial_lag": "k nearest training log1p(SOC), distances km, inverse-distance mean"},
                          smear=smear, seed=seed, n_jobs=n_jobs)
    return out
