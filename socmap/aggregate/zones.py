"""Zones to aggregate over: polygons from a GeoPackage, Shapefile or GeoJSON in any CRS, reprojected to the map's.

A zone's area (km2) is measured on its own geometry in an equal-area projection (EPSG:6933, World Cylindrical
Equal Area) before reprojection, so it does not depend on the map's CRS or cell size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from socmap.errors import DataError

__all__ = ["EQUAL_AREA_CRS", "read_zones"]

EQUAL_AREA_CRS = "EPSG:6933"


def read_zones(path: Path | str, field: str, crs: Any) -> Any:
    """The zones of ``path`` as a GeoDataFrame in ``crs`` with columns ``zone`` (the ``field`` value, as text),
    ``area_km2`` and ``geometry``; features without a polygonal geometry are dropped.

    Raises a one-line :class:`DataError` for a missing or unreadable file, one without a CRS or polygons, or a
    ``field`` that is not one of its columns.
    """
    import geopandas as gpd

    p = Path(path)
    if not p.exists():
        raise DataError(f"zones file {p} not found (a GeoPackage, Shapefile or GeoJSON of polygons)")
    try:
        gdf = gpd.read_file(p, engine="pyogrio")
    except Exception as exc:  # GDAL raises many kinds for a file it cannot read
        msg = " ".join(str(exc).split())[:160]
        raise DataError(f"cannot read zones file {p} as a GeoPackage, Shapefile or GeoJSON ({msg})") from None
    if field not in gdf.columns or field == gdf.geometry.name:
        cols = ", ".join(c for c in gdf.columns if c != gdf.geometry.name) or "none"
        raise DataError(f"--field {field!r} is not a column of {p} (columns: {cols})")
    if gdf.crs is None:
        raise DataError(f"zones file {p} has no CRS; set one (e.g. ogr2ogr -a_srs EPSG:4326)")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    gdf = gdf[gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if gdf.empty:
        raise DataError(f"zones file {p} holds no polygons")
    gdf = gdf.set_geometry(gdf.geometry.make_valid())
    out = gpd.GeoDataFrame({"zone": gdf[field].astype(str).to_numpy(),
                            "area_km2": gdf.geometry.to_crs(EQUAL_AREA_CRS).area.to_numpy() / 1e6},
                           geometry=gdf.geometry.to_crs(crs).to_numpy(), crs=crs)
    return out.reset_index(drop=True)
