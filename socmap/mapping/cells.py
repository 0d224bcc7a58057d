"""Covariates of map cells, read the way ``socmap prepare`` read them at the survey points.

Every layer of the pipeline's ``data.covariates`` is sampled at the cell centres with
:func:`socmap.data.covariates.sample_raster`: the value of the raster cell the centre falls in, or, where that is
no-data, the nearest valid raster cell within ``data.covariate_search_px`` cells (the same rule and the same
scale/offset as prepare; categorical codes are rounded). The cell's own value (no search) first decides whether a
map cell is mapped at all (:attr:`socmap.config.OutputConfig.mask_layers`): sea, where no layer has data, is
no-data in the map rather than an extrapolation from the nearest coast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from socmap.config import PipelineConfig
from socmap.data.covariates import sample_raster

__all__ = ["cell_covariates"]

CHUNK_PX = 256
"""Raster window edge, cells, read per group of map cells: about a tile, so a tile reads only its own surroundings
(the points' default of 1024 read a million cells per layer for every 64-cell tile of the Africa grid)."""


def cell_covariates(cfg: PipelineConfig, lonlat: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Raw covariates (physical units, one column per layer name) at WGS 84 cell centres, and the mapped mask.

    Args:
        cfg: the pipeline (its ``data.covariates``, ``data.covariate_search_px`` and ``output.mask_*``).
        lonlat: (N, 2) cell centres, degrees.

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
    for layer in data.covariates:  # pass 1: each cell's own raster cell decides whether it is mapped
        path = cfg.resolve(layer.path) or layer.path
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
