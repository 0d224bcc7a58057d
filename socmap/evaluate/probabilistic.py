r"""Probabilistic baselines a soil mapper would pick: quantile regression forest and regression kriging.

Both are fitted on the same training rows and the same inputs as the SpTGNN and the XGBoost baseline
(:func:`socmap.evaluate.baselines.baseline_inputs`: the ``feat_*`` columns plus lon, lat and year) and on the same
target, log(1 + SOC g/kg); both give a full predictive distribution in g/kg, so they are scored like the SpTGNN:
point errors of their mean and median, CRPS and interval coverage.

- ``qrf``: a quantile regression forest (Meinshausen 2006; the ``quantile-forest`` package's
  ``RandomForestQuantileRegressor``). Quantiles commute with any increasing transform, so the forest's quantiles of
  log(1 + SOC) back-transform exactly by expm1. Its mean in g/kg is the mean of the back-transformed conditional
  distribution, integrated over a dense grid of levels (:data:`QUANTILE_GRID`, the midpoint rule); its CRPS is
  that grid's (:func:`socmap.metrics.crps_quantiles`).
- ``rk``: regression kriging. XGBoost (:data:`socmap.evaluate.baselines.XGB_PARAMS`) on log(1 + SOC) is the trend;
  its out-of-fold training residuals (folds grouped by 10 km cells, so near-duplicate sites never sit on both
  sides of a fold) are kriged by ordinary kriging with an exponential or spherical variogram (whichever fits the
  empirical variogram better) fitted by gstools on great-circle distances. The predictive on log(1 + SOC) is
  N(trend + kriged residual, kriging variance), back-transformed as a log-normal: mean exp(mu + v / 2) - 1,
  quantiles exp(mu + z sd) - 1, CRPS in closed form (:func:`socmap.metrics.crps_log1p_normal`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from socmap.evaluate.baselines import XGB_PARAMS, baseline_inputs, fit_and_eval_rows, fit_xgboost
from socmap.evaluate.clusters import cell_clusters
from socmap.evaluate.kriging import fit_residual_variogram, local_ordinary_kriging
from socmap.metrics import crps_log1p_normal, crps_quantiles

__all__ = [
    "INTERVAL_LEVELS",
    "QRF_PARAMS",
    "QUANTILE_GRID",
    "ProbabilisticResult",
    "grouped_oof_log_predictions",
    "run_probabilistic_baselines",
    "run_qrf",
    "run_regression_kriging",
]

QUANTILE_GRID = (np.arange(1, 101) - 0.5) / 100.0
"""The dense levels 0.005, 0.015, ..., 0.995 (midpoints of 100 equal slices of (0, 1)) whose quantiles give the
QRF's mean and CRPS by the midpoint rule (within about 1 % of the closed forms on a Gaussian)."""

INTERVAL_LEVELS = (0.90, 0.95)
"""Nominal levels of the central intervals every probabilistic method reports (5-95 % and 2.5-97.5 %)."""

QRF_PARAMS: dict[str, Any] = {"n_estimators": 300, "min_samples_leaf": 5, "max_features": 1.0 / 3.0,
                              "max_samples_leaf": None}
"""Quantile forest settings: 300 trees, leaves of at least 5 training rows (ranger's regression leaf size), a
third of the inputs tried at each split (the usual regression-forest default; it also decorrelates the trees,
without which the pooled leaves hold too few distinct rows and the intervals come out narrow), and every
training row of a leaf kept (Meinshausen's forest; the package's default keeps one random row per leaf)."""


@dataclass
class ProbabilisticResult:
    """One probabilistic baseline's predictive distribution for the rows it was asked about (g/kg)."""

    name: str
    mean_gkg: np.ndarray
    """Mean of the predictive, g/kg."""
    median_gkg: np.ndarray
    """Median of the predictive, g/kg."""
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]
    """Central intervals (lower, upper ends, g/kg) at each of :data:`INTERVAL_LEVELS`."""
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    grid_gkg: np.ndarray | None = None
    """Quantiles (N, K) at :data:`QUANTILE_GRID`, g/kg, where the predictive is only known by quantiles (QRF)."""
    mu_log: np.ndarray | None = None
    """Mean of a Gaussian predictive on log(1 + SOC) (RK), or None."""
    sd_log: np.ndarray | None = None
    """Its standard deviation, log(1 + SOC) units."""

    def crps_rows(self, y_gkg: np.ndarray) -> np.ndarray:
        """CRPS (g/kg) of each row's predictive at its observed SOC ``y_gkg`` (N,): from the quantile grid, or in
        closed form for a Gaussian on log(1 + SOC)."""
        y = np.asarray(y_gkg, np.float64)[:, None]
        if self.grid_gkg is not None:
            return np.asarray(crps_quantiles(y, self.grid_gkg[:, None, :], QUANTILE_GRID))
        if self.mu_log is None or self.sd_log is None:
            raise ValueError(f"{self.name}: neither a quantile grid nor a log-normal predictive to score")
        return np.asarray(crps_log1p_normal(y, self.mu_log[:, None], self.sd_log[:, None]))


