"""Reading ``patches.zarr`` (written by ``socmap extract``) and ``samples.parquet`` (``socmap prepare``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from socmap.errors import DataError

PATCHES = "patches.zarr"
SAMPLES = "samples.parquet"


@dataclass
class PatchStore:
    """The arrays of a patches.zarr group: ``arrays[modality]`` (N, C, P, P) float32, ``sample_id`` (N,) str,
    ``ok`` (N,) bool (False: patch missing, skip it), ``patch_size`` P."""

    path: Path
    arrays: dict[str, Any]
    sample_id: np.ndarray
    ok: np.ndarray
    patch_size: int

    def __len__(self) -> int:
        return len(self.sample_id)

    def read(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Patches of rows ``idx`` (sorted), as float32 tensors."""
        idx = np.asarray(idx)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        out = {}
        for m, a in self.arrays.items():
            if hi - lo <= 2 * len(idx):  # nearly contiguous: one slice read
                block = np.asarray(a[lo:hi])[idx - lo]
            else:
                block = np.asarray(a.oindex[idx])
            out[m] = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
        return out


def open_patches(data_dir: Path, modalities: list[str]) -> PatchStore:
    """Open ``<data_dir>/patches.zarr`` and check it holds the arrays the encoder needs."""
    import zarr

    path = Path(data_dir) / PATCHES
    if not path.exists():
        raise DataError(f"{path} not found: run `socmap extract` first (or use a pipeline with model.streams "
                        "without 'image' where there is no imagery)")
    try:
        g = zarr.open_group(str(path), mode="r")
    except Exception as exc:
        raise DataError(f"{path} is not a readable zarr group ({exc}); run `socmap extract` again") from None
    keys = set(g.array_keys())
    need = [*modalities, "sample_id", "ok"]
    missing = [k for k in need if k not in keys]
    if missing:
        raise DataError(f"{path} lacks arrays {missing} (has {sorted(keys)}); run `socmap extract` again or drop "
                        "those modalities from model.encoder.modalities")
    sample_id = np.array([str(s) for s in np.asarray(g["sample_id"][:]).tolist()])
    ok = np.asarray(g["ok"][:]).astype(bool)
    arrays = {m: g[m] for m in modalities}
    for m, a in arrays.items():
        if a.ndim != 4 or a.shape[0] != len(sample_id) or a.shape[2] != a.shape[3]:
            raise DataError(f"{path}/{m} has shape {a.shape}; expected (N={len(sample_id)}, C, P, P)")
    p = int(next(iter(arrays.values())).shape[-1])
    return PatchStore(path, arrays, sample_id, ok, p)


def read_samples(data_dir: Path) -> Any:
    """``<data_dir>/samples.parquet`` as a DataFrame (checked for sample_id, soc_gkg, split)."""
    import pandas as pd

    path = Path(data_dir) / SAMPLES
    if not path.exists():
        raise DataError(f"{path} not found: run `socmap prepare --out {data_dir}` first")
    df = pd.read_parquet(path)
    missing = [c for c in ("sample_id", "soc_gkg", "split") if c not in df.columns]
    if missing:
        raise DataError(f"{path} lacks columns {missing}; run `socmap prepare` again")
    df["sample_id"] = df["sample_id"].astype(str)
    return df


def atomic_dir(final: Path) -> Path:
    """A temporary sibling folder to write into before :func:`commit_dir`."""
    tmp = final.with_name(f".{final.name}.tmp-{np.random.default_rng().integers(1 << 30)}")
    return tmp


def commit_dir(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` (rename; the old one is removed after the new one is in place)."""
    import os
    import shutil

    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
