"""Writers for the map products: per-tile COGs, VRT mosaics, the zarr v3 store, the STAC Item, quick-looks.

Every file is written under a temporary sibling name and renamed (:func:`socmap.io.atomic_path`). A tile's COGs
are written by the task that computed the tile, whole, with GDAL's COG driver (tiled, deflate, overviews,
nodata; band description, unit and scale kept), so no file is ever opened twice for update. The zarr store
is created once as a template over the whole grid (metadata only) and then filled tile by tile with region
writes whose chunks are the tiles, so two tiles never touch the same chunk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from socmap.config import GridConfig
from socmap.io import MAP_COG_DIR, atomic_path
from socmap.mapping.tiles import Tile, grid_tiles, grid_transform

__all__ = ["COMPANIONS", "LAYERS", "MEMBER_LAYER", "LayerSpec", "cog_path", "core_validator", "map_layers",
           "quicklook_png", "stac_item", "write_tile_cogs", "write_vrt", "zarr_chunk_files", "zarr_consolidate",
           "zarr_template", "zarr_write_tile"]

AOA_NODATA = 255


@dataclass(frozen=True)
class LayerSpec:
    """One map layer: its name, what it is, its unit and data type."""

    name: str
    title: str
    unit: str
    dtype: str = "float32"
    short: str = ""
    """A few words for plot titles."""


LAYERS: dict[str, LayerSpec] = {s.name: s for s in (
    LayerSpec("soc_mean", "Topsoil (0-30 cm) SOC, expectation of the calibrated ensemble predictive (use for "
                          "zone means and carbon stocks)", "g/kg", short="topsoil SOC (0-30 cm), expected value"),
    LayerSpec("soc_median", "Topsoil (0-30 cm) SOC, median of the calibrated predictive (expm1 of the log-scale "
                            "mean; below soc_mean)", "g/kg", short="topsoil SOC (0-30 cm), median"),
    LayerSpec("aleatoric_var", "Aleatoric variance of SOC (data noise), its share of the log-normal variance",
              "(g/kg)^2",
              short="aleatoric variance of SOC"),
    LayerSpec("epistemic_var", "Epistemic variance of SOC (ensemble disagreement), its share of the log-normal "
                               "variance", "(g/kg)^2",
              short="epistemic variance of SOC"),
    LayerSpec("total_sd", "Total standard deviation of SOC (aleatoric + epistemic)", "g/kg",
              short="total standard deviation of SOC"),
    LayerSpec("q05", "SOC 5 % bound (calibrated predictive on log(1 + SOC), total variance)", "g/kg",
              short="SOC 5 % bound"),
    LayerSpec("q95", "SOC 95 % bound (calibrated predictive on log(1 + SOC), total variance)", "g/kg",
              short="SOC 95 % bound"),
    LayerSpec("di", "Dissimilarity index (Meyer and Pebesma 2021): distance to the nearest training site in the "
                    "importance-weighted standardised covariate space, over the training sites' mean distance", "1",
              short="dissimilarity index"),
    LayerSpec("aoa", "Area of applicability flag: 1 = outside (dissimilarity index di above the cross-validated "
                     "threshold), 0 = inside", "1", "uint8", short="outside the area of applicability"),
)}
"""Every layer ``socmap predict`` can write (``output.variables`` picks a subset). ``soc_mean`` is the expectation
of the calibrated predictive (:meth:`socmap.inference.EnsemblePrediction.mean_gkg`: the members' mean of their
log-normal means, with the variance in it capped at the bundle's ``mean_var_cap`` where one was fitted),
``soc_median`` its median (expm1 of the log-scale mean); the variances are the calibrated log-normal's exact
variance (:meth:`socmap.inference.EnsemblePrediction.var_gkg`), split between aleatoric and epistemic in proportion to
their log-scale parts, and the bounds the calibrated predictive's quantiles about the median: log-normal, or
log-Student-t where the bundle fitted ``tail_dof`` (same total variance). ``di`` and ``aoa`` are the area of
applicability (:mod:`socmap.mapping.aoa`); ``aoa`` always comes with ``di`` (:func:`map_layers`)."""

COMPANIONS = {"aoa": ("di",)}
"""Layers written whenever the key layer is: the flag's DI, so a user can see how far outside a cell is."""


def map_layers(variables: Sequence[str]) -> list[str]:
    """The layers a map of ``output.variables`` holds, in :data:`LAYERS` order: ``variables`` and their
    :data:`COMPANIONS`."""
    chosen = set(variables) | {c for v in variables for c in COMPANIONS.get(v, ())}
    return [name for name in LAYERS if name in chosen]

MEMBER_LAYER = LayerSpec("soc_member", "Topsoil (0-30 cm) SOC under each ensemble member, calibrated expectation "
                                       "(members spread about the ensemble by the temperature T; their mean is "
                                       "soc_mean)", "g/kg",
                         short="SOC per ensemble member")
"""The optional (member, y, x) layer of the zarr store (``output.member_maps``): each member's map, coherent in
space, so the spread of a zone mean over members carries the spatial correlation of the epistemic error
(``socmap aggregate``). Not written as COGs."""


def layer_nodata(name: str, nodata: float) -> float:
    """The layer's no-data value: 255 for the uint8 flag, ``nodata`` for the float layers."""
    return AOA_NODATA if LAYERS[name].dtype == "uint8" else nodata


def cog_path(root: Path, layer: str, tile_id: str) -> Path:
    return root / MAP_COG_DIR / layer / f"{layer}_{tile_id}.tif"


def _blocksize(tile: Tile) -> int:
    """A power-of-two block edge of at most half the tile (so the COG has at least one overview), 16..512."""
    edge = max(tile.nrows, tile.ncols)
    b = 16
    while b * 2 <= min(512, edge // 2):
        b *= 2
    return b


def write_tile_cogs(root: Path, grid: GridConfig, tile: Tile, layers: dict[str, np.ndarray], nodata: float,
                    tags: dict[str, str]) -> list[Path]:
    """Write one COG per layer for ``tile`` (arrays (nrows, ncols), no-data already filled); return the paths."""
    import logging


    # GDAL's COG driver lists BLOCKSIZE >= 128 in its option check and logs a warning for smaller tiles' blocks,
    # yet writes them (cog_validate passes): keep that noise out of the user's terminal
    gdal_log = logging.getLogger("rasterio._env")
    level = gdal_log.level
    gdal_log.setLevel(logging.ERROR)
    try:
        return _write_tile_cogs(root, grid, tile, layers, nodata, tags)
    finally:
        gdal_log.setLevel(level)


def _write_tile_cogs(root: Path, grid: GridConfig, tile: Tile, layers: dict[str, np.ndarray], nodata: float,
                     tags: dict[str, str]) -> list[Path]:
    import rasterio

    paths = []
    for name, arr in layers.items():
        spec = LAYERS[name]
        nd = layer_nodata(name, nodata)
        final = cog_path(root, name, tile.id)
        prof = {"driver": "COG", "width": tile.ncols, "height": tile.nrows, "count": 1, "dtype": spec.dtype,
                "crs": grid.crs, "transform": tile.transform(grid), "nodata": nd, "blocksize": _blocksize(tile),
                "compress": "deflate", "overview_resampling": "nearest" if spec.dtype == "uint8" else "average"}
        with atomic_path(final) as tmp:
            with rasterio.open(tmp, "w", **prof) as ds:
                ds.write(arr.astype(spec.dtype), 1)
                ds.set_band_description(1, spec.title)
                ds.set_band_unit(1, spec.unit)
                ds.scales, ds.offsets = (1.0,), (0.0,)
                ds.update_tags(1, layer=name, units=spec.unit, scale="1", offset="0")
                ds.update_tags(tile=tile.id, **tags)
            _check_written(tmp, final, arr.astype(spec.dtype))
        paths.append(final)
    return paths


def _check_written(tmp: Path, final: Path, arr: np.ndarray) -> None:
    """Read the written COG back: GDAL reports a full disk or a file-size limit only as a logged libtiff error and
    leaves a truncated file, which must never be renamed into place (nor recorded as a finished tile)."""
    import errno

    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(tmp) as ds:
            ok = np.array_equal(ds.read(1), arr, equal_nan=arr.dtype.kind == "f")
    except (RasterioError, OSError):
        ok = False
    if not ok:
        raise OSError(errno.ENOSPC, f"{final.name} could not be written whole (disk full or over a file size "
                                    "limit?)", str(final.parent))


def write_vrt(root: Path, grid: GridConfig, layer: str, nodata: float) -> Path | None:
    """``root/<layer>.vrt`` over the whole grid, with every tile COG of ``layer`` that exists; None if none."""
    from pyproj import CRS

    spec = LAYERS[layer]
    nd = layer_nodata(layer, nodata)
    rows, cols = grid.shape
    tr = grid_transform(grid)
    gdal_type = {"float32": "Float32", "uint8": "Byte"}[spec.dtype]
    sources = []
    for t in grid_tiles(grid):
        p = cog_path(root, layer, t.id)
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        sources.append(
            f'    <ComplexSource>\n      <SourceFilename relativeToVRT="1">{escape(rel)}</SourceFilename>\n'
            f"      <SourceBand>1</SourceBand>\n"
            f'      <SourceProperties RasterXSize="{t.ncols}" RasterYSize="{t.nrows}" DataType="{gdal_type}" '
            f'BlockXSize="{_blocksize(t)}" BlockYSize="{_blocksize(t)}"/>\n'
            f'      <SrcRect xOff="0" yOff="0" xSize="{t.ncols}" ySize="{t.nrows}"/>\n'
            f'      <DstRect xOff="{t.col0}" yOff="{t.row0}" xSize="{t.ncols}" ySize="{t.nrows}"/>\n'
            f"      <NODATA>{nd:g}</NODATA>\n    </ComplexSource>\n")
    if not sources:
        return None
    wkt = CRS.from_user_input(grid.crs).to_wkt()
    xml = (f'<VRTDataset rasterXSize="{cols}" rasterYSize="{rows}">\n'
           f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(wkt)}</SRS>\n'
           f"  <GeoTransform>{tr.c!r}, {tr.a!r}, 0.0, {tr.f!r}, 0.0, {tr.e!r}</GeoTransform>\n"
           f'  <VRTRasterBand dataType="{gdal_type}" band="1">\n'
           f"    <Description>{escape(spec.title)}</Description>\n"
           f"    <NoDataValue>{nd:g}</NoDataValue>\n    <UnitType>{escape(spec.unit)}</UnitType>\n"
           f"    <Offset>0</Offset>\n    <Scale>1</Scale>\n"
           + "".join(sources) + "  </VRTRasterBand>\n</VRTDataset>\n")
    final = root / f"{layer}.vrt"
    with atomic_path(final) as tmp:
        tmp.write_text(xml)
    return final


# ------------------------------------------------------------------------------------------------- zarr
def zarr_template(store: Path, grid: GridConfig, layers: list[str], nodata: float, attrs: dict[str, Any], *,
                  members: int = 0) -> None:
    """Create the zarr v3 store over the whole grid (coordinates, CRS, metadata; no data chunks written).

    ``members`` > 0 adds :data:`MEMBER_LAYER` with dims (member, y, x), one chunk per tile holding every member.
    Chunks are the grid's tiles; the CRS is a CF ``grid_mapping`` variable ``spatial_ref`` (rioxarray), so
    ``xarray.open_zarr(...).rio.crs`` and other CF readers find it.
    """
    import dask.array as da
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr

    rows, cols = grid.shape
    t = grid.tile_size
    xmin, _, _, ymax = grid.bounds
    r = grid.resolution
    x = xmin + (np.arange(cols) + 0.5) * r
    y = ymax - (np.arange(rows) + 0.5) * r
    data_vars = {}
    for name in layers:
        spec = LAYERS[name]
        nd = layer_nodata(name, nodata)
        arr = da.full((rows, cols), nd, dtype=spec.dtype, chunks=(t, t))
        data_vars[name] = xr.DataArray(arr, dims=("y", "x"), attrs={"long_name": spec.title, "units": spec.unit})
    enc: dict[str, dict[str, Any]] = {
        name: {"_FillValue": np.array(layer_nodata(name, nodata), dtype=LAYERS[name].dtype), "chunks": (t, t)}
        for name in layers}
    if members > 0:
        m = MEMBER_LAYER
        arr = da.full((members, rows, cols), nodata, dtype=m.dtype, chunks=(members, t, t))
        data_vars[m.name] = xr.DataArray(arr, dims=("member", "y", "x"), attrs={"long_name": m.title, "units": m.unit})
        enc[m.name] = {"_FillValue": np.array(nodata, dtype=m.dtype), "chunks": (members, t, t)}
    ds = xr.Dataset(data_vars, coords={"y": ("y", y), "x": ("x", x)}, attrs=attrs)
    ds = ds.rio.write_crs(grid.crs).rio.write_transform(grid_transform(grid))
    ds = ds.rio.write_coordinate_system()
    for name in data_vars:
        ds[name].attrs["grid_mapping"] = "spatial_ref"
        ds[name].encoding["coordinates"] = "spatial_ref"  # so a plain open_zarr makes it a coordinate again
    with atomic_path(store) as tmp:
        ds.to_zarr(tmp, mode="w", compute=False, zarr_format=3, encoding=enc, consolidated=False)


def zarr_write_tile(store: Path, tile: Tile, layers: dict[str, np.ndarray]) -> None:
    """Write one tile's arrays into the store (region write; the tile is exactly one chunk). 2-D arrays are
    (y, x) layers; a 3-D array is (member, y, x)."""
    import xarray as xr

    ds = xr.Dataset({k: (("member", "y", "x") if v.ndim == 3 else ("y", "x"), v) for k, v in layers.items()})
    ds.to_zarr(store, region={"y": slice(tile.row0, tile.row0 + tile.nrows),
                              "x": slice(tile.col0, tile.col0 + tile.ncols)}, mode="r+", consolidated=False)


def zarr_consolidate(store: Path) -> None:
    """Consolidate the store's metadata into its root ``zarr.json`` (:func:`zarr.consolidate_metadata`), so
    ``xarray.open_zarr`` opens it with one read and no "no consolidated metadata" warning.

    zarr rewrites the root document in place; to keep that atomic, it consolidates a copy of the metadata
    documents alone (every ``zarr.json``, no chunks) and the new root document is renamed into place. Tile writes
    never change array metadata, so a resumed run's region writes leave the consolidated copy true, and the run
    consolidates again at its end.
    """
    import shutil
    import tempfile
    import warnings

    import zarr

    with tempfile.TemporaryDirectory(dir=store.parent, prefix=f".{store.name}.meta-") as td:
        copy = Path(td) / store.name
        for doc in store.rglob("zarr.json"):
            dst = copy / doc.relative_to(store)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(doc, dst)
        with warnings.catch_warnings():  # "not part of the zarr v3 specification": xarray reads it all the same
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            zarr.consolidate_metadata(str(copy), zarr_format=3)
        with atomic_path(store / "zarr.json") as tmp:
            shutil.copyfile(copy / "zarr.json", tmp)


def zarr_chunk_files(store: Path, grid: GridConfig, tile: Tile) -> list[Path]:
    """The chunk files of ``tile`` in every (y, x) or (..., y, x) array of the store (zarr v3 default keys
    ``<array>/c/<row>/<col>``, or ``<array>/c/<k>/<row>/<col>`` with a leading dimension such as ensemble members)
    that exist: an all-no-data chunk is not written at all."""
    i, j = str(tile.row0 // grid.tile_size), str(tile.col0 // grid.tile_size)
    out: list[Path] = []
    for arr in sorted(p for p in store.iterdir() if (p / "c").is_dir()):
        out += [p for p in [arr / "c" / i / j, *sorted(arr.glob(f"c/*/{i}/{j}"))] if p.is_file()]
    return out


# --------------------------------------------------------------------------------------------- quicklook
def quicklook_png(path: Path, values: np.ndarray, extent: tuple[float, float, float, float], layer: str, *,
                  title: str, crs_label: str) -> Path:
    """A PNG of one layer (NaN = no data) with a colour bar labelled with its unit; ``extent`` = (l, r, b, t).

    Drawn with matplotlib's object-oriented API on an Agg canvas: no pyplot (its import and figure manager cost
    about 0.1 s a run and it would switch the process's backend). The layout is fixed once (tight) and the figure
    then drawn once, into the PNG.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    spec = LAYERS[layer]
    finite = values[np.isfinite(values)]
    vmin, vmax = (np.nanpercentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
    h, w = values.shape
    fig = Figure(figsize=(7.5, 7.5 * max(0.4, min(2.5, h / max(w, 1)))), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    cmap = "YlOrBr" if layer.startswith("soc_") else "viridis"
    im = ax.imshow(np.ma.masked_invalid(values), extent=extent, cmap=cmap,
                   vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1, interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label(f"{layer} ({spec.unit})")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"x ({crs_label})")
    ax.set_ylabel(f"y ({crs_label})")
    fig.tight_layout()
    fig.set_layout_engine(None)  # the layout is done: savefig then draws once instead of twice
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


# ------------------------------------------------------------------------------------------------- STAC
def _raster_meta(path: Path) -> dict[str, Any] | None:
    """What the projection and raster extensions say of a raster file (COG or VRT), read from its header; None
    when GDAL cannot open it as a raster."""
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as ds:
            t, crs = ds.transform, ds.crs
            epsg = crs.to_epsg() if crs is not None else None
            return {"epsg": epsg, "code": f"EPSG:{epsg}" if epsg else None,
                    "wkt2": None if epsg or crs is None else crs.to_wkt(),
                    "shape": [ds.height, ds.width], "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
                    "bbox": list(ds.bounds), "dtype": ds.dtypes[0], "nodata": ds.nodata, "unit": ds.units[0] or None,
                    "scale": ds.scales[0], "offset": ds.offsets[0], "res": abs(t.a)}
    except (RasterioError, OSError):
        return None


def _asset_extensions(asset: Any, path: Path, checksums: dict[str, str]) -> None:
    """Declare on ``asset`` (already added to its Item) the projection, raster and file extensions, from the file at
    ``path``: proj:code and proj:epsg (or proj:wkt2 where the CRS has no EPSG code), proj:shape, proj:transform and
    proj:bbox in the map's CRS; raster:bands with nodata, data type, unit, scale and offset; file:size (bytes) and
    file:checksum (sha2-256 multihash). ``checksums`` (relative path -> sha256 hex, from the tile records) spares
    reading each tile COG again.

    Both CRS fields, because readers differ: odc-stac and GDAL read ``proj:code`` (or ``proj:epsg``), stackstac
    (0.5) reads only ``proj:epsg``; :func:`stac_item` declares the projection extension's v1.2.0 schema, the one
    version that defines both."""
    from pystac.extensions.file import FileExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension

    from socmap.mapping.records import sha256_file

    if not path.is_file():
        return
    rel = asset.href.removeprefix("./")
    digest = checksums.get(rel) or sha256_file(path)
    FileExtension.ext(asset, add_if_missing=True).apply(size=path.stat().st_size, checksum=f"1220{digest}")
    meta = _raster_meta(path) if asset.media_type is None or "tiff" in asset.media_type else None
    if meta is None:
        return
    ProjectionExtension.ext(asset, add_if_missing=True).apply(
        code=meta["code"], wkt2=meta["wkt2"], shape=meta["shape"], transform=meta["transform"], bbox=meta["bbox"])
    if meta["epsg"]:
        asset.extra_fields[PROJ_EPSG] = int(meta["epsg"])
    band = RasterBand.create(nodata=meta["nodata"], data_type=DataType(meta["dtype"]), unit=meta["unit"],
                             scale=meta["scale"], offset=meta["offset"], spatial_resolution=meta["res"])
    RasterExtension.ext(asset, add_if_missing=True).apply([band])


def _tile_checksums(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file the finished tiles recorded (``tiles_done/*.json``)."""
    from socmap.io import MAP_DONE_DIR

    out: dict[str, str] = {}
    for rec in sorted((root / MAP_DONE_DIR).glob("*.json")):
        try:
            files = json.loads(rec.read_text()).get("files", {})
        except (OSError, ValueError):
            continue
        if isinstance(files, dict):
            out.update({str(k): str(v) for k, v in files.items()})
    return out


PROJ_EPSG = "proj:epsg"
PROJ_SCHEMA = "https://stac-extensions.github.io/projection/v1.2.0/schema.json"
"""The projection extension's schema the Item declares: v1.2.0 defines ``proj:code`` and ``proj:epsg`` both (v2.0.0
dropped ``proj:epsg``, which stackstac still needs)."""


def core_validator() -> Any:
    """pystac's JSON-schema validator on the STAC core schemas pystac bundles, skipping the extensions' schemas
    (they live on stac-extensions.github.io; offline machines cannot fetch them)."""
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    class CoreOnly(JsonSchemaSTACValidator):
        def validate_extension(self, *args: Any, **kwargs: Any) -> None:
            return None

    return CoreOnly()


def stac_item(path: Path, *, item_id: str, bbox_lonlat: tuple[float, float, float, float], year: int,
              properties: dict[str, Any], assets: dict[str, dict[str, Any]]) -> Path:
    """Write the map's STAC Item, each asset with the projection, raster and file extensions where they apply
    (:func:`_asset_extensions`), so odc-stac, stackstac and GDAL place and read the layers with no other metadata
    (no CRS to pass). pystac (1.12 on) migrates the projection fields to the extension's v2.0.0 when it reads the
    file, dropping ``proj:epsg``: stackstac then needs the Item's JSON itself (a dict, or
    ``pystac.Item.from_dict(d, migrate=False)``).

    ``assets``: key -> {"href" (relative to the item), "media_type", "roles", "title", "description", and
    "rewritten": True for a file written after the Item (no size or checksum declared)}. A raster
    asset's key is its band name (``odc.stac.load([item], bands=["soc_mean"])``). The VRT mosaics carry no media
    type (none is registered for GDAL VRT); their ``data`` role marks them as rasters for odc-stac. The Item is
    validated against the STAC core schema bundled with pystac (the extensions' schemas live online).
    """
    from datetime import UTC, datetime

    import pystac

    w, s, e, n = bbox_lonlat
    geom = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    item = pystac.Item(id=item_id, geometry=geom, bbox=[w, s, e, n], datetime=None,
                       start_datetime=datetime(year, 1, 1, tzinfo=UTC),
                       end_datetime=datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC), properties=dict(properties))
    sums = _tile_checksums(path.parent)
    for key, a in assets.items():
        asset = pystac.Asset(href=a["href"], media_type=a.get("media_type"), roles=a.get("roles"),
                             title=a.get("title"), description=a.get("description"))
        item.add_asset(key, asset)
        if not a.get("rewritten"):
            _asset_extensions(asset, path.parent / a["href"], sums)
    item.stac_extensions = [PROJ_SCHEMA if "/projection/" in u else u for u in item.stac_extensions]
    item.validate(validator=core_validator())
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False), indent=1) + "\n")
    return path
