"""The stage contract: every stage's file names, one atomic-write helper, one retry helper and one JSON cleaner.

Each stage reads what an earlier stage wrote and writes something new; the names below are the only place a
stage file's name is spelled. A stage writes into a temporary sibling (``.<name>.tmp-<random>`` in the same
folder, so the final rename stays on one file system), flushes, then renames it into place: a failed or killed
run leaves the previous output (or nothing), never half of a new one.

Folders::

    DATA/    samples.parquet, prepare_report.json, preprocess.json, preprocess_reference.parquet   (prepare)
             patches.zarr, image_covariates.parquet, extract_failures.csv, extract_report.json   (extract)
             vit_finetuned.pt                                                                   (finetune-vit)
             embeddings.zarr, encoder_weights.pt (random or raw-TerraMind-initialised encoder)  (embed)
    MODEL/   bundle.json, pipeline.yaml, target_scaler.json, preprocess.json (+ reference),       (train)
             graph.safetensors, members/NN/{weights,cache}.safetensors, nodes.npz, log.csv,
             encoder.pt (imagery), MODEL_CARD.md, model_card.json: see socmap.inference.format
    REPORT/  report.md, report.json, figures                                                    (evaluate)
    MODELS/  REGION/latest.json (names the newest complete bundle), REGION/VERSION/ (a bundle)   (train, no --out)
    MAPS/    REGION/YEAR/latest.json (names the newest finished VERSION)                       (predict)
             REGION/YEAR/VERSION/ cog/LAYER/LAYER_TILE.tif, LAYER.vrt, soc.zarr, item.json, LAYER.png,
             predict_summary.json, provenance.json, tiles_done/TILE.json, tiles_failed/TILE.json,
             logs/predict-UTC.log, predict.lock (while a run writes the folder)
    TUNE/    study.journal, trials.csv, importance.png, slices.png, best_pipeline.yaml,         (tune)
             tune_report.md, tune_report.json, final/{best,hand-set}/ (model bundles)
    OUT.csv, OUT.gpkg, OUT.png, OUT.json  (``socmap aggregate --out OUT.csv``)                (aggregate)
    DEMO/    demo_run.json; aggregate/random_zones.gpkg, zones.csv (+ .gpkg .png .json)         (demo)
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from socmap.errors import ConfigError

__all__ = [
    "AGG_CHART_SUFFIX",
    "AGG_GPKG_SUFFIX",
    "AGG_META_SUFFIX",
    "AGG_TABLE_SUFFIX",
    "DEMO_AGGREGATE",
    "DEMO_RUN",
    "DEMO_ZONES",
    "DISK_ERRNOS",
    "EMBEDDINGS",
    "ENCODER_WEIGHTS",
    "EXTRACT_FAILURES",
    "EXTRACT_REPORT",
    "FIG_ENSEMBLE_SIZE",
    "FIG_PRED_VS_OBS",
    "FIG_RELIABILITY",
    "FIG_RESIDUAL_MAP",
    "IMAGE_COVARIATES",
    "MAPS_DIR",
    "MAP_COG_DIR",
    "MAP_DONE_DIR",
    "MAP_FAILED_DIR",
    "MAP_ITEM",
    "MAP_LATEST",
    "MAP_LOCK",
    "MAP_LOG_DIR",
    "MAP_PROVENANCE",
    "MAP_SUMMARY",
    "MAP_ZARR",
    "MODELS_DIR",
    "MODEL_LATEST",
    "PATCHES",
    "PREPARE_REPORT",
    "PREPROCESS",
    "PREPROCESS_REFERENCE",
    "REPORT_JSON",
    "REPORT_MD",
    "SAMPLES",
    "TUNE_BEST_PIPELINE",
    "TUNE_FINAL_DIR",
    "TUNE_IMPORTANCE",
    "TUNE_REPORT_JSON",
    "TUNE_REPORT_MD",
    "TUNE_SLICES",
    "TUNE_STUDY",
    "TUNE_TRIALS",
    "VIT_FINETUNED",
    "atomic_path",
    "check_path_name",
    "is_local_path",
    "is_source_failure",
    "json_safe",
    "replace_path",
    "retry",
    "source_errors",
    "temp_sibling",
]

T = TypeVar("T")

# ------------------------------------------------------------------------------------ stage file names
SAMPLES = "samples.parquet"
"""prepare: one row per site (see :data:`socmap.data.SAMPLE_COLUMNS`)."""
PREPARE_REPORT = "prepare_report.json"
PREPROCESS = "preprocess.json"
"""prepare: imputer and scaler fitted on the training split."""
PREPROCESS_REFERENCE = "preprocess_reference.parquet"
PATCHES = "patches.zarr"
"""extract: per-sample 224 x 224 patches of S2L2A, S1GRD and DEM."""
IMAGE_COVARIATES = "image_covariates.parquet"
"""extract: sample_id, year (sampling), imagery_year (composited), then socmap.eo.COVARIATE_COLUMNS."""
EXTRACT_FAILURES = "extract_failures.csv"
EXTRACT_REPORT = "extract_report.json"
VIT_FINETUNED = "vit_finetuned.pt"
"""finetune-vit: the fine-tuned TerraMind + CLS-merge weights."""
EMBEDDINGS = "embeddings.zarr"
"""embed: one frozen-ViT vector per sample."""
ENCODER_WEIGHTS = "encoder_weights.pt"
"""embed: the exact image-encoder weights it used when no checkpoint file was given (seeded random init), in the
``socmap-vit/1`` format, so a map (and the bundle's ``encoder.pt``) rebuilds the very same encoder."""
REPORT_MD = "report.md"
MAP_COG_DIR = "cog"
"""predict: one Cloud-Optimized GeoTIFF per layer and tile, ``cog/<layer>/<layer>_<tile>.tif``; ``<layer>.vrt``
beside it mosaics them."""
MAP_ZARR = "soc.zarr"
"""predict: every layer of the whole grid in one zarr v3 store, written tile by tile."""
MAP_ITEM = "item.json"
"""predict: the STAC Item describing every map asset."""
MAP_SUMMARY = "predict_summary.json"
MAP_DONE_DIR = "tiles_done"
"""predict: one small JSON per finished tile with the sha256 of every file it wrote, so a re-run skips it (and
redoes it when a file is missing or differs)."""
MAP_FAILED_DIR = "tiles_failed"
"""predict: one small JSON per tile that failed (its reason); removed when a re-run maps the tile."""
MAP_PROVENANCE = "provenance.json"
"""predict: what made the maps (code version, bundle checksum, pipeline, STAC items, times, tiles)."""
MAP_LATEST = "latest.json"
"""predict: in ``OUT/REGION/YEAR/``, ``{"version": NAME}`` naming the newest version folder whose every grid tile is
done."""
MAP_LOCK = "predict.lock"
"""predict: the version folder's lock while a run writes it (holder's host, pid, start time; socmap.mapping.lock)."""
MAP_LOG_DIR = "logs"
"""predict: ``logs/predict-<UTC start>.log``, one per run: start, failed tiles, the traceback of a bug, the end."""
REPORT_JSON = "report.json"
"""evaluate: every number of the report (NaN written as null)."""
FIG_PRED_VS_OBS = "pred_vs_obs.png"
FIG_RELIABILITY = "reliability.png"
FIG_ENSEMBLE_SIZE = "ensemble_size.png"
FIG_RESIDUAL_MAP = "residual_map.png"
TUNE_STUDY = "study.journal"
"""tune: the Optuna JournalStorage file every trial of both steps is recorded in (several processes append to it
under a file lock); a re-run continues from it."""
TUNE_TRIALS = "trials.csv"
"""tune: one row per trial: step, number, state, parameters, validation metrics, seconds."""
TUNE_IMPORTANCE = "importance.png"
"""tune: fANOVA importance of each searched parameter for the validation MAPE (step 1's trials)."""
TUNE_SLICES = "slices.png"
"""tune: validation MAPE against each of the most important parameters, one panel each (both steps)."""
TUNE_BEST_PIPELINE = "best_pipeline.yaml"
"""tune: the pipeline with the best trial's parameters, ready for ``socmap train --pipeline``."""
TUNE_REPORT_MD = "tune_report.md"
TUNE_REPORT_JSON = "tune_report.json"
"""tune: the best and the hand-set configuration retrained and scored once on validation and test."""
TUNE_FINAL_DIR = "final"
"""tune: the model bundles of the final retrains, ``final/best`` and ``final/hand-set``."""
AGG_TABLE_SUFFIX = ".csv"
"""aggregate: one row per zone (area, cells, mean SOC and its interval, AOA share, stock); ``--out`` names it."""
AGG_GPKG_SUFFIX = ".gpkg"
"""aggregate: the zone geometries with every figure of the table (layer metadata: formula, units, level)."""
AGG_CHART_SUFFIX = ".png"
"""aggregate: zone means with their intervals."""
AGG_META_SUFFIX = ".json"
"""aggregate: formula, units, assumptions, the fitted correlogram and the inputs."""
DEMO_ZONES = "random_zones.gpkg"
"""demo: random polygons (0.25-25 km2, field ``zone``) that ``socmap demo`` aggregates the demo map over."""
DEMO_AGGREGATE = "zones.csv"
"""demo: ``socmap aggregate --out`` of the demo map over :data:`DEMO_ZONES` (+ .gpkg, .png, .json beside it)."""
DEMO_RUN = "demo_run.json"
"""demo: the run summary (stages, one-line summaries, seconds) in ``socmap demo --out DIR``."""

MODELS_DIR = "models"
"""``$SOCMAP_HOME/models``: each region's bundles (``socmap train`` without ``--out``)."""
MAPS_DIR = "maps"
"""``$SOCMAP_HOME/maps``: ``socmap predict``'s output folder when ``--out`` is not given."""
MODEL_LATEST = "latest.json"
"""``MODELS/REGION/latest.json``: names the region's newest complete bundle (``{"version": ...}``)."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)
"""``OSError.errno`` values of an output folder that is full, over quota or a file size limit, read-only or not
permitted: every later write fails the same way, so ``socmap predict`` stops at once (finished tiles are kept for
the re-run) and the CLI ends with one line (exit 2) instead of a traceback."""




@functools.cache
def source_errors() -> tuple[type[BaseException], ...]:
    """The closed list of source failures: what a retry of a remote read may cure and what ``socmap predict``
    records as a failed tile (exit 3, run again later). Anything else raised inside a tile is a bug or bad input
    and stops the run (exit 1 with a log, or 2).

    * :class:`OSError`: HTTP and connection errors (``requests``, ``distributed`` comm), time-outs
      (:class:`TimeoutError`), missing or unreadable files and rasterio's ``RasterioIOError`` (GDAL cannot open or
      read a raster); :func:`is_source_failure` leaves out the output disk's own errors (:data:`DISK_ERRNOS`);
    * :class:`socmap.errors.SourceError`: a source still failing after socmap's own retries;
    * GDAL errors that escape rasterio unwrapped while reading: ``CPLE_OpenFailedError``, ``CPLE_FileIOError``,
      ``CPLE_HttpResponseError``, ``CPLE_AWSError`` (object stores) and ``CPLE_AppDefinedError`` (GDAL's generic read
      failure: "IReadBlock failed", "TIFFReadEncodedTile failed");
    * ``urllib3.exceptions.HTTPError`` and ``pystac_client.exceptions.APIError`` (a STAC API answering an error);
    * ``distributed.KilledWorker``: the worker running the tile died twice (out of memory, a lost node); not a bug
      in the tile either, and a re-run on a healthier cluster may pass.

    Imported lazily (rasterio, urllib3, pystac-client and distributed are optional here): a library that is not
    installed cannot raise its errors.
    """
    from socmap.errors import SourceError

    out: list[type[BaseException]] = [OSError, SourceError]
    with contextlib.suppress(ImportError):
        from rasterio import _err as gdal_err

        out += [gdal_err.CPLE_OpenFailedError, gdal_err.CPLE_FileIOError, gdal_err.CPLE_HttpResponseError,
                gdal_err.CPLE_AWSError, gdal_err.CPLE_AppDefinedError]
    with contextlib.suppress(ImportError):
        from urllib3.exceptions import HTTPError

        out.append(HTTPError)
    with contextlib.suppress(ImportError):
        from pystac_client.exceptions import APIError

        out.append(APIError)
    with contextlib.suppress(ImportError):
        from distributed import KilledWorker

        out.append(KilledWorker)
    return tuple(out)


def is_source_failure(exc: BaseException) -> bool:
    """True when ``exc`` is on the closed list of :func:`source_errors` and is not an output-disk error
    (:data:`DISK_ERRNOS`, which stops a map run at once)."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return False
    return isinstance(exc, source_errors())


