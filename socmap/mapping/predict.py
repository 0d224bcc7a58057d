"""``socmap predict``: wall-to-wall maps of calibrated SOC and its uncertainty, tile by tile on Dask.

The driver checks every input before it writes anything (region, year, imagery, bundle, output folder), creates
the zarr template, then sends one task per tile to the cluster. Each worker loads the bundle once (a
:class:`distributed.WorkerPlugin`), and each task computes its tile, writes the tile's COGs itself and returns its
arrays, which the driver writes into the zarr store (region write) before recording the tile as done. A re-run
with the same bundle, year and options skips the recorded tiles. At the end the VRT mosaics, quick-looks, STAC
Item and a run summary are (re)written from everything on disk.

Outputs under ``OUT/REGION/YEAR/VERSION/`` (:func:`socmap.mapping.layout.map_root`; names in :mod:`socmap.io`).
``VERSION`` is ``--version`` or, by default, derived from the bundle's checksum and the options, so the same
command always lands in (and resumes) the same folder, and another year or model never overwrites it::

    cog/<layer>/<layer>_<tile>.tif   one COG per layer and tile
    <layer>.vrt                      mosaic of a layer's tiles over the whole grid
    soc.zarr                         every layer, whole grid, zarr v3, CF grid_mapping
    soc_mean.png, total_sd.png, di.png  quick-looks with colour bar and unit (di: where the map extrapolates)
    item.json                        STAC Item describing every asset (provenance under ``socmap:provenance``)
    provenance.json                  code version, bundle checksum, pipeline, STAC items, times, tiles
    predict_summary.json             run summary (tiles, cells, seconds, cells per second, statistics)
    tiles_done/<tile>.json           finished tiles with the sha256 of every file they wrote (resume)
    tiles_failed/<tile>.json         tiles that failed, with the reason (a re-run retries them)
    logs/predict-<utc>.log           one log per run (start, failed tiles, the traceback of a bug, end)
    predict.lock                     while a run writes the folder (:mod:`socmap.mapping.lock`)

and ``OUT/REGION/YEAR/latest.json`` names the version of the last run that left every tile of the grid done with
no failed tile (a ``--tiles`` run over part of the grid does not move it).

One run at a time writes a version folder (a second ends with exit 2, naming the holder). Inside a tile, only a
source failure makes a failed tile; any other exception stops the run (:mod:`socmap.mapping.runlog`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from socmap.config import GridConfig, PipelineConfig, redact
from socmap.errors import ConfigError, SocmapError, short_error
from socmap.io import (
    DISK_ERRNOS,
    MAP_DONE_DIR,
    MAP_ITEM,
    MAP_LATEST,
    MAP_PROVENANCE,
    MAP_SUMMARY,
    MAP_ZARR,
    atomic_path,
    is_local_path,
)
from socmap.mapping.catalog import write_collection
from socmap.mapping.layout import check_path_name, map_root
from socmap.mapping.lock import version_lock
from socmap.mapping.provenance import provenance
from socmap.mapping.records import bundle_sha256, done_ok, not_done, write_done, write_failed
from socmap.mapping.runlog import RunLog, stop_error
from socmap.mapping.tile_job import MapContext, TileResult, load_context, predict_tile
from socmap.mapping.tiles import Tile, grid_tiles, select_tiles
from socmap.mapping.writers import (
    LAYERS,
    map_layers,
    quicklook_png,
    stac_item,
    write_vrt,
    zarr_chunk_files,
    zarr_consolidate,
    zarr_template,
    zarr_write_tile,
)

if TYPE_CHECKING:
    from socmap.inference import Bundle

__all__ = ["PredictResult", "TilesFailedError", "check_year", "default_version", "run"]

QUICKLOOK_LAYERS = ("soc_mean", "total_sd", "di")


class TilesFailedError(SocmapError):
    """Some tiles failed (each recorded in ``tiles_failed/``); the others are written. The CLI exits 3."""

    exit_code = 3


@dataclass
class PredictResult:
    """What a mapping run did."""

    root: Path
    """``OUT/REGION/YEAR/VERSION``."""
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
    plan_seconds: float = 0.0
    """Checks and the bundle's load before any tile, s."""
    startup_seconds: float = 0.0
    """Starting the Dask cluster (or the local runner), s: part of :attr:`map_seconds`."""
    finish_seconds: float = 0.0
    """Mosaics (VRT), quick-looks, STAC Item and Collection, provenance after the last tile, s."""
    failures: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    tiles_remaining: int = 0
    """Tiles of the grid still not done after this run (a ``--tiles`` run over part of it); ``latest.json`` moves
    only at 0."""

    @property
    def cells_per_s(self) -> float:
        """Mapped cells (land, inside the mask) per second of the whole run: masked cells cost next to nothing,
        so counting them would flatter the speed."""
        return self.cells_mapped / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        """One line for the CLI, the demo and the run's log: tiles, cells, speed, where the time went and where the
        map went."""
        tiles = self.map_seconds - self.startup_seconds
        return (f"{self.tiles_done} tiles done, {self.tiles_skipped} skipped (done before), {self.tiles_failed} "
                f"failed; {self.cells} cells ({self.cells_mapped} mapped) in {self.seconds:.1f} s, "
                f"{self.cells_per_s:.0f} mapped cells/s (checks and bundle {self.plan_seconds:.1f} s, cluster "
                f"start {self.startup_seconds:.1f} s, tiles {tiles:.1f} s, mosaics and metadata "
                f"{self.finish_seconds:.1f} s) -> {self.root}"
                + (f"; {self.tiles_remaining} tiles of the grid remain, so {MAP_LATEST} was not moved"
                   if self.tiles_remaining else ""))


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


