"""A tiny data dir: patches.zarr (P = 32, 6 samples, one missing, some NaN pixels) and samples.parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def write_data_dir(root: Path, n: int = 6, p: int = 32, seed: int = 0) -> Path:
    import zarr

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"s{i:03d}" for i in range(n)])
    g = zarr.open_group(str(root / "patches.zarr"), mode="w")
    s2 = rng.uniform(200, 4000, (n, 11, p, p)).astype(np.float32)
    s2[1, :, :4, :4] = np.nan
    g.create_array("S2L2A", data=s2, chunks=(1, 11, p, p))
    g.create_array("S1GRD", data=rng.normal(-14, 3, (n, 2, p, p)).astype(np.float32), chunks=(1, 2, p, p))
    g.create_array("DEM", data=rng.uniform(100, 900, (n, 1, p, p)).astype(np.float32), chunks=(1, 1, p, p))
    sid = g.create_array("sample_id", shape=(n,), dtype=str)
    sid[:] = ids
    ok = np.ones(n, bool)
    ok[3] = False
    g.create_array("ok", data=ok)
    g.attrs.update({"bands": {"S2L2A": ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11",
                                        "B12"], "S1GRD": ["VV", "VH"], "DEM": ["DEM"]},
                    "patch_size": p, "resolution_m": 10.0})
    split = np.array(["train"] * (n - 2) + ["val", "test"])
    pd.DataFrame({"sample_id": ids, "lon": rng.uniform(30, 31, n), "lat": rng.uniform(0, 1, n),
                  "year": 2020, "soc_gkg": rng.uniform(2, 40, n), "source": "synthetic",
                  "split": split}).to_parquet(root / "samples.parquet")
    return root


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_data_dir(tmp_path / "data")


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    f = tmp_path / "pipe.yaml"
    f.write_text("name: t\ngrid: africa\nmodel:\n  encoder: {backbone: terramind_v1_tiny, cls_layers: 1, "
                 "cls_heads: 4, cls_ff: 64, batch_size: 4, finetune_epochs: 2, finetune_warmup_epochs: 1}\n")
    return f
