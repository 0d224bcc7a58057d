"""``socmap extract``: patches and image covariates for every sample, resumable, on Dask.

For each group of nearby samples sharing a year (:func:`~socmap.eo.patches.group_samples`): search the three
collections over the group's box, check every asset that will be read (transient HTTP errors are retried; an
asset that keeps failing is dropped from the composite and recorded), build the lazy annual composite
(:func:`~socmap.eo.composite.build_composite`), compute it on the Dask cluster together with the S2 time series at
the samples, cut the patches and the covariates, and write each sample into ``patches.zarr`` (then mark it done).

Per-sample problems never stop the run; they become rows of ``extract_failures.csv`` and ``ok = False``:

* no scene of a collection over the sample's patch in its year (permanent: the sample is done);
* the patch falls (partly) off the raster: some pixels have no data in any scene (permanent);
* an asset or a search that still fails after ``stac.retries`` retries (transient: the sample is left not done,
  so the next run tries it again).

An unreachable endpoint or a wrong collection id is an :class:`~socmap.errors.EOError` raised before anything is
written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap.eo.bands import DEM_ASSET, S1_ASSETS, S2_BANDS
from socmap.eo.cluster import clear_gdal_http_cache, dask_client, gdal_options
from socmap.eo.composite import SceneSet, aligned_geobox, bounds_lonlat, build_composite, search_scenes
from socmap.eo.covariates import COVARIATE_COLUMNS, phenology, spectral_percentiles, terrain_at
from socmap.eo.patches import SampleGroup, cut_patches, group_samples, patch_bounds, pixel_of
from socmap.eo.stac import StacSource, _short
from socmap.eo.store import MODALITIES, PatchStore
from socmap.errors import DataError, EOError

__all__ = ["ExtractResult", "extract", "read_samples"]

REQUIRED_COLUMNS = ("sample_id", "lon", "lat", "year")
S2_ASSETS = (*tuple(b.asset for b in S2_BANDS), "SCL")


@dataclass
class ExtractResult:
    """What :func:`extract` wrote and did."""

    out_dir: Path
    patches: Path
    covariates: Path
    failures: Path
    report: Path
    n_samples: int
    n_ok: int
    n_missing: int
    n_extracted: int
    """Samples fetched and written by this run (0 when everything was cached)."""
    n_groups: int
    seconds: float
    failure_rows: list[dict[str, Any]] = field(default_factory=list)


def read_samples(samples: Any) -> pd.DataFrame:
    """The sample table (a DataFrame or a parquet/csv path) with the columns extraction needs, checked."""
    if isinstance(samples, pd.DataFrame):
        df = samples.copy()
    else:
        p = Path(samples)
        if not p.exists():
            raise DataError(f"samples file {p} not found; run `socmap prepare` first")
        try:
            df = pd.read_csv(p) if p.suffix.lower() == ".csv" else pd.read_parquet(p)
        except Exception as exc:
            raise DataError(f"cannot read samples file {p}: {_short(exc)}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"samples table lacks column(s) {', '.join(missing)}; it needs {', '.join(REQUIRED_COLUMNS)}")
    df["sample_id"] = df["sample_id"].astype(str)
    dup = df["sample_id"][df["sample_id"].duplicated()].unique()
    if len(dup):
        raise DataError(f"samples table has duplicate sample_id values, e.g. {', '.join(dup[:3])}")
    bad = ~(np.isfinite(df["lon"]) & np.isfinite(df["lat"]) & df["lon"].between(-180, 180)
            & df["lat"].between(-90, 90))
    if bad.any():
        raise DataError(f"samples {', '.join(df['sample_id'][bad][:3])} have no valid lon/lat (WGS84 degrees)")
    df["year"] = df["year"].astype(int)
    return df.reset_index(drop=True)


def _source_token(cfg: Any) -> str:
    s = cfg.stac
    where = s.api or cfg.resolve(s.catalog)
    return f"{where}|{s.s2_collection}|{s.s1_collection}|{s.dem_collection}|cloud<{s.max_cloud_pct:g}"


# ------------------------------------------------------------------------------------------ assets
def _check_asset(href: str, gdal: dict[str, Any], retries: int) -> tuple[str | None, int]:
    """Open one asset (header read) with retries; (None, attempts) if fine, else (reason, attempts)."""
    import rasterio

    last = ""
    for attempt in range(1, retries + 2):
        try:
            with rasterio.Env(**gdal), rasterio.open(href) as src:
                src.profile  # noqa: B018 - the header is what we check
            return None, attempt
        except Exception as exc:
            last = _short(exc)
            if attempt <= retries:
                time.sleep(min(0.25 * 2 ** (attempt - 1), 4.0))
                clear_gdal_http_cache()
    return last, retries + 1


def _preflight(scenes: SceneSet, gdal: dict[str, Any], retries: int) -> tuple[SceneSet, dict[str, list[dict]]]:
    """Check every asset the composite will read; drop items with an unreadable asset.

    Returns the usable scenes and, per modality, the dropped items (item, asset, href, reason, attempts).
    """
    jobs = []
    for mod, items, keys in (("S2L2A", scenes.s2, S2_ASSETS), ("S1GRD", scenes.s1, S1_ASSETS),
                             ("DEM", scenes.dem, (DEM_ASSET,))):
        for it in items:
            for k in keys:
                if k not in it.assets:
                    jobs.append((mod, it, k, None))
                else:
                    jobs.append((mod, it, k, it.assets[k].href))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda j: (("asset missing from the item", 0) if j[3] is None
                                           else _check_asset(j[3], gdal, retries)), jobs))
    dropped: dict[str, list[dict]] = {"S2L2A": [], "S1GRD": [], "DEM": []}
    bad_ids: dict[str, set[str]] = {"S2L2A": set(), "S1GRD": set(), "DEM": set()}
    for (mod, it, key, href), (reason, attempts) in zip(jobs, results, strict=True):
        if reason is not None and it.id not in bad_ids[mod]:
            bad_ids[mod].add(it.id)
            dropped[mod].append({"item": it, "asset": key, "href": href, "reason": reason, "attempts": attempts})
    keep = SceneSet(s2=[i for i in scenes.s2 if i.id not in bad_ids["S2L2A"]],
                    s1=[i for i in scenes.s1 if i.id not in bad_ids["S1GRD"]],
                    dem=[i for i in scenes.dem if i.id not in bad_ids["DEM"]])
    return keep, dropped


def _overlaps(bbox: Sequence[float] | None, ll: Sequence[float]) -> bool:
    if bbox is None:
        return True
    return not (bbox[2] < ll[0] or bbox[0] > ll[2] or bbox[3] < ll[1] or bbox[1] > ll[3])


# ------------------------------------------------------------------------------------------ one group
@dataclass
class _SampleOut:
    row: int
    patches: dict[str, np.ndarray]
    covariates: np.ndarray
    failures: list[dict[str, Any]]
    provenance: dict[str, list[str]]
    done: bool


def _fail_all(group: SampleGroup, rows: Sequence[int], reason: str, attempts: int, patch_size: int
              ) -> list[_SampleOut]:
    from socmap.eo.bands import BANDS

    return [_SampleOut(row=int(r), patches={m: np.full((len(BANDS[m]), patch_size, patch_size), np.nan,
                                                       np.float32) for m in MODALITIES},
                       covariates=np.full(len(COVARIATE_COLUMNS), np.nan, np.float32),
                       failures=[{"modality": "all", "reason": reason, "attempts": attempts}],
                       provenance={}, done=False) for r in rows]


def _process_group(group: SampleGroup, todo: np.ndarray, cfg: Any, source: StacSource,
                   gdal: dict[str, Any]) -> list[_SampleOut]:
    """Composite one group's box and return its not-yet-done samples' patches, covariates and failures."""
    import dask
    import xarray as xr

    P = cfg.imagery.patch_size
    res = float(cfg.imagery.resolution_m)
    retries = cfg.stac.retries
    sel = np.flatnonzero(todo)  # positions within the group
    rows = group.rows[sel]
    xs, ys = group.x[sel], group.y[sel]
    try:
        scenes = search_scenes(source, cfg.stac, group.bounds, group.epsg, group.year)
    except EOError as exc:
        return _fail_all(group, rows, str(exc), retries + 1, P)
    scenes, dropped = _preflight(scenes, gdal, retries)
    geobox = aligned_geobox(group.bounds, group.epsg, res)
    comp = build_composite(scenes, geobox, group.year, chunk_px=cfg.imagery.chunk_px)
    transform = list(geobox.transform)[:6]
    pix = [pixel_of(transform, x, y) for x, y in zip(xs, ys, strict=True)]
    prow = np.array([p[0] for p in pix])
    pcol = np.array([p[1] for p in pix])
    ds = comp.ds
    lazy = [ds["S2L2A"].data, ds["S1GRD"].data, ds["DEM"].data, ds["s2_cover"].data, ds["s1_cover"].data,
            ds["dem_cover"].data, ds["slope_deg"].data, ds["aspect_deg"].data]
    if comp.series is not None:
        pts = comp.series.isel(y=xr.DataArray(prow, dims="pt"), x=xr.DataArray(pcol, dims="pt"))
        lazy.append(pts.data)
    last = ""
    for attempt in range(1, retries + 2):
        try:
            with np.errstate(all="ignore"):
                computed = dask.compute(*lazy)
            break
        except Exception as exc:
            last = _short(exc)
            if attempt <= retries:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
                clear_gdal_http_cache()
    else:
        return _fail_all(group, rows, f"reading the {group.year} composite of box {group.bounds} "
                         f"(EPSG:{group.epsg}) failed: {last}", retries + 1, P)
    s2, s1, dem, c2, c1, cd, slope, aspect = computed[:8]
    cut = cut_patches({"S2L2A": s2, "S1GRD": s1, "DEM": dem, "c2": c2, "c1": c1, "cd": cd},
                      transform, xs, ys, P)
    # covariates
    cov: dict[str, np.ndarray] = {}
    n = len(rows)
    if comp.series is not None:
        series = np.moveaxis(np.asarray(computed[8], dtype=np.float64), -1, 0)  # (n, T, B)
        names = [b.name for b in S2_BANDS]
        cov.update(spectral_percentiles(series, names))
        doy = pd.DatetimeIndex(comp.series["time"].values).dayofyear.to_numpy()
        idx = {b: i for i, b in enumerate(names)}
        cov.update(phenology(doy, series[:, :, idx["B02"]], series[:, :, idx["B04"]], series[:, :, idx["B08"]]))
    H, W = dem.shape[-2:]
    inside = (prow >= 0) & (prow < H) & (pcol >= 0) & (pcol < W)
    rr, cc = np.clip(prow, 0, H - 1), np.clip(pcol, 0, W - 1)
    cov["s1_vv_db"] = np.where(inside, s1[0][rr, cc], np.nan)
    cov["s1_vh_db"] = np.where(inside, s1[1][rr, cc], np.nan)
    cov.update(terrain_at(dem[0], slope, aspect, prow, pcol))
    covmat = np.stack([np.asarray(cov.get(c, np.full(n, np.nan)), dtype=np.float32) for c in COVARIATE_COLUMNS],
                      axis=1)

    coll = {"S2L2A": cfg.stac.s2_collection, "S1GRD": cfg.stac.s1_collection, "DEM": cfg.stac.dem_collection}
    used = {"S2L2A": scenes.s2, "S1GRD": scenes.s1, "DEM": scenes.dem}
    cover_key = {"S2L2A": "c2", "S1GRD": "c1", "DEM": "cd"}
    out = []
    for k in range(n):
        ll = bounds_lonlat(patch_bounds(xs[k], ys[k], P, res), group.epsg)
        fails: list[dict[str, Any]] = []
        prov: dict[str, list[str]] = {}
        transient = False
        for mod in MODALITIES:
            mine = [it.id for it in used[mod] if _overlaps(it.bbox, ll)]
            prov[mod] = mine
            for d in dropped[mod]:
                if _overlaps(d["item"].bbox, ll):
                    transient = True
                    fails.append({"modality": mod, "attempts": d["attempts"], "reason": (
                        f"asset {d['asset']} of item {d['item'].id} ({d['href']}) unreadable after "
                        f"{d['attempts']} attempt(s): {d['reason']}; composited without this scene")})
            if not mine:
                if not any(_overlaps(d["item"].bbox, ll) for d in dropped[mod]):
                    cloud = (f" with eo:cloud_cover < {cfg.stac.max_cloud_pct:g}%" if mod == "S2L2A" else "")
                    when = f" in {group.year}" if mod != "DEM" else ""
                    fails.append({"modality": mod, "attempts": 1, "reason": (
                        f"no {coll[mod]} items{cloud}{when} over the patch {tuple(round(v, 5) for v in ll)}")})
                continue
            covered = float(cut[cover_key[mod]][k].mean())
            if covered < 1.0:
                fails.append({"modality": mod, "attempts": 1, "reason": (
                    f"patch falls off the raster: {100 * (1 - covered):.1f}% of the {P}x{P} patch has no data "
                    f"in any {coll[mod]} scene")})
        out.append(_SampleOut(row=int(rows[k]), patches={m: cut[m][k] for m in MODALITIES},
                              covariates=covmat[k], failures=fails, provenance=prov, done=not transient))
    return out


# ------------------------------------------------------------------------------------------ outputs
def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_outputs(store: PatchStore, out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path, Path,
                                                                                     list[dict[str, Any]]]:
    g = store.group
    cov = pd.DataFrame(np.asarray(g["covariates"][:], dtype=np.float32), columns=list(COVARIATE_COLUMNS))
    cov.insert(0, "sample_id", store.sample_ids)
    cov_path = out_dir / "image_covariates.parquet"
    _atomic_write(cov_path, lambda p: cov.to_parquet(p, index=False))
    rows = [{"sample_id": sid, "year": year, "modality": f.get("modality", ""), "reason": f.get("reason", ""),
             "attempts": int(f.get("attempts", 1))} for sid, year, fs in store.failures() for f in fs]
    fail_path = out_dir / "extract_failures.csv"
    fdf = pd.DataFrame(rows, columns=["sample_id", "year", "modality", "reason", "attempts"])
    _atomic_write(fail_path, lambda p: fdf.to_csv(p, index=False))
    rep_path = out_dir / "extract_report.json"
    _atomic_write(rep_path, lambda p: Path(p).write_text(json.dumps(report, indent=2, default=str) + "\n"))
    return cov_path, fail_path, rep_path, rows


# ------------------------------------------------------------------------------------------ public
def extract(samples: Any, out_dir: str | Path, cfg: Any, *, scheduler: str | None = None,
            workers: int | None = None, progress: bool = True) -> ExtractResult:
    """Fill ``out_dir/patches.zarr`` and write ``image_covariates.parquet``, ``extract_failures.csv`` and
    ``extract_report.json`` for every sample (see :mod:`socmap.eo.store` for the zarr layout).

    Args:
        samples: ``samples.parquet`` from ``socmap prepare`` (or a DataFrame) with sample_id, lon, lat (WGS84
            degrees) and year.
        out_dir: output folder (created).
        cfg: the :class:`~socmap.config.PipelineConfig` (``stac`` and ``imagery`` blocks are used).
        scheduler: Dask scheduler address, ``"threads"``/``"synchronous"`` for an in-process scheduler, or None
            for a LocalCluster.
        workers: LocalCluster worker processes (default: half the CPUs, at least 1).
        progress: show a tqdm bar over samples.

    Samples already done in the store are not fetched again; a killed run resumes where it stopped.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    df = read_samples(samples)
    out_dir = Path(out_dir)
    im = cfg.imagery
    token = _source_token(cfg)
    zpath = out_dir / "patches.zarr"
    ids, years = df["sample_id"].tolist(), df["year"].to_numpy()

    store: PatchStore | None = None
    if PatchStore.read_meta(zpath) is not None:
        store = PatchStore.open(zpath, ids, years, patch_size=im.patch_size, resolution_m=float(im.resolution_m),
                                source=token)
        done = store.done_mask()
    else:
        done = np.zeros(len(df), dtype=bool)

    groups = group_samples(df["lon"], df["lat"], df["year"], patch_size=im.patch_size,
                           res=float(im.resolution_m), group_m=im.group_km * 1000.0)
    todo_groups = [g for g in groups if not done[g.rows].all()]
    n_todo = int(sum((~done[g.rows]).sum() for g in todo_groups))
    search_requests = 0
    n_written = 0
    if todo_groups:
        source = StacSource.from_config(cfg)  # raises EOError before anything is written
        out_dir.mkdir(parents=True, exist_ok=True)
        if store is None:
            store = PatchStore.open(zpath, ids, years, patch_size=im.patch_size,
                                    resolution_m=float(im.resolution_m), source=token)
        gdal = gdal_options(cfg.stac.timeout_s, cfg.stac.retries)
        clear_gdal_http_cache()  # failures cached by an earlier run in this process must not be replayed
        bar = tqdm(total=n_todo, desc="extract", unit="sample", disable=not progress)
        with dask_client(scheduler, workers=workers, gdal=gdal), ThreadPoolExecutor(4) as writers:
            for g in todo_groups:
                results = _process_group(g, ~done[g.rows], cfg, source, gdal)
                list(writers.map(lambda r: store.write_sample(r.row, r.patches, r.covariates,  # type: ignore[union-attr]
                                                              not r.failures, r.failures, r.provenance, r.done),
                                 results))
                n_written += len(results)
                bar.update(len(results))
        bar.close()
        search_requests = source.requests
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
    if store is None:  # no samples at all
        store = PatchStore.open(zpath, ids, years, patch_size=im.patch_size, resolution_m=float(im.resolution_m),
                                source=token)
    ok = np.asarray(store.group["ok"][:], dtype=bool)
    done_now = store.done_mask()
    seconds = time.perf_counter() - t0
    report = {
        "samples": len(df), "ok": int(ok.sum()), "missing": int((~ok).sum()),
        "extracted_this_run": n_written, "cached": int(done.sum()), "not_done": int((~done_now).sum()),
        "groups": len(groups), "groups_processed": len(todo_groups), "patch_size": im.patch_size,
        "resolution_m": im.resolution_m, "seconds": round(seconds, 3), "search_requests": search_requests,
        "source": token, "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    cov_path, fail_path, rep_path, rows = _write_outputs(store, out_dir, report)
    return ExtractResult(out_dir=out_dir, patches=zpath, covariates=cov_path, failures=fail_path, report=rep_path,
                         n_samples=len(df), n_ok=int(ok.sum()), n_missing=int((~ok).sum()), n_extracted=n_written,
                         n_groups=len(todo_groups), seconds=seconds, failure_rows=rows)


def result_dict(res: ExtractResult) -> dict[str, Any]:
    """An :class:`ExtractResult` as JSON-friendly values."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(res).items() if k != "failure_rows"}
