"""The graph and the tensors members train on: built once per data set (``socmap train``, its block
cross-validation folds, ``socmap tune``'s workers)."""

from __future__ import annotations

import numpy as np
import torch

from socmap.config import PipelineConfig
from socmap.data.split import draw_held_blocks
from socmap.errors import ModelError
from socmap.graph import HeteroGraph, build_graph, spatial_local_morans_i
from socmap.inference.scaler import TargetScaler
from socmap.train.inputs import TrainingData
from socmap.train.trainer import GraphContext, MaskedGraph

__all__ = ["block_masked_graphs", "training_context"]


def training_context(data: TrainingData, cfg: PipelineConfig, dev: torch.device) -> tuple[HeteroGraph, GraphContext]:
    """The sample graph and the tensors every member trains on: target scaler fitted on the training split,
    local Moran's I of the training targets (``socmap tune`` builds it once per worker and data set).

    Validation and test nodes are attached to the training nodes as a map cell is (``build_graph``'s
    ``train_mask``), so the predictions ``evaluate`` scores are the ones ``predict`` makes at those sites."""
    train_mask = data.mask("train")
    scaler = TargetScaler.fit(data.y_log[train_mask])
    graph = build_graph(data.lonlat, cfg.model.graph, ndvi=data.ndvi, elevation=data.elevation,
                        train_mask=train_mask)
    moran = spatial_local_morans_i(graph, scaler.transform(data.y_log), train_mask)
    ctx = GraphContext.build(data, graph, moran, scaler, cfg.model.label_input, dev)
    if cfg.train.mask_block_km is not None:
        ctx.masked = block_masked_graphs(data, cfg, train_mask, dev)
    return graph, ctx


def block_masked_graphs(data: TrainingData, cfg: PipelineConfig, train_mask: np.ndarray,
                        dev: torch.device) -> list[MaskedGraph]:
    """The ``train.mask_variants`` block-masked graphs of ``train.mask_block_km`` (see ``TrainConfig``).

    Each variant moves the block grid by a random offset, draws ``mask_block_fraction`` of the blocks that hold
    training nodes, and builds the graph with those nodes held out as ``build_graph`` holds out validation nodes
    (attached to the remaining training nodes as a map cell is). The draws follow ``train.seed``, so every member
    sees the same layouts.
    """
    tc = cfg.train
    assert tc.mask_block_km is not None
    rng = np.random.default_rng(tc.seed)
    tr = np.flatnonzero(train_mask)
    out = []
    for _ in range(tc.mask_variants):
        try:
            inside, offset = draw_held_blocks(data.lonlat[tr, 0], data.lonlat[tr, 1], tc.mask_block_km,
                                              tc.mask_block_fraction, rng)
        except ValueError:
            raise ModelError(f"train.mask_block_km {tc.mask_block_km:g}: the training nodes fill one block; "
                             "choose smaller blocks") from None
        held = tr[inside]
        keep = train_mask.copy()
        keep[held] = False
        g = build_graph(data.lonlat, cfg.model.graph, ndvi=data.ndvi, elevation=data.elevation, train_mask=keep)
        out.append(MaskedGraph(g.to(dev), torch.as_tensor(held, device=dev), offset))
    return out
