"""``socmap extract``: patches and image covariates for every sample, resumable, on Dask.

For each group of nearby samples sharing an imagery year (:func:`~socmap.eo.patches.group_samples`): search the
three collections over the group's box, check every asset that will be read (transient HTTP errors are retried; an
asset that keeps failing is dropped from the composite and recorded), build the lazy annual composite
(:func:`~socmap.eo.composite.build_composite`), compute it on the Dask cluster together with the S2 time series at
the samples, cut the patches and the covariates, and write each sample into ``patches.zarr`` (then mark it done).

**The imagery year.** A sample is imaged in the year it was taken when that year is one of ``imagery.years``;
otherwise in the nearest of them (:func:`imagery_year_for`; the earlier one on a tie). Every real Africa sample
(Africa Soil Profiles 1938-2011, AfSIS 2012) predates Sentinel-2, so they get the first archive year: recent
imagery stands in as a proxy of the land surface (terrain, vegetation pattern, land use) that shaped the soil,
not as a picture of the field on the sampling day. ``imagery_year`` is recorded beside the sampling ``year`` in
``patches.zarr`` and ``image_covariates.parquet``; the sampling year stays what the temporal encoder gets.

Per-sample problems never stop the run; they become rows of ``extract_failures.csv`` and ``ok = False``:

* no scene of a collection over the sample's patch in its imagery year (permanent: the sample is done);
* the patch falls (partly) off the raster: some pixels have no data in any scene (permanent);
* an asset or a search that still fails after ``stac.retries`` retries (transient: the sample is left not done,
  so the next run tries it again).

An unreachable endpoint or a wrong collection id is an :class:`~socmap.errors.EOError` raised before anything is
written.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap.config import PipelineConfig
from socmap.data.samples import LOCATED, read_samples
from socmap.eo.bands import BANDS, DEM_ASSET, S1_ASSETS, S2_BANDS
from socmap.eo.composite import (
    AnnualComposite,
    SceneSet,
    aligned_geobox,
    bounds_lonlat,
    build_composite,
    search_scenes,
)
from socmap.eo.covariates import COVARIATE_COLUMNS, phenology, spectral_percentiles, terrain_at
from socmap.eo.dask_client import clear_gdal_http_cache, dask_client, gdal_options
from socmap.eo.patches import SampleGroup, cut_patches, group_samples, patch_bounds, pixel_of
from socmap.eo.stac import StacSource, stac_config
from socmap.eo.store import MODALITIES, PatchStore
from socmap.errors import EOError, short_error
from socmap.io import EXTRACT_FAILURES, EXTRACT_REPORT, IMAGE_COVARIATES, PATCHES, atomic_path, retry

__all__ = ["ExtractResult", "imagery_year_for", "run"]

S2_ASSETS = (*tuple(b.asset for b in S2_BANDS), "SCL")


@dataclass
class ExtractResult:
    """What :func:`run` wrote and did."""

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

    def summary(self) -> str:
        """One line for the CLI: samples with patches, missing ones (and where they are listed), time."""
        return (f"{self.patches}: {self.n_ok}/{self.n_samples} samples ok, {self.n_missing} missing "
                f"(see {self.failures.name}), {self.n_extracted} extracted this run in {self.seconds:.1f} s")


def imagery_year_for(years: Sequence[int] | np.ndarray, available: Sequence[int]) -> np.ndarray:
    """The imagery year of each sampling year: itself if in ``available``, else the nearest available year
    (the earlier on a tie). With no ``available`` years every sample keeps its own year."""
    y = np.asarray(years, dtype=np.int64)
    avail = np.unique(np.asarray(list(available), dtype=np.int64))
    if avail.size == 0:
        return y.copy()
    return avail[np.argmin(np.abs(y[:, None] - avail[None, :]), axis=1)] if y.size else y.copy()


def _source_token(cfg: PipelineConfig) -> str:
    s = stac_config(cfg)
    where = s.api or cfg.resolve(s.catalog)
    return f"{where}|{s.s2_collection}|{s.s1_collection}|{s.dem_collection}|cloud<{s.max_cloud_pct:g}"


# ------------------------------------------------------------------------------------------ assets
def _check_asset(href: str, gdal: dict[str, Any], retries: int) -> tuple[str | None, int]:
    """Open one asset (header read) with retries; (None, attempts) if fine, else (reason, attempts)."""
    import rasterio

    attempts = 0

    def read_header() -> None:
        nonlocal attempts
        attempts += 1
        with rasterio.Env(**gdal), rasterio.open(href) as src:
            src.profile  # noqa: B018 - the header is what we check

    try:
        retry(read_header, attempts=retries + 1, base_s=0.25, cap_s=4.0,
              on_retry=lambda _i, _e: clear_gdal_http_cache())
    except Exception as exc:
        return short_error(exc), attempts
    return None, attempts


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


def _fail_all(rows: np.ndarray, reason: str, attempts: int, patch_size: int) -> list[_SampleOut]:
    return [_SampleOut(row=int(r), patches={m: np.full((len(BANDS[m]), patch_size, patch_size), np.nan,
                                                       np.float32) for m in MODALITIES},
                       covariates=np.full(len(COVARIATE_COLUMNS), np.nan, np.float32),
                       failures=[{"modality": "all", "reason": reason, "attempts": attempts}],
                       provenance={}, done=False) for r in rows]


def _compute(comp: AnnualComposite, prow: np.ndarray, pcol: np.ndarray, retries: int) -> tuple[Any, ...]:
    """Compute the composite's arrays (and the S2 series at the samples) on the cluster, with retries.

    Returns S2, S1, DEM, the three cover masks, slope, aspect and (if there is a series) the (pt, T, B) series.
    """
    import dask
    import xarray as xr

    ds = comp.ds
    lazy = [ds["S2L2A"].data, ds["S1GRD"].data, ds["DEM"].data, ds["s2_cover"].data, ds["s1_cover"].data,
            ds["dem_cover"].data, ds["slope_deg"].data, ds["aspect_deg"].data]
    if comp.series is not None:
        pts = comp.series.isel(y=xr.DataArray(prow, dims="pt"), x=xr.DataArray(pcol, dims="pt"))
        lazy.append(pts.data)

    def once() -> tuple[Any, ...]:
        with np.errstate(all="ignore"):
            return tuple(dask.compute(*lazy))

    return retry(once, attempts=retries + 1, base_s=0.5, cap_s=8.0, on_retry=lambda _i, _e: clear_gdal_http_cache())


def _covariates(comp: AnnualComposite, computed: tuple[Any, ...], prow: np.ndarray, pcol: np.ndarray
                ) -> np.ndarray:
    """(n, K) image covariates at the samples' pixels, columns in :data:`COVARIATE_COLUMNS` order."""
    _, s1, dem, _, _, _, slope, aspect = computed[:8]
    n = len(prow)
    cov: dict[str, np.ndarray] = {}
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
    return np.stack([np.asarray(cov.get(c, np.full(n, np.nan)), dtype=np.float32) for c in COVARIATE_COLUMNS],
                    axis=1)


