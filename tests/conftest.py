"""Shared fixtures: a small seeded demo world (generated once per session) and small synthetic graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from socmap.config import ModelConfig
from socmap.demo.world import WorldSpec, ensure_world
from tests import has_cuda, has_rustac
from tests.data import copy_stored_data

SMALL_WORLD = WorldSpec(seed=7, size_m=3000.0, s2_doys=(18, 130, 285), s1_doys=(100,), n_sites=150,
                        margin_m=400.0, scene_margin_m=0.0, covariate_res_m=250.0)
"""A 3 x 3 km world (300 x 300 px at 10 m), three S2 dates and one S1 date a year, 150 sites; rasters stop at the
region's edge (``tests/demo/test_world.py`` checks the margin on a tiny world)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Wire the markers: ``slow`` runs only with --run-slow; ``gpu`` / ``requires_cuda`` only where CUDA is
    present; ``requires_rustac`` skips (with the reason) where the rustac CLI is missing."""
    run_slow = config.getoption("--run-slow")
    skips = {
        "slow": None if run_slow else "slow: pass --run-slow",
        "gpu": None if has_cuda else "requires a CUDA device",
        "requires_cuda": None if has_cuda else "requires a CUDA device",
        "requires_rustac": None if has_rustac else "requires the rustac CLI (pip install -e '.[test]')",
    }
    for item in items:
        for mark, reason in skips.items():
            if reason is not None and mark in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.requires_cuda)])
def device(request: pytest.FixtureRequest) -> str:
    """Each torch device a test should pass on: cpu always, cuda where present."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's ~/.cache/socmap from tests."""
    monkeypatch.setenv("SOCMAP_HOME", str(tmp_path_factory.getbasetemp() / "socmap-home"))


@pytest.fixture
def stored_data(tmp_path: Path) -> Path:
    """A data folder as prepare -> extract -> embed leave it, from the small stored fixtures (6 samples, P = 32):
    samples.parquet, preprocess.json, preprocess_reference.parquet, patches.zarr and embeddings.zarr. A copy:
    tests may write into it."""
    return copy_stored_data(tmp_path / "data")


@pytest.fixture(scope="session")
def small_world_spec() -> WorldSpec:
    return SMALL_WORLD


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a generated small demo world (read-only for tests: copy before modifying)."""
    return ensure_world(tmp_path_factory.mktemp("world") / "demo-world", SMALL_WORLD, progress=False)


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
