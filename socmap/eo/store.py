"""The resumable patch cache: one zarr v3 group, one sample per chunk along N.

Layout of ``patches.zarr`` (N = samples, P = patch size)::

    S2L2A        float32 (N, 11, P, P)  DN, bands B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12, NaN = no clear obs
    S1GRD        float32 (N, 2, P, P)   dB, VV VH
    DEM          float32 (N, 1, P, P)   m
    sample_id    str     (N,)
    year         int32   (N,)
    ok           bool    (N,)           False = missing, see failures / extract_failures.csv
    done         bool    (N,)           written completely; a resumed run skips these
    covariates   float32 (N, K)         image covariates, columns in attrs["covariate_columns"]
    failures     str     (N,)           JSON list of {modality, reason, attempts} ("[]" if none)
    provenance   str     (N,)           JSON {modality: [item ids]} of the scenes composited

    attrs: bands, units, patch_size, resolution_m, covariate_columns, covariate_units, source, format

A sample is written array by array and ``done`` is set last, so a run killed half way never leaves a sample
marked done with partial data: the next run rewrites its chunks whole. The store is created under a temporary
name and renamed, so a half-created store is never mistaken for a real one.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from socmap.eo.bands import BANDS, UNITS
from socmap.eo.covariates import COVARIATE_COLUMNS, COVARIATE_UNITS
from socmap.errors import EOError

__all__ = ["STORE_FORMAT", "PatchStore"]

STORE_FORMAT = 1
MODALITIES = ("S2L2A", "S1GRD", "DEM")


def _compressor() -> Any:
    import zarr

    return zarr.codecs.BloscCodec(cname="lz4", clevel=3, shuffle="bitshuffle")


class PatchStore:
    """Open (or create) ``patches.zarr`` for a sample list; see the module docstring for the layout."""

    def __init__(self, path: Path, group: Any) -> None:
        self.path = path
        self.group = group
        self.sample_ids = [str(s) for s in group["sample_id"][:]]
        self.index = {s: i for i, s in enumerate(self.sample_ids)}

    # ------------------------------------------------------------------------------------------ open
    @staticmethod
    def read_meta(path: Path) -> dict[str, Any] | None:
        """The attrs of an existing store, or None."""
        import zarr

        if not (path / "zarr.json").exists():
            return None
        return dict(zarr.open_group(str(path), mode="r").attrs)

    @classmethod
    def open(cls, path: Path, sample_ids: Sequence[str], years: Sequence[int], *, patch_size: int,
             resolution_m: float, source: str) -> PatchStore:
        """Open the store for exactly these samples; create it, or re-key an existing one by sample id.

        Samples already done in an existing store for other ids are carried over (copied by id), so adding
        samples only fetches the new ones. A store built with another patch size, resolution or imagery
        source is refused: its patches would not match.
        """
        import zarr

        path = Path(path)
        meta = cls.read_meta(path)
        if meta is not None:
            mismatch = [k for k, v in (("patch_size", patch_size), ("resolution_m", resolution_m),
                                       ("source", source), ("format", STORE_FORMAT)) if meta.get(k) != v]
            if mismatch:
                got = ", ".join(f"{k}={meta.get(k)!r}" for k in mismatch)
                raise EOError(f"{path} was built with other settings ({got}); "
                              "delete it or extract into another --out folder")
            store = cls(path, zarr.open_group(str(path), mode="r+"))
            if store.sample_ids == [str(s) for s in sample_ids]:
                return store
            return cls._rekey(store, sample_ids, years, patch_size=patch_size, resolution_m=resolution_m,
                              source=source)
        return cls._create(path, sample_ids, years, patch_size=patch_size, resolution_m=resolution_m,
                           source=source)

    @classmethod
    def _create(cls, path: Path, sample_ids: Sequence[str], years: Sequence[int], *, patch_size: int,
                resolution_m: float, source: str, tmp_name: str | None = None) -> PatchStore:
        import zarr

        tmp = path.parent / (tmp_name or f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        n, p = len(sample_ids), patch_size
        g = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        comp = _compressor()
        for name in MODALITIES:
            c = len(BANDS[name])
            g.create_array(name, shape=(n, c, p, p), chunks=(1, c, p, p), dtype="float32", fill_value=np.nan,
                           compressors=comp, dimension_names=("sample", "band", "y", "x"))
        g.create_array("covariates", shape=(n, len(COVARIATE_COLUMNS)), chunks=(1, len(COVARIATE_COLUMNS)),
                       dtype="float32", fill_value=np.nan, dimension_names=("sample", "covariate"))
        for name, dtype, fill in (("ok", "bool", False), ("done", "bool", False), ("year", "int32", 0)):
            g.create_array(name, shape=(n,), chunks=(1,), dtype=dtype, fill_value=fill,
                           dimension_names=("sample",))
        for name, fill in (("sample_id", ""), ("failures", "[]"), ("provenance", "{}")):
            g.create_array(name, shape=(n,), chunks=(max(n, 1) if name == "sample_id" else 1,), dtype=str,
                           fill_value=fill, dimension_names=("sample",))
        if n:
            g["sample_id"][:] = np.array([str(s) for s in sample_ids])
            g["year"][:] = np.asarray(years, dtype=np.int32)
        g.attrs.update({
            "bands": BANDS, "units": UNITS, "patch_size": p, "resolution_m": resolution_m,
            "covariate_columns": list(COVARIATE_COLUMNS), "covariate_units": COVARIATE_UNITS,
            "source": source, "format": STORE_FORMAT,
            "description": "socmap extract: per-sample annual-median patches centred on the sample (pixel P//2)",
        })
        if tmp_name is None:
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
            tmp = path
        return cls(tmp, zarr.open_group(str(tmp), mode="r+"))

    @classmethod
    def _rekey(cls, old: PatchStore, sample_ids: Sequence[str], years: Sequence[int], **kw: Any) -> PatchStore:
        tmp_name = f".{old.path.name}.rekey-{uuid.uuid4().hex[:8]}"
        new = cls._create(old.path, sample_ids, years, tmp_name=tmp_name, **kw)
        old_done = old.group["done"][:]
        old_year = old.group["year"][:]
        for j, sid in enumerate(new.sample_ids):
            i = old.index.get(sid)
            if i is None or not old_done[i] or int(old_year[i]) != int(years[j]):
                continue
            for name in (*MODALITIES, "covariates", "ok", "failures", "provenance"):
                new.group[name][j] = old.group[name][i]
            new.group["done"][j] = True
        trash = old.path.parent / f".{old.path.name}.old-{uuid.uuid4().hex[:8]}"
        old.path.rename(trash)
        new.path.rename(old.path)
        shutil.rmtree(trash, ignore_errors=True)
        import zarr

        return cls(old.path, zarr.open_group(str(old.path), mode="r+"))

    # ------------------------------------------------------------------------------------------ access
    def done_mask(self) -> np.ndarray:
        return np.asarray(self.group["done"][:], dtype=bool)

    def write_sample(self, i: int, patches: dict[str, np.ndarray], covariates: np.ndarray, ok: bool,
                     failures: list[dict[str, Any]], provenance: dict[str, list[str]], done: bool) -> None:
        """Write sample ``i`` whole, then (if ``done``) mark it done: the order is what makes resume safe."""
        g = self.group
        for name in MODALITIES:
            g[name][i] = patches[name]
        g["covariates"][i] = np.asarray(covariates, dtype=np.float32)
        g["failures"][i] = json.dumps(failures)
        g["provenance"][i] = json.dumps(provenance)
        g["ok"][i] = bool(ok)
        if done:
            g["done"][i] = True

    def failures(self) -> list[tuple[str, int, list[dict[str, Any]]]]:
        """(sample_id, year, failures) for every sample with at least one failure record."""
        fails = self.group["failures"][:]
        years = self.group["year"][:]
        return [(self.sample_ids[i], int(years[i]), json.loads(str(f)))
                for i, f in enumerate(fails) if str(f) not in ("", "[]")]
