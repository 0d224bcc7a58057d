"""Covariate layers held in memory over the map grid give the same values as reading the raster files.

Small seeded rasters (a geographic, a projected and a categorical one, each with scattered no-data cells and a
no-data block wider than the search radius) are sampled from the file and from the window
:func:`socmap.data.covariates.load_raster_window` holds, with points on the held area's edges; then the map world's
pipeline (tests/mapping/world.py) with extra layers: the cells' covariates and a predicted tile, with and without
the grid's layers in memory, and a layer over the memory budget.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from socmap.config import load_pipeline
from socmap.data.covariates import InMemoryRaster, load_raster_window, sample_raster
from socmap.errors import DataError
from socmap.mapping.cells import cell_covariates, load_grid_rasters
from socmap.mapping.tiles import cell_centres, cell_lonlat, grid_tiles
from tests.soil.helpers import write_raster

from .world import LAT1, LON0

N_PX = 80
"""Edge of the test rasters, cells."""
AREA = slice(20, 60)
"""Rows and columns of the raster the points (the "grid") cover: the held window is this plus its margin."""
CASES: dict[str, dict[str, Any]] = {
    "geographic": dict(crs="EPSG:4326", west=10.0, north=5.0, res=0.1, dtype="float32", nodata=-9999.0),
    "projected": dict(crs="EPSG:32737", west=200_000.0, north=9_660_000.0, res=1000.0, dtype="float32",
                      nodata=-9999.0),
    "categorical": dict(crs="EPSG:4326", west=10.0, north=5.0, res=0.1, dtype="uint8", nodata=255),
}


def _raster_with_holes(tmp_path: Path, case: str, seed: int = 0) -> tuple[Path, np.ndarray]:
    """An N_PX x N_PX raster of ``case`` with ~15 % no-data cells and a 9 x 9 no-data block in the area."""
    c = CASES[case]
    rng = np.random.default_rng(seed)
    if c["dtype"] == "uint8":
        data = rng.choice(np.array([10, 20, 30], "uint8"), (N_PX, N_PX))
    else:
        data = rng.normal(15.0, 4.0, (N_PX, N_PX)).astype(c["dtype"])
    holes = rng.random((N_PX, N_PX)) < 0.15
    holes[30:39, 40:49] = True  # wider than 2 * search_px + 1: its centre has no valid cell within 3
    holes[AREA.start, AREA.start] = holes[AREA.stop - 1, AREA.stop - 1] = True  # holes at the area's corners
    data[holes] = c["nodata"]
    path = write_raster(tmp_path / f"{case}.tif", data, crs=c["crs"], west=c["west"], north=c["north"],
                        res=c["res"], nodata=c["nodata"])
    return path, data


def _area_points(case: str, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random (lon, lat) points in the area, plus its four corners and points on each of its edges."""
    from pyproj import Transformer

    c = CASES[case]
    rng = np.random.default_rng(seed)
    lo, hi = AREA.start + 0.01, AREA.stop - 0.01  # cell coordinates just inside the area's outer cells
    cols = np.concatenate([rng.uniform(lo, hi, n), [lo, hi, lo, hi], rng.uniform(lo, hi, 8), np.full(4, lo),
                           np.full(4, hi)])
    rows = np.concatenate([rng.uniform(lo, hi, n), [lo, lo, hi, hi], np.full(4, lo), np.full(4, hi),
                           rng.uniform(lo, hi, 8)])
    x, y = c["west"] + cols * c["res"], c["north"] - rows * c["res"]
    if c["crs"] == "EPSG:4326":
        return x, y
    lon, lat = Transformer.from_crs(c["crs"], "EPSG:4326", always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def _bounds(lon: np.ndarray, lat: np.ndarray) -> tuple[float, float, float, float]:
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("search_px", [0, 1, 3])
@pytest.mark.parametrize("chunk_px", [16, 1024])
def test_held_window_samples_like_the_file(tmp_path: Path, case: str, search_px: int, chunk_px: int) -> None:
    path, _ = _raster_with_holes(tmp_path, case)
    lon, lat = _area_points(case, 300)
    held = load_raster_window(str(path), 1, _bounds(lon, lat), margin_px=3 + 2)
    assert held is not None
    assert held.data.shape[0] < N_PX and held.data.shape[1] < N_PX  # the window, not the whole raster
    kw: dict[str, Any] = dict(search_px=search_px, min_coverage=0.0, chunk_px=chunk_px, scale=0.5, offset=1.0,
                              name="x")
    want, want_info = sample_raster(str(path), lon, lat, **kw)
    got, got_info = sample_raster(held, lon, lat, **kw)
    np.testing.assert_array_equal(got, want)  # NaN where NaN, every value bit for bit
    assert got.tobytes() == want.tobytes()
    assert got_info == want_info
    assert held.n_fallback_reads == 0
    assert want_info.n_direct < len(lon)  # the holes are hit...
    if search_px:
        assert want_info.n_nearest > 0  # ...and filled from nearby cells
    if search_px == 3:
        assert want_info.n_missing > 0  # except in the middle of the block


def test_window_outside_the_held_part_is_read_from_the_file(tmp_path: Path) -> None:
    path, _ = _raster_with_holes(tmp_path, "geographic")
    lon, lat = _area_points("geographic", 50)
    held = load_raster_window(str(path), 1, _bounds(lon, lat), margin_px=2)
    assert held is not None
    rng = np.random.default_rng(5)
    far_lon, far_lat = rng.uniform(10.0, 18.0, 200), rng.uniform(-3.0, 5.0, 200)  # the whole raster
    want, want_info = sample_raster(str(path), far_lon, far_lat, search_px=3, min_coverage=0.0, chunk_px=16)
    got, got_info = sample_raster(held, far_lon, far_lat, search_px=3, min_coverage=0.0, chunk_px=16)
    np.testing.assert_array_equal(got, want)
    assert got_info == want_info
    assert held.n_fallback_reads > 0


def test_held_window_is_clipped_to_the_raster_and_bounded_in_bytes(tmp_path: Path) -> None:
    path, data = _raster_with_holes(tmp_path, "geographic")
    whole = load_raster_window(str(path), 1, (0.0, -20.0, 40.0, 20.0), margin_px=5)  # larger than the raster
    assert whole is not None and whole.data.shape == (N_PX, N_PX) and (whole.row_off, whole.col_off) == (0, 0)
    np.testing.assert_array_equal(whole.data.filled(-9999.0), data)
    assert whole.nbytes == N_PX * N_PX * 5  # float32 values + a byte of mask per cell
    assert load_raster_window(str(path), 1, (0.0, -20.0, 40.0, 20.0), margin_px=5,
                              max_bytes=whole.nbytes - 1) is None
    assert load_raster_window(str(path), 1, (50.0, 40.0, 60.0, 50.0), margin_px=5) is None  # off the raster
    with pytest.raises(DataError, match="no band 2"):
        load_raster_window(str(path), 2, (10.0, 0.0, 12.0, 2.0), margin_px=5)
    with pytest.raises(DataError, match=r"missing\.tif: cannot open the raster"):
        load_raster_window(str(tmp_path / "missing.tif"), 1, (10.0, 0.0, 12.0, 2.0), margin_px=5)


def test_threads_share_a_held_window(tmp_path: Path) -> None:
    path, _ = _raster_with_holes(tmp_path, "projected")
    lon, lat = _area_points("projected", 400)
    held = load_raster_window(str(path), 1, _bounds(lon, lat), margin_px=5)
    assert held is not None
    parts = np.array_split(np.arange(len(lon)), 16)

    def sample(idx: np.ndarray) -> np.ndarray:
        return sample_raster(held, lon[idx], lat[idx], search_px=3, min_coverage=0.0, chunk_px=16)[0]

    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(sample, parts))
    want = [sample_raster(str(path), lon[i], lat[i], search_px=3, min_coverage=0.0, chunk_px=16)[0] for i in parts]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


