"""A small seeded data folder (prepare's layout, no imagery) and a tiny pipeline to train on it in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from socmap.config import PipelineConfig, load_pipeline

COVARIATES = "abcdef"


def make_data_dir(folder: Path, n: int = 240, seed: int = 0) -> Path:
    """samples.parquet + preprocess.json like ``socmap prepare`` writes, for ``n`` sites with a spatial SOC field.

    log SOC = 2.5 + 0.6 sin(12 lon) cos(12 lat) + 0.3 (a - c) + noise: learnable from position and covariates;
    six covariates ``a``..``f`` (the fusion layer-normalises each stream, which needs more than two features).
    """
    from socmap.data import Preprocessor

    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(30.0, 30.5, n), rng.uniform(-3.0, -2.5, n)
    cov = {k: rng.normal(size=n) for k in "abcdef"}
    logsoc = 2.5 + 0.6 * np.sin(lon * 12) * np.cos(lat * 12) + 0.3 * (cov["a"] - cov["c"]) + 0.1 * rng.normal(size=n)
    split = np.array(["train"] * n, dtype=object)
    perm = rng.permutation(n)
    split[perm[: n // 10]] = "val"
    split[perm[n // 10: n // 5]] = "test"
    df = pd.DataFrame({"sample_id": [f"syn:{i:04d}" for i in range(n)], "lon": lon, "lat": lat,
                       "year": rng.integers(2015, 2024, n).astype(np.int32), "soc_gkg": np.exp(logsoc),
                       "split": split, **cov, "ndvi": rng.uniform(0.1, 0.8, n),
                       "elevation": rng.uniform(900, 1500, n)})
    pre = Preprocessor.fit(df[df.split == "train"], list(COVARIATES), [], k=5)
    feats = pre.transform(df)
    for c in pre.feature_names:
        df[f"feat_{c}"] = feats[c].to_numpy()
    folder.mkdir(parents=True, exist_ok=True)
    df.to_parquet(folder / "samples.parquet", index=False)
    pre.save(folder)
    return folder


def tiny_pipeline(**train: object) -> PipelineConfig:
    """The demo pipeline with a tiny model, no imagery, and a short training (overrides in ``train``)."""
    d = load_pipeline("demo").model_dump(mode="json")
    d["data"]["covariates"] = [{"name": c, "path": f"{c}.tif"} for c in COVARIATES]
    d["stac"] = None
    d["model"].update({
        "streams": ["tabular", "position", "time"],
        "positional": {"scales": 4, "sigma_min": 0.01, "sigma_max": 1.0, "out_dim": 8, "hidden": 16},
        "temporal": {"frequencies": 2, "out_dim": 4, "year_min": 2015, "year_max": 2024, "hidden": 8},
        "moe": {"fusion": "moe", "experts": 2, "fusion_dim": 16, "top_k": None},
        "graph": {"k_spatial": 5, "k_ndvi": 3, "max_distance_km": 100, "spatial_k_mode": "fixed"},
        "rgat": {"hidden_dims": [16, 8], "heads": 2, "bases": 2, "dropout": 0.1},
        "pre_mlp": {"hidden": [16], "out": 16, "dropout": 0.1},
        "post_mlp": {"hidden": [8], "out": 8, "dropout": 0.0},
    })
    d["train"].update({"epochs": 8, "learning_rate": 5e-3, "early_stop_patience": 50, "warm_start_epochs": 3,
                       "ensemble_members": 2, "device": "cpu", "variance_blocks_km": [], **train})
    return PipelineConfig.model_validate(d)


@pytest.fixture(scope="session")
def syn_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only synthetic data folder (copy before changing)."""
    return make_data_dir(tmp_path_factory.mktemp("syn") / "data")


@pytest.fixture(scope="session")
def syn_bundle(syn_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-member bundle trained on ``syn_data`` (read-only)."""
    from socmap.train import stage as train

    out = tmp_path_factory.mktemp("bundle") / "model"
    train.run(tiny_pipeline(), syn_data, out, progress=False)
    return out