def _sample_failures(patch_ll: Sequence[float], cover: dict[str, float], scenes: SceneSet,
                     dropped: dict[str, list[dict]], cfg: PipelineConfig, year: int
                     ) -> tuple[list[dict[str, Any]], dict[str, list[str]], bool]:
    """One sample's failure records, provenance (item ids per modality) and whether a failure is transient.

    ``patch_ll`` is the patch's lon/lat box; ``cover[mod]`` the fraction of its pixels some scene covers.
    """
    P, stac = cfg.imagery.patch_size, stac_config(cfg)
    coll = {"S2L2A": stac.s2_collection, "S1GRD": stac.s1_collection, "DEM": stac.dem_collection}
    used = {"S2L2A": scenes.s2, "S1GRD": scenes.s1, "DEM": scenes.dem}
    fails: list[dict[str, Any]] = []
    prov: dict[str, list[str]] = {}
    transient = False
    for mod in MODALITIES:
        mine = [it.id for it in used[mod] if _overlaps(it.bbox, patch_ll)]
        prov[mod] = mine
        for d in dropped[mod]:
            if _overlaps(d["item"].bbox, patch_ll):
                transient = True
                fails.append({"modality": mod, "attempts": d["attempts"], "reason": (
                    f"asset {d['asset']} of item {d['item'].id} ({d['href']}) unreadable after "
                    f"{d['attempts']} attempt(s): {d['reason']}; composited without this scene")})
        if not mine:
            if not any(_overlaps(d["item"].bbox, patch_ll) for d in dropped[mod]):
                cloud = (f" with eo:cloud_cover < {stac.max_cloud_pct:g}%" if mod == "S2L2A" else "")
                when = f" in {year}" if mod != "DEM" else ""
                fails.append({"modality": mod, "attempts": 1, "reason": (
                    f"no {coll[mod]} items{cloud}{when} over the patch {tuple(round(v, 5) for v in patch_ll)}")})
            continue
        if cover[mod] < 1.0:
            fails.append({"modality": mod, "attempts": 1, "reason": (
                f"patch falls off the raster: {100 * (1 - cover[mod]):.1f}% of the {P}x{P} patch has no data "
                f"in any {coll[mod]} scene")})
    return fails, prov, transient


