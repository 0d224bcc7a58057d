"""Annual composites of a bounding box on a regular grid (lazy, dask-backed), reusable by the mapping job.

:func:`annual_composite` is the public entry: search the three collections over a box, then build a lazy
:class:`AnnualComposite` whose dataset holds, on an ``EPSG:<utm>`` grid of ``resolution_m`` pixels snapped to
multiples of the pixel size (so any two boxes on the same CRS share pixel edges and give identical values where
they overlap):

* ``S2L2A`` (band_s2, y, x) float32 DN: per-pixel median over the year's clear observations of every scene with
  ``eo:cloud_cover`` below the limit; SCL classes in :data:`~socmap.eo.bands.S2_INVALID_SCL` masked; the
  baseline-04.00 +1000 removed per scene from ``s2:processing_baseline``; 20/60 m bands resampled bilinearly,
  SCL by nearest neighbour.
* ``S1GRD`` (band_s1, y, x) float32 dB: median of 10 log10 gamma0 over the year's scenes.
* ``DEM`` (band_dem, y, x) float32 m: GLO-30 resampled bilinearly from its 1 arc-second EPSG:4326 grid;
  ``slope_deg`` and ``aspect_deg`` (y, x) from it by Horn's method on the 10 m grid.
* ``s2_cover``, ``s1_cover``, ``dem_cover`` (y, x) bool: some scene has data there (clouds or not), which tells a
  patch that falls off the raster from one that is merely cloudy; ``s2_clear`` (y, x) int16: clear observations.

``series`` keeps the masked S2 time series (time, band, y, x) lazily, for per-point percentiles and phenology.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from socmap.eo.bands import DEM_ASSET, S1_ASSETS, S1_BANDS, S2_BANDS, S2_INVALID_SCL, s2_offset

if TYPE_CHECKING:
    from socmap.config import StacConfig
    from socmap.eo.stac import StacSource

__all__ = ["AnnualComposite", "SceneSet", "aligned_geobox", "annual_composite", "build_composite",
           "horn_terrain", "search_scenes"]

Bounds = tuple[float, float, float, float]


@dataclass
class SceneSet:
    """The STAC items that go into one annual composite, per modality (sorted by time, then id)."""

    s2: list[Any] = field(default_factory=list)
    s1: list[Any] = field(default_factory=list)
    dem: list[Any] = field(default_factory=list)

    def ids(self) -> dict[str, list[str]]:
        return {"S2L2A": [i.id for i in self.s2], "S1GRD": [i.id for i in self.s1], "DEM": [i.id for i in self.dem]}


@dataclass
class AnnualComposite:
    """A lazy annual composite (see the module docstring for the variables) and the scenes it was built from."""

    ds: Any
    """xarray.Dataset, dask-backed, dims (band?, y, x) on ``geobox``."""
    series: Any
    """xarray.DataArray (time, band, y, x) float32 DN, SCL-masked S2 scenes (None if there are none)."""
    scenes: SceneSet
    geobox: Any
    year: int


def aligned_geobox(bounds: Bounds, epsg: int, resolution_m: float) -> Any:
    """An ``odc.geo`` GeoBox covering ``bounds`` (x0, y0, x1, y1 in ``EPSG:epsg``), pixel edges on multiples of
    ``resolution_m``: boxes built this way on the same CRS share one pixel lattice."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    r = float(resolution_m)
    x0 = np.floor(bounds[0] / r) * r
    y1 = np.ceil(bounds[3] / r) * r
    nx = int(np.ceil((bounds[2] - x0) / r - 1e-9))
    ny = int(np.ceil((y1 - bounds[1]) / r - 1e-9))
    return GeoBox((ny, nx), Affine(r, 0.0, x0, 0.0, -r, y1), f"EPSG:{epsg}")


def bounds_lonlat(bounds: Bounds, epsg: int) -> tuple[float, float, float, float]:
    """WGS84 bounding box of a projected box (densified edges, so it contains the box)."""
    from pyproj import Transformer

    t = Transformer.from_crs(epsg, 4326, always_xy=True)
    return tuple(float(v) for v in t.transform_bounds(*bounds, densify_pts=21))  # type: ignore[return-value]


def search_scenes(source: StacSource, stac_cfg: StacConfig, bounds: Bounds, epsg: int, year: int) -> SceneSet:
    """Search S2 (cloud-filtered), S1 and the DEM over a projected box for one year (DEM: any date)."""
    ll = bounds_lonlat(bounds, epsg)
    return SceneSet(
        s2=source.search(stac_cfg.s2_collection, ll, year, max_cloud_pct=stac_cfg.max_cloud_pct),
        s1=source.search(stac_cfg.s1_collection, ll, year),
        dem=source.search(stac_cfg.dem_collection, ll, None),
    )