def _impute(x_train: np.ndarray, x_eval: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Missing inputs (NaN) set to the training column's median (the forest takes no NaN; XGBoost routes them)."""
    med = np.nanmedian(x_train, axis=0) if np.isnan(x_train).any() else np.zeros(x_train.shape[1])
    med = np.where(np.isfinite(med), med, 0.0)
    return np.where(np.isnan(x_train), med, x_train), np.where(np.isnan(x_eval), med, x_eval)


def run_qrf(x_train: np.ndarray, y_train_gkg: np.ndarray, x_eval: np.ndarray, *, seed: int = 0,
            n_jobs: int | None = None) -> ProbabilisticResult:
    """Fit a quantile regression forest (:data:`QRF_PARAMS`) on log1p(SOC) and predict ``x_eval``'s distribution.

    The forest's quantiles at :data:`QUANTILE_GRID` and at the interval ends are back-transformed by expm1 (exact:
    quantiles commute with increasing maps); the mean is the grid's mean in g/kg, the median the 0.5 quantile.
    ``n_jobs`` None grows the trees on every core (as XGBoost's default does).
    """
    from quantile_forest import RandomForestQuantileRegressor

    t0 = time.perf_counter()
    xt, xe = _impute(np.asarray(x_train, np.float64), np.asarray(x_eval, np.float64))
    model = RandomForestQuantileRegressor(**QRF_PARAMS, random_state=seed, n_jobs=-1 if n_jobs is None else n_jobs)
    model.fit(xt, np.log1p(np.asarray(y_train_gkg, np.float64)))
    ends = [e for lv in INTERVAL_LEVELS for e in ((1 - lv) / 2, (1 + lv) / 2)]
    levels = [*QUANTILE_GRID.tolist(), 0.5, *ends]
    q = np.expm1(np.asarray(model.predict(xe, quantiles=levels), np.float64).reshape(len(xe), len(levels)))
    k = len(QUANTILE_GRID)
    grid = np.sort(q[:, :k], axis=1)  # monotone in the level, as a quantile function must be
    intervals = {lv: (q[:, k + 1 + 2 * i], q[:, k + 2 + 2 * i]) for i, lv in enumerate(INTERVAL_LEVELS)}
    return ProbabilisticResult("qrf", grid.mean(axis=1), q[:, k], intervals, time.perf_counter() - t0,
                               {**QRF_PARAMS, "target": "log1p(soc_gkg)", "quantile_grid": k}, grid_gkg=grid)


def grouped_oof_log_predictions(x: np.ndarray, y_gkg: np.ndarray, groups: np.ndarray, *, folds: int = 5,
                                seed: int = 0, n_jobs: int | None = None) -> np.ndarray:
    """Out-of-fold XGBoost predictions of log1p(SOC) for every training row, the folds grouped by ``groups``
    (spatial clusters) so no row is predicted by a model that saw its cluster. With fewer than 2 clusters the
    folds fall back to plain shuffled K-fold."""
    from sklearn.model_selection import GroupKFold, KFold

    n_groups = len(np.unique(groups))
    if n_groups >= 2:
        splitter = GroupKFold(min(folds, n_groups), shuffle=True, random_state=seed).split(x, groups=groups)
    else:
        splitter = KFold(max(2, min(folds, len(y_gkg))), shuffle=True, random_state=seed).split(x)
    oof = np.empty(len(y_gkg), np.float64)
    for fit_idx, held in splitter:
        model = fit_xgboost(x[fit_idx], y_gkg[fit_idx], seed=seed, n_jobs=n_jobs)
        oof[held] = model.predict(x[held]).astype(np.float64)
    return oof


RESIDUAL_CELL_KM = 0.1
"""Cell (km) that groups the trend's out-of-fold folds in regression kriging: small, so a profile repeated at one
site never predicts its twin, yet the folds stay random, like the out-of-bag residuals of random-forest kriging.
Folds of whole 10 km blocks leave residuals of a trend that never saw the block, larger than the full trend's
error near the sites; added to the full trend they over-correct (on the demo world RMSE 13.7 g/kg against 2.0
with 0.1 km cells and XGBoost's own 1.5)."""


def run_regression_kriging(x_train: np.ndarray, y_train_gkg: np.ndarray, lonlat_train: np.ndarray,
                           x_eval: np.ndarray, lonlat_eval: np.ndarray, *, seed: int = 0, n_jobs: int | None = None,
                           neighbours: int = 50, cell_km: float = RESIDUAL_CELL_KM) -> ProbabilisticResult:
    """Regression kriging: XGBoost trend on log1p(SOC) plus ordinary kriging of its out-of-fold residuals.

    Residuals come from :func:`grouped_oof_log_predictions` with folds grouped by ``cell_km`` cells (default
    :data:`RESIDUAL_CELL_KM`); their variogram from
    :func:`socmap.evaluate.kriging.fit_residual_variogram`; the kriging from each evaluated site's ``neighbours``
    nearest training sites (:func:`socmap.evaluate.kriging.local_ordinary_kriging`). The predictive on
    log(1 + SOC) is N(mu, v) with mu = trend + kriged residual and v the kriging variance (the residual's, so
    the trend's own error is in it through the out-of-fold residuals); g/kg by the log-normal back-transform.
    """
    t0 = time.perf_counter()
    y = np.asarray(y_train_gkg, np.float64)
    groups = cell_clusters(lonlat_train[:, 0], lonlat_train[:, 1], cell_km)
    resid = np.log1p(y) - grouped_oof_log_predictions(x_train, y, groups, seed=seed, n_jobs=n_jobs)
    trend = fit_xgboost(x_train, y, seed=seed, n_jobs=n_jobs).predict(x_eval).astype(np.float64)
    model, vinfo = fit_residual_variogram(lonlat_train, resid, seed=seed)
    kr_mean, kr_var = local_ordinary_kriging(lonlat_train, resid, lonlat_eval, model, neighbours=neighbours)
    mu, sd = trend + kr_mean, np.sqrt(kr_var)
    intervals = {}
    for lv in INTERVAL_LEVELS:
        z = float(special.ndtri((1 + lv) / 2))
        intervals[lv] = (np.expm1(mu - z * sd), np.expm1(mu + z * sd))
    params = {**XGB_PARAMS, "target": "log1p(soc_gkg)", "residual_folds": f"grouped by {cell_km:g} km cells",
              "neighbours": neighbours, "variogram": vinfo}
    return ProbabilisticResult("rk", np.expm1(mu + kr_var / 2.0), np.expm1(mu), intervals,
                               time.perf_counter() - t0, params, mu_log=mu, sd_log=sd)


def run_probabilistic_baselines(samples: pd.DataFrame, feature_columns: list[str] | None = None, *,
                                eval_mask: np.ndarray, train_mask: np.ndarray | None = None, seed: int = 0,
                                n_jobs: int | None = None, neighbours: int = 50
                                ) -> dict[str, ProbabilisticResult]:
    """Fit QRF and regression kriging on the training rows (default ``samples.split == "train"``, the SpTGNN's)
    and predict the ``eval_mask`` rows' distributions: ``{"qrf": ..., "rk": ...}``."""
    train_mask, eval_mask = fit_and_eval_rows(samples, train_mask, eval_mask)
    x, _ = baseline_inputs(samples, feature_columns)
    y = samples["soc_gkg"].to_numpy(dtype=np.float64)
    lonlat = samples[["lon", "lat"]].to_numpy(dtype=np.float64)
    return {
        "qrf": run_qrf(x[train_mask], y[train_mask], x[eval_mask], seed=seed, n_jobs=n_jobs),
        "rk": run_regression_kriging(x[train_mask], y[train_mask], lonlat[train_mask], x[eval_mask],
                                     lonlat[eval_mask], seed=seed, n_jobs=n_jobs, neighbours=neighbours),
    }
