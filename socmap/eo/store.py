"""``patches.zarr``: the one patch store, written by ``socmap extract`` and read by ``embed`` / ``finetune-vit``.

One zarr v3 group, one sample per chunk along N (N = samples, P = patch size)::

    S2L2A         float32 (N, 11, P, P)  DN, bands B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12, NaN = no clear obs
    S1GRD         float32 (N, 2, P, P)   dB, VV VH
    DEM           float32 (N, 1, P, P)   m
    sample_id     str     (N,)
    year          int32   (N,)           the sampling year (what the temporal encoder gets)
    imagery_year  int32   (N,)           the year whose imagery was composited (see socmap.eo.extract)
    ok            bool    (N,)           False = missing, see failures / extract_failures.csv
    done          bool    (N,)           written completely; a resumed run skips these
    covariates    float32 (N, K)         image covariates, columns in attrs["covariate_columns"]
    failures      str     (N,)           JSON list of {modality, reason, attempts} ("[]" if none)
    provenance    str     (N,)           JSON {modality: [item ids]} of the scenes composited

    attrs: bands, units, patch_size, resolution_m, covariate_columns, covariate_units, source, format

A sample is written array by array and ``done`` is set last, so a run killed half way never leaves a sample
marked done with partial data: the next run rewrites its chunks whole. The store is created (and re-keyed)
under a temporary sibling name and renamed (:func:`socmap.io.atomic_path`), so a half-created store is never
mistaken for a real one. Readers (:func:`open_patches`) need only the modality arrays, ``sample_id`` and ``ok``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from socmap.eo.bands import BANDS, UNITS
from socmap.eo.covariates import COVARIATE_COLUMNS, COVARIATE_UNITS
from socmap.errors import DataError, EOError
from socmap.io import PATCHES, atomic_path

__all__ = ["MODALITIES", "STORE_FORMAT", "PatchStore", "open_patches"]

STORE_FORMAT = 2
"""2: ``imagery_year`` beside ``year``. A store of another format is refused by :meth:`PatchStore.open`."""
MODALITIES = ("S2L2A", "S1GRD", "DEM")
Years = Sequence[int] | np.ndarray
"""Calendar years, one per sample."""


def _compressor() -> Any:
    import zarr.codecs

    return zarr.codecs.BloscCodec(cname="lz4", clevel=3, shuffle="bitshuffle")


def _strings(a: Any) -> np.ndarray:
    return np.array([str(s) for s in np.asarray(a[:]).tolist()])


class PatchStore:
    """An opened ``patches.zarr`` (see the module docstring for the layout).

    Writers get one with :meth:`open` (create or re-key for a sample list), readers with :func:`open_patches`.
    """

    def __init__(self, path: Path, group: Any) -> None:
        self.path = Path(path)
        self.group = group
        self.sample_id = _strings(group["sample_id"])
        self.sample_ids = self.sample_id.tolist()
        self.index = {s: i for i, s in enumerate(self.sample_ids)}
        self.modalities: tuple[str, ...] = MODALITIES
        """The modalities :meth:`read` returns by default."""

    def __len__(self) -> int:
        return len(self.sample_id)

    @property
    def ok(self) -> np.ndarray:
        """(N,) bool: False where the patch is missing (skip it)."""
        return np.asarray(self.group["ok"][:], dtype=bool)

    @property
    def year(self) -> np.ndarray:
        """(N,) int: the sampling year."""
        return np.asarray(self.group["year"][:], dtype=np.int64)

    @property
    def imagery_year(self) -> np.ndarray:
        """(N,) int: the year of the imagery composited (the sampling year in stores without the array)."""
        if "imagery_year" in set(self.group.array_keys()):
            return np.asarray(self.group["imagery_year"][:], dtype=np.int64)
        return self.year

    @property
    def patch_size(self) -> int:
        p = self.group.attrs.get("patch_size")
        return int(p) if p is not None else int(self.group[MODALITIES[0]].shape[-1])

    # ------------------------------------------------------------------------------------------ open
    @staticmethod
    def read_meta(path: Path) -> dict[str, Any] | None:
        """The attrs of an existing store, or None."""
        import zarr

        if not (Path(path) / "zarr.json").exists():
            return None
        return dict(zarr.open_group(str(path), mode="r").attrs)

    @classmethod
    def open(cls, path: Path, sample_ids: Sequence[str], years: Years, *, patch_size: int,
             resolution_m: float, source: str, imagery_years: Years | None = None
             ) -> PatchStore:
        """Open the store for exactly these samples; create it, or re-key an existing one by sample id.

        ``years`` are the sampling years, ``imagery_years`` the years whose imagery is composited (default: the
        same). Samples already done in an existing store for other ids are carried over (copied by id) when
        their imagery year is unchanged, so adding samples only fetches the new ones. A store built with another
        patch size, resolution, imagery source or format is refused: its patches would not match.
        """
        import zarr

        path = Path(path)
        img_years = list(years) if imagery_years is None else list(imagery_years)
        meta = cls.read_meta(path)
        if meta is None:
            return cls._create(path, sample_ids, years, img_years, patch_size=patch_size,
                               resolution_m=resolution_m, source=source)
        mismatch = [k for k, v in (("patch_size", patch_size), ("resolution_m", resolution_m),
                                   ("source", source), ("format", STORE_FORMAT)) if meta.get(k) != v]
        if mismatch:
            got = ", ".join(f"{k}={meta.get(k)!r}" for k in mismatch)
            raise EOError(f"{path} was built with other settings ({got}); "
                          "delete it or extract into another --data folder")
        store = cls(path, zarr.open_group(str(path), mode="r+"))
        same = (store.sample_ids == [str(s) for s in sample_ids]
                and np.array_equal(store.year, np.asarray(years, dtype=np.int64))
                and np.array_equal(store.imagery_year, np.asarray(img_years, dtype=np.int64)))
        if same:
            return store
        return cls._rekey(store, sample_ids, years, img_years, patch_size=patch_size, resolution_m=resolution_m,
                          source=source)

    @staticmethod
    def _build(tmp: Path, sample_ids: Sequence[str], years: Years, imagery_years: Years, *,
               patch_size: int, resolution_m: float, source: str) -> Any:
        """Create an empty store at ``tmp`` (a temporary name) and return its zarr group."""
        import zarr

        n, p = len(sample_ids), patch_size
        g: Any = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        comp = _compressor()
        for name in MODALITIES:
            c = len(BANDS[name])
            g.create_array(name, shape=(n, c, p, p), chunks=(1, c, p, p), dtype="float32", fill_value=np.nan,
                           compressors=comp, dimension_names=("sample", "band", "y", "x"))
        g.create_array("covariates", shape=(n, len(COVARIATE_COLUMNS)), chunks=(1, len(COVARIATE_COLUMNS)),
                       dtype="float32", fill_value=np.nan, dimension_names=("sample", "covariate"))
        for name, dtype, fill in (("ok", "bool", False), ("done", "bool", False), ("year", "int32", 0),
                                  ("imagery_year", "int32", 0)):
            g.create_array(name, shape=(n,), chunks=(1,), dtype=dtype, fill_value=fill,
                           dimension_names=("sample",))
        for name, sfill in (("sample_id", ""), ("failures", "[]"), ("provenance", "{}")):
            g.create_array(name, shape=(n,), chunks=(max(n, 1) if name == "sample_id" else 1,), dtype=str,
                           fill_value=sfill, dimension_names=("sample",))
        if n:
            g["sample_id"][:] = np.array([str(s) for s in sample_ids])
            g["year"][:] = np.asarray(years, dtype=np.int32)
            g["imagery_year"][:] = np.asarray(imagery_years, dtype=np.int32)
        g.attrs.update({
            "bands": BANDS, "units": UNITS, "patch_size": p, "resolution_m": resolution_m,
            "covariate_columns": list(COVARIATE_COLUMNS), "covariate_units": COVARIATE_UNITS,
            "source": source, "format": STORE_FORMAT,
            "description": "socmap extract: per-sample annual-median patches centred on the sample (pixel P//2)",
        })
        return g

    @classmethod
    def _create(cls, path: Path, sample_ids: Sequence[str], years: Years, imagery_years: Years,
                **kw: Any) -> PatchStore:
        import zarr

        with atomic_path(path) as tmp:
            cls._build(tmp, sample_ids, years, imagery_years, **kw)
        return cls(path, zarr.open_group(str(path), mode="r+"))

    @classmethod
    def _rekey(cls, old: PatchStore, sample_ids: Sequence[str], years: Years, imagery_years: Years,
               **kw: Any) -> PatchStore:
        import zarr

        old_done, old_img = old.done_mask(), old.imagery_year
        with atomic_path(old.path) as tmp:
            g = cls._build(tmp, sample_ids, years, imagery_years, **kw)
            for j, sid in enumerate(str(s) for s in sample_ids):
                i = old.index.get(sid)
                if i is None or not old_done[i] or int(old_img[i]) != int(imagery_years[j]):
                    continue
                for name in (*MODALITIES, "covariates", "ok", "failures", "provenance"):
                    g[name][j] = old.group[name][i]
                g["done"][j] = True
        return cls(old.path, zarr.open_group(str(old.path), mode="r+"))

    # ------------------------------------------------------------------------------------------ write
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
        years = self.year
        return [(self.sample_ids[i], int(years[i]), json.loads(str(f)))
                for i, f in enumerate(fails) if str(f) not in ("", "[]")]

    # ------------------------------------------------------------------------------------------ read
    def read(self, idx: np.ndarray, modalities: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Patches of rows ``idx`` (sorted), float32 ``(len(idx), C, P, P)`` per modality (default
        :attr:`modalities`: those :func:`open_patches` was asked for, else all three)."""
        idx = np.asarray(idx)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        out = {}
        for m in modalities or self.modalities:
            a = self.group[m]
            if hi - lo <= 2 * len(idx):  # nearly contiguous: one slice read
                block = np.asarray(a[lo:hi])[idx - lo]
            else:
                block = np.asarray(a.oindex[idx])
            out[m] = np.ascontiguousarray(block, dtype=np.float32)
        return out


def open_patches(data_dir: Path, modalities: Sequence[str]) -> PatchStore:
    """Open ``<data_dir>/patches.zarr`` read-only and check it holds the arrays the encoder needs."""
    import zarr

    path = Path(data_dir) / PATCHES
    if not path.exists():
        raise DataError(f"{path} not found: run `socmap extract --data {data_dir}` first (or use a pipeline with "
                        "model.streams without 'image' where there is no imagery)")
    try:
        g: Any = zarr.open_group(str(path), mode="r")
    except Exception as exc:
        raise DataError(f"{path} is not a readable zarr group ({exc}); run `socmap extract` again") from None
    keys = set(g.array_keys())
    missing = [k for k in (*modalities, "sample_id", "ok") if k not in keys]
    if missing:
        raise DataError(f"{path} lacks arrays {missing} (has {sorted(keys)}); run `socmap extract` again or drop "
                        "those modalities from model.encoder.modalities")
    store = PatchStore(path, g)
    store.modalities = tuple(modalities)
    n = len(store)
    for m in modalities:
        shape = g[m].shape
        if len(shape) != 4 or shape[0] != n or shape[2] != shape[3]:
            raise DataError(f"{path}/{m} has shape {shape}; expected (N={n}, C, P, P)")
    return store
