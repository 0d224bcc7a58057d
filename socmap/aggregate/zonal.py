"""Which map cells a zone covers and with what weight: exact cell-coverage fractions (exactextract) times the
cells' own areas.

A cell's weight in a zone is ``coverage * cell area``: the share of the cell inside the polygon (exact, from
exactextract) times the cell's area in km2 (constant on a projected grid; on a geographic grid the area of a
1/6-degree cell shrinks with the cosine of latitude, so it is computed per row on the sphere of
:mod:`socmap.geo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from socmap.geo import EARTH_RADIUS_KM

__all__ = ["ZoneCells", "cell_areas_km2", "metres_per_unit", "zone_cells"]

MIN_COVERAGE = 1e-6
"""Cells covered by less than this fraction are dropped: a polygon edge that runs along a cell edge otherwise adds a
row of cells with round-off coverage (1e-10), which changes the cell count (not the mean) with the read window."""


@dataclass
class ZoneCells:
    """The grid cells one zone touches: row and column indices, the covered fraction of each cell (0..1]."""

    rows: np.ndarray
    cols: np.ndarray
    coverage: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def metres_per_unit(crs: Any) -> float:
    """Metres per unit of the first axis of the projected ``crs`` (1 for metres; 1 when the CRS names no axes)."""
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    return float(c.axis_info[0].unit_conversion_factor) if c.axis_info else 1.0


def cell_areas_km2(transform: Any, shape: tuple[int, int], crs: Any) -> np.ndarray:
    """(rows,) area of one cell per grid row, km2: ``|a e|`` (projected, in the CRS's linear unit) or the
    spherical band area ``R^2 dlon (sin lat_top - sin lat_bottom)`` (geographic, degrees)."""
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    rows = shape[0]
    if c.is_geographic:
        top = transform.f + transform.e * np.arange(rows)
        bot = top + transform.e
        dlon = np.radians(abs(transform.a))
        return np.asarray(EARTH_RADIUS_KM**2 * dlon * np.abs(np.sin(np.radians(top)) - np.sin(np.radians(bot))))
    return np.full(rows, abs(transform.a * transform.e) * metres_per_unit(c) ** 2 / 1e6)


def zone_cells(zones: Any, transform: Any, shape: tuple[int, int], crs: Any) -> list[ZoneCells]:
    """Per zone (row order of ``zones``, a GeoDataFrame in the grid's CRS) the cells it covers, with exact
    coverage fractions. Cells outside the grid are not listed."""
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource
    from pyproj import CRS

    rows, cols = shape
    xmin, ymax = transform.c, transform.f
    xmax, ymin = xmin + cols * transform.a, ymax + rows * transform.e
    src = NumPyRasterSource(np.zeros(shape, np.uint8), xmin, ymin, xmax, ymax,
                            srs_wkt=CRS.from_user_input(crs).to_wkt())
    vec = zones[["geometry"]].copy()
    vec["_zone_idx"] = np.arange(len(vec))
    res = exact_extract(src, vec, ["cell_id", "coverage"], include_cols=["_zone_idx"], output="pandas")
    by_zone = {int(r["_zone_idx"]): r for _, r in res.iterrows()}
    out = []
    for i in range(len(zones)):
        r = by_zone.get(i)
        ids = np.asarray(r["cell_id"] if r is not None else [], np.int64)
        cov = np.asarray(r["coverage"] if r is not None else [], np.float64)
        keep = cov > MIN_COVERAGE
        ids, cov = ids[keep], cov[keep]
        out.append(ZoneCells(rows=ids // cols, cols=ids % cols, coverage=cov))
    return out
