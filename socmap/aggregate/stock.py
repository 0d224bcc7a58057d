"""SOC stock of 0-30 cm from SOC content, fine-earth bulk density and coarse fragments.

    stock (t C/ha) = SOC (g/kg) * BD (g/cm3) * 30 (cm) * (1 - CF) * 0.1

(g/kg * g/cm3 = mg C/cm3 of fine earth; times 30 cm of soil gives mg C/cm2 over the layer, and 1 mg/cm2 =
0.1 t/ha; ``CF`` is the coarse-fragment volume fraction, which holds no SOC.) A zone's total (t C) sums
``stock * covered area (ha)`` over its cells; with the cell factors ``f_i = BD_i * 3 * (1 - CF_i) * area_ha_i`` it
is the weighted sum ``sum_i f_i SOC_i``, so its interval comes from the same error model as the mean's
(:func:`socmap.aggregate.interval.zone_sum`). Bulk-density and coarse-fragment errors are not propagated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from socmap.errors import DataError

__all__ = ["DEPTH_CM", "STOCK_FORMULA", "layer_on_grid", "stock_factor"]

DEPTH_CM = 30.0
STOCK_FORMULA = "stock (t C/ha) = SOC (g/kg) * BD (g/cm3) * 30 cm * (1 - CF) * 0.1"


def layer_on_grid(path: Path | str, transform: Any, shape: tuple[int, int], crs: Any, scale: float = 1.0
                  ) -> np.ndarray:
    """The raster at ``path`` averaged onto the map grid (NaN where it has no data), times ``scale``."""
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.warp import Resampling, reproject

    out = np.full(shape, np.nan, np.float64)
    try:
        with rasterio.open(path) as src:
            data = src.read(1, masked=True).astype(np.float64).filled(np.nan)
            reproject(data, out, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                      dst_crs=crs, src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.average)
    except RasterioIOError as exc:
        raise DataError(f"cannot read the raster {path} ({' '.join(str(exc).split())[:160]})") from None
    return out * float(scale)


def stock_factor(bd_gcm3: np.ndarray, cf_fraction: np.ndarray | None, area_ha: np.ndarray) -> np.ndarray:
    """Per cell, t C per (g/kg of SOC): ``BD * 30 * (1 - CF) * 0.1 * area_ha``."""
    cf = 0.0 if cf_fraction is None else np.clip(np.asarray(cf_fraction, np.float64), 0.0, 1.0)
    return np.asarray(bd_gcm3, np.float64) * DEPTH_CM * 0.1 * (1.0 - cf) * np.asarray(area_ha, np.float64)
