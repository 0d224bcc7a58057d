"""Shared fixtures: small seeded synthetic graphs and configs (a few hundred nodes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from socmap.config import ModelConfig


@pytest.fixture
def small_model_cfg() -> ModelConfig:
    """Table 6 structure at small widths, so a forward pass takes milliseconds."""
    return ModelConfig.model_validate({
        "moe": {"experts": 4, "fusion_dim": 32, "expert_type": "cross-gated", "top_k": None},
        "rgat": {"hidden_dims": [32, 16], "heads": 4, "bases": 2, "dropout": 0.2},
        "pre_mlp": {"hidden": [32], "out": 32, "dropout": 0.1},
        "post_mlp": {"hidden": [16], "out": 16, "dropout": 0.1},
        "graph": {"spatial_k_mode": "fixed"},
    })


@pytest.fixture
def synthetic_nodes():
    """200 nodes: lon/lat in degrees, year, 5 tabular covariates, a 24-wide 'image embedding', NDVI, elevation."""
    rng = np.random.default_rng(0)
    n = 200
    lonlat = np.c_[rng.uniform(30, 35, n), rng.uniform(-3, 2, n)]
    return {
        "lonlat": lonlat,
        "year": rng.integers(2014, 2025, n),
        "tabular": rng.normal(size=(n, 5)).astype(np.float32),
        "image": rng.normal(size=(n, 24)).astype(np.float32),
        "ndvi": rng.uniform(0.0, 0.8, n),
        "elevation": rng.uniform(200, 2500, n),
        "y": (np.sin(lonlat[:, 0]) + 0.1 * rng.normal(size=n)).astype(np.float32),
    }


def to_inputs(d, idx=None):
    from socmap.model import NodeInputs

    sl = slice(None) if idx is None else idx
    return NodeInputs(
        lonlat=torch.tensor(d["lonlat"][sl], dtype=torch.float32),
        year=torch.tensor(d["year"][sl]),
        tabular=torch.tensor(d["tabular"][sl]),
        image=torch.tensor(d["image"][sl]),
    )