def _process_group(group: SampleGroup, todo: np.ndarray, cfg: PipelineConfig, source: StacSource,
                   gdal: dict[str, Any]) -> list[_SampleOut]:
    """Composite one group's box (its imagery year) and return its not-yet-done samples' patches, covariates
    and failures."""
    P = cfg.imagery.patch_size
    res = float(cfg.imagery.resolution_m)
    stac = stac_config(cfg)
    retries = stac.retries
    sel = np.flatnonzero(todo)  # positions within the group
    rows = group.rows[sel]
    xs, ys = group.x[sel], group.y[sel]
    try:
        scenes = search_scenes(source, stac, group.bounds, group.epsg, group.year)
    except EOError as exc:
        return _fail_all(rows, str(exc), retries + 1, P)
    scenes, dropped = _preflight(scenes, gdal, retries)
    geobox = aligned_geobox(group.bounds, group.epsg, res)
    comp = build_composite(scenes, geobox, group.year, chunk_px=cfg.imagery.chunk_px)
    transform = list(geobox.transform)[:6]
    pix = [pixel_of(transform, x, y) for x, y in zip(xs, ys, strict=True)]
    prow = np.array([p[0] for p in pix], dtype=np.int64)
    pcol = np.array([p[1] for p in pix], dtype=np.int64)
    try:
        computed = _compute(comp, prow, pcol, retries)
    except Exception as exc:
        return _fail_all(rows, f"reading the {group.year} composite of box {group.bounds} "
                         f"(EPSG:{group.epsg}) failed: {short_error(exc)}", retries + 1, P)
    s2, s1, dem, c2, c1, cd = computed[:6]
    cut = cut_patches({"S2L2A": s2, "S1GRD": s1, "DEM": dem, "c2": c2, "c1": c1, "cd": cd},
                      transform, xs, ys, P)
    covmat = _covariates(comp, computed, prow, pcol)
    cover_key = {"S2L2A": "c2", "S1GRD": "c1", "DEM": "cd"}
    out = []
    for k in range(len(rows)):
        ll = bounds_lonlat(patch_bounds(xs[k], ys[k], P, res), group.epsg)
        cover = {m: float(cut[cover_key[m]][k].mean()) for m in MODALITIES}
        fails, prov, transient = _sample_failures(ll, cover, scenes, dropped, cfg, group.year)
        out.append(_SampleOut(row=int(rows[k]), patches={m: cut[m][k] for m in MODALITIES},
                              covariates=covmat[k], failures=fails, provenance=prov, done=not transient))
    return out


