"""``socmap predict``: wall-to-wall maps of calibrated SOC and its uncertainty, tile by tile on Dask.

The driver checks every input before it writes anything (region, year, imagery, bundle, output folder), creates
the zarr template, then sends one task per tile to the cluster. Each worker loads the bundle once (a
:class:`distributed.WorkerPlugin`), and each task computes its tile, writes the tile's COGs itself and returns its
arrays, which the driver writes into the zarr store (region write) before recording the tile as done. A re-run
with the same bundle, year and options skips the recorded tiles. At the end the VRT mosaics, quick-looks, STAC
Item and a run summary are (re)written from everything on disk.

Outputs under ``OUT/REGION/YEAR/`` (names in :mod:`socmap.io`)::

    cog/<layer>/<layer>_<tile>.tif   one COG per layer and tile
    <layer>.vrt                      mosaic of a layer's tiles over the whole grid
    soc.zarr                         every layer, whole grid, zarr v3, CF grid_mapping
    soc_mean.png, total_sd.png       quick-looks with colour bar and unit
    item.json                        STAC Item describing every asset
    predict_summary.json             run summary (tiles, cells, seconds, cells per second, statistics)
    tiles_done/<tile>.json           finished tiles (resume)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from socmap.config import GridConfig, PipelineConfig
from socmap.errors import ConfigError, SocmapError
from socmap.io import MAP_DONE_DIR, MAP_ITEM, MAP_SUMMARY, MAP_ZARR, atomic_path
from socmap.mapping.tile_job import TileResult, load_context, predict_tile
from socmap.mapping.tiles import Tile, grid_tiles, select_tiles
from socmap.mapping.writers import LAYERS, quicklook_png, stac_item, write_vrt, zarr_template, zarr_write_tile

__all__ = ["PredictResult", "check_year", "predict_map"]

QUICKLOOK_LAYERS = ("soc_mean", "total_sd")


@dataclass
class PredictResult:
    """What a mapping run did."""

    root: Path
    """``OUT/REGION/YEAR``."""
    tiles_done: int
    tiles_skipped: int
    """Already recorded as done by an earlier run with the same bundle and options."""
    tiles_failed: int
    cells: int
    cells_mapped: int
    seconds: float
    """Wall time of the whole run (checks, bundle load, tiles, mosaics), s."""
    map_seconds: float = 0.0
    """Wall time of the tile loop alone (cluster start-up and per-worker bundle loads included), s."""
    failures: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def cells_per_s(self) -> float:
        return self.cells / self.seconds if self.seconds > 0 else float("nan")

    def summary_line(self) -> str:
        return (f"{self.tiles_done} tiles done, {self.tiles_skipped} skipped (done before), {self.tiles_failed} "
                f"failed; {self.cells} cells ({self.cells_mapped} mapped) in {self.seconds:.1f} s, "
                f"{self.cells_per_s:.0f} cells/s -> {self.root}")


# ------------------------------------------------------------------------------------------ validation
def check_year(cfg: PipelineConfig, year: int) -> None:
    """An imagery pipeline can map only the years its imagery covers (``imagery.years``)."""
    if "image" not in cfg.model.streams:
        return
    if not cfg.imagery.enabled or cfg.stac is None:
        raise ConfigError(f"pipeline {cfg.name!r} uses the image stream but has no imagery (imagery.enabled is "
                          "false or stac is null); drop 'image' from model.streams")
    if year not in cfg.imagery.years:
        raise ConfigError(f"no imagery for year {year} in pipeline {cfg.name!r} (imagery.years: "
                          f"{', '.join(map(str, cfg.imagery.years))}); pick one of those years")


def _check_mappable(cfg: PipelineConfig) -> None:
    if cfg.data.survey_covariates:
        raise ConfigError(f"pipeline {cfg.name!r} uses survey covariates ({', '.join(cfg.data.survey_covariates)}) "
                          "that exist only at the survey points, so it cannot be mapped wall to wall; train a "
                          "pipeline whose covariates are all rasters")
    names = {layer.name for layer in cfg.data.covariates}
    unknown = [m for m in cfg.output.mask_layers if m not in names]
    if unknown:
        raise ConfigError(f"output.mask_layers names {', '.join(unknown)}, which is not a data.covariates layer "
                          f"({', '.join(sorted(names)) or 'none'})")


def _check_writable(out: Path) -> None:
    """The output folder must be creatable and writable: a probe file is created (and removed) in the nearest
    existing folder on its path before anything else is written (file modes alone do not stop root)."""
    import tempfile

    p = out.expanduser().absolute()
    while not p.exists():
        p = p.parent
    if not p.is_dir():
        raise SocmapError(f"output folder {out}: {p} is a file, not a folder; pick another --out")
    try:
        with tempfile.TemporaryFile(dir=p, prefix=".socmap-probe-"):
            pass
    except OSError as exc:
        raise SocmapError(f"output folder {out} is not writable ({p}: {exc.strerror}); pick another --out"
                          ) from None


def _run_key(model: Path, bundle: Any, year: int, mode: str, cfg: PipelineConfig, grid: GridConfig) -> str:
    card = getattr(bundle, "card", {}) or {}
    blob = json.dumps({"model": str(Path(model).resolve()), "card": card, "year": year, "mode": mode,
                       "output": cfg.output.model_dump(mode="json"), "grid": grid.model_dump(mode="json"),
                       "covariates": [c.model_dump(mode="json") for c in cfg.data.covariates]},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- driver
def predict_map(cfg: PipelineConfig, year: int | None, model: Path, out: Path, *, scheduler: str | None = None,
                tiles: list[str] | None = None, mode: str | None = None, workers: int | None = None,
                progress: bool = True) -> PredictResult:
    """Map ``cfg``'s grid (or the ``tiles`` named) for ``year`` with the bundle at ``model`` into ``out``.

    Args:
        cfg: the pipeline the bundle was trained with (its covariates, grid and output options).
        year: map year (calendar); None = ``output.year``.
        model: bundle folder written by ``socmap train``.
        out: output folder; the maps go to ``out/<pipeline name>/<year>/``.
        scheduler: Dask scheduler address, ``"threads"``/``"synchronous"`` for no cluster (tiles run in this
            process), or None for a LocalCluster (``dask_cuda.LocalCUDACluster`` where a GPU is present).
        tiles: tile ids (``r000_c001``) to map; None = every tile.
        mode: image embedding mode ``fast`` | ``exact`` (imagery pipelines); None = ``output.embedding_mode``.
        workers: LocalCluster worker processes, one torch thread each (default one per CPU, at most 8).
        progress: show progress bars (overall, and per tile when tiles run in this process).

    Raises:
        SocmapError: bad input (unknown tile, year without imagery, an incompatible bundle, an unwritable output
            folder), before anything is written; or, after the run, if some tiles failed (the others are kept and
            a re-run retries only the failed ones).
    """
    from socmap.train import load_bundle

    t0 = time.perf_counter()
    year = int(cfg.output.year if year is None else year)
    mode = mode or cfg.output.embedding_mode
    if mode not in ("fast", "exact"):
        raise ConfigError(f"--mode must be fast or exact, got {mode!r}")
    _check_mappable(cfg)
    check_year(cfg, year)
    grid = cfg.load_grid()
    chosen = select_tiles(grid_tiles(grid), tiles)
    model = Path(model)
    bundle = load_bundle(model, cfg)
    _check_writable(Path(out))

    root = Path(out) / cfg.name / str(year)
    root.mkdir(parents=True, exist_ok=True)
    key = _run_key(model, bundle, year, mode, cfg, grid)
    done_dir = root / MAP_DONE_DIR
    store = root / MAP_ZARR
    variables: list[str] = list(cfg.output.variables)
    use_zarr = "zarr" in cfg.output.formats
    if use_zarr and not _zarr_matches(store, key):
        zarr_template(store, grid, variables, cfg.output.nodata,
                      {"socmap_run_key": key, "title": f"socmap SOC map {cfg.name} {year}", "year": year,
                       "region": cfg.name, "model": str(model.resolve()), "Conventions": "CF-1.8"},
                      members=len(bundle.members) if cfg.output.member_maps else 0)
        for f in done_dir.glob("*.json"):  # a new store: every tile must be written again
            f.unlink()
    todo, skipped = [], 0
    for t in chosen:
        if _done(done_dir / f"{t.id}.json", key):
            skipped += 1
        else:
            todo.append(t)
    tags = {"region": cfg.name, "year": str(year), "model": str(model.resolve()), "socmap_run_key": key}

    results: list[TileResult] = []
    failures: dict[str, str] = {}

    def finish(res: TileResult) -> None:
        if use_zarr:
            zarr_write_tile(store, chosen_by_id[res.tile_id], res.layers)
        with atomic_path(done_dir / f"{res.tile_id}.json") as tmp:
            stats = {k: v for k, v in asdict(res).items() if k != "layers"}
            tmp.write_text(json.dumps({"run_key": key, **stats}, default=str))
        res.layers = {}
        results.append(res)

    chosen_by_id = {t.id: t for t in chosen}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"map {cfg.name} {year}", unit="tile", disable=not progress or not todo,
               file=sys.stderr)
    t_map = time.perf_counter()
    if todo:
        from socmap.eo.cluster import dask_client

        # one torch thread per worker process, one worker per CPU (at most 8: each holds the bundle)
        n_workers = workers or max(1, min(8, os.cpu_count() or 1))
        with dask_client(scheduler, workers=n_workers, threads_per_worker=1) as client:
            if client is None:
                _run_local(cfg, bundle, todo, year, root, mode, tags, finish, failures, bar, progress)
            else:
                _run_cluster(client, cfg, model, todo, year, root, mode, tags, finish, failures, bar)
    bar.close()
    map_seconds = time.perf_counter() - t_map

    outputs = _finish_outputs(cfg, grid, root, year, model, key, variables)
    res = PredictResult(root=root, tiles_done=len(results), tiles_skipped=skipped, tiles_failed=len(failures),
                        cells=sum(r.n_cells for r in results), cells_mapped=sum(r.n_mapped for r in results),
                        seconds=time.perf_counter() - t0, map_seconds=map_seconds, failures=failures,
                        outputs=outputs)
    _write_summary(root, res, results, cfg, year, model, mode, key)
    if failures:
        first = next(iter(failures.items()))
        raise SocmapError(f"{len(failures)} of {len(chosen)} tiles failed (first: {first[0]}: {first[1]}); "
                          f"{res.tiles_done} done are kept; run the same command again to retry the failed tiles")
    return res


def _done(path: Path, key: str) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("run_key") == key)
    except (OSError, ValueError):
        return False


def _zarr_matches(store: Path, key: str) -> bool:
    if not (store / "zarr.json").is_file():
        return False
    try:
        attrs = json.loads((store / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False
    return bool(attrs.get("socmap_run_key") == key)


def _run_local(cfg: PipelineConfig, bundle: Any, todo: list[Tile], year: int, root: Path, mode: str,
               tags: dict[str, str], finish: Any, failures: dict[str, str], bar: Any, progress: bool) -> None:
    """Tiles one after another in this process (``--scheduler threads``), with a per-tile stage bar."""
    from tqdm.auto import tqdm

    ctx = load_context(cfg, bundle)
    stages = 3 + 2 * ("image" in cfg.model.streams) + ("cog" in cfg.output.formats)
    for t in todo:
        with tqdm(total=stages, desc=f"  tile {t.id}", leave=False, disable=not progress, file=sys.stderr) as tb:
            try:
                def step(s: str, tb: Any = tb) -> None:
                    tb.set_postfix_str(s)
                    tb.update()

                res = predict_tile(ctx, t, year, root, mode=mode, tags=tags, progress=step)
            except SocmapError as exc:
                _tile_ended(t, None, exc, finish, failures, bar)
                continue
        _tile_ended(t, res, None, finish, failures, bar)


def _tile_ended(t: Tile, res: TileResult | None, exc: SocmapError | None, finish: Any, failures: dict[str, str],
                bar: Any) -> None:
    """Record one tile's outcome (local or cluster run): hand a result to ``finish`` or note the failure."""
    if res is None:
        failures[t.id] = " ".join(str(exc).split())
    else:
        finish(res)
        bar.set_postfix_str(f"{t.id}: {res.n_mapped} cells, {res.seconds:.1f} s")
    bar.update()


