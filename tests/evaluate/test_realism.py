"""Map realism figures (socmap.evaluate.realism) and benchmarks/map_realism.py on small seeded map folders written
with the project's own map writers (zarr template + tile writes, as ``socmap predict`` does).

The synthetic world: a 24 x 24 grid (4 tiles of 12) of 0.01 degree cells at the equator, or of 100 m cells in UTM
37S (a projected map: the benchmark finds each cell's lon/lat), 8 training sites and 4 validation sites, a no-data
corner. A Voronoi mosaic of the training sites (each cell the value of its nearest
site, nearest found by brute-force haversine here) must score facet_ratio far above 1, a smooth field about 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from socmap.evaluate.realism import facet_ratio, facet_ratio_by_distance, nearest_site, sd_ratio_aoa
from tests import load_benchmark

N = 24
GRIDS = {"EPSG:4326": (10.0, 0.0, 0.01), "EPSG:32737": (500_000.0, 9_668_000.0, 100.0)}
"""CRS -> (xmin, ymax, cell size) in CRS units."""
NODATA = -9999.0
LAYERS = ("soc_mean", "aleatoric_var", "epistemic_var", "total_sd", "aoa")


def _haversine_nearest(cells: np.ndarray, sites: np.ndarray) -> np.ndarray:
    lon1, lat1 = np.radians(cells[:, None, 0]), np.radians(cells[:, None, 1])
    lon2, lat2 = np.radians(sites[None, :, 0]), np.radians(sites[None, :, 1])
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return np.argmin(2 * np.arcsin(np.sqrt(a)), axis=1)


def _make_world(crs: str) -> dict:
    """Cell centres, sites (lon/lat), nearest training site, a smooth field, a mosaic and a no-data corner."""
    from pyproj import Transformer

    x0, y1, res = GRIDS[crs]
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform
    rng = np.random.default_rng(0)
    gx, gy = np.meshgrid(x0 + (np.arange(N) + 0.5) * res, y1 - (np.arange(N) + 0.5) * res)
    lon, lat = to_lonlat(gx, gy)
    train = np.c_[to_lonlat(rng.uniform(x0, x0 + N * res, 8), rng.uniform(y1 - N * res, y1, 8))]
    val = np.c_[to_lonlat(rng.uniform(x0, x0 + N * res, 4), rng.uniform(y1 - N * res, y1, 4))]
    site = _haversine_nearest(np.c_[lon.ravel(), lat.ravel()], train).reshape(N, N)
    u, v = (gx - x0) / (N * res), (y1 - gy) / (N * res)
    smooth = 20 + 6 * np.sin(5 * u + 1) + 5 * np.cos(4 * v + 0.5) + 3 * np.sin(3 * (u + v))  # g/kg
    mosaic = rng.uniform(5, 40, len(train))[site] + 0.05 * (smooth - 20)  # a nearly flat polygon per site
    sea = (u > 0.75) & (v > 0.8)
    far = (u > 0.6) & (v < 0.4)  # "outside the area of applicability"
    return {"lon": lon, "lat": lat, "train": train, "val": val, "site": site, "smooth": smooth, "mosaic": mosaic,
            "sea": sea, "far": far, "rng_noise": rng.normal(0, 1, (N, N)), "crs": crs}


@pytest.fixture(scope="module")
def world() -> dict:
    return _make_world("EPSG:4326")


def test_nearest_site_is_the_great_circle_nearest() -> None:
    rng = np.random.default_rng(1)
    sites = np.c_[rng.uniform(-180, 180, 50), np.degrees(np.arcsin(rng.uniform(-1, 1, 50)))]
    cells = np.c_[rng.uniform(-180, 180, 400), np.degrees(np.arcsin(rng.uniform(-1, 1, 400)))]
    assert np.array_equal(nearest_site(cells, sites), _haversine_nearest(cells, sites))


def test_facet_ratio_mosaic_far_above_one_smooth_about_one(world: dict) -> None:
    mosaic = facet_ratio(world["mosaic"], world["site"])
    smooth = facet_ratio(world["smooth"], world["site"])
    assert mosaic.facet_ratio > 20
    assert 0.75 < smooth.facet_ratio < 1.3
    assert mosaic.pairs_across + mosaic.pairs_within == 2 * N * (N - 1)
    assert mosaic.pairs_across > 30  # enough border pairs for the mean to mean something
    # half mosaic, half smooth: facets in between
    mixed = facet_ratio(0.5 * world["mosaic"] + 0.5 * world["smooth"], world["site"])
    assert smooth.facet_ratio < mixed.facet_ratio < mosaic.facet_ratio


def test_nearest_site_km_is_the_haversine_distance() -> None:
    rng = np.random.default_rng(2)
    sites, cells = rng.uniform(-5, 5, (30, 2)), rng.uniform(-5, 5, (200, 2))
    idx, km = nearest_site(cells, sites, return_km=True)
    dlon, dlat = np.radians(sites[idx] - cells).T
    lat1, lat2 = np.radians(cells[:, 1]), np.radians(sites[idx, 1])
    a = np.sin(dlat / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(dlon / 2) ** 2
    assert np.allclose(km, 2 * 6371.0088 * np.arcsin(np.sqrt(a)), rtol=1e-9)


def test_facet_ratio_by_distance_compares_at_equal_distance_from_the_data(world: dict) -> None:
    """Clustered sites and a kernel smoother that relaxes to a mean away from them: smooth everywhere, but it
    varies most where the sites (and so the nearest-site borders) are dense, which the plain ratio counts as
    facets; binned by distance to the nearest site it is nearer 1. A mosaic stays far above 1 in either."""
    rng = np.random.default_rng(3)
    sites = np.r_[np.c_[10.03 + rng.normal(0, 0.01, 12), -0.03 + rng.normal(0, 0.01, 12)],
                  np.c_[[10.2, 10.05, 10.21], [-0.2, -0.21, -0.05]]]
    cells = np.c_[world["lon"].ravel(), world["lat"].ravel()]
    idx, km = nearest_site(cells, sites, return_km=True)
    site, dist = idx.reshape(N, N), km.reshape(N, N)
    vals = rng.uniform(5, 40, len(sites))
    kern = np.exp(-0.5 * (np.linalg.norm((cells[:, None] - sites[None]) * 111.2, axis=2) / 3.0) ** 2)
    smoother = (((kern * vals).sum(1) + 1.0) / (kern.sum(1) + 0.05)).reshape(N, N)
    plain, binned = facet_ratio(smoother, site).facet_ratio, facet_ratio_by_distance(smoother, site, dist)
    assert binned < plain - 0.1
    assert 0.75 < facet_ratio_by_distance(world["smooth"], site, dist) < 1.3
    mosaic = vals[site] + 0.05 * (world["smooth"] - 20)
    assert facet_ratio_by_distance(mosaic, site, dist) > 20
    assert facet_ratio_by_distance(vals[site], site, dist) == np.inf  # flat polygons
    with pytest.raises(ValueError, match="one 2-D shape"):
        facet_ratio_by_distance(smoother, site, dist[:-1])


def test_facet_ratio_skips_no_data_and_rejects_shape_mismatch(world: dict) -> None:
    soc = np.where(world["sea"], np.nan, world["smooth"])
    full = facet_ratio(world["smooth"], world["site"])
    part = facet_ratio(soc, world["site"])
    assert part.pairs_across + part.pairs_within < full.pairs_across + full.pairs_within
    assert np.isfinite(part.facet_ratio)
    with pytest.raises(ValueError, match="same 2-D shape"):
        facet_ratio(soc, world["site"][:-1])


def test_sd_ratio_aoa(world: dict) -> None:
    soc, far = world["smooth"], world["far"]
    aoa = np.where(world["sea"], 255, far.astype(np.uint8))
    rel = 0.2 * (1 + 0.05 * world["rng_noise"])
    grows = sd_ratio_aoa(soc, np.where(far, 2 * rel, rel) * soc, aoa)
    assert grows.sd_ratio_aoa == pytest.approx(2.0, rel=0.05)
    assert grows.cells_outside == int((far & ~world["sea"]).sum())
    assert grows.cells_inside + grows.cells_outside == int((~world["sea"]).sum())
    flat = sd_ratio_aoa(soc, rel * soc, aoa)
    assert flat.sd_ratio_aoa == pytest.approx(1.0, rel=0.05)
    none_out = sd_ratio_aoa(soc, rel * soc, np.zeros_like(aoa))
    assert none_out.cells_outside == 0 and np.isnan(none_out.sd_ratio_aoa)


def _write_map(out: Path, crs: str, soc: np.ndarray, sd: np.ndarray, aoa: np.ndarray, sea: np.ndarray,
               extra: dict[str, np.ndarray] | None = None) -> Path:
    """A version folder OUT/synth/2020/v1 with soc.zarr written by the predict writers, tile by tile (``extra``:
    more float layers, by name)."""
    from socmap.config import GridConfig
    from socmap.io import MAP_ZARR
    from socmap.mapping.layout import map_root
    from socmap.mapping.tiles import grid_tiles
    from socmap.mapping.writers import zarr_template, zarr_write_tile

    x0, y1, res = GRIDS[crs]
    grid = GridConfig(name="synth", crs=crs, resolution=res, bounds=(x0, y1 - N * res, x0 + N * res, y1),
                      tile_size=12)
    root = map_root(out, "synth", 2020, "v1")
    store = root / MAP_ZARR
    zarr_template(store, grid, [*LAYERS, *(extra or {})], NODATA, {"note": "synthetic"})
    var = (sd**2) / 2
    full = {"soc_mean": soc, "aleatoric_var": var, "epistemic_var": var, "total_sd": sd, **(extra or {})}
    for t in grid_tiles(grid):
        win = (slice(t.row0, t.row0 + t.nrows), slice(t.col0, t.col0 + t.ncols))
        layers = {k: np.where(sea[win], NODATA, a[win]).astype(np.float32) for k, a in full.items()}
        layers["aoa"] = np.where(sea[win], 255, aoa[win]).astype(np.uint8)
        zarr_write_tile(store, t, layers)
    return root




@pytest.mark.parametrize("crs", list(GRIDS))
def test_benchmark_reads_a_written_map(crs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from socmap.io import SAMPLES

    data = tmp_path / "data"
    data.mkdir()
    world = _make_world(crs)
    sites = np.r_[world["train"], world["val"]]
    pd.DataFrame({"lon": sites[:, 0], "lat": sites[:, 1], "split": ["train"] * 8 + ["val"] * 4}).to_parquet(
        data / SAMPLES)
    far, sea = world["far"], world["sea"]
    bench = load_benchmark("map_realism")
    figures = {}
    for name in ("mosaic", "smooth"):
        soc = world[name]
        sd = np.where(far, 0.5, 0.2) * soc
        root = _write_map(tmp_path / name, crs, soc, sd, far.astype(np.uint8), sea)
        res = bench.main(["--maps", str(root), "--data", str(data)])
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == res
        figures[name] = res
    mosaic, smooth = figures["mosaic"], figures["smooth"]
    assert mosaic["facet_ratio"] > 20
    assert 0.75 < smooth["facet_ratio"] < 1.3
    direct = facet_ratio(np.where(sea, np.nan, world["smooth"]), world["site"])
    assert smooth["facet_ratio"] == pytest.approx(direct.facet_ratio, abs=1e-3)  # float32 storage
    assert smooth["pairs_across"] == direct.pairs_across
    assert smooth["cells"] == int((~sea).sum()) and smooth["sites"] == 8
    assert smooth["sd_ratio_aoa"] == pytest.approx(2.5, rel=1e-3)
    assert smooth["cells_outside_aoa"] == int((far & ~sea).sum())
    assert smooth["facet_ratio_by_distance_log"] > 0 and smooth["sd_ratio_aoa_log"] is None  # no q05 / q95


def test_benchmark_log_scale_figures(tmp_path: Path) -> None:
    """A log-normal map whose sd of log(1 + SOC) is 0.5 off the data and 0.2 on it: sd_ratio_aoa_log 2.5, read
    back through total_sd, q05 and q95; the log facet figure is facet_ratio_by_distance of log1p(soc_mean)."""
    from socmap.io import SAMPLES

    crs = "EPSG:4326"
    data = tmp_path / "data"
    data.mkdir()
    world = _make_world(crs)
    pd.DataFrame({"lon": world["train"][:, 0], "lat": world["train"][:, 1], "split": "train"}).to_parquet(
        data / SAMPLES)
    far, sea, soc = world["far"], world["sea"], world["smooth"]
    s = np.where(far, 0.5, 0.2)
    mu = np.log1p(soc)  # soc is the median here
    sd = np.sqrt(np.exp(2 * mu + s**2) * np.expm1(s**2))
    q = {"q05": np.expm1(mu - 1.6449 * s), "q95": np.expm1(mu + 1.6449 * s)}
    root = _write_map(tmp_path / "ln", crs, soc, sd, far.astype(np.uint8), sea, q)
    res = load_benchmark("map_realism").main(["--maps", str(root), "--data", str(data)])
    assert res["sd_ratio_aoa_log"] == pytest.approx(2.5, rel=1e-3)
    site, km = nearest_site(np.c_[world["lon"].ravel(), world["lat"].ravel()], world["train"], return_km=True)
    site, km = np.where(sea, -1, site.reshape(soc.shape)), np.where(sea, np.nan, km.reshape(soc.shape))
    direct = facet_ratio_by_distance(np.where(sea, np.nan, np.log1p(soc)), site, km)
    assert res["facet_ratio_by_distance_log"] == pytest.approx(direct, rel=1e-3)


def test_log_scale_sd_is_the_predictives_own() -> None:
    """Exact for a calibrated ensemble with Student t tails (where the q05 / q95 Gaussian reading is not)."""
    from socmap.evaluate.realism import log_scale_sd
    from socmap.inference.predictive import EnsemblePrediction

    mm, mv = np.array([[1.0, 2.0, 3.0], [1.2, 2.5, 2.0]]), np.array([[0.1, 0.3, 1.0], [0.2, 0.1, 0.5]])
    p = EnsemblePrediction.from_members(mm, mv).calibrate(1.5).with_tail_dof(5.0)
    got = log_scale_sd(np.sqrt(p.var_gkg("total")), p.quantile_gkg(0.05), p.quantile_gkg(0.95))
    np.testing.assert_allclose(got, np.sqrt(p.total_var), rtol=1e-10)


def test_benchmark_error_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"^map_realism: error: no maps in"):
        load_benchmark("map_realism").main(["--maps", str(tmp_path), "--data", str(tmp_path)])
