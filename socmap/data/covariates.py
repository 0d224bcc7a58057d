"""Sample raster covariates at points, with a nearest-valid-cell fallback (paper 4.3).

A point takes the value of the cell it falls in (no interpolation, so categorical layers keep their codes).
Where that cell is no-data (a coastal point on a land-only layer, a hole), the nearest valid cell within
``search_px`` cells (Euclidean distance in cells) is used; beyond that the value is NaN and the imputer fills
it later. Rasters are read in windows of ``chunk_px`` cells around the points they hold, so a large COG is
read only where points are; local paths and http(s) URLs (read through GDAL's /vsicurl/) both work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from socmap.errors import DataError, SourceError

__all__ = ["LayerSample", "sample_raster"]


@dataclass
class LayerSample:
    """What sampling one layer gave."""

    name: str
    path: str
    n_points: int
    n_direct: int
    """Points whose own cell is valid."""
    n_nearest: int
    """Points on a no-data cell that took the nearest valid cell within ``search_px``."""
    n_missing: int
    """Points left NaN (outside the raster, or no valid cell within ``search_px``)."""
    crs: str
    res: tuple[float, float]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _open(path: str) -> Any:
    """Open a raster. A local path that does not exist is bad input (:class:`DataError`); any other open failure
    (a URL or object-store path that answers an error or times out, an unreadable file) is a
    :class:`SourceError`, which a retry or a later run may cure."""
    import os

    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        local = "://" not in path and not path.startswith("/vsi")
        kind = DataError if local and not os.path.exists(path) else SourceError
        raise kind(f"{path}: cannot open the raster ({' '.join(str(exc).split())[:200]}); "
                   "check the covariate path or URL in the pipeline") from None


def sample_raster(path: str, lon: np.ndarray, lat: np.ndarray, *, name: str = "", band: int = 1,
                  scale: float = 1.0, offset: float = 0.0, search_px: int, min_coverage: float,
                  chunk_px: int = 1024) -> tuple[np.ndarray, LayerSample]:
    """Values of ``band`` of the raster at (lon, lat) WGS 84 points, times ``scale`` plus ``offset``.

    ``search_px`` (raster cells) and ``min_coverage`` (fraction of the points) come from the pipeline's
    ``data.covariate_search_px`` and ``data.covariate_min_coverage``: where a point falls on no-data the nearest
    valid cell within ``search_px`` is taken (0: none).

    Returns the values (float64, NaN where none) and a :class:`LayerSample` with counts.

    Raises:
        DataError: the raster cannot be opened, has no CRS or no such band, or gives a value for fewer than
            ``min_coverage`` of the points (it does not cover them); the message names the file.
    """
    lon = np.asarray(lon, float)
    lat = np.asarray(lat, float)
    n = len(lon)
    out = np.full(n, np.nan)
    with _open(path) as ds:
        _check_band(ds, path, band, name)
        row, col, inside = _raster_cells(ds, lon, lat)
        n_direct = n_nearest = 0
        for sel in _chunk_groups(row, col, np.flatnonzero(inside), ds.width, chunk_px):
            direct, nearest = _sample_window(ds, band, sel, row, col, search_px, out)
            n_direct += direct
            n_nearest += nearest
        crs = ds.crs.to_string()
        res = (float(ds.res[0]), float(ds.res[1]))
        bounds = ds.bounds
    out = out * scale + offset
    n_ok = int(np.isfinite(out).sum())
    info = LayerSample(name=name, path=path, n_points=n, n_direct=n_direct, n_nearest=n_nearest,
                       n_missing=n - n_ok, crs=crs, res=res)
    if n and n_ok < min_coverage * n:
        raise DataError(
            f"{path}: the raster does not cover the points: only {n_ok} of {n} points get a value "
            f"(raster bounds {tuple(round(b, 4) for b in bounds)} in {crs}; points lon {np.nanmin(lon):.3f}.."
            f"{np.nanmax(lon):.3f}, lat {np.nanmin(lat):.3f}..{np.nanmax(lat):.3f}); use a layer covering "
            "the "
            f"survey or lower data.covariate_min_coverage ({min_coverage})")
    return out, info


def _check_band(ds: Any, path: str, band: int, name: str) -> None:
    """The raster must have a CRS (to place the points) and the band asked for."""
    if ds.crs is None:
        raise DataError(f"{path}: the raster has no CRS; cannot place the points on it")
    if not 1 <= band <= ds.count:
        raise DataError(f"{path}: no band {band} (the raster has {ds.count}); "
                        f"fix 'band' of layer {name!r}")


def _raster_cells(ds: Any, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, inside) of each (lon, lat) point on the open raster ``ds``: the cell it falls in (-1 where it
    cannot be projected) and whether that cell lies on the raster."""
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", ds.crs, always_xy=True)
    with np.errstate(all="ignore"):
        x, y = tr.transform(lon, lat, errcheck=False)
    a, b, c, d, e, f = (~ds.transform)[:6]
    x, y = np.asarray(x), np.asarray(y)
    colf, rowf = a * x + b * y + c, d * x + e * y + f
    ok = np.isfinite(colf) & np.isfinite(rowf)
    row = np.where(ok, np.floor(np.where(ok, rowf, 0)), -1).astype(np.int64)
    col = np.where(ok, np.floor(np.where(ok, colf, 0)), -1).astype(np.int64)
    inside = ok & (row >= 0) & (row < ds.height) & (col >= 0) & (col < ds.width)
    return row, col, inside