def _run_key(bundle_sha: str, year: int, mode: str, cfg: PipelineConfig, grid: GridConfig) -> str:
    """What makes two runs' tiles interchangeable: the bundle's bytes, the year, the embedding mode, the output
    options and the layers they make, the grid and the covariate layers (not the folders, so a moved bundle still
    resumes)."""
    blob = json.dumps({"bundle_sha256": bundle_sha, "year": year, "mode": mode,
                       "output": cfg.output.model_dump(mode="json"), "layers": map_layers(cfg.output.variables),
                       "grid": grid.model_dump(mode="json"),
                       "covariates": [c.model_dump(mode="json", exclude={"path"}) for c in cfg.data.covariates]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_version(bundle_sha: str, key: str) -> str:
    """The version folder name when ``--version`` is not given: ``m<bundle sha256[:8]>-<run key[:8]>``, the same
    for the same bundle and options, so re-running a command resumes it and a new model gets a new folder."""
    return f"m{bundle_sha[:8]}-{key[:8]}"


# ----------------------------------------------------------------------------------------------- driver
def run(cfg: PipelineConfig, model: Path, out: Path, *, year: int | None = None, scheduler: str | None = None,
        tiles: list[str] | None = None, mode: str | None = None, workers: int | None = None,
        progress: bool = True, version: str | None = None) -> PredictResult:
    """Map ``cfg``'s grid (or the ``tiles`` named) for ``year`` with the bundle at ``model`` into ``out``.

    Args:
        cfg: the pipeline the bundle was trained with (its covariates, grid and output options).
        model: bundle folder written by ``socmap train``.
        out: output folder; the maps go to ``out/<pipeline name>/<year>/<version>/``.
        year: map year (calendar); None = ``output.year``.
        scheduler: Dask scheduler address; ``"threads"`` for no cluster (tiles run in this process on ``workers``
            threads) or ``"synchronous"`` (one tile after another); None: ``threads`` for a job of at most
            :data:`LOCAL_RUN_MAX_CELLS` cells without a GPU, else a LocalCluster (``dask_cuda.LocalCUDACluster``
            where a GPU is present).
        tiles: tile ids (``r000_c001``) to map; None = every tile.
        mode: image embedding mode ``fast`` | ``exact`` (imagery pipelines); None = ``output.embedding_mode``.
        workers: LocalCluster worker processes or tile threads in this process, one torch thread each (default
            one per CPU, at most 8).
        progress: show progress bars (overall, and per tile when tiles run in this process).
        version: version folder name; None = :func:`default_version` (bundle checksum + options).

    Raises:
        SocmapError: bad input (unknown tile, year without imagery, an incompatible bundle, an unwritable output
            folder), before anything is written.
        TilesFailedError: after the run, if some tiles failed (the others are kept, the failed ones recorded in
            ``tiles_failed/``, and a re-run retries only those).
        LockHeldError: another run is writing the same version folder (nothing is written).
        BugInTileError: an exception inside a tile that is not a source failure (the traceback is in the log).
    """
    with contextlib.ExitStack() as stack:
        return _predict_map(stack, cfg, year, model, out, scheduler=scheduler, tiles=tiles, mode=mode,
                            workers=workers, progress=progress, version=version)


@dataclass
class _Run:
    """One mapping run, settled before anything is written: what to map, with which bundle, into which folder."""

    cfg: PipelineConfig
    year: int
    mode: str
    """Image embedding mode, ``fast`` | ``exact``."""
    grid: GridConfig
    chosen: list[Tile]
    """The tiles asked for (done ones included)."""
    model: Path
    bundle: Bundle
    bundle_sha: str
    key: str
    """Run key (:func:`_run_key`): tiles of runs with the same key are interchangeable."""
    version: str
    root: Path
    """``OUT/REGION/YEAR/VERSION``."""
    started: str
    """UTC start time, ISO 8601."""

    @property
    def variables(self) -> list[str]:
        """The layers written: ``output.variables`` and their companions (:func:`map_layers`)."""
        return map_layers(self.cfg.output.variables)

    @property
    def store(self) -> Path:
        return self.root / MAP_ZARR

    @property
    def use_zarr(self) -> bool:
        return "zarr" in self.cfg.output.formats

    @property
    def tags(self) -> dict[str, str]:
        """What every tile's COGs carry as GDAL metadata."""
        return {"region": self.cfg.name, "year": str(self.year), "version": self.version,
                "bundle_sha256": self.bundle_sha, "socmap_run_key": self.key}


def _predict_map(stack: contextlib.ExitStack[Any], cfg: PipelineConfig, year: int | None, model: Path, out: Path,
                 *, scheduler: str | None, tiles: list[str] | None, mode: str | None, workers: int | None,
                 progress: bool, version: str | None) -> PredictResult:
    """:func:`run`'s body; ``stack`` holds the version folder's lock until it returns or raises."""
    t0 = time.perf_counter()
    run = _plan_run(cfg, year, model, out, tiles=tiles, mode=mode, version=version)
    stack.enter_context(version_lock(run.root))  # a second run on this folder ends here, having written nothing
    log = RunLog(run.root, run.started)
    log.write(f"start: {cfg.name} {run.year} version {run.version} run key {run.key}, {len(run.chosen)} tiles chosen")
    _prepare_folder(run)
    todo, skipped = _split_done(run)
    rec = _TileRecorder(run, log)
    plan_seconds = time.perf_counter() - t0
    map_seconds, startup_seconds = _map_tiles(run, todo, rec, scheduler=scheduler, workers=workers,
                                              progress=progress)
    res, prov = _conclude(run, rec, skipped, t0=t0, times={"plan_seconds": plan_seconds, "map_seconds": map_seconds,
                                                          "startup_seconds": startup_seconds})
    log.write(f"end: {res.summary()}")
    if rec.failures:
        first = next(iter(sorted(rec.failures.items())))
        raise TilesFailedError(f"{len(rec.failures)} of {len(run.chosen)} tiles failed (first: {first[0]}: "
                               f"{first[1]}); {res.tiles_done + res.tiles_skipped} done are kept, reasons in "
                               f"{run.root}/tiles_failed/; run the same command again to retry only the failed tiles")
    if not res.tiles_remaining:  # part of the grid only (--tiles): downstream users must not be pointed at it
        _publish_latest(run, prov)
    return res


def _plan_run(cfg: PipelineConfig, year: int | None, model: Path, out: Path, *, tiles: list[str] | None,
              mode: str | None, version: str | None) -> _Run:
    """Check every input (options, region, year, bundle, output folder) and settle the run; writes nothing."""
    from socmap.inference import load_bundle

    started = _utc_now()
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
    bundle_sha = bundle_sha256(model)
    key = _run_key(bundle_sha, year, mode, cfg, grid)
    version = check_path_name("version", version or default_version(bundle_sha, key))
    root = map_root(out, cfg.name, year, version)
    _check_writable(Path(out))
    other = _existing_key(root)
    if other is not None and other != key:
        raise ConfigError(f"{root} holds maps of another bundle or other options (run key {other}, this run "
                          f"{key}); pick another --version, or leave --version out to get a folder of its own")
    return _Run(cfg=cfg, year=year, mode=mode, grid=grid, chosen=chosen, model=model, bundle=bundle,
                bundle_sha=bundle_sha, key=key, version=version, root=root, started=started)


def _prepare_folder(run: _Run) -> None:
    """Create the version folder and, where this run's key is not the zarr store's, a new store template (every
    tile must then be written again, so the done records go)."""
    cfg = run.cfg
    run.root.mkdir(parents=True, exist_ok=True)
    if run.use_zarr and _zarr_key(run.store) != run.key:
        zarr_template(run.store, run.grid, run.variables, cfg.output.nodata,
                      {"socmap_run_key": run.key, "title": f"socmap SOC map {cfg.name} {run.year}", "year": run.year,
                       "region": cfg.name, "model": str(run.model.resolve()), "Conventions": "CF-1.8"},
                      members=len(run.bundle.members) if cfg.output.member_maps else 0)
        for f in (run.root / MAP_DONE_DIR).glob("*.json"):
            f.unlink()


def _split_done(run: _Run) -> tuple[list[Tile], list[str]]:
    """The chosen tiles still to map, and the ids of those an earlier run with the same key left done."""
    todo, skipped = [], []
    for t in run.chosen:
        if done_ok(run.root, t.id, run.key):
            skipped.append(t.id)
        else:
            todo.append(t)
    return todo, skipped


@dataclass
class _TileRecorder:
    """Records each tile as it ends: a result's arrays go into the zarr store and its files into ``tiles_done/``;
    a source failure into ``tiles_failed/`` and the log (any other exception stops the run)."""

    run: _Run
    log: RunLog
    results: list[TileResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    """Tile id -> reason (redacted, one line)."""
    chosen_by_id: dict[str, Tile] = field(init=False)

    def __post_init__(self) -> None:
        self.chosen_by_id = {t.id: t for t in self.run.chosen}

    def finish(self, res: TileResult) -> None:
        run = self.run
        tile = self.chosen_by_id[res.tile_id]
        files = [Path(p) for p in res.cog_paths]
        if run.use_zarr:
            zarr_write_tile(run.store, tile, res.layers)
            files += zarr_chunk_files(run.store, run.grid, tile)
        stats = {k: v for k, v in asdict(res).items() if k not in ("layers", "cog_paths")}
        write_done(run.root, res.tile_id, run.key, files, stats)
        res.layers = {}
        self.results.append(res)

    def fail(self, t: Tile, exc: BaseException) -> None:
        if (stop := stop_error(t.id, exc, self.log)) is not None:  # not a source failure: a re-run cannot cure it
            raise stop from exc
        reason = str(exc) if isinstance(exc, SocmapError) else short_error(exc)
        self.failures[t.id] = redact(" ".join(reason.split()))
        write_failed(self.run.root, t.id, self.run.key, self.failures[t.id])
        self.log.write(f"tile {t.id} failed: {self.failures[t.id]}")


def _map_tiles(run: _Run, todo: list[Tile], rec: _TileRecorder, *, scheduler: str | None, workers: int | None,
               progress: bool) -> tuple[float, float]:
    """Map ``todo`` in this process or on a Dask cluster, recording each tile as it ends; the wall time and the
    part of it spent starting the cluster, s."""
    from tqdm.auto import tqdm

    cfg = run.cfg
    bar = tqdm(total=len(todo), desc=f"map {cfg.name} {run.year}", unit="tile", disable=not progress or not todo,
               file=sys.stderr)
    t_map = time.perf_counter()
    startup = 0.0
    if todo:
        from socmap.eo.dask_client import dask_client

        # one torch thread per worker process or tile thread, one per CPU (at most 8: each process holds the bundle)
        n_workers = workers or max(1, min(8, os.cpu_count() or 1))
        scheduler = scheduler or _default_scheduler(cfg, todo)
        with dask_client(scheduler, workers=n_workers, threads_per_worker=1) as client:
            startup = time.perf_counter() - t_map
            if client is None:
                _run_local(cfg, run.bundle, todo, run.year, run.root, run.mode, run.tags, rec.finish, rec.fail, bar,
                           progress, threads=1 if scheduler in ("synchronous", "sync") else n_workers)
            else:
                _run_cluster(client, cfg, run.model, todo, run.year, run.root, run.mode, run.tags, rec.finish,
                             rec.fail, bar)
    bar.close()
    return time.perf_counter() - t_map, startup


LOCAL_RUN_MAX_CELLS = 2_000_000
"""Largest job (cells of the tiles to map) run in this process when no scheduler is given and no GPU is present. A
LocalCluster spends seconds starting its worker processes, each of which imports torch and loads the bundle: the
whole 180,090-cell africa-coarse grid took 16.1 s on a 2-worker LocalCluster and 8.4-9.1 s on two tile threads in
this process (2 cores). Larger jobs get worker processes, whose tiles do not share one interpreter lock (on threads
the model step ran ~40 % slower per cell than on one thread alone)."""


def _default_scheduler(cfg: PipelineConfig, todo: list[Tile]) -> str | None:
    """``threads`` for a job of at most :data:`LOCAL_RUN_MAX_CELLS` cells on a machine without a GPU whose tiles
    read only local covariate files (no image stream, no URL: those tiles could not share a process's threads,
    :attr:`~socmap.mapping.tile_job.MapContext.reads_only_memory`); else None (a LocalCluster, or a
    LocalCUDACluster where a GPU is present)."""
    from socmap.eo.dask_client import has_cuda

    small = sum(t.n_cells for t in todo) <= LOCAL_RUN_MAX_CELLS
    local = "image" not in cfg.model.streams and all(is_local_path(c.path) for c in cfg.data.covariates)
    return "threads" if small and local and not has_cuda() else None


def _conclude(run: _Run, rec: _TileRecorder, skipped: list[str], *, t0: float,
              times: dict[str, float]) -> tuple[PredictResult, dict[str, Any]]:
    """Mosaics, quick-looks, STAC Item, provenance and run summary from everything on disk; the run's result (its
    wall time counted from ``t0``, :func:`time.perf_counter`; ``times``: the earlier steps' seconds by
    :class:`PredictResult` field) and its provenance."""
    _remove_stale_temps(run.root)
    results, failures = rec.results, rec.failures
    prov = provenance(run.cfg, year=run.year, mode=run.mode, version=run.version, model=run.model, bundle=run.bundle,
                      bundle_sha=run.bundle_sha, key=run.key, started=run.started, finished=_utc_now(),
                      root=run.root, chosen=[t.id for t in run.chosen], done=[r.tile_id for r in results],
                      skipped=skipped, failed=failures,
                      stac_items={r.tile_id: r.stac_items for r in results if r.stac_items})
    t_finish = time.perf_counter()
    outputs = _finish_outputs(run.cfg, run.grid, run.root, run.year, run.key, run.variables, prov)
    res = PredictResult(root=run.root, tiles_done=len(results), tiles_skipped=len(skipped),
                        tiles_failed=len(failures), cells=sum(r.n_cells for r in results),
                        cells_mapped=sum(r.n_mapped for r in results), seconds=time.perf_counter() - t0,
                        finish_seconds=time.perf_counter() - t_finish, **times,
                        failures=failures, outputs=outputs,
                        tiles_remaining=len(not_done(run.root, [t.id for t in grid_tiles(run.grid)], run.key)))
    _write_summary(run.root, res, results, run.cfg, run.year, run.model, run.mode, run.key)
    return res, prov


def _publish_latest(run: _Run, prov: dict[str, Any]) -> None:
    """Point ``OUT/REGION/YEAR/latest.json`` at this version and rewrite the region's STAC Collection."""
    with atomic_path(run.root.parent / MAP_LATEST) as tmp:
        tmp.write_text(json.dumps({"version": run.version, "run_key": run.key, "finished": prov["finished"]}) + "\n")
    write_collection(run.root.parent.parent)  # OUT/REGION/collection.json: every finished year and version


def _remove_stale_temps(root: Path) -> None:
    """Delete the temporary siblings (``.NAME.tmp-XXXX``, :func:`socmap.io.temp_sibling`) that a killed run or a
    lost worker left half-written under ``root``. Called when every task of this run has ended, so none is being
    written; never seen by readers (hidden names, never renamed into place)."""
    import shutil

    for p in sorted(root.rglob(".*.tmp-*"), reverse=True):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _utc_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _existing_key(root: Path) -> str | None:
    """The run key of the maps already in a version folder (its zarr store's, else a tile record's), or None."""
    if not root.is_dir():
        return None
    if (key := _zarr_key(root / MAP_ZARR)) is not None:
        return key
    for rec in sorted((root / MAP_DONE_DIR).glob("*.json")):
        try:
            return str(json.loads(rec.read_text())["run_key"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _zarr_key(store: Path) -> str | None:
    """The ``socmap_run_key`` attribute of the zarr store, or None (no store, unreadable, or no key)."""
    try:
        key = json.loads((store / "zarr.json").read_text()).get("attributes", {}).get("socmap_run_key")
    except (OSError, ValueError, AttributeError):
        return None
    return str(key) if key else None


def _run_local(cfg: PipelineConfig, bundle: Bundle, todo: list[Tile], year: int, root: Path, mode: str,
               tags: dict[str, str], finish: Any, fail: Any, bar: Any, progress: bool, threads: int = 1) -> None:
    """Tiles in this process (``--scheduler threads``/``synchronous``) on ``threads`` threads sharing one loaded
    context (torch and numpy release the GIL in the heavy steps), where the tiles read nothing but memory
    (:attr:`MapContext.reads_only_memory`), else one after another; results are recorded on this thread, as they
    end. One thread shows a per-tile stage bar."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from threadpoolctl import threadpool_limits

    ctx = load_context(cfg, bundle)
    if threads <= 1 or not ctx.reads_only_memory:
        for t in todo:
            res, exc = _local_tile(ctx, t, year, root, mode, tags, progress)
            _tile_ended(t, res, exc, finish, fail, bar)
        return
    # one BLAS thread per tile thread, as a Dask worker process has (its nanny sets OPENBLAS_NUM_THREADS=1); the
    # model step sets one torch thread itself (tile_job.predict_cells)
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=threads, thread_name_prefix="socmap-tile") as pool:
        futs = {pool.submit(_local_tile, ctx, t, year, root, mode, tags, False): t for t in todo}
        try:
            for fut in as_completed(futs):
                res, exc = fut.result()
                _tile_ended(futs[fut], res, exc, finish, fail, bar)
        except BaseException:  # a bug or a full disk stops the run: no tile starts after it
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _local_tile(ctx: MapContext, t: Tile, year: int, root: Path, mode: str, tags: dict[str, str],
                progress: bool) -> tuple[TileResult | None, BaseException | None]:
    """One tile in this process: its result, or the exception that stopped it (one tile fails, the others go on;
    a full disk stops the run)."""
    from tqdm.auto import tqdm

    stages = 3 + 2 * ("image" in ctx.cfg.model.streams) + ("cog" in ctx.cfg.output.formats)
    with tqdm(total=stages, desc=f"  tile {t.id}", leave=False, disable=not progress, file=sys.stderr) as tb:
        def step(s: str) -> None:
            tb.set_postfix_str(s)
            tb.update()

        try:
            return predict_tile(ctx, t, year, root, mode=mode, tags=tags, progress=step), None
        except Exception as exc:
            _reraise_disk_error(exc)
            return None, exc


def _reraise_disk_error(exc: BaseException) -> None:
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        raise exc


def _tile_ended(t: Tile, res: TileResult | None, exc: BaseException | None, finish: Any, fail: Any,
                bar: Any) -> None:
    """Record one tile's outcome (local or cluster run): hand a result to ``finish`` or the exception to ``fail``
    (which records a source failure and raises on anything else)."""
    if res is None:
        assert exc is not None
        fail(t, exc)
    else:
        finish(res)
        bar.set_postfix_str(f"{t.id}: {res.n_mapped} cells, {res.seconds:.1f} s")
    bar.update()


def _run_cluster(client: Any, cfg: PipelineConfig, model: Path, todo: list[Tile], year: int, root: Path,
                 mode: str, tags: dict[str, str], finish: Any, fail: Any, bar: Any) -> None:
    """One task per tile on the cluster; results are written to zarr as they arrive."""
    from distributed import as_completed

    from socmap.mapping.worker import PLUGIN_NAME, ContextPlugin, worker_tile

    nthreads = client.nthreads()
    threads = max(1, min(int(v) for v in nthreads.values())) if nthreads else 1
    client.register_plugin(ContextPlugin(cfg, model, threads), name=PLUGIN_NAME)
    futs = {client.submit(worker_tile, t, year, str(root), mode, tags, key=f"socmap-tile-{t.id}-{year}",
                          pure=False): t for t in todo}
    for fut in as_completed(futs):
        t = futs[fut]
        try:
            res = fut.result()
        except Exception as exc:  # incl. KilledWorker: recorded as failed
            _reraise_disk_error(exc)
            _tile_ended(t, None, exc, finish, fail, bar)
            continue
        _tile_ended(t, res, None, finish, fail, bar)
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


def _finish_outputs(cfg: PipelineConfig, grid: GridConfig, root: Path, year: int, key: str,
                    variables: list[str], prov: dict[str, Any]) -> dict[str, str]:
    """VRTs, quick-looks and the STAC Item from every tile on disk."""
    from pyproj import CRS
    from rasterio.warp import transform_bounds

    outputs: dict[str, str] = {}
    assets: dict[str, dict[str, Any]] = {}
    if "cog" in cfg.output.formats:
        _mosaic_outputs(cfg, grid, root, variables, outputs, assets)
    if "zarr" in cfg.output.formats:
        _zarr_outputs(root, variables, outputs, assets)
    win = _done_window(grid, root)
    crs_label = CRS.from_user_input(grid.crs).to_string()
    if win is not None:
        extent = _window_extent(grid, win)
        _quicklook_outputs(cfg, root, year, variables, win, extent, crs_label, outputs, assets)
        bbox = transform_bounds(grid.crs, "EPSG:4326", extent[0], extent[2], extent[1], extent[3])
    else:
        bbox = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds)
    _provenance_outputs(root, prov, outputs, assets)
    item = stac_item(root / MAP_ITEM, item_id=f"socmap-{cfg.name}-{year}-{prov['version']}",
                     bbox_lonlat=tuple(bbox), year=year,
                     properties={"title": f"Topsoil SOC (0-30 cm) {cfg.name} {year}",
                                 "description": cfg.description or f"socmap map of {cfg.name}",
                                 "socmap:grid_crs": crs_label, "socmap:resolution": grid.resolution,
                                 "socmap:model": prov["bundle"]["path"], "socmap:run_key": key,
                                 "socmap:provenance": prov},
                     assets=assets)
    outputs["stac_item"] = str(item)
    return outputs


def _mosaic_outputs(cfg: PipelineConfig, grid: GridConfig, root: Path, variables: list[str],
                    outputs: dict[str, str], assets: dict[str, dict[str, Any]]) -> None:
    """Each layer's VRT over its tile COGs; adds the VRT and every COG to ``outputs`` and ``assets``."""
    for name in variables:
        vrt = write_vrt(root, grid, name, cfg.output.nodata)
        if vrt is None:
            continue
        outputs[f"{name}_vrt"] = str(vrt)
        spec = LAYERS[name]
        assets[name] = {"href": f"./{vrt.name}", "media_type": None, "roles": ["data"],
                        "title": f"{name} mosaic (VRT over the tile COGs)",
                        "description": f"{spec.title}; unit {spec.unit}; scale 1, offset 0"}
        for p in sorted((root / "cog" / name).glob("*.tif")):
            rel = p.relative_to(root).as_posix()
            assets[f"{name}_{p.stem.removeprefix(name + '_')}"] = {
                "href": f"./{rel}", "media_type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"], "title": f"{name} tile {p.stem.removeprefix(name + '_')}",
                "description": f"{spec.title}; unit {spec.unit}"}


def _zarr_outputs(root: Path, variables: list[str], outputs: dict[str, str],
                  assets: dict[str, dict[str, Any]]) -> None:
    """Consolidate the zarr store's metadata; adds the store to ``outputs`` and ``assets``."""
    zarr_consolidate(root / MAP_ZARR)
    outputs["zarr"] = str(root / MAP_ZARR)
    assets["zarr"] = {"href": f"./{MAP_ZARR}", "media_type": "application/vnd.zarr; version=3",
                      "roles": ["data"], "title": "every layer, whole grid (zarr v3, CF grid_mapping)",
                      "description": "; ".join(f"{n}: {LAYERS[n].unit}" for n in variables)}


def _window_extent(grid: GridConfig, win: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) in the grid's CRS of a (row0, row1, col0, col1) cell window."""
    r0, r1, c0, c1 = win
    xmin, _, _, ymax = grid.bounds
    res = grid.resolution
    return (xmin + c0 * res, xmin + c1 * res, ymax - r1 * res, ymax - r0 * res)


def _quicklook_outputs(cfg: PipelineConfig, root: Path, year: int, variables: list[str],
                       win: tuple[int, int, int, int], extent: tuple[float, float, float, float], crs_label: str,
                       outputs: dict[str, str], assets: dict[str, dict[str, Any]]) -> None:
    """A PNG quick-look of each :data:`QUICKLOOK_LAYERS` layer over the done window ``win`` (``extent`` in the
    grid's CRS); adds each to ``outputs`` and ``assets``."""
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


def _provenance_outputs(root: Path, prov: dict[str, Any], outputs: dict[str, str],
                        assets: dict[str, dict[str, Any]]) -> None:
    """Write ``provenance.json``; adds it and the run summary (written last, by :func:`_write_summary`) to
    ``outputs`` and ``assets``."""
    with atomic_path(root / MAP_PROVENANCE) as tmp:
        tmp.write_text(json.dumps(prov, indent=1) + "\n")
    outputs["provenance"] = str(root / MAP_PROVENANCE)
    assets["provenance"] = {"href": f"./{MAP_PROVENANCE}", "media_type": "application/json", "roles": ["metadata"],
                            "title": "provenance", "description": "code version, bundle checksum, pipeline, STAC "
                            "items, start and end, tiles"}
    assets["summary"] = {"href": f"./{MAP_SUMMARY}", "media_type": "application/json", "roles": ["metadata"],
                         "title": "run summary", "description": "tiles, cells, seconds, cells per second",
                         "rewritten": True}


def _write_summary(root: Path, res: PredictResult, results: list[TileResult], cfg: PipelineConfig, year: int,
                   model: Path, mode: str, key: str) -> None:
    timings: dict[str, float] = {}
    for r in results:
        for k, v in r.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    doc = {"region": cfg.name, "year": year, "model": str(model.resolve()), "mode": mode, "run_key": key,
           "tiles_done": res.tiles_done, "tiles_skipped": res.tiles_skipped, "tiles_failed": res.tiles_failed,
           "tiles_remaining": res.tiles_remaining,
           "failures": res.failures, "cells": res.cells, "cells_mapped": res.cells_mapped,
           "cells_outside_aoa": sum(r.n_outside for r in results), "seconds": round(res.seconds, 3),
           "map_seconds": round(res.map_seconds, 3), "plan_seconds": round(res.plan_seconds, 3),
           "startup_seconds": round(res.startup_seconds, 3), "finish_seconds": round(res.finish_seconds, 3),
           "cells_per_s": round(res.cells_per_s, 1) if res.cells else None,
           "task_seconds_by_stage": {k: round(v, 3) for k, v in timings.items()}, "outputs": res.outputs}
    with atomic_path(root / MAP_SUMMARY) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