# ------------------------------------------------------------------------------------------ terrain
def horn_terrain(z: np.ndarray, res: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope (degrees, >= 0) and aspect (degrees clockwise from north, the downslope direction; NaN where flat)
    of a north-up elevation grid ``z`` (m) with square pixels of ``res`` m, by Horn's (1981) 3 x 3 method.
    Edges are padded by replication, so the output has the input's shape."""
    p = np.pad(np.asarray(z, dtype=np.float64), 1, mode="edge")
    a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]
    d, f = p[1:-1, :-2], p[1:-1, 2:]
    g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * res)  # rising to the east
    dzdn = ((a + 2 * b + c) - (g + 2 * h + i)) / (8.0 * res)  # rising to the north (row 0 is north)
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdn)))
    with np.errstate(invalid="ignore"):
        aspect = np.degrees(np.arctan2(-dzdx, -dzdn)) % 360.0
    aspect = np.where(np.hypot(dzdx, dzdn) < 1e-9, np.nan, aspect)
    return slope.astype(np.float32), aspect.astype(np.float32)


def _slope_block(z: np.ndarray, res: float) -> np.ndarray:
    return horn_terrain(z, res)[0]


def _aspect_block(z: np.ndarray, res: float) -> np.ndarray:
    return horn_terrain(z, res)[1]


# ------------------------------------------------------------------------------------------ loading
def _load(items: Sequence[Any], bands: Sequence[str], geobox: Any, chunk_px: int, resampling: Any,
          patch_url: Callable[[str], str] | None) -> Any:
    import odc.stac

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return odc.stac.load(list(items), bands=list(bands), geobox=geobox, groupby="solar_day",
                             chunks={"x": chunk_px, "y": chunk_px}, resampling=resampling, fail_on_error=True,
                             patch_url=patch_url)


def _nan_plane(geobox: Any, chunk_px: int, n: int | None = None, dtype: Any = np.float32) -> Any:
    import dask.array as da

    shape = tuple(geobox.shape) if n is None else (n, *tuple(geobox.shape))
    chunks = (chunk_px, chunk_px) if n is None else (n, chunk_px, chunk_px)
    fill = np.nan if np.dtype(dtype).kind == "f" else 0
    return da.full(shape, fill, dtype=dtype, chunks=chunks)


def build_composite(scenes: SceneSet, geobox: Any, year: int, *, chunk_px: int = 512,
                    patch_url: Callable[[str], str] | None = None) -> AnnualComposite:
    """Lazy annual composite of ``scenes`` on ``geobox`` (nothing is read until it is computed)."""
    import xarray as xr

    res = float(abs(geobox.resolution.x))
    coords = {"y": geobox.coords["y"].values, "x": geobox.coords["x"].values}
    data, series = _s2_layers(scenes, geobox, coords, chunk_px, patch_url)
    data.update(_s1_layers(scenes, geobox, chunk_px, patch_url))
    data.update(_dem_layers(scenes, geobox, res, chunk_px, patch_url))
    out = xr.Dataset(data, coords={**coords, "band_s2": [b.name for b in S2_BANDS],
                                   "band_s1": [b.name for b in S1_BANDS], "band_dem": ["DEM"]})
    out.attrs.update({"crs": str(geobox.crs), "transform": list(geobox.transform)[:6], "resolution_m": res,
                      "year": year, "items": scenes.ids()})
    return AnnualComposite(ds=out, series=series, scenes=scenes, geobox=geobox, year=year)