def _run_cluster(client: Any, cfg: PipelineConfig, model: Path, todo: list[Tile], year: int, root: Path,
                 mode: str, tags: dict[str, str], finish: Any, failures: dict[str, str], bar: Any) -> None:
    """One task per tile on the cluster; results are written to zarr as they arrive."""
    from distributed import as_completed

    from socmap.mapping.cluster import PLUGIN_NAME, ContextPlugin, worker_tile

    nthreads = client.nthreads()
    threads = max(1, min(int(v) for v in nthreads.values())) if nthreads else 1
    client.register_plugin(ContextPlugin(cfg, model, threads), name=PLUGIN_NAME)
    futs = {client.submit(worker_tile, t, year, str(root), mode, tags, key=f"socmap-tile-{t.id}-{year}",
                          pure=False): t for t in todo}
    for fut in as_completed(futs):
        t = futs[fut]
        try:
            res = fut.result()
        except SocmapError as exc:
            _tile_ended(t, None, exc, finish, failures, bar)
            continue
        _tile_ended(t, res, None, finish, failures, bar)
    client.unregister_worker_plugin(PLUGIN_NAME)


# ------------------------------------------------------------------------------------- mosaics and co
def _done_window(grid: GridConfig, root: Path) -> tuple[int, int, int, int] | None:
    """(row0, row1, col0, col1) of the bounding box of the tiles recorded as done, in grid cells."""
    ids = {p.stem for p in (root / MAP_DONE_DIR).glob("*.json")}
    ts = [t for t in grid_tiles(grid) if t.id in ids]
    if not ts:
        return None
    return (min(t.row0 for t in ts), max(t.row0 + t.nrows for t in ts), min(t.col0 for t in ts),
            max(t.col0 + t.ncols for t in ts))


