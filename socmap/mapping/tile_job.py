"""The per-tile pipeline: cells -> covariates (+ image embeddings) -> inductive ensemble prediction -> layers.

A tile's cells are independent of each other and of the tile they sit in: each cell is attached to the training
graph by its own k nearest training nodes (in-edges only, :mod:`socmap.model.inductive`), so a cell gets the same
prediction whichever tile it is computed in and neighbouring tiles agree along their edge (no seams, no overlap
needed). The image stream, where the pipeline has one, is computed by :mod:`socmap.mapping.imagery`, whose fast mode
reads each tile with a 224-px margin for the same reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from socmap.config import GridConfig, PipelineConfig
from socmap.errors import ModelError, SourceError, short_error
from socmap.mapping.aoa import AOAReference
from socmap.mapping.cells import cell_covariates, load_grid_rasters
from socmap.mapping.tiles import Tile, cell_centres, cell_lonlat
from socmap.mapping.writers import LAYERS, MEMBER_LAYER, layer_nodata, map_layers, write_tile_cogs

if TYPE_CHECKING:
    from socmap.data.covariates import InMemoryRaster
    from socmap.encoders.terramind import ImageEncoder
    from socmap.inference import Bundle
    from socmap.inference.predictive import EnsemblePrediction

__all__ = ["CellInputs", "MapContext", "TileResult", "cell_inputs", "load_context", "predict_cells", "predict_tile",
           "tabular_features"]


MAP_BATCH_CELLS = 4096
"""Cells per attachment + forward chunk of the map: a chunk's activations (cells x width 128, float32) stay in a
core's cache; chunks of 16,384 cells (a whole 128-cell tile) ran ~10 % slower per cell on one CPU thread."""


@dataclass
class MapContext:
    """What every tile needs, loaded once per worker: the pipeline, its grid, the bundle, the AOA reference,
    for imagery pipelines the image encoder, and the covariate layers read once over the grid."""

    cfg: PipelineConfig
    grid: GridConfig
    bundle: Bundle
    aoa: AOAReference
    encoder: ImageEncoder | None = None
    rasters: dict[str, InMemoryRaster] = field(default_factory=dict)
    """Covariate layers held in memory over the grid, by layer name (:func:`socmap.mapping.cells.load_grid_rasters`;
    a layer not here, too large or unreadable at load time, is read by each tile)."""

    @property
    def uses_image(self) -> bool:
        return "image" in self.cfg.model.streams

    @property
    def reads_only_memory(self) -> bool:
        """Whether a tile reads no file or URL: every covariate layer is held in :attr:`rasters` and there is no
        image stream. Only such tiles run on several threads of one process: GDAL reads over HTTP from two threads
        at once were seen to hang against a local test server."""
        names = {layer.name for layer in self.cfg.data.covariates}
        return not self.uses_image and names <= set(self.rasters)


def load_context(cfg: PipelineConfig, bundle: Bundle, *, load_encoder: bool = True, device: str = "cpu"
                 ) -> MapContext:
    """The per-worker state for ``bundle`` (a loaded :class:`socmap.inference.Bundle`); the image encoder goes to
    ``device``. Covariate layers in local files that fit the memory budget are read once here. Remote layers, and
    a local one that cannot be read now (a missing file), are left to the tiles: each tile retries a remote read
    and records its own failure, which a read at worker start-up could not."""
    from socmap.errors import DataError
    from socmap.io import source_errors

    aoa = AOAReference.from_bundle(bundle)
    encoder = None
    if load_encoder and "image" in cfg.model.streams:
        from socmap.mapping.imagery import load_map_encoder

        encoder = load_map_encoder(cfg, bundle).to(device)
    grid = cfg.load_grid()
    rasters = load_grid_rasters(cfg, grid, skip=(DataError, *source_errors()), local_only=True)
    return MapContext(cfg=cfg, grid=grid, bundle=bundle, aoa=aoa, encoder=encoder, rasters=rasters)


def _raw_name(col: str, names: list[str]) -> str:
    if col in names:
        return col
    if col.startswith("feat_") and col[5:] in names:
        return col[5:]
    raise ModelError(f"the bundle's feature column {col!r} is not made by its preprocessing "
                     f"(features {', '.join(names)}); the bundle is damaged or from another version")


