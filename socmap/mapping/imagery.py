"""Image inputs of map cells: per-tile annual composites, TerraMind embeddings (fast and exact), NDVI and elevation.

A map cell must get the image vector a training sample at the same place got from ``extract`` + ``embed``, so
everything here reuses those stages' pieces: :func:`socmap.eo.composite.search_scenes` and
:func:`~socmap.eo.composite.build_composite` (same SCL masking, baseline offset, S1 dB median, bilinear DEM) on an
:func:`~socmap.eo.composite.aligned_geobox` (same pixel lattice, so a pixel has the same value in a tile composite
and in a sample group's composite), :func:`~socmap.eo.patches.cut_patches` (the cell's pixel at row and column
``P // 2``) and the frozen :class:`~socmap.encoders.terramind.ImageEncoder`.

Composites (:func:`tile_composites`). Cells are projected to the UTM zone of their own lon/lat, as ``extract``
projects samples; the cells of a tile that share a zone get one composite covering their footprints plus half a
patch (``P // 2 + 1`` pixels, 113 at P = 224) on each side, at ``imagery.resolution_m``, padded on the right and
bottom so that whole windows of the fast mode tile it.

Embeddings (:func:`tile_image_embeddings`), (N, D) float32, NaN rows where ``ok`` is False (as in
``embeddings.zarr``); ``ok`` is ``extract``'s rule: each of S2L2A, S1GRD and DEM has a scene of the year (DEM: any)
covering every pixel of the cell's P x P patch.

* ``exact``: per cell, the P x P patch centred on it through the whole encoder (standardisation, TerraMind,
  modality merge, CLS-merge transformer, max-pool): identical to what ``embed`` gives a sample at that point.
* ``fast``: the tile composite is encoded once in P x P windows overlapping by ``P - stride`` pixels into a map of
  TerraMind's last-layer tokens (16 x 16 px each); every token is taken from the window whose centre is nearest to
  it. A cell's embedding is then the CLS-merge transformer + max-pool over the 14 x 14 tokens of its 224-px
  neighbourhood (the block of the token lattice nearest to its patch). The CLS-merge transformer mixes tokens
  (self-attention over the block), so it runs once per distinct block, not once per window; blocks are shared by
  the ~3 x 3 cells of 50 m that fall in one 16-px token step, which is where the time is saved.

  What fast approximates: (1) the neighbourhood is the cell's patch snapped to the 16-px token lattice (at most
  8 px = 80 m off); (2) each backbone token saw the context of the window it was taken from (TerraMind's
  attention spans the whole window) and that window's positional embedding, not the cell's own patch. Where a
  cell's patch is a window (same origin), both modes feed the CLS-merge the same tokens except for (2) at tokens
  another window owns.
* ``block``: between the two: the whole encoder on each distinct snapped patch (approximation (1) only), shared by
  the cells of one 16-px block.

Measured on demo-world tile (0, 0) (``benchmarks/map_imagery.py``: 100 x 100 cells of 50 m, 6006 with imagery,
P = 224, TerraMind tiny with the demo's seeded random weights, exact on every 5th row and column, 2 CPU cores
shared with other jobs): correlation with exact 0.73 for fast (RMSE 0.14 = 0.16 sd; 49 s per tile against
~3900 s for exact, 80x), 0.95 for block (11x), and 0.96 between exact patches one pixel apart; the tile's composite
took 20 s. Nearly all of fast mode's loss is (2), not the snapping: with random weights the token a window gives
depends strongly on its position and context; pretrained weights may behave better (not measured: no TerraMind
checkpoint here).

NDVI and elevation (:func:`tile_ndvi_elevation`): ``ndvi_p50`` (median over the year's clear S2 observations of
(B08 - B04) / (B08 + B04)) and ``elevation_m`` (the DEM, m) at the cell's pixel, exactly as ``extract`` computes
those image covariates for a sample (:mod:`socmap.eo.covariates`); the graph's ndvi and elevation relations need
them per node. :func:`tile_image_covariates` gives all of ``image_covariates.parquet``'s columns the same way, for
pipelines that feed them to the model as tabular features.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from socmap.config import PipelineConfig
from socmap.encoders.terramind import ImageEncoder
from socmap.encoders.weights import load_map_encoder
from socmap.errors import ConfigError, SourceError

__all__ = ["MODES", "TOKEN_PX", "TileComposite", "load_map_encoder", "tile_composites", "tile_image_covariates",
           "tile_image_embeddings", "tile_ndvi_elevation"]

log = logging.getLogger(__name__)

MODES = ("fast", "block", "exact")
TOKEN_PX = 16
"""TerraMind's patch (token) edge, pixels."""
_SOURCES_MAX = 4
"""STAC sources a process keeps open (least recently used dropped first): a map worker serves one pipeline at a
time, so a few cover a process that maps several."""
_SOURCES: OrderedDict[tuple, Any] = OrderedDict()