def _s2_layers(scenes: SceneSet, geobox: Any, coords: dict[str, np.ndarray], chunk_px: int,
               patch_url: Callable[[str], str] | None) -> tuple[dict[str, Any], Any]:
    """Sentinel-2: one load per processing-baseline offset, SCL-masked, concatenated along time. Returns the
    ``S2L2A`` median (DN), ``s2_clear`` (clear observations per pixel) and ``s2_cover`` layers, and the masked
    (time, band, y, x) series (None without scenes)."""
    import dask.array as da
    import xarray as xr

    if not scenes.s2:
        return {"S2L2A": (("band_s2", "y", "x"), _nan_plane(geobox, chunk_px, len(S2_BANDS))),
                "s2_clear": (("y", "x"), da.zeros(tuple(geobox.shape), dtype=np.int16, chunks=chunk_px)),
                "s2_cover": (("y", "x"), da.zeros(tuple(geobox.shape), dtype=bool, chunks=chunk_px))}, None
    s2_names = [b.name for b in S2_BANDS]
    by_offset: dict[float, list[Any]] = {}
    for it in scenes.s2:
        by_offset.setdefault(s2_offset(it.properties.get("s2:processing_baseline")), []).append(it)
    parts, covers = [], []
    resampling = {"*": "bilinear", "SCL": "nearest"}
    for off, its in sorted(by_offset.items()):
        ds = _load(its, [b.asset for b in S2_BANDS] + ["SCL"], geobox, chunk_px, resampling, patch_url)
        bad = ds["SCL"].isin(sorted(S2_INVALID_SCL))
        bands = []
        for b in S2_BANDS:
            raw = ds[b.asset]
            v = (raw.astype(np.float32) + np.float32(off)).where((raw > 0) & ~bad)
            bands.append(v)
        parts.append(xr.concat(bands, dim="band").assign_coords(band=s2_names).transpose("time", "band", "y", "x"))
        covers.append((ds[S2_BANDS[0].asset] > 0).any("time"))
    series = xr.concat(parts, dim="time").sortby("time") if len(parts) > 1 else parts[0]
    series = series.drop_vars([c for c in series.coords if c not in ("time", "band", "y", "x")])
    series = series.assign_coords(y=coords["y"], x=coords["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        med = series.chunk({"time": -1}).median("time", skipna=True)
    cover = covers[0]
    for c in covers[1:]:
        cover = cover | c
    return {"S2L2A": (("band_s2", "y", "x"), med.data.astype(np.float32)),
            "s2_clear": (("y", "x"), series.isel(band=0).notnull().sum("time").data.astype(np.int16)),
            "s2_cover": (("y", "x"), cover.data)}, series


def _s1_layers(scenes: SceneSet, geobox: Any, chunk_px: int,
               patch_url: Callable[[str], str] | None) -> dict[str, Any]:
    """Sentinel-1 (map-projected gamma0): the ``S1GRD`` median of dB and the ``s1_cover`` layer."""
    import dask.array as da
    import xarray as xr

    if not scenes.s1:
        return {"S1GRD": (("band_s1", "y", "x"), _nan_plane(geobox, chunk_px, len(S1_BANDS))),
                "s1_cover": (("y", "x"), da.zeros(tuple(geobox.shape), dtype=bool, chunks=chunk_px))}
    ds = _load(scenes.s1, list(S1_ASSETS), geobox, chunk_px, "bilinear", patch_url)
    dbs = []
    for key in S1_ASSETS:
        v = ds[key].astype(np.float32)
        v = v.where(v > 0)  # nodata (-32768) and non-positive power are not backscatter
        dbs.append(10.0 * np.log10(v))
    s1 = xr.concat(dbs, dim="band").transpose("time", "band", "y", "x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s1m = s1.chunk({"time": -1}).median("time", skipna=True)
    return {"S1GRD": (("band_s1", "y", "x"), s1m.data.astype(np.float32)),
            "s1_cover": (("y", "x"), s1.notnull().any("band").any("time").data)}


def _dem_layers(scenes: SceneSet, geobox: Any, res: float, chunk_px: int,
                patch_url: Callable[[str], str] | None) -> dict[str, Any]:
    """DEM and terrain: the ``DEM`` (m, mean over the DEM items), ``dem_cover``, ``slope_deg`` and ``aspect_deg``
    layers (Horn, on ``res`` m pixels)."""
    import dask.array as da

    if not scenes.dem:
        return {"DEM": (("band_dem", "y", "x"), _nan_plane(geobox, chunk_px, 1)),
                "dem_cover": (("y", "x"), da.zeros(tuple(geobox.shape), dtype=bool, chunks=chunk_px)),
                "slope_deg": (("y", "x"), _nan_plane(geobox, chunk_px)),
                "aspect_deg": (("y", "x"), _nan_plane(geobox, chunk_px))}
    ds = _load(scenes.dem, [DEM_ASSET], geobox, chunk_px, "bilinear", patch_url)
    z = ds[DEM_ASSET].astype(np.float32)
    nod = ds[DEM_ASSET].attrs.get("nodata")
    z = z.where(z != nod) if nod is not None else z
    z = z.where(z > -1000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zm = z.mean("time", skipna=True) if z.sizes["time"] > 1 else z.isel(time=0)
    zd = zm.data.astype(np.float32)
    return {"DEM": (("band_dem", "y", "x"), zd[None]),
            "dem_cover": (("y", "x"), da.isfinite(zd)),
            "slope_deg": (("y", "x"), da.map_overlap(_slope_block, zd, depth=1, boundary="nearest", res=res,
                                                      dtype=np.float32)),
            "aspect_deg": (("y", "x"), da.map_overlap(_aspect_block, zd, depth=1, boundary="nearest", res=res,
                                                       dtype=np.float32))}


def annual_composite(source: StacSource, stac_cfg: StacConfig, bounds: Bounds, epsg: int, year: int, *,
                     resolution_m: float, chunk_px: int) -> AnnualComposite:
    """Search and build the lazy annual composite of ``bounds`` (x0, y0, x1, y1 in ``EPSG:epsg``, m).

    ``resolution_m`` (pixel size, m) and ``chunk_px`` (Dask chunk edge, pixels) are the pipeline's
    ``imagery.resolution_m`` and ``imagery.chunk_px``.

    The mapping job calls this per map tile and computes ``.ds`` tile by tile; extraction calls it per group of
    nearby samples and cuts patches with :func:`socmap.eo.patches.cut_patches`.
    """
    scenes = search_scenes(source, stac_cfg, bounds, epsg, year)
    return build_composite(scenes, aligned_geobox(bounds, epsg, resolution_m), year, chunk_px=chunk_px)