# ------------------------------------------------------------------------------------------ outputs
def _write_outputs(store: PatchStore, out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path, Path,
                                                                                     list[dict[str, Any]]]:
    g = store.group
    cov = pd.DataFrame(np.asarray(g["covariates"][:], dtype=np.float32), columns=list(COVARIATE_COLUMNS))
    cov.insert(0, "sample_id", store.sample_ids)
    cov.insert(1, "year", store.year.astype(np.int32))
    cov.insert(2, "imagery_year", store.imagery_year.astype(np.int32))
    cov_path = out_dir / IMAGE_COVARIATES
    with atomic_path(cov_path) as tmp:
        cov.to_parquet(tmp, index=False)
    rows = [{"sample_id": sid, "year": year, "modality": f.get("modality", ""), "reason": f.get("reason", ""),
             "attempts": int(f.get("attempts", 1))} for sid, year, fs in store.failures() for f in fs]
    fail_path = out_dir / EXTRACT_FAILURES
    fdf = pd.DataFrame(rows, columns=["sample_id", "year", "modality", "reason", "attempts"])
    with atomic_path(fail_path) as tmp:
        fdf.to_csv(tmp, index=False)
    rep_path = out_dir / EXTRACT_REPORT
    with atomic_path(rep_path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return cov_path, fail_path, rep_path, rows


# ------------------------------------------------------------------------------------------ public
@dataclass
class _ExtractPlan:
    """What one extract run works on: the samples and their imagery years, the store (None until one exists) and
    which samples it already holds, and the sample groups still to fetch."""

    cfg: PipelineConfig
    df: pd.DataFrame
    out_dir: Path
    token: str
    """The source's identity, recorded in the store (a store of another source is not reused)."""
    img_years: np.ndarray
    store: PatchStore | None
    done: np.ndarray
    """(N,) bool: the sample was done before this run."""
    groups: list[SampleGroup]
    todo_groups: list[SampleGroup]

    @property
    def zpath(self) -> Path:
        return self.out_dir / PATCHES

    def open_store(self) -> PatchStore:
        im = self.cfg.imagery
        return PatchStore.open(self.zpath, self.df["sample_id"].tolist(), self.df["year"].to_numpy(),
                               imagery_years=self.img_years, patch_size=im.patch_size,
                               resolution_m=float(im.resolution_m), source=self.token)


def run(cfg: PipelineConfig, samples: str | Path | pd.DataFrame, out: str | Path, *,
        scheduler: str | None = None, workers: int | None = None, progress: bool = True) -> ExtractResult:
    """Fill ``out/patches.zarr`` and write ``image_covariates.parquet``, ``extract_failures.csv`` and
    ``extract_report.json`` for every sample (see :mod:`socmap.eo.store` for the zarr layout).

    Args:
        cfg: the pipeline (its ``stac`` and ``imagery`` blocks are used; ``imagery.years`` are the years with
            imagery, and a sample outside them is imaged in the nearest one: see the module docstring).
        samples: a data folder holding ``samples.parquet`` (``socmap prepare``), that file, or a DataFrame, with
            sample_id, lon, lat (WGS84 degrees) and year (the sampling year).
        out: output folder (created); usually the same data folder.
        scheduler: Dask scheduler address, ``"threads"``/``"synchronous"`` for an in-process scheduler, or None
            for a LocalCluster.
        workers: LocalCluster worker processes (default: half the CPUs, at least 1).
        progress: show a tqdm bar over samples.

    Samples already done in the store are not fetched again; a killed run resumes where it stopped.
    """
    t0 = time.perf_counter()
    plan = _plan_extract(cfg, samples, Path(out))
    n_written, search_requests = 0, 0
    if plan.todo_groups:
        n_written, search_requests = _fetch_groups(plan, scheduler=scheduler, workers=workers, progress=progress)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    if plan.store is None:  # no samples at all
        plan.store = plan.open_store()
    return _finish_extract(plan, plan.store, n_written, search_requests, t0=t0)


def _plan_extract(cfg: PipelineConfig, samples: str | Path | pd.DataFrame, out_dir: Path) -> _ExtractPlan:
    """Read the samples, open the store if one exists, and group the samples still to fetch; writes nothing."""
    df = read_samples(samples, required=LOCATED)
    im = cfg.imagery
    img_years = imagery_year_for(df["year"].to_numpy(), im.years)
    plan = _ExtractPlan(cfg=cfg, df=df, out_dir=out_dir, token=_source_token(cfg), img_years=img_years, store=None,
                        done=np.zeros(len(df), dtype=bool), groups=[], todo_groups=[])
    if PatchStore.read_meta(plan.zpath) is not None:
        plan.store = plan.open_store()
        plan.done = plan.store.done_mask()
    plan.groups = group_samples(df["lon"].to_numpy(), df["lat"].to_numpy(), img_years, patch_size=im.patch_size,
                                res=float(im.resolution_m), group_m=im.group_km * 1000.0)
    plan.todo_groups = [g for g in plan.groups if not plan.done[g.rows].all()]
    return plan


def _fetch_groups(plan: _ExtractPlan, *, scheduler: str | None, workers: int | None,
                  progress: bool) -> tuple[int, int]:
    """Fetch every sample of ``plan.todo_groups`` not yet done into the store (opened or created here); the
    number of samples written and of STAC search requests made."""
    from tqdm import tqdm

    cfg, done = plan.cfg, plan.done
    n_todo = int(sum((~done[g.rows]).sum() for g in plan.todo_groups))
    source = StacSource.from_config(cfg)  # raises EOError before anything is written
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    writing = plan.store if plan.store is not None else plan.open_store()
    plan.store = writing
    stac = stac_config(cfg)
    gdal = gdal_options(stac.timeout_s, stac.retries)
    clear_gdal_http_cache()  # failures cached by an earlier run in this process must not be replayed
    n_written = 0
    bar = tqdm(total=n_todo, desc="extract", unit="sample", disable=not progress)
    with dask_client(scheduler, workers=workers, gdal=gdal), ThreadPoolExecutor(4) as writers:
        for g in plan.todo_groups:
            results = _process_group(g, ~done[g.rows], cfg, source, gdal)
            list(writers.map(lambda r: writing.write_sample(r.row, r.patches, r.covariates, not r.failures,
                                                            r.failures, r.provenance, r.done), results))
            n_written += len(results)
            bar.update(len(results))
    bar.close()
    return n_written, source.requests


def _finish_extract(plan: _ExtractPlan, store: PatchStore, n_written: int, search_requests: int, *,
                    t0: float) -> ExtractResult:
    """Write the covariates table, the failures and the report from the store; the run's result (its wall time
    counted from ``t0``, :func:`time.perf_counter`)."""
    df, im, years = plan.df, plan.cfg.imagery, plan.df["year"].to_numpy()
    ok = store.ok
    done_now = store.done_mask()
    seconds = time.perf_counter() - t0
    report = {
        "samples": len(df), "ok": int(ok.sum()), "missing": int((~ok).sum()),
        "extracted_this_run": n_written, "cached": int(plan.done.sum()), "not_done": int((~done_now).sum()),
        "groups": len(plan.groups), "groups_processed": len(plan.todo_groups), "patch_size": im.patch_size,
        "resolution_m": im.resolution_m, "imagery_years": list(im.years),
        "samples_imaged_in_another_year": int((plan.img_years != years).sum()),
        "seconds": round(seconds, 3), "search_requests": search_requests,
        "source": plan.token, "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    cov_path, fail_path, rep_path, rows = _write_outputs(store, plan.out_dir, report)
    return ExtractResult(out_dir=plan.out_dir, patches=plan.zpath, covariates=cov_path, failures=fail_path,
                         report=rep_path, n_samples=len(df), n_ok=int(ok.sum()), n_missing=int((~ok).sum()),
                         n_extracted=n_written, n_groups=len(plan.todo_groups), seconds=seconds, failure_rows=rows)


def result_dict(res: ExtractResult) -> dict[str, Any]:
    """An :class:`ExtractResult` as JSON-friendly values."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(res).items() if k != "failure_rows"}
