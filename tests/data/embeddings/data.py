#!/usr/bin/env python3
"""Write a tiny ``embed`` output here: embeddings.zarr (D = 192, TerraMind tiny's width) for ../patches.

The vectors are seeded noise, not a forward pass (this folder must not depend on torch or model weights); the
group has the format ``socmap.encoders.load_embeddings`` reads, rows in patches.zarr order, NaN where ok is False.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from socmap.eo import open_patches  # noqa: E402
from socmap.io import EMBEDDINGS, atomic_path  # noqa: E402
from tests.data import print_checksums  # noqa: E402

D = 192


def main() -> None:
    import zarr

    rng = np.random.default_rng(20260103)
    store = open_patches(HERE.parent / "patches", ["S2L2A", "S1GRD", "DEM"])
    ok = store.ok
    emb = np.round(rng.normal(0, 1, (len(store), D)), 3).astype(np.float32)
    emb[~ok] = np.nan
    path = HERE / EMBEDDINGS
    with atomic_path(path) as tmp:
        g = zarr.open_group(str(tmp), mode="w")
        g.create_array("embedding", data=emb, chunks=(len(emb), D))
        sid = g.create_array("sample_id", shape=(len(store),), dtype=str)
        sid[:] = store.sample_id
        g.create_array("ok", data=ok)
        g.attrs.update({"format": "socmap-embeddings/1", "backbone": "terramind_v1_tiny",
                        "modalities": ["S2L2A", "S1GRD", "DEM"], "merge": "mean", "dim": D,
                        "patch_size": store.patch_size, "checkpoint": None, "pretrained": False})
    print_checksums(HERE)


if __name__ == "__main__":
    main()