# --------------------------------------------------------------------------------------- atomic writes
def temp_sibling(final: Path) -> Path:
    """A fresh temporary name beside ``final`` (same folder, hidden, unique per call)."""
    final = Path(final)
    return final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a written file to disk before it is renamed (folders: every file below them)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with contextlib.suppress(OSError):
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def replace_path(tmp: Path, final: Path) -> None:
    """Move ``tmp`` (a file or a folder) to ``final``, replacing whatever is there.

    A file is replaced by one atomic ``os.replace``. A folder cannot be swapped atomically over an existing one,
    so the old one is first renamed aside and deleted after the new one is in place: a reader never sees a mix.
    """
    tmp, final = Path(tmp), Path(final)
    _fsync(tmp)
    if tmp.is_dir() and final.exists():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Write ``final`` (a file or a folder) under a temporary sibling name; rename it into place on success.

    ``with atomic_path(out / "x.parquet") as tmp: df.to_parquet(tmp)``. On an exception the temporary is
    removed and ``final`` is left as it was. The parent folder is created if needed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} for {final}")
        replace_path(tmp, final)
    finally:
        _remove(tmp)


def is_local_path(path: str | Path) -> bool:
    """Whether ``path`` is a file on this machine: not a URL (``scheme://``) nor a GDAL virtual path (``/vsi...``)."""
    p = str(path)
    return "://" not in p and not p.startswith("/vsi")