@dataclass
class TileComposite:
    """One tile's annual composite in one UTM zone (computed, numpy) and the cells it serves.

    ``arrays``: ``S2L2A`` (11, H, W) DN, ``S1GRD`` (2, H, W) dB, ``DEM`` (1, H, W) m, float32, NaN = no data;
    ``cover``: per modality (H, W) bool, some scene has data there; ``found``: per modality, some scene was found;
    ``transform``: north-up affine (a, b, c, d, e, f) in ``EPSG:epsg``, pixel edges on multiples of the pixel
    size; ``cells``: positions of the served cells in the caller's arrays; ``x``, ``y``: their UTM coordinates, m;
    ``ndvi_p50`` (n,) at their pixels (NaN where there is no clear observation); ``series``, ``doy``, ``slope``,
    ``aspect`` feed :func:`tile_image_covariates`.
    """

    epsg: int
    year: int
    transform: tuple[float, ...]
    arrays: dict[str, np.ndarray]
    cover: dict[str, np.ndarray]
    found: dict[str, bool]
    cells: np.ndarray
    x: np.ndarray
    y: np.ndarray
    ndvi_p50: np.ndarray
    items: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    slope: np.ndarray | None = None
    """(H, W) slope, degrees, and ``aspect`` (H, W) degrees from north, from the DEM (Horn)."""
    aspect: np.ndarray | None = None
    series: np.ndarray | None = None
    """(n, T, B) SCL-masked S2 DN at the served cells' pixels (None without S2 scenes); ``doy`` (T,) their days."""
    doy: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.cover["DEM"].shape)

    def pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) of each served cell's pixel."""
        a, _, c, _, e, f = self.transform[:6]
        col = np.floor(np.round((self.x - c) / a, 9)).astype(np.int64)
        row = np.floor(np.round((self.y - f) / e, 9)).astype(np.int64)
        return row, col


