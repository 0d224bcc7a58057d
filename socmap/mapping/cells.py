"""Covariates of map cells, read the way ``socmap prepare`` read them at the survey points.

Every layer of the pipeline's ``data.covariates`` is sampled at the cell centres with
:func:`socmap.data.covariates.sample_raster`: the value of the raster cell the centre falls in, or, where that is
no-data, the nearest valid raster cell within ``data.covariate_search_px`` cells (the same rule and the same
scale/offset as prepare; categorical codes are rounded). The cell's own value (no search) first decides whether a
map cell is mapped at all (:attr:`socmap.config.OutputConfig.mask_layers`): sea, where no layer has data, is
no-data in the map rather than an extrapolation from the nearest coast.

The map job reads each layer once over the whole grid (:func:`load_grid_rasters`, where the layer's window fits
:data:`socmap.data.covariates.MAX_CACHED_BYTES`) and samples every tile from memory, with the same values.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from socmap.config import GridConfig, PipelineConfig
from socmap.data.covariates import MAX_CACHED_BYTES, InMemoryRaster, load_raster_window, sample_raster
from socmap.io import is_local_path

__all__ = ["cell_covariates", "load_grid_rasters"]

CHUNK_PX = 256
"""Raster window edge, cells, read per group of map cells: about a tile, so a tile reads only its own surroundings
(the points' default of 1024 read a million cells per layer for every 64-cell tile of the Africa grid)."""

MARGIN_EXTRA_PX = 2
"""Raster cells held beyond the grid's bounds plus the search radius: room for the rounding between the grid's
bounds projected as a box and its cell centres projected one by one."""


def load_grid_rasters(cfg: PipelineConfig, grid: GridConfig, *, max_bytes: int = MAX_CACHED_BYTES,
                      skip: tuple[type[BaseException], ...] = (), local_only: bool = False
                      ) -> dict[str, InMemoryRaster]:
    """Each covariate layer of ``cfg`` read once over ``grid``'s bounds, plus ``data.covariate_search_px`` +
    :data:`MARGIN_EXTRA_PX` raster cells, for :func:`cell_covariates`' ``rasters``; keyed by layer name.

    A layer whose window would exceed ``max_bytes`` (bytes, per layer) is left out and read tile by tile, and so
    is, with ``local_only``, a layer that is not a file on this machine (a URL, an object-store path). A layer
    that cannot be read raises what sampling it would (:class:`socmap.errors.DataError`,
    :class:`socmap.errors.SourceError`, GDAL's read errors), unless its error is one of ``skip``: then it is left
    out too, and each tile reads it (and fails or retries) on its own.
    """
    import rasterio
    from rasterio.warp import transform_bounds

    bounds = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21)
    margin = cfg.data.covariate_search_px + MARGIN_EXTRA_PX
    out: dict[str, InMemoryRaster] = {}
    # no sidecar probing (.aux.xml, .msk, ...), as the tiles read: over HTTP each probe is a round trip
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        for layer in cfg.data.covariates:
            path = cfg.resolve(layer.path) or layer.path
            if local_only and not is_local_path(path):
                continue
            try:
                held = load_raster_window(path, layer.band, bounds, margin_px=margin, max_bytes=max_bytes)
            except skip:
                continue
            if held is not None:
                out[layer.name] = held
    return out


def cell_covariates(cfg: PipelineConfig, lonlat: np.ndarray,
                    rasters: Mapping[str, InMemoryRaster | None] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Raw covariates (physical units, one column per layer name) at WGS 84 cell centres, and the mapped mask.

    Args:
        cfg: the pipeline (its ``data.covariates``, ``data.covariate_search_px`` and ``output.mask_*``).
        lonlat: (N, 2) cell centres, degrees.
        rasters: layers already in memory by layer name (:func:`load_grid_rasters`); a layer not in it (or None)
            is read from its path. The values are the same either way.

    Returns:
        ``(raw, mapped)``: a DataFrame of N rows (NaN where a layer has no value within the search radius) and an
        (N,) bool array, True where the cell is mapped.
    """
    lon, lat = lonlat[:, 0], lonlat[:, 1]
    n = len(lon)
    data, out = cfg.data, cfg.output
    kws = []
    direct: dict[str, np.ndarray] = {}
    any_direct = np.zeros(n, bool)
    mask_ok = np.ones(n, bool)
    held = rasters or {}
    for layer in data.covariates:  # pass 1: each cell's own raster cell decides whether it is mapped
        mem = held.get(layer.name)
        path: str | InMemoryRaster = mem if mem is not None else cfg.resolve(layer.path) or layer.path
        kw = {"name": layer.name, "band": layer.band, "scale": 1.0 if layer.categorical else layer.scale,
              "offset": 0.0 if layer.categorical else layer.offset, "min_coverage": 0.0, "chunk_px": CHUNK_PX}
        kws.append((layer, path, kw))
        v, _ = sample_raster(path, lon, lat, search_px=0, **kw)  # type: ignore[arg-type]
        direct[layer.name] = v
        has = np.isfinite(v)
        any_direct |= has
        if layer.name in out.mask_layers:
            mask_ok &= has & ~np.isin(v, np.asarray(out.mask_exclude_codes, float))
    mapped = (any_direct if data.covariates else np.ones(n, bool)) & mask_ok
    raw: dict[str, np.ndarray] = {}
    for layer, path, kw in kws:  # pass 2: gaps of mapped cells take the nearest valid cell, as in prepare
        vals = direct[layer.name].copy()
        miss = ~np.isfinite(vals) & mapped
        if miss.any() and data.covariate_search_px > 0:
            vals[miss], _ = sample_raster(path, lon[miss], lat[miss], search_px=data.covariate_search_px,
                                          **kw)  # type: ignore[arg-type]
        raw[layer.name] = np.round(vals) if layer.categorical else vals
    return pd.DataFrame(raw, index=pd.RangeIndex(n)), mapped
