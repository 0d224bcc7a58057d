"""Sample raster covariates at points, with a nearest-valid-cell fallback (paper 4.3).

A point takes the value of the cell it falls in (no interpolation, so categorical layers keep their codes).
Where that cell is no-data (a coastal point on a land-only layer, a hole), the nearest valid cell within
``search_px`` cells (Euclidean distance in cells) is used; beyond that the value is NaN and the imputer fills
it later. Rasters are read in windows of ``chunk_px`` cells around the points they hold, so a large COG is
read only where points are; local paths and http(s) URLs (read through GDAL's /vsicurl/) both work.

A caller that samples the same raster many times over one area (the map job, tile after tile) can read the
area's window once with :func:`load_raster_window` and pass the :class:`InMemoryRaster` instead of the path: the
windows are then sliced from memory, with the same cell coordinates, so the values are the same bit for bit.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from socmap.errors import DataError, SourceError
from socmap.io import is_local_path

__all__ = ["MAX_CACHED_BYTES", "InMemoryRaster", "LayerSample", "load_raster_window",
           "sample_raster"]

MAX_CACHED_BYTES = 256 * 2**20
"""Largest window, bytes (cell values plus a one-byte mask per cell), that :func:`load_raster_window` holds in
memory for one layer. A 10 arc-minute layer over a continent is about 1 MB and is read once; a 250 m continental
layer (tens of GB) is not, and the map keeps reading it tile by tile, as each tile needs only its own part. The
limit is per layer and per map worker: a pipeline of n layers may hold up to n times this."""


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
        kind = DataError if is_local_path(path) and not os.path.exists(path) else SourceError
        raise kind(f"{path}: cannot open the raster ({' '.join(str(exc).split())[:200]}); "
                   "check the covariate path or URL in the pipeline") from None


class InMemoryRaster:
    """One band of a raster read once over a window, standing in for the open dataset where
    :func:`sample_raster` reads it.

    It keeps the full raster's geometry (``height``, ``width``, ``transform``, ``crs``, ``res``, ``bounds``,
    ``count``, ``nodata``), so cells and windows are computed in the full raster's coordinates exactly as on the
    file; :meth:`read` slices the held part. A window reaching outside the held part (a point the loader's bounds
    did not foresee) is read from ``path`` instead, and counted in :attr:`n_fallback_reads`. Read-only after
    construction, so threads may share it.
    """

    def __init__(self, path: str, band: int, data: np.ma.MaskedArray, row_off: int, col_off: int, *, height: int,
                 width: int, transform: Any, crs: Any, nodata: float | None, res: tuple[float, float], bounds: Any,
                 count: int) -> None:
        self.path, self.band = path, band
        self.data = data
        """(rows, cols) masked band values of the held window, the raster's own dtype (mask: no-data)."""
        self.row_off, self.col_off = row_off, col_off
        """Full-raster row and column, cells, of the held window's first cell."""
        self.height, self.width, self.transform, self.crs = height, width, transform, crs
        self.nodata, self.res, self.bounds, self.count = nodata, res, bounds, count
        self.n_fallback_reads = 0
        """How many windows were read from the file because they reached outside the held part."""

    @property
    def nbytes(self) -> int:
        """Bytes held: the values plus the one-byte mask per cell."""
        return int(self.data.size * (self.data.dtype.itemsize + 1))

    def __enter__(self) -> InMemoryRaster:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, band: int, window: Any, masked: bool = True) -> np.ndarray:
        """Band ``band`` over ``window`` (a :class:`rasterio.windows.Window` of whole cells, in full-raster
        coordinates), as ``rasterio``'s ``DatasetReader.read`` gives it."""
        r0, c0 = int(window.row_off), int(window.col_off)
        r1, c1 = r0 + int(window.height), c0 + int(window.width)
        h, w = self.data.shape
        if (band == self.band and self.row_off <= r0 <= r1 <= self.row_off + h
                and self.col_off <= c0 <= c1 <= self.col_off + w):
            part = self.data[r0 - self.row_off:r1 - self.row_off, c0 - self.col_off:c1 - self.col_off]
            return part if masked else np.asarray(part.data)
        self.n_fallback_reads += 1
        with _open(self.path) as ds:
            return ds.read(band, window=window, masked=masked)