# ------------------------------------------------------------------------------------------ geometry
def _to_utm(crs: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point's UTM zone (EPSG, as :func:`socmap.eo.patches.utm_epsg` of its lon/lat) and coordinates there."""
    from pyproj import CRS, Transformer

    from socmap.eo.patches import utm_epsg

    src = CRS.from_user_input(crs)
    lon, lat = Transformer.from_crs(src, 4326, always_xy=True).transform(x, y)
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise ConfigError(f"some cell centres cannot be placed on the globe from {crs}")
    epsg = np.array([utm_epsg(a, b) for a, b in zip(lon, lat, strict=True)], dtype=np.int64)
    ux, uy = np.empty_like(lon), np.empty_like(lat)
    for e in np.unique(epsg):
        m = epsg == e
        if src.to_epsg() == int(e):  # the grid is this UTM zone: no round trip through lon/lat
            ux[m], uy[m] = x[m], y[m]
        else:
            ux[m], uy[m] = Transformer.from_crs(4326, int(e), always_xy=True).transform(lon[m], lat[m])
    return epsg, ux, uy


def _box(x: np.ndarray, y: np.ndarray, cell_size_m: float, patch: int, res: float, stride: int
         ) -> tuple[float, float, float, float]:
    """Cells' footprints + half a patch (+1 px: a patch reaches P//2 + 1 px above its pixel's lower edge).

    The upper-left corner is snapped out to a multiple of ``stride`` pixels in the CRS and the box padded right and
    bottom to ``patch + k * stride`` pixels, so fast mode's windows and tokens lie on one lattice per UTM zone,
    whatever the tile: a cell gets the same token block in any tile or sub-block that holds it."""
    pad = (patch // 2 + 1) * res + cell_size_m / 2.0
    step = stride * res
    x0 = np.floor((x.min() - pad) / step) * step
    y1 = np.ceil((y.max() + pad) / step) * step
    w = int(np.ceil((x.max() + pad - x0) / res - 1e-9))
    h = int(np.ceil((y1 - (y.min() - pad)) / res - 1e-9))
    w = patch + int(np.ceil(max(w - patch, 0) / stride)) * stride
    h = patch + int(np.ceil(max(h - patch, 0) / stride)) * stride
    return float(x0), float(y1 - h * res), float(x0 + w * res), float(y1)


def _sub_blocks(x: np.ndarray, y: np.ndarray, span_m: float) -> list[np.ndarray]:
    """Positions of the points in each ``span_m`` x ``span_m`` square of a lattice anchored at their north-west
    corner (a set of points narrower than ``span_m`` stays whole)."""
    key = np.stack([np.floor((x - x.min()) / span_m), np.floor((y.max() - y) / span_m)], 1)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    return [np.flatnonzero(inv == k) for k in range(inv.max() + 1)]


def _stride(patch: int, stride_px: int | None) -> int:
    s = patch // 2 if stride_px is None else int(stride_px)
    s = max(TOKEN_PX, (s // TOKEN_PX) * TOKEN_PX)
    if s > patch:
        raise ConfigError(f"window stride {stride_px} px is larger than the patch ({patch} px)")
    return s


def _source(cfg: PipelineConfig) -> Any:
    """The pipeline's STAC source, opened once per process (a static catalogue is parsed once, not per tile)."""
    from socmap.eo.stac import StacSource, stac_config

    s = stac_config(cfg)
    key = (s.api, cfg.resolve(s.catalog) if s.catalog else None, s.s2_collection, s.s1_collection,
           s.dem_collection, s.signing, s.max_cloud_pct)
    source = _SOURCES.pop(key, None)
    if source is None:
        source = StacSource.from_config(cfg)
    _SOURCES[key] = source  # most recently used last
    while len(_SOURCES) > _SOURCES_MAX:
        _SOURCES.popitem(last=False)
    return source


# ------------------------------------------------------------------------------------------ composites
def tile_composites(cfg: PipelineConfig, year: int, crs: str, cell_x: np.ndarray, cell_y: np.ndarray, *,
                    cell_size_m: float, stride_px: int | None = None, scheduler: str = "threads",
                    source: Any = None, max_block_px: int = 2048) -> list[TileComposite]:
    """The year's composites around one tile's cells, computed to numpy: one per UTM zone the cells fall in, and
    within a zone one per square of at most ``max_block_px`` pixels (a 1024-cell tile of 250 m cells would be
    25600 px = 37 GB of bands at 10 m; split, each composite holds at most ~2048^2 px x 14 bands = 235 MB).

    Args:
        cfg: the pipeline (``stac`` and ``imagery`` blocks are used).
        year: calendar year of the S2 and S1 scenes (the DEM is taken from any date).
        crs: CRS of ``cell_x``, ``cell_y`` (the grid's).
        cell_x, cell_y: (N,) cell centres in ``crs`` units.
        cell_size_m: cell edge, m (the composite covers every cell's footprint plus half a patch).
        stride_px: fast-mode window step, pixels (a multiple of 16; default ``P // 2``); only sets the padding.
        scheduler: Dask scheduler for computing the lazy composite (``threads`` or ``synchronous``: local to
            this call, so it works inside a task of a distributed cluster).
        source: an open :class:`~socmap.eo.stac.StacSource` (default: the pipeline's, opened once per process).
        max_block_px: largest composite edge, pixels (at least twice the patch).

    Raises:
        SourceError (an EOError): a search or a read that still fails after ``stac.retries`` retries.
    """
    import odc.stac

    from socmap.eo.dask_client import gdal_options
    from socmap.eo.stac import stac_config

    cell_x = np.asarray(cell_x, np.float64).ravel()
    cell_y = np.asarray(cell_y, np.float64).ravel()
    if cell_x.shape != cell_y.shape:
        raise ValueError(f"cell_x and cell_y differ in length ({len(cell_x)} vs {len(cell_y)})")
    if not len(cell_x):
        return []
    source = source if source is not None else _source(cfg)
    stac = stac_config(cfg)
    P, res = int(cfg.imagery.patch_size), float(cfg.imagery.resolution_m)
    stride = _stride(P, stride_px)
    odc.stac.configure_rio(cloud_defaults=False, **gdal_options(stac.timeout_s, stac.retries))
    epsg, ux, uy = _to_utm(crs, cell_x, cell_y)
    span_m = max(int(max_block_px) - 2 * P, stride) * res
    out = []
    for e, cells in _zone_blocks(epsg, ux, uy, span_m):
        t0 = time.perf_counter()
        x, y = ux[cells], uy[cells]
        bounds = _box(x, y, cell_size_m, P, res, stride)
        tc = _block_composite(cfg, source, stac, int(year), e, bounds, cells, x, y, scheduler)
        tc.seconds = time.perf_counter() - t0
        out.append(tc)
    return out


def _zone_blocks(epsg: np.ndarray, ux: np.ndarray, uy: np.ndarray, span_m: float) -> list[tuple[int, np.ndarray]]:
    """``(epsg, cells)`` of each composite to build: per UTM zone, per ``span_m`` square of its cells (positions
    into ``epsg``)."""
    groups = []
    for e in np.unique(epsg):
        in_zone = np.flatnonzero(epsg == e)
        groups += [(int(e), in_zone[g]) for g in _sub_blocks(ux[in_zone], uy[in_zone], span_m)]
    return groups


def _block_composite(cfg: PipelineConfig, source: Any, stac: Any, year: int, epsg: int,
                     bounds: tuple[float, float, float, float], cells: np.ndarray, x: np.ndarray, y: np.ndarray,
                     scheduler: str) -> TileComposite:
    """Search, composite and compute the year's imagery over ``bounds`` (``EPSG:epsg``) for the cells at ``x``,
    ``y`` (their positions ``cells``)."""
    from socmap.eo.composite import aligned_geobox, build_composite, search_scenes

    scenes = search_scenes(source, stac, bounds, epsg, year)
    geobox = aligned_geobox(bounds, epsg, float(cfg.imagery.resolution_m))
    comp = build_composite(scenes, geobox, year, chunk_px=cfg.imagery.chunk_px)
    transform = tuple(float(v) for v in list(geobox.transform)[:6])
    ds = comp.ds
    lazy = [ds["S2L2A"].data, ds["S1GRD"].data, ds["DEM"].data, ds["s2_cover"].data, ds["s1_cover"].data,
            ds["dem_cover"].data, ds["slope_deg"].data, ds["aspect_deg"].data]
    tc = TileComposite(epsg=epsg, year=year, transform=transform, arrays={}, cover={}, found={},
                       cells=cells, x=x, y=y, ndvi_p50=np.full(len(cells), np.nan), items=scenes.ids())
    if comp.series is not None:
        import xarray as xr

        row, col = tc.pixels()
        pts = comp.series.isel(y=xr.DataArray(row, dims="pt"), x=xr.DataArray(col, dims="pt"))
        lazy.append(pts.data)  # (time, band, n)
        tc.doy = pd.DatetimeIndex(comp.series["time"].values).dayofyear.to_numpy()
    got = _compute_with_retries(lazy, scheduler, stac,
                                what=f"the {year} composite of box {tuple(round(v) for v in bounds)} (EPSG:{epsg})")
    _fill_composite(tc, got, scenes, with_series=comp.series is not None)
    return tc


def _compute_with_retries(lazy: list[Any], scheduler: str, stac: Any, *, what: str) -> tuple[Any, ...]:
    """``dask.compute`` of ``lazy``, retried ``stac.retries`` times on source errors (the GDAL HTTP cache cleared
    before each retry); a :class:`SourceError` naming ``what`` when every attempt failed."""
    import dask

    from socmap.eo.dask_client import clear_gdal_http_cache
    from socmap.errors import short_error
    from socmap.io import retry, source_errors

    def compute() -> tuple[Any, ...]:
        from rasterio.errors import NotGeoreferencedWarning

        with np.errstate(all="ignore"), warnings.catch_warnings():
            # as extract's workers: odc-stac's DEM reprojection and all-cloudy pixels warn harmlessly
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            return dask.compute(*lazy, scheduler=scheduler)

    try:
        return retry(compute, attempts=stac.retries + 1, retry_on=source_errors(),
                     on_retry=lambda i, exc: clear_gdal_http_cache())
    except source_errors() as exc:
        raise SourceError(f"reading {what} failed after {stac.retries + 1} attempts: {short_error(exc)}") from None


def _fill_composite(tc: TileComposite, got: tuple[Any, ...], scenes: Any, *, with_series: bool) -> None:
    """Put the computed arrays (in :func:`_block_composite`'s order) into ``tc``, with the served cells' NDVI
    median when the S2 series was read."""
    from socmap.eo.bands import S2_BANDS

    tc.arrays = {"S2L2A": np.asarray(got[0], np.float32), "S1GRD": np.asarray(got[1], np.float32),
                 "DEM": np.asarray(got[2], np.float32)}
    tc.cover = {"S2L2A": np.asarray(got[3], bool), "S1GRD": np.asarray(got[4], bool),
                "DEM": np.asarray(got[5], bool)}
    tc.found = {"S2L2A": bool(scenes.s2), "S1GRD": bool(scenes.s1), "DEM": bool(scenes.dem)}
    tc.slope, tc.aspect = np.asarray(got[6], np.float32), np.asarray(got[7], np.float32)
    if with_series:
        b04 = [b.name for b in S2_BANDS].index("B04")
        b08 = [b.name for b in S2_BANDS].index("B08")
        tc.series = np.moveaxis(np.asarray(got[8], np.float64), -1, 0)  # (n, T, B)
        red, nir = tc.series[:, :, b04].T, tc.series[:, :, b08].T
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-cloudy pixels
            tc.ndvi_p50 = np.nanpercentile((nir - red) / (nir + red), 50, axis=0)


def _patch_ok(tc: TileComposite, patch: int) -> np.ndarray:
    """``extract``'s rule per served cell: every modality found and covering all P x P pixels of its patch."""
    row, col = tc.pixels()
    r0, c0 = row - patch // 2, col - patch // 2
    H, W = tc.shape
    inside = (r0 >= 0) & (c0 >= 0) & (r0 + patch <= H) & (c0 + patch <= W)
    ok = inside.copy()
    rr, cc = np.clip(r0, 0, max(H - patch, 0)), np.clip(c0, 0, max(W - patch, 0))
    for m in ("S2L2A", "S1GRD", "DEM"):
        if not tc.found[m]:
            return np.zeros(len(row), bool)
        sat = np.zeros((H + 1, W + 1), np.int64)
        sat[1:, 1:] = tc.cover[m].astype(np.int64).cumsum(0).cumsum(1)
        n = sat[rr + patch, cc + patch] - sat[rr, cc + patch] - sat[rr + patch, cc] + sat[rr, cc]
        ok &= n == patch * patch
    return ok


# ------------------------------------------------------------------------------------------ embeddings
def _device(encoder: ImageEncoder) -> torch.device:
    return next(encoder.parameters()).device


@torch.no_grad()
def _exact(tc: TileComposite, encoder: ImageEncoder, idx: np.ndarray, patch: int, batch_size: int) -> np.ndarray:
    """Embeddings of served cells ``idx`` (positions into ``tc.cells``), one patch each, as ``embed`` does."""
    from socmap.eo.patches import cut_patches

    dev = _device(encoder)
    out = np.empty((len(idx), encoder.dim), np.float32)
    arrays = {m: tc.arrays[m] for m in encoder.modalities}
    for s in range(0, len(idx), batch_size):
        sel = idx[s:s + batch_size]
        cut = cut_patches(arrays, tc.transform, tc.x[sel], tc.y[sel], patch)
        x = {m: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(dev) for m, v in cut.items()}
        out[s:s + len(sel)] = encoder(x).float().cpu().numpy()
    return out


def _blocks(tc: TileComposite, idx: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Each served cell's patch snapped to the composite's 16-px token lattice: the distinct blocks (k, 2) as
    (token row, token col) of their upper-left token, and each cell's block index."""
    H, W = tc.shape
    nt = patch // TOKEN_PX
    row, col = tc.pixels()
    i0 = np.clip(np.round((row[idx] - patch // 2) / TOKEN_PX).astype(np.int64), 0, H // TOKEN_PX - nt)
    j0 = np.clip(np.round((col[idx] - patch // 2) / TOKEN_PX).astype(np.int64), 0, W // TOKEN_PX - nt)
    blocks, inverse = np.unique(np.stack([i0, j0], 1), axis=0, return_inverse=True)
    return blocks, inverse.ravel()


@torch.no_grad()
def _block(tc: TileComposite, encoder: ImageEncoder, idx: np.ndarray, patch: int, batch_size: int) -> np.ndarray:
    """Embeddings of served cells ``idx``: the whole encoder on each distinct snapped patch (block mode)."""
    dev = _device(encoder)
    blocks, inverse = _blocks(tc, idx, patch)
    arrays = {m: tc.arrays[m] for m in encoder.modalities}
    emb = np.empty((len(blocks), encoder.dim), np.float32)
    for s in range(0, len(blocks), batch_size):
        blk = blocks[s:s + batch_size] * TOKEN_PX
        x = {m: torch.from_numpy(np.ascontiguousarray(np.stack([v[:, a:a + patch, b:b + patch] for a, b in blk]),
                                                      dtype=np.float32)).to(dev) for m, v in arrays.items()}
        emb[s:s + len(blk)] = encoder(x).float().cpu().numpy()
    return emb[inverse]


@torch.no_grad()
def _fast(tc: TileComposite, encoder: ImageEncoder, idx: np.ndarray, patch: int, stride: int, batch_size: int
          ) -> np.ndarray:
    """Embeddings of served cells ``idx`` from one token map of the tile (see the module docstring)."""
    dev = _device(encoder)
    H, W = tc.shape
    nt = patch // TOKEN_PX  # tokens per window edge (14)
    st = stride // TOKEN_PX  # window step in tokens
    Ht, Wt = H // TOKEN_PX, W // TOKEN_PX
    nwy, nwx = (H - patch) // stride + 1, (W - patch) // stride + 1

    blocks, inverse = _blocks(tc, idx, patch)  # each cell's 14 x 14 block of the token lattice

    # owner window of each token row / column: the one whose centre is nearest
    def owner(n_tok: int, n_win: int) -> np.ndarray:
        t = np.arange(n_tok)
        return np.clip(np.round((t + 0.5 - nt / 2) / st).astype(np.int64), 0, n_win - 1)

    own_y, own_x = owner(Ht, nwy), owner(Wt, nwx)
    need = np.zeros((Ht, Wt), bool)
    for a, b in blocks:
        need[a:a + nt, b:b + nt] = True
    tokmap = torch.zeros((Ht, Wt, encoder.dim), dtype=torch.float32)
    windows = sorted({(int(own_y[a]), int(own_x[b])) for a, b in zip(*np.nonzero(need), strict=True)})
    arrays = {m: tc.arrays[m] for m in encoder.modalities}
    for s in range(0, len(windows), batch_size):
        batch = windows[s:s + batch_size]
        x = {m: torch.from_numpy(np.ascontiguousarray(np.stack(
            [v[:, wy * stride:wy * stride + patch, wx * stride:wx * stride + patch] for wy, wx in batch]),
            dtype=np.float32)).to(dev) for m, v in arrays.items()}
        tok = encoder.tokens(x).float().cpu().reshape(len(batch), nt, nt, encoder.dim)
        for k, (wy, wx) in enumerate(batch):
            ty, tx = wy * st, wx * st
            my = own_y[ty:ty + nt] == wy
            mx = own_x[tx:tx + nt] == wx
            sub = tok[k][torch.from_numpy(my)][:, torch.from_numpy(mx)]
            rows = np.flatnonzero(my) + ty
            cols = np.flatnonzero(mx) + tx
            tokmap[rows[:, None], cols[None, :]] = sub
    emb = np.empty((len(blocks), encoder.dim), np.float32)
    bs = max(batch_size, 1) * 16  # CLS-merge is light: larger batches
    for s in range(0, len(blocks), bs):
        blk = blocks[s:s + bs]
        seq = torch.stack([tokmap[a:a + nt, b:b + nt].reshape(nt * nt, encoder.dim) for a, b in blk])
        emb[s:s + len(blk)] = encoder.cls_merge(seq.to(dev)).float().cpu().numpy()
    return emb[inverse]


def tile_image_embeddings(cfg: PipelineConfig, year: int, crs: str, cell_x: np.ndarray, cell_y: np.ndarray,
                          encoder: ImageEncoder, *, mode: str = "fast", cell_size_m: float, batch_size: int = 16,
                          stride_px: int | None = None, composites: list[TileComposite] | None = None,
                          scheduler: str = "threads") -> tuple[np.ndarray, np.ndarray]:
    """Image embeddings of one tile's cells: ``(embedding (N, D) float32, ok (N,) bool)``.

    Rows mean what ``embeddings.zarr`` rows mean (frozen TerraMind + CLS-merge, max over the tokens of the cell's
    224-px neighbourhood); rows where ``ok`` is False are NaN (the model's "no image" vector applies there).

    Args:
        cfg: the pipeline (``stac``, ``imagery`` blocks).
        year: the map year.
        crs: CRS of the cell centres (the grid's).
        cell_x, cell_y: (N,) cell centres, e.g. one tile's cells in row-major order.
        encoder: :func:`load_map_encoder`'s encoder (any device; inputs follow it).
        mode: ``fast`` (one token map per tile), ``block`` (one patch per 16-px block of cells) or ``exact``
            (one patch per cell, for validation).
        cell_size_m: cell edge, m.
        batch_size: windows (fast) or patches (exact) per encoder forward pass.
        stride_px: fast-mode window step, pixels (multiple of 16, default ``P // 2``).
        composites: :func:`tile_composites` of these very cells (and stride), to share them with
            :func:`tile_ndvi_elevation`; default: computed here.
        scheduler: Dask scheduler for the composite (see :func:`tile_composites`).
    """
    if mode not in MODES:
        raise ConfigError(f"embedding mode must be one of {', '.join(MODES)}, got {mode!r}")
    P = int(cfg.imagery.patch_size)
    stride = _stride(P, stride_px)
    cell_x = np.asarray(cell_x, np.float64).ravel()
    if composites is None:
        composites = tile_composites(cfg, year, crs, cell_x, cell_y, cell_size_m=cell_size_m, stride_px=stride,
                                     scheduler=scheduler)
    emb = np.full((len(cell_x), encoder.dim), np.nan, np.float32)
    ok = np.zeros(len(cell_x), bool)
    was_training = encoder.training
    encoder.eval()
    try:
        for tc in composites:
            good = _patch_ok(tc, P)
            idx = np.flatnonzero(good)
            ok[tc.cells] = good
            if not len(idx):
                continue
            if mode == "exact":
                emb[tc.cells[idx]] = _exact(tc, encoder, idx, P, batch_size)
            elif mode == "block":
                emb[tc.cells[idx]] = _block(tc, encoder, idx, P, batch_size)
            else:
                emb[tc.cells[idx]] = _fast(tc, encoder, idx, P, stride, batch_size)
    finally:
        encoder.train(was_training)
    return emb, ok


def tile_ndvi_elevation(cfg: PipelineConfig, year: int, crs: str, cell_x: np.ndarray, cell_y: np.ndarray, *,
                        cell_size_m: float, composites: list[TileComposite] | None = None,
                        scheduler: str = "threads") -> tuple[np.ndarray, np.ndarray]:
    """``(ndvi (N,), elevation_m (N,))`` float64 at each cell's pixel, as ``extract``'s ``ndvi_p50`` and
    ``elevation_m`` image covariates (NaN where there is no clear observation / no DEM)."""
    cell_x = np.asarray(cell_x, np.float64).ravel()
    if composites is None:
        composites = tile_composites(cfg, year, crs, cell_x, cell_y, cell_size_m=cell_size_m, scheduler=scheduler)
    ndvi = np.full(len(cell_x), np.nan)
    elev = np.full(len(cell_x), np.nan)
    for tc in composites:
        row, col = tc.pixels()
        H, W = tc.shape
        inside = (row >= 0) & (row < H) & (col >= 0) & (col < W)
        dem = tc.arrays["DEM"][0]
        z = dem[np.clip(row, 0, H - 1), np.clip(col, 0, W - 1)].astype(np.float64)
        elev[tc.cells] = np.where(inside, z, np.nan)
        ndvi[tc.cells] = np.where(inside, tc.ndvi_p50, np.nan)
    return ndvi, elev


def tile_image_covariates(cfg: PipelineConfig, year: int, crs: str, cell_x: np.ndarray, cell_y: np.ndarray, *,
                          cell_size_m: float, composites: list[TileComposite] | None = None,
                          scheduler: str = "threads") -> pd.DataFrame:
    """Every image covariate of :data:`socmap.eo.covariates.COVARIATE_COLUMNS` (the paper's Table 2: spectral
    percentiles, phenology, S1 backscatter, terrain) at each cell's pixel, computed as ``extract`` computes them
    for a sample (its ``image_covariates.parquet``): one row per cell in the input order, NaN where undefined."""
    from socmap.eo.bands import S2_BANDS
    from socmap.eo.covariates import COVARIATE_COLUMNS, phenology, spectral_percentiles, terrain_at

    cell_x = np.asarray(cell_x, np.float64).ravel()
    if composites is None:
        composites = tile_composites(cfg, year, crs, cell_x, cell_y, cell_size_m=cell_size_m, scheduler=scheduler)
    out = np.full((len(cell_x), len(COVARIATE_COLUMNS)), np.nan, np.float32)
    names = [b.name for b in S2_BANDS]
    idx = {b: i for i, b in enumerate(names)}
    for tc in composites:
        n = len(tc.cells)
        cov: dict[str, np.ndarray] = {}
        if tc.series is not None and tc.doy is not None:
            cov.update(spectral_percentiles(tc.series, names))
            cov.update(phenology(tc.doy, tc.series[:, :, idx["B02"]], tc.series[:, :, idx["B04"]],
                                 tc.series[:, :, idx["B08"]]))
        row, col = tc.pixels()
        H, W = tc.shape
        inside = (row >= 0) & (row < H) & (col >= 0) & (col < W)
        rr, cc = np.clip(row, 0, H - 1), np.clip(col, 0, W - 1)
        s1 = tc.arrays["S1GRD"]
        cov["s1_vv_db"] = np.where(inside, s1[0][rr, cc], np.nan)
        cov["s1_vh_db"] = np.where(inside, s1[1][rr, cc], np.nan)
        slope = tc.slope if tc.slope is not None else np.full((H, W), np.nan, np.float32)
        aspect = tc.aspect if tc.aspect is not None else np.full((H, W), np.nan, np.float32)
        cov.update(terrain_at(tc.arrays["DEM"][0], slope, aspect, row, col))
        out[tc.cells] = np.stack([np.asarray(cov.get(c, np.full(n, np.nan)), dtype=np.float32)
                                  for c in COVARIATE_COLUMNS], axis=1)
    return pd.DataFrame(out, columns=list(COVARIATE_COLUMNS))
