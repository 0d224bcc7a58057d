"""Out-of-fold residuals of a spatial block cross-validation inside the training part.

The variance growth of :mod:`socmap.inference.growth` must be fitted where a map needs it: far from the sites and
outside their predictor space. For each block size of ``train.variance_blocks_km`` one fold model (one member,
the pipeline's configuration) is trained without a random share of the blocks holding training sites. Those sites
are attached to the remaining ones as map cells are (in-edges from the visible training nodes only, their labels
hidden), so the fold model predicts them exactly as the map predicts a cell that far from the data. The
validation split still drives early stopping; the test split is never read.

Each held-out site gives one row: its log(1+SOC) residual, the fold model's stated variance, its distance to the
nearest site the fold model saw and its dissimilarity index to those sites (the bundle's predictor weights and
mean distance, :mod:`socmap.inference.applicability`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from socmap.data.split import SPLIT_CODES, draw_held_blocks
from socmap.inference.applicability import AreaOfApplicability
from socmap.inference.distance import nearest_site_km
from socmap.inference.growth import BlockResiduals
from socmap.train.context import training_context
from socmap.train.trainer import evaluate_nodes, train_member

if TYPE_CHECKING:
    import torch

    from socmap.config import PipelineConfig
    from socmap.train.inputs import TrainingData

__all__ = ["FOLD_SEED_OFFSET", "block_residuals"]

FOLD_SEED_OFFSET = 1000
"""Fold model f trains from seed ``train.seed + FOLD_SEED_OFFSET + f`` (apart from the members' seeds)."""


def block_residuals(data: TrainingData, cfg: PipelineConfig, dev: torch.device, applicability: dict | None, *,
                    seed: int, progress: bool = True, epochs: int | None = None) -> BlockResiduals | None:
    """Train one fold model per ``train.variance_blocks_km`` size and collect its held-out residuals (module
    docstring); None when no size is configured or every size's single block holds all training sites (a size
    that large for the region is skipped).

    Args:
        data: every node, with the bundle's split.
        cfg: the pipeline (the fold models use its model and train blocks).
        dev: torch device.
        applicability: the bundle's ``applicability`` info (weights, mean distance); None: no DI (NaN).
        seed: seed of the block draws; fold model f trains from ``seed + FOLD_SEED_OFFSET + f``.
        progress: a tqdm bar per fold model.
        epochs: override ``train.epochs`` (tests, benchmarks).
    """
    sizes = list(cfg.train.variance_blocks_km)
    if not sizes:
        return None
    rng = np.random.default_rng(seed)
    tr = np.flatnonzero(data.mask("train"))
    tab_dim = 0 if data.tabular is None else data.tabular.shape[1]
    img_dim = 0 if data.image is None else data.image.shape[1]
    parts = []
    for f, km in enumerate(sizes):
        try:
            inside, _ = draw_held_blocks(data.lonlat[tr, 0], data.lonlat[tr, 1], km,
                                         cfg.train.variance_block_fraction, rng)
        except ValueError:  # the region fits in one block of this size: nothing to hold out
            continue
        held, kept = tr[inside], tr[~inside]
        split = data.split.copy()
        split[held] = SPLIT_CODES["test"]  # attached as map cells are, never in a loss
        fold = replace(data, split=split)
        _, ctx = training_context(fold, cfg, dev)
        res = train_member(ctx, cfg, tab_dim, img_dim, seed + FOLD_SEED_OFFSET + f,
                           train_years=fold.year[kept], progress=progress,
                           desc=f"variance fold {f + 1}/{len(sizes)} ({km:g} km blocks)", epochs=epochs)
        soc, logvar = evaluate_nodes(res.model, ctx)
        mean = ctx.scaler.inverse(soc.double().cpu().numpy()[held])
        var = np.exp(logvar.double().cpu().numpy()[held] + 2.0 * np.log(ctx.scaler.sd))
        di = np.full(len(held), np.nan)
        if applicability is not None and data.tabular is not None:
            area = AreaOfApplicability.from_info(data.tabular[kept], {**applicability, "threshold": float("nan")})
            di = area.di(data.tabular[held])
        parts.append(BlockResiduals(data.y_log[held] - mean, var, nearest_site_km(data.lonlat[held],
                                    data.lonlat[kept]), di, np.full(len(held), float(km))))
    return BlockResiduals.concat(parts) if parts else None
