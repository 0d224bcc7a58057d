"""What ``socmap train`` records for the area of applicability (:mod:`socmap.inference.applicability`): the
tabular predictors' permutation importance, and the DI's weights, mean distance and threshold.

Permutation importance (scikit-learn's :func:`~sklearn.inspection.permutation_importance`): the increase of the
validation RMSE in log(1 + SOC) when one tabular predictor's column is shuffled among the validation sites, for the
ensemble's first member. The validation sites are predicted the way the map predicts a cell (attached to the
training nodes by k-NN in-edges, over the member's layer cache: :func:`socmap.inference.predict.member_outputs`),
which gives the same values as the training graph's full pass (validation sites are attached there the same way)
at the cost of the validation sites alone, so a shuffle costs milliseconds, not a pass over the whole graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from socmap.config import PipelineConfig
from socmap.inference.applicability import AreaOfApplicability, spatial_folds
from socmap.inference.predict import member_outputs, new_points
from socmap.inference.scaler import TargetScaler
from socmap.inference.writing import BundleMember
from socmap.metrics import rmse
from socmap.model import LayerCache, SpTGNN
from socmap.train.inputs import TrainingData

__all__ = ["PERMUTATION_REPEATS", "member_importance", "permutation_importance", "training_applicability",
           "validation_predictor"]

PERMUTATION_REPEATS = 3
"""Shuffles per predictor; the importance is their mean."""


@dataclass
class _Estimator:
    """scikit-learn's view of a fitted prediction function (it asks for ``fit``; there is nothing to fit)."""

    predict_fn: Callable[[np.ndarray], np.ndarray]

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Estimator:
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_fn(x)


def _neg_rmse(est: _Estimator, x: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's score (higher is better): minus the RMSE, units of ``y``."""
    return -float(rmse(y, est.predict(x)))


def permutation_importance(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, *,
                           repeats: int = PERMUTATION_REPEATS, seed: int = 0) -> np.ndarray:
    """(F,) mean increase of ``RMSE(y, predict(x))`` (units of ``y``) when one column of the (n, F) ``x`` is
    shuffled among its rows, ``repeats`` seeded shuffles per column; negative where shuffling helped."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    res: Any = sk_permutation_importance(_Estimator(predict), np.asarray(x, np.float64), np.asarray(y, np.float64),
                                         scoring=_neg_rmse, n_repeats=repeats, random_state=seed)
    return np.asarray(res.importances_mean, np.float64)


def _training_cache(cache: LayerCache, data: TrainingData, node_k: np.ndarray | None) -> LayerCache:
    """``cache`` (every graph node) cut to the training nodes, as a bundle's member holds it."""
    train = np.flatnonzero(data.mask("train"))
    device = (cache.hidden[0].device if cache.hidden  # a model without RGAT layers caches no hidden state
              else cache.label.device if cache.label is not None else torch.device("cpu"))
    t = torch.as_tensor(train, device=device)
    return LayerCache(hidden=[h[t] for h in cache.hidden], lonlat=np.ascontiguousarray(data.lonlat[train]),
                      ndvi=None if data.ndvi is None else data.ndvi[train],
                      elevation=None if data.elevation is None else data.elevation[train],
                      label=None if cache.label is None else cache.label[t.cpu()].to(t.device),
                      node_k=None if node_k is None else np.asarray(node_k)[train])


def validation_predictor(model: SpTGNN, cache: LayerCache, data: TrainingData, scaler: TargetScaler,
                         cfg: PipelineConfig, node_k: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(x)``: the member's log(1 + SOC) at the validation sites with ``x`` as their (n_val, F) tabular
    inputs, by the map's path (``cache``: the member's layer cache of every graph node; ``node_k``: the training
    graph's per-node k)."""
    val = data.mask("val")
    train_cache = _training_cache(cache, data, node_k)
    points = new_points(cfg, len(data.feature_columns), lambda _name, v: v, data.lonlat[val], data.year[val],
                        None if data.tabular is None else data.tabular[val],
                        None if data.image is None else data.image[val],
                        None if data.ndvi is None else data.ndvi[val],
                        None if data.elevation is None else data.elevation[val])

    def predict(x: np.ndarray) -> np.ndarray:
        was = model.training
        model.eval()
        try:
            mm, _ = member_outputs([model], [train_cache], scaler, cfg,
                                   dataclasses.replace(points, tabular=np.asarray(x, np.float32)), 65536)
        finally:
            model.train(was)
        return mm[0]

    return predict


def member_importance(cfg: PipelineConfig, data: TrainingData, member: BundleMember, scaler: TargetScaler,
                      node_k: np.ndarray | None, seed: int) -> np.ndarray | None:
    """(F,) permutation importance of ``member``'s tabular predictors on the validation sites, log(1 + SOC)
    units; None without tabular inputs or with fewer than 2 validation sites."""
    val = data.mask("val")
    if data.tabular is None or data.tabular.shape[1] == 0 or val.sum() < 2:
        return None
    predict = validation_predictor(member.model, member.cache, data, scaler, cfg, node_k)
    return permutation_importance(predict, data.tabular[val], data.y_log[val], seed=seed)


def training_applicability(cfg: PipelineConfig, data: TrainingData, importance: np.ndarray | None,
                           ) -> dict[str, Any] | None:
    """bundle.json's ``applicability``: the DI fitted on the training nodes' tabular inputs with ``importance``
    (per predictor; None: equal weights) and the threshold from spatial CV folds of ``data.split.block_km``
    blocks; None without tabular inputs."""
    if data.tabular is None or data.tabular.shape[1] == 0:
        return None
    train = data.mask("train")
    area = AreaOfApplicability.fit(data.tabular[train], spatial_folds(data.lonlat[train], cfg.data.split),
                                   importance, seed=cfg.data.split.seed)
    return {**area.to_info(), "importance": None if importance is None else [float(v) for v in importance]}