# ------------------------------------------------------------------------------- the map world's pipeline
@pytest.fixture(scope="module")
def holey_pipeline(map_world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The map world's 4-tile pipeline (its bundle maps it) with two more layers over its area: a projected one
    and a categorical one, each with no-data holes on land that the nearest-valid search fills."""
    from pyproj import Transformer

    tmp = tmp_path_factory.mktemp("holey")
    rng = np.random.default_rng(7)
    holes = rng.random((60, 60)) < 0.2
    lc = rng.choice(np.array([1, 2, 3], "uint8"), (60, 60))
    lc[holes] = 255
    write_raster(tmp / "lc_holes.tif", lc, west=LON0 - 0.05, north=LAT1 + 0.05, res=0.01, nodata=255)
    x0, y1 = Transformer.from_crs("EPSG:4326", "EPSG:32737", always_xy=True).transform(LON0 - 0.05, LAT1 + 0.05)
    utm = rng.normal(100.0, 10.0, (60, 60)).astype("float32")
    utm[rng.random((60, 60)) < 0.2] = -9999.0
    write_raster(tmp / "utm_holes.tif", utm, crs="EPSG:32737", west=round(x0), north=round(y1), res=1000.0)
    pipe = yaml.safe_load(map_world["pipeline"].read_text())
    for c in pipe["data"]["covariates"]:
        c["path"] = str(map_world["root"] / c["path"])
    pipe["data"]["covariates"] += [
        {"name": "lc_holes", "path": str(tmp / "lc_holes.tif"), "unit": "class", "categorical": True},
        {"name": "utm_holes", "path": str(tmp / "utm_holes.tif"), "unit": "1", "scale": 0.1, "offset": 2.0}]
    pipe["grid"] = str(map_world["root"] / "grid4.yaml")
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipe, sort_keys=False))
    return path


def _all_cells(cfg: Any) -> list[np.ndarray]:
    grid = cfg.load_grid()
    return [cell_lonlat(grid.crs, *cell_centres(grid, t)) for t in grid_tiles(grid)]


@pytest.mark.parametrize("budget", ["all", "over_budget"])
def test_cell_covariates_from_memory_equal_the_files(holey_pipeline: Path, budget: str) -> None:
    cfg = load_pipeline(holey_pipeline)
    names = [c.name for c in cfg.data.covariates]
    rasters = load_grid_rasters(cfg, cfg.load_grid())
    assert sorted(rasters) == sorted(names)
    if budget == "over_budget":  # the projected layer's window (1 km cells: 46 x 46) no longer fits
        limit = rasters["utm_holes"].nbytes - 1
        assert max(r.nbytes for k, r in rasters.items() if k != "utm_holes") <= limit
        rasters = load_grid_rasters(cfg, cfg.load_grid(), max_bytes=limit)
        assert sorted(rasters) == sorted(set(names) - {"utm_holes"})
    for lonlat in _all_cells(cfg):
        want_raw, want_mapped = cell_covariates(cfg, lonlat)
        got_raw, got_mapped = cell_covariates(cfg, lonlat, rasters)
        np.testing.assert_array_equal(got_mapped, want_mapped)
        assert list(got_raw.columns) == names
        for name in names:
            assert got_raw[name].to_numpy().tobytes() == want_raw[name].to_numpy().tobytes(), name
    assert all(r.n_fallback_reads == 0 for r in rasters.values())
    # the holes really were filled from nearby cells: the layers have no gap on a mapped cell
    raw, mapped = cell_covariates(cfg, _all_cells(cfg)[0], rasters)
    assert mapped.any() and raw.loc[mapped, ["lc_holes", "utm_holes"]].notna().all().all()
    assert set(np.unique(raw["lc_holes"].dropna())) <= {1.0, 2.0, 3.0}


def test_unreadable_or_remote_layer_is_left_to_the_tiles(holey_pipeline: Path, tmp_path: Path) -> None:
    pipe = yaml.safe_load(holey_pipeline.read_text())
    pipe["data"]["covariates"][1]["path"] = str(tmp_path / "gone.tif")
    pipe["data"]["covariates"][2]["path"] = "http://127.0.0.1:9/elevation.tif"  # never asked with local_only
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipe, sort_keys=False))
    cfg = load_pipeline(path)
    with pytest.raises(DataError, match=r"gone\.tif: cannot open the raster"):
        load_grid_rasters(cfg, cfg.load_grid(), local_only=True)
    rasters = load_grid_rasters(cfg, cfg.load_grid(), skip=(DataError,), local_only=True)
    assert sorted(rasters) == sorted({c["name"] for c in pipe["data"]["covariates"]} - {"ndvi", "elevation"})
    with pytest.raises(DataError, match=r"gone\.tif: cannot open the raster"):  # as each tile reports it
        cell_covariates(cfg, _all_cells(cfg)[0], rasters)


def test_predicted_tile_is_the_same_with_the_layers_in_memory(map_world: dict[str, Path], map_bundle: Path) -> None:
    from socmap.inference import load_bundle
    from socmap.mapping.tile_job import load_context, predict_tile

    cfg = load_pipeline(map_world["pipeline"])
    ctx = load_context(cfg, load_bundle(map_bundle, cfg))
    assert sorted(ctx.rasters) == sorted(c.name for c in cfg.data.covariates)
    assert all(isinstance(r, InMemoryRaster) for r in ctx.rasters.values())
    for tile in grid_tiles(ctx.grid)[-2:]:  # the last tile holds the sea corner
        got = predict_tile(ctx, tile, 2020, None)
        want = predict_tile(replace(ctx, rasters={}), tile, 2020, None)
        assert got.n_mapped == want.n_mapped and 0 < got.n_mapped
        assert sorted(got.layers) == sorted(want.layers)
        for name, arr in want.layers.items():
            assert got.layers[name].tobytes() == arr.tobytes(), name
    assert all(r.n_fallback_reads == 0 for r in ctx.rasters.values())
