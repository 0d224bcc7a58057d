"""Score a map against a reference raster (the demo world's true SOC), wall to wall.

The reference is averaged onto the map grid (``Resampling.average``: a map cell's truth is the mean of the finer
reference cells inside it), then R2 and RMSE of a layer are computed over the cells both hold
(:func:`score_map`), and the uncertainty layers are checked against the errors they claim to describe
(:func:`score_uncertainty`). Units are the layers' own (g/kg for SOC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socmap.metrics import bias, r2, rmse

__all__ = ["score_map", "score_uncertainty"]


def _band(path: Path | str) -> np.ndarray:
    """Band 1 of a raster, NaN where it has no data."""
    import rasterio

    with rasterio.open(path) as m:
        return np.asarray(m.read(1, masked=True).astype(float).filled(np.nan))


def _on_map_grid(map_path: Path | str, truth_path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """(map band 1, reference averaged onto the map's grid), NaN where either has no data."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    pred = _band(map_path)
    truth = np.full(pred.shape, np.nan)
    with rasterio.open(map_path) as m, rasterio.open(truth_path) as t:
        src = t.read(1, masked=True).astype(float).filled(np.nan)
        reproject(src, truth, src_transform=t.transform, src_crs=t.crs, dst_transform=m.transform,
                  dst_crs=m.crs, src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.average)
    return pred, truth


def score_map(map_path: Path | str, truth_path: Path | str) -> dict[str, float]:
    """R2, RMSE, bias (map - truth) and the number of cells compared, for a single-band map and reference; and
    ``coverage``, the share of the reference's cells on the map grid (the region, where the reference covers it)
    that the map holds a value for."""
    pred, truth = _on_map_grid(map_path, truth_path)
    ok = np.isfinite(pred) & np.isfinite(truth)
    n_ref = int(np.isfinite(truth).sum())
    coverage = float(ok.sum() / n_ref) if n_ref else float("nan")
    if ok.sum() < 2:
        return {"r2": float("nan"), "rmse": float("nan"), "bias": float("nan"), "n": int(ok.sum()),
                "coverage": coverage}
    p, y = pred[ok], truth[ok]
    return {"r2": float(r2(y, p)), "rmse": float(rmse(y, p)), "bias": float(bias(y, p)), "n": int(ok.sum()),
            "coverage": coverage}


def score_uncertainty(mean_path: Path | str, sd_path: Path | str, lo_path: Path | str, hi_path: Path | str,
                      truth_path: Path | str, level: float) -> dict[str, float]:
    """How well a map's uncertainty layers describe its errors against the reference, on the cells all hold.

    ``z2``: the mean of ``((truth - mean) / sd)^2`` (1 when the sd layer is the errors' own sd; above 1 too
    narrow, below too wide); ``rms_error_over_sd``: ``sqrt(mean err^2 / mean sd^2)``, the same question asked of
    the map as a whole; ``coverage``: the share of cells whose interval ``[lo, hi]`` holds the truth (``level``
    asked, e.g. 0.9 for ``q05``-``q95``); ``n`` the cells compared. All layers on one grid (one map's).
    """
    mean, truth = _on_map_grid(mean_path, truth_path)  # the reference is averaged once, onto the shared grid
    sd, lo, hi = (_band(p) for p in (sd_path, lo_path, hi_path))
    ok = np.isfinite(mean) & np.isfinite(truth) & np.isfinite(sd) & (sd > 0) & np.isfinite(lo) & np.isfinite(hi)
    if not ok.any():
        return {"z2": float("nan"), "rms_error_over_sd": float("nan"), "coverage": float("nan"), "level": level,
                "n": 0}
    err, s = truth[ok] - mean[ok], sd[ok]
    inside = (truth[ok] >= lo[ok]) & (truth[ok] <= hi[ok])
    return {"z2": float(np.mean((err / s) ** 2)), "rms_error_over_sd": float(np.sqrt(np.mean(err**2) / np.mean(s**2))),
            "coverage": float(inside.mean()), "level": float(level), "n": int(ok.sum())}