def tabular_features(bundle: Bundle, raw: pd.DataFrame) -> np.ndarray:
    """The model's tabular input for raw covariates: the bundle's fitted preprocessing, columns in
    ``bundle.feature_columns`` order (``feat_<name>`` in samples.parquet is the preprocessor's ``<name>``)."""
    feats = bundle.preprocessor.transform(raw)
    names = list(feats.columns)
    return feats[[_raw_name(c, names) for c in bundle.feature_columns]].to_numpy(np.float32)


@dataclass
class TileResult:
    """What a tile task returns to the driver: its layers (for the zarr store) and small statistics."""

    tile_id: str
    n_cells: int
    n_mapped: int
    n_outside: int
    seconds: float
    layers: dict[str, np.ndarray] = field(repr=False)
    cog_paths: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stac_items: list[str] = field(default_factory=list)
    """Ids of the STAC items whose imagery the tile used (imagery pipelines), for provenance."""


def _node_covariates(ctx: MapContext, raw: pd.DataFrame, idx: np.ndarray,
                     from_image: Callable[[], tuple[np.ndarray, np.ndarray]] | None
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-cell NDVI and elevation for the graph relations, from the source training read them from (the
    bundle's ``covariate_sources``: ``samples:<layer>`` is the pipeline's covariate layer of that name,
    ``image:<column>`` the imagery's ``ndvi_p50`` / ``elevation_m``); gaps are filled by ``Bundle.predict_new``
    with the training split's median, as training filled its own."""
    b = ctx.bundle
    rel = b.pipeline.model.graph.relations
    out: list[np.ndarray | None] = [None, None]
    img: tuple[np.ndarray, np.ndarray] | None = None
    for i, name in enumerate(("ndvi", "elevation")):
        if name not in rel:
            continue
        where, _, col = b.covariate_sources.get(name, "").partition(":")
        if where == "samples":
            if col not in raw.columns:
                raise ModelError(f"the bundle's {name!r} relation was built from covariate layer {col!r}, which "
                                 "this pipeline's covariates do not include; add it or train again")
            out[i] = raw[col].to_numpy(np.float64)[idx]
        elif where == "image":
            if from_image is None:
                raise ModelError(f"the bundle's {name!r} relation was built from the imagery's {col!r}, but this "
                                 "pipeline has no image stream to take it from")
            img = from_image() if img is None else img
            out[i] = np.asarray(img[i], np.float64)[idx]
        else:
            raise ModelError(f"the bundle does not say where its {name!r} relation's values came from "
                             f"({b.covariate_sources!r}); train it again")
    return out[0], out[1]


@dataclass
class CellInputs:
    """A set of cells' model inputs made from their raw covariates the way training made its nodes' inputs."""

    features: np.ndarray | None
    """(n, d) float32 preprocessed covariates in ``bundle.feature_columns`` order (None: the bundle has none);
    the model's tabular input where the tabular stream is on, and the area-of-applicability check's input."""
    ndvi: np.ndarray | None
    elevation: np.ndarray | None


def cell_inputs(ctx: MapContext, raw: pd.DataFrame, idx: np.ndarray,
                from_image: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None) -> CellInputs:
    """Features and relation covariates of the cells ``idx`` of ``raw`` (:func:`cell_covariates`' table)."""
    b = ctx.bundle
    feats = tabular_features(b, raw.iloc[idx]) if b.feature_columns else None
    ndvi, elev = _node_covariates(ctx, raw, idx, from_image)
    return CellInputs(feats, ndvi, elev)


def predict_cells(ctx: MapContext, lonlat: np.ndarray, year: int | np.ndarray, inputs: CellInputs,
                  image: np.ndarray | None = None, di: np.ndarray | None = None) -> EnsemblePrediction:
    """The map's prediction of cells at ``lonlat`` (degrees): the bundle's inductive path
    (:meth:`socmap.inference.Bundle.predict_new`), the training nodes' labels visible, the cells' own none;
    ``di`` the cells' dissimilarity index where already computed (the calibration's growth may read it)."""
    from socmap.device import one_torch_thread

    tab = inputs.features if "tabular" in ctx.cfg.model.streams else None
    years = np.broadcast_to(np.asarray(year, np.int64), (len(lonlat),))
    with one_torch_thread():
        return ctx.bundle.predict_new(lonlat, years, tab, image, inputs.ndvi, inputs.elevation,
                                      batch_size=MAP_BATCH_CELLS, di=di)


@dataclass
class _Laps:
    """Seconds per stage of one tile, summed per stage name: each lap ends when it is called and began where the
    previous one ended; ``step`` reports each stage as it ends."""

    step: Callable[[str], None]
    last: float
    """:func:`time.perf_counter` at the end of the previous lap (or the tile's start)."""
    timings: dict[str, float] = field(default_factory=dict)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.step(name)
        self.last = now


@dataclass
class _TileImagery:
    """A tile's image inputs: per cell its embedding and whether it has one, the STAC items used, and how to get
    the cells' image NDVI and elevation (computed only when the graph relations ask for them)."""

    embedding: np.ndarray
    """(N, D) float32, NaN rows where ``ok`` is False."""
    ok: np.ndarray
    items: list[str]
    ndvi_elevation: Callable[[], tuple[np.ndarray, np.ndarray]]


def predict_tile(ctx: MapContext, tile: Tile, year: int, root: Path | None, *, mode: str = "fast",
                 variables: list[str] | None = None, tags: dict[str, str] | None = None,
                 progress: Callable[[str], None] | None = None) -> TileResult:
    """Predict every cell of ``tile`` for ``year``; write its COGs under ``root`` (None: write nothing).

    Returns the layers (:func:`socmap.mapping.writers.map_layers` of ``variables``) as (nrows, ncols) arrays with
    no-data filled (``output.nodata``; 255 for ``aoa``), plus,
    with ``output.member_maps``, ``soc_member`` (M, nrows, ncols) for the zarr store only (no COGs).
    """
    t0 = time.perf_counter()
    cfg, grid = ctx.cfg, ctx.grid
    variables = map_layers(variables or cfg.output.variables)
    laps = _Laps(progress or (lambda _s: None), t0)
    x, y = cell_centres(grid, tile)
    lonlat = cell_lonlat(grid.crs, x, y)
    raw, mapped = _read_covariates(cfg, lonlat, ctx.rasters)
    laps.lap("covariates")
    imagery = _tile_imagery(ctx, year, x, y, mode, laps) if "image" in cfg.model.streams else None
    if imagery is not None:
        mapped &= imagery.ok
    idx = np.flatnonzero(mapped)
    pred: EnsemblePrediction | None = None
    vals: dict[str, np.ndarray] = {}
    n_outside = 0
    if len(idx):
        pred, vals, n_outside = _cell_values(ctx, raw, lonlat, idx, year, imagery, variables, laps)
    members = _member_layer(ctx, tile.n_cells, idx, pred) if cfg.output.member_maps else None
    layers = {name: _full_layer(cfg.output.nodata, name, vals.get(name), idx, tile) for name in variables}
    paths: list[str] = []
    if root is not None and "cog" in cfg.output.formats:
        paths = [str(p) for p in write_tile_cogs(root, grid, tile, layers, cfg.output.nodata, tags or {})]
        laps.lap("write")
    if members is not None:
        layers[MEMBER_LAYER.name] = members.reshape(-1, tile.nrows, tile.ncols)
    return TileResult(tile_id=tile.id, n_cells=tile.n_cells, n_mapped=len(idx), n_outside=n_outside,
                      seconds=time.perf_counter() - t0, layers=layers, cog_paths=paths, timings=laps.timings,
                      stac_items=imagery.items if imagery is not None else [])


def _tile_imagery(ctx: MapContext, year: int, x: np.ndarray, y: np.ndarray, mode: str, laps: _Laps) -> _TileImagery:
    """The tile's composites and the cells' image embeddings (``mode``: fast | block | exact)."""
    from socmap.mapping.imagery import tile_composites, tile_image_embeddings, tile_ndvi_elevation

    cfg, grid = ctx.cfg, ctx.grid
    comps = tile_composites(cfg, year, grid.crs, x, y, cell_size_m=grid.resolution)
    items = sorted({i for c in comps for ids in c.items.values() for i in ids})
    laps.lap("composites")
    if ctx.encoder is None:
        raise ModelError("this pipeline has an image stream but the map context holds no image encoder")
    emb, ok = tile_image_embeddings(cfg, year, grid.crs, x, y, ctx.encoder, mode=mode,
                                    cell_size_m=grid.resolution, composites=comps)

    def ndvi_elevation() -> tuple[np.ndarray, np.ndarray]:
        return tile_ndvi_elevation(cfg, year, grid.crs, x, y, cell_size_m=grid.resolution, composites=comps)

    imagery = _TileImagery(np.asarray(emb, np.float32), np.asarray(ok, bool), items, ndvi_elevation)
    laps.lap("image")
    return imagery


def _cell_values(ctx: MapContext, raw: pd.DataFrame, lonlat: np.ndarray, idx: np.ndarray, year: int,
                 imagery: _TileImagery | None, variables: list[str],
                 laps: _Laps) -> tuple[EnsemblePrediction, dict[str, np.ndarray], int]:
    """The prediction of the mapped cells ``idx``, each of ``variables`` at them, and how many lie outside the
    area of applicability."""
    feats = cell_inputs(ctx, raw, idx, None if imagery is None else imagery.ndvi_elevation)
    laps.lap("features")
    di = ctx.aoa.di(feats.features, len(idx))
    flag = ctx.aoa.flag(di)
    laps.lap("aoa")
    pred = predict_cells(ctx, lonlat[idx], year, feats, None if imagery is None else imagery.embedding[idx], di)
    laps.lap("model")
    per = {
        "soc_mean": lambda: pred.mean_gkg(),
        "soc_median": lambda: pred.soc_gkg(),
        "aleatoric_var": lambda: pred.var_gkg("aleatoric"),
        "epistemic_var": lambda: pred.var_gkg("epistemic"),
        "total_sd": lambda: np.sqrt(pred.var_gkg("total")),
        "q05": lambda: pred.quantile_gkg(0.05),
        "q95": lambda: pred.quantile_gkg(0.95),
        "di": lambda: di,
        "aoa": lambda: flag,
    }
    vals = {name: np.asarray(per[name]()) for name in variables}
    return pred, vals, int((flag == 1).sum())


def _member_layer(ctx: MapContext, n: int, idx: np.ndarray, pred: EnsemblePrediction | None) -> np.ndarray:
    """(M, n) each member's mean SOC, g/kg, at the tile's ``n`` cells (no-data off the mapped cells ``idx``)."""
    nodata = ctx.cfg.output.nodata
    members = np.full((ctx.bundle.n_members, n), nodata, dtype=MEMBER_LAYER.dtype)
    if len(idx):
        assert pred is not None
        mv = pred.member_means_gkg()
        members[:, idx] = np.where(np.isfinite(mv), mv, nodata)
    return members


def _full_layer(nodata: float, name: str, values: np.ndarray | None, idx: np.ndarray, tile: Tile) -> np.ndarray:
    """(nrows, ncols) layer ``name`` of the tile in its dtype: ``values`` at the mapped cells ``idx``, the layer's
    no-data elsewhere (and where a float value is not finite)."""
    spec = LAYERS[name]
    full = np.full(tile.n_cells, layer_nodata(name, nodata), dtype=spec.dtype)
    if len(idx):
        assert values is not None
        v = values
        if spec.dtype != "uint8":
            v = np.where(np.isfinite(v), v, nodata)
        full[idx] = v.astype(spec.dtype)
    return full.reshape(tile.nrows, tile.ncols)


def _read_covariates(cfg: PipelineConfig, lonlat: np.ndarray, rasters: dict[str, InMemoryRaster] | None = None
                     ) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`cell_covariates` (the layers in ``rasters`` from memory, the others from their paths) retried with
    back-off (covariate COGs over HTTP answer 503s and time out now and then); GDAL's HTTP cache is cleared between
    tries so a cached failure is not replayed. Still failing after ``stac.retries`` (default 3) retries: a
    :class:`SourceError` (the tile is recorded as failed). Only source failures (:func:`socmap.io.source_errors`)
    are retried; anything else (a raster with no CRS) goes up as is."""
    import rasterio

    from socmap.eo.dask_client import clear_gdal_http_cache
    from socmap.io import retry, source_errors

    attempts = (cfg.stac.retries if cfg.stac is not None else 3) + 1
    # no sidecar probing (.aux.xml, .msk, ...): over HTTP each probe is a round trip, or a time-out
    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
            return retry(lambda: cell_covariates(cfg, lonlat, rasters), attempts=attempts, retry_on=source_errors(),
                         base_s=0.5, on_retry=lambda i, exc: clear_gdal_http_cache())
    except source_errors() as exc:
        raise SourceError(f"reading the covariates failed after {attempts} attempts: {short_error(exc)}") from None
