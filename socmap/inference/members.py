"""Reading a bundle's members: each one's weights (best epoch) and its layer cache of the training nodes, the
only nodes a map cell attaches to."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from socmap.config import ModelConfig
from socmap.inference.format import CACHE_FILE, WEIGHTS_FILE, BundleInfo, bundle_error, member_dir
from socmap.model import LayerCache, SpTGNN
from socmap.model.temporal import fit_year_range

__all__ = ["read_members"]


def read_members(root: Path, model_cfg: ModelConfig, info: BundleInfo, train_nodes: np.ndarray,
                 template: LayerCache, device: str) -> tuple[list[SpTGNN], list[LayerCache]]:
    """Every member of the bundle ``root`` in eval mode on ``device``, and its layer cache of ``train_nodes``
    (indices of the training nodes; ``template`` holds their coordinates, covariates, labels and k, its
    ``hidden`` is filled per member). ModelError (one line) on a damaged member."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    dev = torch.device(device)
    tidx = torch.from_numpy(train_nodes)
    label = None if template.label is None else template.label.to(dev)
    tab_dim = len(info.feature_columns) if "tabular" in model_cfg.streams else 0
    models: list[SpTGNN] = []
    caches: list[LayerCache] = []
    for m in range(info.members):
        md = member_dir(root, m)
        try:
            model = SpTGNN(model_cfg, tabular_dim=tab_dim, image_dim=info.image_dim)
            fit_year_range(model, np.asarray(info.train_year_range, np.float64))
            model.load_state_dict(load_file(str(md / WEIGHTS_FILE)))
            cstate = load_file(str(md / CACHE_FILE))
            hidden = [cstate[f"hidden_{i}"][tidx].to(dev) for i in range(len(model.layers))]
        except (OSError, ValueError, KeyError, RuntimeError, IndexError, SafetensorError) as exc:
            msg = " ".join(str(exc).split())[:160]
            raise bundle_error(root, f"member {m:02d} is damaged ({exc.__class__.__name__}: {msg}); train it again"
                               ) from None
        models.append(model.to(dev).eval())
        caches.append(dataclasses.replace(template, hidden=hidden, label=label))
    return models, caches