def check_path_name(kind: str, name: str) -> str:
    """``name`` if it is safe as one path part (letters, digits, ``. _ -``, not starting with a dot or dash, no
    separators, at most 128 characters); else a one-line :class:`ConfigError` naming ``kind``."""
    name = str(name)
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise ConfigError(f"{kind} {name!r} cannot be used as a folder or file name (use letters, digits, '.', '_' "
                          "and '-', starting with a letter or digit)")
    return name


# ---------------------------------------------------------------------------------------------- retries
def retry(fn: Callable[[], T], *, attempts: int, retry_on: tuple[type[BaseException], ...] = (Exception,),
          base_s: float = 0.25, cap_s: float = 8.0, on_retry: Callable[[int, BaseException], None] | None = None,
          sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn`` up to ``attempts`` times, sleeping ``min(base_s * 2**(i-1), cap_s)`` seconds after failure i.

    Only exceptions in ``retry_on`` are retried; the last one is re-raised. ``on_retry(i, exc)`` is called before
    each sleep (e.g. to clear a cache).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for i in range(1, attempts + 1):
        try:
            return fn()
        except retry_on as exc:
            if i == attempts:
                raise
            if on_retry is not None:
                on_retry(i, exc)
            sleep(min(base_s * 2 ** (i - 1), cap_s))
    raise AssertionError("unreachable")  # pragma: no cover


# ------------------------------------------------------------------------------------------------- JSON
def json_safe(x: Any) -> Any:
    """A copy of a JSON-like tree that ``json.dumps`` writes as strict JSON: NaN and inf become ``null``, numpy
    scalars become Python numbers, tuples become lists, paths become strings, dict keys become strings.

    Every stage report (``report.json``, ``tune_report.json``, ``prepare_report.json``) goes through it, so a
    metric that is undefined on a split (R2 of a constant) is written as ``null``, not as the invalid ``NaN``.
    """
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