def _read_decimated(cfg: PipelineConfig, root: Path, layer: str, win: tuple[int, int, int, int]) -> np.ndarray:
    """The layer over ``win``, read decimated to at most ``output.quicklook_px`` (NaN = no data)."""
    r0, r1, c0, c1 = win
    step = max(1, int(np.ceil(max(r1 - r0, c1 - c0) / cfg.output.quicklook_px)))
    out_shape = (max(1, (r1 - r0) // step), max(1, (c1 - c0) // step))
    vrt = root / f"{layer}.vrt"
    if vrt.is_file():
        import rasterio
        from rasterio.windows import Window

        with rasterio.open(vrt) as ds:
            a = ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0), out_shape=out_shape, masked=True,
                        resampling=rasterio.enums.Resampling.nearest)
        return np.asarray(a.astype(float).filled(np.nan))
    import xarray as xr

    with xr.open_zarr(root / MAP_ZARR, consolidated=False) as ds:
        return np.asarray(ds[layer].isel(y=slice(r0, r1, step), x=slice(c0, c1, step)).values, float)


def _finish_outputs(cfg: PipelineConfig, grid: GridConfig, root: Path, year: int, model: Path, key: str,
                    variables: list[str]) -> dict[str, str]:
    """VRTs, quick-looks and the STAC Item from every tile on disk."""
    from pyproj import CRS
    from rasterio.warp import transform_bounds

    outputs: dict[str, str] = {}
    assets: dict[str, dict[str, Any]] = {}
    if "cog" in cfg.output.formats:
        for name in variables:
            vrt = write_vrt(root, grid, name, cfg.output.nodata)
            if vrt is None:
                continue
            outputs[f"{name}_vrt"] = str(vrt)
            spec = LAYERS[name]
            assets[name] = {"href": f"./{vrt.name}", "media_type": "application/xml", "roles": ["data"],
                            "title": f"{name} mosaic (VRT over the tile COGs)",
                            "description": f"{spec.title}; unit {spec.unit}; scale 1, offset 0"}
            for p in sorted((root / "cog" / name).glob("*.tif")):
                rel = p.relative_to(root).as_posix()
                assets[f"{name}_{p.stem.removeprefix(name + '_')}"] = {
                    "href": f"./{rel}", "media_type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "roles": ["data"], "title": f"{name} tile {p.stem.removeprefix(name + '_')}",
                    "description": f"{spec.title}; unit {spec.unit}"}
    if "zarr" in cfg.output.formats:
        outputs["zarr"] = str(root / MAP_ZARR)
        assets["zarr"] = {"href": f"./{MAP_ZARR}", "media_type": "application/vnd.zarr; version=3",
                          "roles": ["data"], "title": "every layer, whole grid (zarr v3, CF grid_mapping)",
                          "description": "; ".join(f"{n}: {LAYERS[n].unit}" for n in variables)}
    win = _done_window(grid, root)
    crs_label = CRS.from_user_input(grid.crs).to_string()
    if win is not None:
        r0, r1, c0, c1 = win
        xmin, _, _, ymax = grid.bounds
        res = grid.resolution
        extent = (xmin + c0 * res, xmin + c1 * res, ymax - r1 * res, ymax - r0 * res)
        for name in QUICKLOOK_LAYERS:
            if name not in variables:
                continue
            vals = _read_decimated(cfg, root, name, win)
            png = quicklook_png(root / f"{name}.png", vals, extent, name, crs_label=crs_label,
                                title=f"{cfg.name} {year}: {LAYERS[name].short}")
            outputs[f"{name}_png"] = str(png)
            assets[f"{name}_quicklook"] = {"href": f"./{png.name}", "media_type": "image/png",
                                           "roles": ["overview"], "title": f"quick-look of {name}",
                                           "description": f"{LAYERS[name].title} ({LAYERS[name].unit})"}
        bbox = transform_bounds(grid.crs, "EPSG:4326", extent[0], extent[2], extent[1], extent[3])
    else:
        bbox = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds)
    assets["summary"] = {"href": f"./{MAP_SUMMARY}", "media_type": "application/json", "roles": ["metadata"],
                         "title": "run summary", "description": "tiles, cells, seconds, cells per second"}
    item = stac_item(root / MAP_ITEM, item_id=f"socmap-{cfg.name}-{year}", bbox_lonlat=tuple(bbox), year=year,
                     properties={"title": f"Topsoil SOC (0-30 cm) {cfg.name} {year}",
                                 "description": cfg.description or f"socmap map of {cfg.name}",
                                 "socmap:grid_crs": crs_label, "socmap:resolution": grid.resolution,
                                 "socmap:model": str(model.resolve()), "socmap:run_key": key},
                     assets=assets)
    outputs["stac_item"] = str(item)
    return outputs


def _write_summary(root: Path, res: PredictResult, results: list[TileResult], cfg: PipelineConfig, year: int,
                   model: Path, mode: str, key: str) -> None:
    timings: dict[str, float] = {}
    for r in results:
        for k, v in r.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    doc = {"region": cfg.name, "year": year, "model": str(model.resolve()), "mode": mode, "run_key": key,
           "tiles_done": res.tiles_done, "tiles_skipped": res.tiles_skipped, "tiles_failed": res.tiles_failed,
           "failures": res.failures, "cells": res.cells, "cells_mapped": res.cells_mapped,
           "cells_outside_aoa": sum(r.n_outside for r in results), "seconds": round(res.seconds, 3),
           "map_seconds": round(res.map_seconds, 3),
           "cells_per_s": round(res.cells_per_s, 1) if res.cells else None,
           "task_seconds_by_stage": {k: round(v, 3) for k, v in timings.items()}, "outputs": res.outputs}
    with atomic_path(root / MAP_SUMMARY) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
