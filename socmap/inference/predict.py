"""Prediction for new points: each is attached to the training nodes by k-NN in-edges and run through every
member's cached layers (the inductive path, :func:`socmap.model.attach_and_predict`; the map and the parity test
use this one path). :meth:`socmap.inference.bundle.Bundle.predict_new` is the entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from socmap.config import PipelineConfig
from socmap.errors import ModelError
from socmap.inference.scaler import TargetScaler
from socmap.model import LayerCache, NodeInputs, SpTGNN, attach_and_predict

__all__ = ["NewPoints", "member_outputs", "new_points"]


@dataclass(frozen=True)
class NewPoints:
    """The inputs of N new points, checked against what the model uses (None: that input is off)."""

    lonlat: np.ndarray
    """(N, 2) float64 degrees."""
    year: np.ndarray
    """(N,) float64 calendar year."""
    tabular: np.ndarray | None
    """(N, d) float32 preprocessed covariates in the model's feature order."""
    image: np.ndarray | None
    """(N, D) float32 image embeddings, NaN rows where a point has none."""
    ndvi: np.ndarray | None
    """(N,) float64 NDVI for the ``ndvi`` relation, gaps filled as training filled its nodes'."""
    elevation: np.ndarray | None
    """(N,) float64 elevation, m, for the ``elevation`` relation, gaps filled likewise."""

    def __len__(self) -> int:
        return len(self.lonlat)


def _stream_inputs(pipeline: PipelineConfig, n: int, n_features: int, tabular: np.ndarray | None,
                   image: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``tabular`` and ``image`` as float32 where the model's streams use them (None where not); ModelError when a
    stream the model uses is missing or has the wrong shape."""
    streams = pipeline.model.streams
    if "tabular" in streams:
        if tabular is None:
            raise ModelError(f"this model uses tabular covariates: pass tabular (N, {n_features}) in feature_columns "
                             "order")
        tabular = np.asarray(tabular, np.float32)
        if tabular.shape != (n, n_features):
            raise ModelError(f"tabular must be ({n}, {n_features}), got {tabular.shape}")
    else:
        tabular = None
    if "image" in streams:
        if image is None:
            raise ModelError("this model uses image embeddings: pass image (N, D), NaN rows where none")
        image = np.asarray(image, np.float32)
    else:
        image = None
    return tabular, image


def new_points(pipeline: PipelineConfig, n_features: int, fill_gaps: Callable[[str, np.ndarray], np.ndarray],
               lonlat: np.ndarray, year: np.ndarray, tabular: np.ndarray | None, image: np.ndarray | None,
               ndvi: np.ndarray | None, elevation: np.ndarray | None) -> NewPoints:
    """Check and convert the inputs of new points for a model trained with ``pipeline`` on ``n_features``
    tabular features; ``fill_gaps(name, values)`` fills the ``ndvi`` / ``elevation`` gaps as training did."""
    lonlat = np.asarray(lonlat, np.float64).reshape(-1, 2)
    n = len(lonlat)
    years = np.array(np.broadcast_to(np.asarray(year, np.float64), (n,)))
    tab, img = _stream_inputs(pipeline, n, n_features, tabular, image)
    rel = pipeline.model.graph.relations
    if "ndvi" in rel and ndvi is None:
        raise ModelError("this model's graph has the 'ndvi' relation: pass ndvi (N,)")
    if "elevation" in rel and elevation is None:
        raise ModelError("this model's graph has the 'elevation' relation: pass elevation (N,) in m")
    nd = None if "ndvi" not in rel or ndvi is None else fill_gaps("ndvi", ndvi)
    el = None if "elevation" not in rel or elevation is None else fill_gaps("elevation", elevation)
    return NewPoints(lonlat, years, tab, img, nd, el)


@torch.no_grad()
def member_outputs(members: list[SpTGNN], caches: list[LayerCache], scaler: TargetScaler, pipeline: PipelineConfig,
                   points: NewPoints, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) each member's mean and variance of log(1+SOC) at ``points``, ``batch_size`` points per attachment
    and forward chunk."""
    n = len(points)
    mm = np.empty((len(members), n))
    mv = np.empty((len(members), n))
    device = next(members[0].parameters()).device
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        img = None if points.image is None else torch.as_tensor(points.image[sl], device=device)
        inputs = NodeInputs(
            lonlat=torch.as_tensor(points.lonlat[sl], dtype=torch.float32, device=device),
            year=torch.as_tensor(points.year[sl], dtype=torch.float32, device=device),
            tabular=None if points.tabular is None else torch.as_tensor(points.tabular[sl], device=device),
            image=img, image_ok=None if img is None else torch.isfinite(img).all(dim=1))
        outs, _ = attach_and_predict(members, caches, inputs, pipeline.model.graph,
                                     new_ndvi=None if points.ndvi is None else points.ndvi[sl],
                                     new_elevation=None if points.elevation is None else points.elevation[sl],
                                     new_lonlat=points.lonlat[sl])
        for m, out in enumerate(outs):
            mm[m, sl] = scaler.inverse(out.soc.double().cpu().numpy())
            mv[m, sl] = np.exp(out.logvar.double().cpu().numpy()) * scaler.sd**2
    return mm, mv
