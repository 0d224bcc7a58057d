"""Patch geometry: where a sample's P x P patch lies, grouping nearby samples, and cutting patches out.

A sample at projected (x, y) lies in pixel (floor(x / r), floor(y / r)) of the CRS's lattice of ``r``-metre pixels
(edges on multiples of ``r``; the same lattice :func:`~socmap.eo.composite.aligned_geobox` uses). Its patch puts
that pixel at row and column ``P // 2`` (112 for P = 224, TerraMind's centre), so a patch never depends on which
other samples were composited with it.

Every sample is projected to the UTM zone of its own lon/lat. Samples of one year whose UTM pixel falls in the
same ``group_m`` x ``group_m`` cell are composited together: one read of the group's box instead of one read per
sample (600 demo patches overlap ~30-fold). On a continental set, groups stay small and far apart and the same
code reads many small boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SampleGroup", "cut_patches", "group_samples", "patch_bounds", "patch_origin", "utm_epsg"]


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone containing (lon, lat) (326zz north, 327zz south)."""
    zone = int(np.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def patch_origin(x: float, y: float, patch_size: int, res: float) -> tuple[float, float]:
    """Upper-left corner (x0, y_top), m, of the patch whose pixel (P // 2, P // 2) contains (x, y)."""
    ix = np.floor(x / res)
    iy = np.floor(y / res)
    half = patch_size // 2
    return float((ix - half) * res), float((iy + 1 + half) * res)


def patch_bounds(x: float, y: float, patch_size: int, res: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the sample's patch in its CRS, m."""
    x0, yt = patch_origin(x, y, patch_size, res)
    return x0, yt - patch_size * res, x0 + patch_size * res, yt


@dataclass
class SampleGroup:
    """Samples (row positions into the sample table) composited together from one box of one year."""

    key: tuple[int, int, int, int]
    """(epsg, year, cell column, cell row)."""
    epsg: int
    year: int
    rows: np.ndarray
    x: np.ndarray
    y: np.ndarray
    bounds: tuple[float, float, float, float]
    """Union of the members' patches plus ``margin_px`` pixels, in ``EPSG:epsg``, m."""


def group_samples(lon_deg: Sequence[float] | np.ndarray, lat_deg: Sequence[float] | np.ndarray,
                  years: Sequence[int] | np.ndarray, *, patch_size: int,
                  res: float, group_m: float, margin_px: int = 16) -> list[SampleGroup]:
    """Group samples by (UTM zone, year, ``group_m`` cell); returns the groups in a stable order.

    ``margin_px`` extra pixels around the union of patches leave room for the terrain window (TPI) of samples
    at a patch edge when patches are small.
    """
    from pyproj import Transformer

    lon = np.asarray(lon_deg, dtype=np.float64)
    lat = np.asarray(lat_deg, dtype=np.float64)
    year = np.asarray(years, dtype=np.int64)
    epsg = np.array([utm_epsg(a, b) for a, b in zip(lon, lat, strict=True)], dtype=np.int64)
    xs = np.empty_like(lon)
    ys = np.empty_like(lat)
    for e in np.unique(epsg):
        m = epsg == e
        xs[m], ys[m] = Transformer.from_crs(4326, int(e), always_xy=True).transform(lon[m], lat[m])
    cx = np.floor(xs / group_m).astype(np.int64)
    cy = np.floor(ys / group_m).astype(np.int64)
    groups: dict[tuple[int, int, int, int], list[int]] = {}
    for i in range(len(lon)):
        groups.setdefault((int(epsg[i]), int(year[i]), int(cx[i]), int(cy[i])), []).append(i)
    out = []
    for key in sorted(groups):
        rows = np.asarray(groups[key], dtype=np.int64)
        b = np.array([patch_bounds(xs[i], ys[i], patch_size, res) for i in rows])
        pad = margin_px * res
        bounds = (b[:, 0].min() - pad, b[:, 1].min() - pad, b[:, 2].max() + pad, b[:, 3].max() + pad)
        out.append(SampleGroup(key=key, epsg=key[0], year=key[1], rows=rows, x=xs[rows], y=ys[rows],
                               bounds=tuple(float(v) for v in bounds)))  # type: ignore[arg-type]
    return out


def pixel_of(transform: Sequence[float], x: float, y: float) -> tuple[int, int]:
    """(row, col) of the pixel containing (x, y) on a north-up grid with affine ``transform`` (a, b, c, d, e, f)."""
    a, _, c, _, e, f = transform[:6]
    col = int(np.floor(round((x - c) / a, 9)))
    row = int(np.floor(round((y - f) / e, 9)))
    return row, col


def cut_patches(arrays: dict[str, np.ndarray], transform: Sequence[float], x: Sequence[float] | np.ndarray,
                y: Sequence[float] | np.ndarray, patch_size: int) -> dict[str, np.ndarray]:
    """Cut each (C, H, W) or (H, W) array into (n, C, P, P) / (n, P, P) patches centred on the points.

    ``transform`` is the arrays' north-up affine (pixel edges on multiples of the pixel size, as from
    :func:`~socmap.eo.composite.aligned_geobox`). Pixels of a patch outside the arrays are NaN (False for bool
    arrays), so a patch that falls off the composite is still cut and the caller decides what that means.
    """
    res = float(transform[0])
    out: dict[str, np.ndarray] = {}
    n = len(x)
    for name, arr in arrays.items():
        lead = arr.shape[:-2]
        fill = False if arr.dtype == bool else np.nan
        dtype = bool if arr.dtype == bool else np.float32
        res_arr = np.full((n, *lead, patch_size, patch_size), fill, dtype=dtype)
        H, W = arr.shape[-2:]
        for k in range(n):
            x0, yt = patch_origin(x[k], y[k], patch_size, res)
            r0, c0 = pixel_of(transform, x0 + res / 2, yt - res / 2)
            rs, cs = max(r0, 0), max(c0, 0)
            re_, ce = min(r0 + patch_size, H), min(c0 + patch_size, W)
            if rs < re_ and cs < ce:
                res_arr[k, ..., rs - r0:re_ - r0, cs - c0:ce - c0] = arr[..., rs:re_, cs:ce]
        out[name] = res_arr
    return out