def load_raster_window(path: str, band: int, bounds_wgs84: tuple[float, float, float, float], *, margin_px: int,
                       max_bytes: int = MAX_CACHED_BYTES) -> InMemoryRaster | None:
    """Band ``band`` of the raster at ``path`` read once over the area ``bounds_wgs84`` (west, south, east, north,
    degrees) plus ``margin_px`` cells on every side, clipped to the raster.

    ``margin_px`` should be at least the nearest-valid search radius (``data.covariate_search_px``) plus a cell or
    two, so every window :func:`sample_raster` asks for about points inside the area lies in the held part.

    Returns None where that window would hold more than ``max_bytes`` (values plus mask), or where the area does
    not meet the raster: such a layer is read per call from ``path``, as before.

    Raises:
        DataError: the raster cannot be opened or has no CRS or no such band (as :func:`sample_raster`).
        SourceError: a remote raster cannot be opened (a retry may cure it); read errors of GDAL come up as is.
    """
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    with _open(path) as ds:
        _check_band(ds, path, band, "")
        r0, c0, r1, c1 = 0, 0, ds.height, ds.width
        try:
            west, south, east, north = transform_bounds("EPSG:4326", ds.crs, *bounds_wgs84, densify_pts=21)
        except Exception:  # bounds that cannot be projected to the raster's CRS: hold the whole raster
            west = south = east = north = np.nan
        if all(np.isfinite([west, south, east, north])) and east > west and north > south:
            inv = ~ds.transform
            cols, rows = zip(*(inv * (x, y) for x in (west, east) for y in (south, north)), strict=True)
            r0 = max(0, int(np.floor(min(rows))) - margin_px)
            c0 = max(0, int(np.floor(min(cols))) - margin_px)
            r1 = min(ds.height, int(np.ceil(max(rows))) + margin_px)
            c1 = min(ds.width, int(np.ceil(max(cols))) + margin_px)
        # else (an area across the antimeridian, or not projectable): the whole raster, within the budget
        if r1 <= r0 or c1 <= c0:
            return None
        if (r1 - r0) * (c1 - c0) * (np.dtype(ds.dtypes[band - 1]).itemsize + 1) > max_bytes:
            return None
        data = ds.read(band, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
        data.flags.writeable = False
        return InMemoryRaster(path, band, data, r0, c0, height=ds.height, width=ds.width, transform=ds.transform,
                              crs=ds.crs, nodata=ds.nodata, res=(float(ds.res[0]), float(ds.res[1])),
                              bounds=ds.bounds, count=ds.count)


def sample_raster(path: str | InMemoryRaster, lon: np.ndarray, lat: np.ndarray, *, name: str = "", band: int = 1,
                  scale: float = 1.0, offset: float = 0.0, search_px: int, min_coverage: float,
                  chunk_px: int = 1024) -> tuple[np.ndarray, LayerSample]:
    """Values of ``band`` of the raster at (lon, lat) WGS 84 points, times ``scale`` plus ``offset``.

    ``path`` is the raster's path or URL, or an :class:`InMemoryRaster` of it (:func:`load_raster_window`), which
    gives the same values without opening the file; one holding another band is not used (the path is read).

    ``search_px`` (raster cells) and ``min_coverage`` (fraction of the points) come from the pipeline's
    ``data.covariate_search_px`` and ``data.covariate_min_coverage``: where a point falls on no-data the nearest
    valid cell within ``search_px`` is taken (0: none).

    Returns the values (float64, NaN where none) and a :class:`LayerSample` with counts.

    Raises:
        DataError: the raster cannot be opened, has no CRS or no such band, or gives a value for fewer than
            ``min_coverage`` of the points (it does not cover them); the message names the file.
    """
    held: InMemoryRaster | None = None
    if isinstance(path, InMemoryRaster):
        held, path = (path if path.band == band else None), path.path
    lon = np.asarray(lon, float)
    lat = np.asarray(lat, float)
    n = len(lon)
    out = np.full(n, np.nan)
    with held if held is not None else _open(path) as ds:
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
    tr = _transformer(ds.crs.to_wkt(), threading.get_ident())
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


@functools.lru_cache(maxsize=64)
def _transformer(crs_wkt: str, thread: int) -> Any:
    """The WGS 84 (lon, lat) -> ``crs_wkt`` transformer, built once per CRS and per thread ``thread`` (a
    :func:`threading.get_ident`): building one costs milliseconds, a map samples every layer of every tile, and a
    pyproj Transformer must not be shared between threads (tiles may run on several threads of one process)."""
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", crs_wkt, always_xy=True)


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
