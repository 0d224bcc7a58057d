"""Score a map layer against a reference raster (the demo world's true SOC), wall to wall.

The reference is averaged onto the map grid (``Resampling.average``: a map cell's truth is the mean of the finer
reference cells inside it), then R2 and RMSE are computed over the cells both hold. Units are the layers' own
(g/kg for SOC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socmap.metrics import bias, r2, rmse

__all__ = ["score_map"]


def score_map(map_path: Path | str, truth_path: Path | str) -> dict[str, float]:
    """R2, RMSE, bias (map - truth) and the number of cells compared, for a single-band map and reference; and
    ``coverage``, the share of the reference's cells on the map grid (the region, where the reference covers it)
    that the map holds a value for."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    with rasterio.open(map_path) as m:
        pred = m.read(1, masked=True).astype(float).filled(np.nan)
        truth = np.full(pred.shape, np.nan)
        with rasterio.open(truth_path) as t:
            src = t.read(1, masked=True).astype(float).filled(np.nan)
            reproject(src, truth, src_transform=t.transform, src_crs=t.crs, dst_transform=m.transform,
                      dst_crs=m.crs, src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.average)
    ok = np.isfinite(pred) & np.isfinite(truth)
    n_ref = int(np.isfinite(truth).sum())
    coverage = float(ok.sum() / n_ref) if n_ref else float("nan")
    if ok.sum() < 2:
        return {"r2": float("nan"), "rmse": float("nan"), "bias": float("nan"), "n": int(ok.sum()),
                "coverage": coverage}
    p, y = pred[ok], truth[ok]
    return {"r2": float(r2(y, p)), "rmse": float(rmse(y, p)), "bias": float(bias(y, p)), "n": int(ok.sum()),
            "coverage": coverage}