def _chunk_groups(row: np.ndarray, col: np.ndarray, idx_in: np.ndarray, width: int,
                  chunk_px: int) -> list[np.ndarray]:
    """The points ``idx_in`` grouped by the ``chunk_px`` x ``chunk_px`` raster chunk their cell lies in (each
    group is read as its points' bounding box plus the search margin: a striped GTiff decompresses every row a
    window touches, so a map tile reads its own rows, not a chunk's)."""
    if not len(idx_in):
        return []
    n_cc = -(-width // chunk_px)
    key = (row[idx_in] // chunk_px) * n_cc + col[idx_in] // chunk_px
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    return [idx_in[grp] for grp in np.split(order, cuts)]


def _sample_window(ds: Any, band: int, sel: np.ndarray, row: np.ndarray, col: np.ndarray, search_px: int,
                   out: np.ndarray) -> tuple[int, int]:
    """Read the window around the points ``sel`` and set their values in ``out``: their own cell's, else the
    nearest valid cell's within ``search_px``. Returns how many took their own cell and how many a nearest."""
    from rasterio.windows import Window
    from scipy.ndimage import distance_transform_edt

    r0 = max(0, int(row[sel].min()) - search_px)
    c0 = max(0, int(col[sel].min()) - search_px)
    r1 = min(ds.height, int(row[sel].max()) + 1 + search_px)
    c1 = min(ds.width, int(col[sel].max()) + 1 + search_px)
    arr = ds.read(band, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
    data = np.asarray(arr.astype(float).filled(np.nan))
    invalid = np.ma.getmaskarray(arr) | ~np.isfinite(data)
    nodata = ds.nodata
    if nodata is not None and np.isfinite(nodata):
        invalid |= data == nodata
    lr, lc = row[sel] - r0, col[sel] - c0
    good = ~invalid[lr, lc]
    out[sel[good]] = data[lr[good], lc[good]]
    bad = ~good
    if not (bad.any() and (~invalid).any() and search_px > 0):
        return int(good.sum()), 0
    dist, (ir, ic) = distance_transform_edt(invalid, return_indices=True)
    br, bc = lr[bad], lc[bad]
    near = dist[br, bc] <= search_px
    tgt = sel[bad][near]
    out[tgt] = data[ir[br[near], bc[near]], ic[br[near], bc[near]]]
    return int(good.sum()), int(near.sum())
