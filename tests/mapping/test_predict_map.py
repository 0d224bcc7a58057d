"""`socmap predict` on a small seeded world: one tile and four tiles, seams, sea, AOA, every output read back,
resume, tile selection and a real 2-worker distributed.LocalCluster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from socmap.config import load_pipeline
from socmap.errors import ConfigError
from socmap.io import MAP_DONE_DIR, MAP_ITEM, MAP_LATEST, MAP_PROVENANCE, MAP_SUMMARY, MAP_ZARR
from socmap.mapping import LAYERS, predict
from socmap.mapping.layout import resolve_maps

from .world import GRID_N, GRID_RES, SEA_LAT, SEA_LON, SITES_WEST_OF, TILE

YEAR = 2020


def _zarr(root: Path) -> dict[str, np.ndarray]:
    import xarray as xr

    with xr.open_zarr(root / MAP_ZARR, consolidated=False) as ds:
        return {k: np.asarray(ds[k].values) for k in LAYERS if k in ds}


@pytest.fixture(scope="module")
def runs(map_world: dict[str, Path], map_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("maps")
    r4 = predict.run(load_pipeline(map_world["pipeline"]), map_bundle, tmp / "out4", year=YEAR, scheduler="threads",
                     workers=2, progress=False)
    r1 = predict.run(load_pipeline(map_world["pipeline1"]), map_bundle, tmp / "out1", year=YEAR, scheduler="threads",
                     progress=False)
    return {"r4": r4, "r1": r1, "tmp": tmp}


def test_one_tile_and_four_tiles_write_every_cell(runs: dict) -> None:
    r1, r4 = runs["r1"], runs["r4"]
    assert (r1.tiles_done, r1.tiles_failed, r1.cells) == (1, 0, GRID_N**2)
    assert (r4.tiles_done, r4.tiles_failed, r4.cells) == (4, 0, GRID_N**2)
    assert r4.root.parent == runs["tmp"] / "out4" / "mapworld" / str(YEAR)  # OUT/REGION/YEAR/VERSION
    assert resolve_maps(r4.root.parent) == r4.root  # latest.json names the finished version
    assert json.loads((r4.root.parent / MAP_LATEST).read_text())["version"] == r4.root.name
    assert sorted(p.stem for p in (r4.root / MAP_DONE_DIR).glob("*.json")) == [
        "r000_c000", "r000_c001", "r001_c000", "r001_c001"]
    assert 0 < r4.cells_mapped < r4.cells  # the sea corner is not mapped


def test_no_seams_tiles_agree_with_one_tile(runs: dict) -> None:
    """A cell's prediction does not depend on the tile it is computed in (k-NN attachment per cell)."""
    a, b = _zarr(runs["r1"].root), _zarr(runs["r4"].root)
    for name in LAYERS:
        np.testing.assert_array_equal(np.isnan(a[name]), np.isnan(b[name]), err_msg=name)
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # across the tiles' shared edges the map is as smooth as inside a tile
    m = a["soc_mean"]
    jump_edge = max(np.nanmax(np.abs(m[TILE] - m[TILE - 1])), np.nanmax(np.abs(m[:, TILE] - m[:, TILE - 1])))
    jump_inside = np.nanmax(np.abs(np.diff(m[: TILE - 1], axis=0)))
    assert jump_edge <= 2 * jump_inside + 1e-6


def test_tiles_on_two_threads_equal_tiles_one_after_another(runs: dict, map_world: dict[str, Path],
                                                            map_bundle: Path) -> None:
    """The in-process run's tile threads share one context: the map is the one a single thread makes, bit for
    bit, and the process's torch thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    seq = predict.run(load_pipeline(map_world["pipeline"]), map_bundle, runs["tmp"] / "out_sync", year=YEAR,
                      scheduler="synchronous", progress=False)
    assert torch.get_num_threads() == threads
    a, b = _zarr(seq.root), _zarr(runs["r4"].root)
    for name in LAYERS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_sea_is_nodata_and_land_is_mapped(runs: dict) -> None:
    z = _zarr(runs["r4"].root)
    lon = 36.0 + (np.arange(GRID_N) + 0.5) * GRID_RES
    lat = -3.0 - (np.arange(GRID_N) + 0.5) * GRID_RES
    glon, glat = np.meshgrid(lon, lat)
    sea = (glon > SEA_LON + 0.01) & (glat < SEA_LAT - 0.01)
    land = ~((glon > SEA_LON - 0.01) & (glat < SEA_LAT + 0.01))
    for name in LAYERS:
        assert np.isnan(z[name][sea]).all(), name
        assert np.isfinite(z[name][land]).all(), name
    soc = z["soc_mean"][land]
    assert (soc > 0).all() and (soc < 600).all()
    assert (z["q05"][land] <= soc).all() and (soc <= z["q95"][land]).all()
    np.testing.assert_allclose(z["total_sd"][land] ** 2, z["aleatoric_var"][land] + z["epistemic_var"][land],
                               rtol=1e-3)


def test_aoa_is_the_di_above_its_threshold(runs: dict, map_bundle: Path) -> None:
    """The map's ``di`` layer and ``aoa`` = 1 exactly where the DI exceeds the threshold; the stored bundle
    predates the stored applicability, so both come from its training nodes (equal weights, spatial CV folds)."""
    from socmap.inference import load_bundle
    from socmap.mapping.aoa import AOAReference

    z = _zarr(runs["r4"].root)
    area = AOAReference.from_bundle(load_bundle(map_bundle, load_members=False)).area
    assert area is not None and area.weights.tolist() == [1.0] * 6 and 0 < area.threshold < 1
    di, aoa = z["di"], z["aoa"]
    land = np.isfinite(di)
    np.testing.assert_array_equal(np.isfinite(aoa), land)
    assert (di[land] >= 0).all()
    np.testing.assert_array_equal(aoa[land] == 1, di[land] > area.threshold)
    assert 0 < np.mean(aoa[land]) < 1  # the world's covariates reach beyond the sites' in places
    lon = 36.0 + (np.arange(GRID_N) + 0.5) * GRID_RES
    assert np.nanmedian(di[:, lon < SITES_WEST_OF - 0.04]) < np.nanmedian(di[:, lon > SITES_WEST_OF + 0.08])


def test_stored_applicability_is_used(map_bundle: Path) -> None:
    """A bundle carrying ``applicability`` (as train writes it) gets the DI from those numbers."""
    from dataclasses import replace

    from socmap.inference import load_bundle
    from socmap.mapping.aoa import AOAReference

    b = load_bundle(map_bundle, load_members=False)
    fitted = AOAReference.from_bundle(b).area
    assert fitted is not None
    info = {**fitted.to_info(), "weights": [2.0, 1.0, 1.0, 0.0, 0.0, 1.0], "threshold": 0.5}
    b.info = replace(b.info, applicability=info)
    stored = AOAReference.from_bundle(b).area
    assert stored is not None and stored.threshold == 0.5 and stored.weights.tolist() == info["weights"]
    assert stored.mean_distance == fitted.mean_distance
    x = np.zeros((1, 6))
    assert AOAReference(stored).flag(stored.di(x)).tolist() == [int(stored.di(x)[0] > 0.5)]
    assert AOAReference(None).flag(np.array([np.nan])).tolist() == [255]


def test_every_output_reads_back(runs: dict, map_world: dict[str, Path]) -> None:
    import matplotlib.image as mpimg
    import pystac
    import rasterio
    import rioxarray  # noqa: F401
    import xarray as xr
    from pyproj import CRS
    from rio_cogeo.cogeo import cog_validate

    from socmap.mapping.writers import core_validator

    root = runs["r4"].root
    z = _zarr(root)
    for name, spec in LAYERS.items():
        cogs = sorted((root / "cog" / name).glob("*.tif"))
        assert len(cogs) == 4, name
        for p in cogs:
            ok, errors, _ = cog_validate(str(p), quiet=True)
            assert ok, (p, errors)
            with rasterio.open(p) as ds:
                assert ds.units == (spec.unit,) and ds.descriptions == (spec.title,)
                assert ds.scales == (1.0,) and ds.nodata is not None and ds.overviews(1)
                assert ds.compression is not None and ds.block_shapes[0][0] < ds.height
        with rasterio.open(root / f"{name}.vrt") as ds:
            assert ds.crs == CRS.from_epsg(4326) and ds.shape == (GRID_N, GRID_N) and ds.units == (spec.unit,)
            v = ds.read(1, masked=True).astype(float).filled(np.nan)
        np.testing.assert_allclose(v, z[name], rtol=1e-6, equal_nan=True, err_msg=name)
    with xr.open_zarr(root / MAP_ZARR, consolidated=False) as ds:
        assert ds.rio.crs == CRS.from_epsg(4326)
        assert ds["soc_mean"].attrs["units"] == "g/kg" and ds["soc_mean"].attrs["grid_mapping"] == "spatial_ref"
        assert ds["soc_mean"].encoding["chunks"] == (TILE, TILE)
    item = pystac.Item.from_file(str(root / MAP_ITEM))
    item.validate(validator=core_validator())
    for key, asset in item.assets.items():
        assert (root / asset.href).exists(), key
    assert {"soc_mean", "zarr", "soc_mean_quicklook", "total_sd_quicklook", "summary"} <= set(item.assets)
    for name in ("soc_mean", "total_sd"):
        img = mpimg.imread(root / f"{name}.png")
        assert img.ndim == 3 and img.shape[0] > 200
    summary = json.loads((root / MAP_SUMMARY).read_text())
    assert summary["tiles_done"] == 4 and summary["cells"] == GRID_N**2 and summary["cells_per_s"] > 0
    # the speed counts mapped cells only (the world's sea corner is masked), and the time is accounted for
    assert summary["cells_mapped"] < summary["cells"]
    assert summary["cells_per_s"] == pytest.approx(summary["cells_mapped"] / summary["seconds"], rel=1e-3)
    parts = [summary[k] for k in ("plan_seconds", "map_seconds", "finish_seconds")]
    assert min(parts) > 0 and 0 <= summary["startup_seconds"] <= summary["map_seconds"]
    assert sum(parts) <= summary["seconds"] + 1e-3


def test_rerun_skips_done_tiles_and_tiles_option(runs: dict, map_world: dict[str, Path], map_bundle: Path) -> None:
    cfg = load_pipeline(map_world["pipeline"])
    res = predict.run(cfg, map_bundle, runs["tmp"] / "out4", year=YEAR, scheduler="threads", progress=False)
    assert (res.tiles_done, res.tiles_skipped) == (0, 4)
    out = runs["tmp"] / "one"
    res = predict.run(cfg, map_bundle, out, year=YEAR, scheduler="threads", tiles=["r001_c000"], progress=False)
    assert (res.tiles_done, res.cells) == (1, TILE**2)
    z = _zarr(res.root)
    assert np.isfinite(z["soc_mean"][TILE:, :TILE]).all() and np.isnan(z["soc_mean"][:TILE]).all()
    np.testing.assert_allclose(z["soc_mean"][TILE:, :TILE], _zarr(runs["r4"].root)["soc_mean"][TILE:, :TILE],
                               rtol=1e-5)


def _same_as_in_process(res, runs: dict) -> None:  # type: ignore[no-untyped-def]
    assert (res.tiles_done, res.tiles_failed) == (4, 0)
    a, b = _zarr(res.root), _zarr(runs["r4"].root)
    for name in LAYERS:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)


def test_existing_two_worker_cluster_by_address(runs: dict, map_world: dict[str, Path], map_bundle: Path) -> None:
    """A real distributed.LocalCluster with 2 workers, reached by its address (``--scheduler``): the bundle is loaded
    once per worker by the plugin, tiles are tasks, results come back to the driver's zarr writes. Workers are
    threads here (so the test can count the loads); the next test starts worker processes."""
    from distributed import LocalCluster

    cfg = load_pipeline(map_world["pipeline"])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        res = predict.run(cfg, map_bundle, runs["tmp"] / "by-address", year=YEAR, scheduler=cluster.scheduler_address,
                          progress=False)
        loads = [getattr(w, "socmap_bundle_loads", 0) for w in cluster.workers.values()]
        left = [name for w in cluster.workers.values() for name in w.plugins if name.startswith("socmap")]
    _same_as_in_process(res, runs)
    assert loads == [1, 1]  # 4 tiles, 2 workers: the bundle was loaded once per worker, not once per task
    assert left == []  # the plugin is unregistered when the run ends


def test_local_cluster_two_worker_processes(runs: dict, map_world: dict[str, Path], map_bundle: Path) -> None:
    """``socmap predict``'s own LocalCluster with 2 worker processes (each imports torch and loads the bundle):
    about 5 s on an idle 2-core machine, 30-45 s when other jobs load it."""
    cfg = load_pipeline(map_world["pipeline"])
    res = predict.run(cfg, map_bundle, runs["tmp"] / "cluster", year=YEAR, scheduler=None, workers=2, progress=False)
    _same_as_in_process(res, runs)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_new_year_and_version_never_overwrite_an_old_one(runs: dict, map_world: dict[str, Path],
                                                         map_bundle: Path) -> None:
    """Another year goes to OUT/REGION/2021/..., another --version beside the default one; the 2020 maps and
    2020/latest.json stay byte for byte (a run over one tile of four does not move latest.json)."""
    cfg = load_pipeline(map_world["pipeline"])
    year_dir = runs["r4"].root.parent
    before = _tree_bytes(year_dir)
    r21 = predict.run(cfg, map_bundle, runs["tmp"] / "out4", year=2021, scheduler="threads", tiles=["r000_c000"],
                      progress=False)
    rv = predict.run(cfg, map_bundle, runs["tmp"] / "out4", year=YEAR, scheduler="threads", tiles=["r000_c000"],
                     progress=False, version="rerun-b")
    assert r21.root == runs["tmp"] / "out4" / "mapworld" / "2021" / r21.root.name
    assert r21.root.name != runs["r4"].root.name  # the year is part of the run key, so of the default version
    assert rv.root == year_dir / "rerun-b" and rv.tiles_done == 1
    assert rv.tiles_remaining == 3 and r21.tiles_remaining == 3
    after = {k: v for k, v in _tree_bytes(year_dir).items() if not k.startswith("rerun-b/")}
    assert after == before  # latest.json included: rerun-b maps 1 tile of 4
    assert not (r21.root.parent / MAP_LATEST).exists()
    with pytest.raises(ConfigError, match="another bundle or other options"):  # other options, same --version
        predict.run(cfg, map_bundle, runs["tmp"] / "out4", year=YEAR, scheduler="threads", tiles=["r000_c000"],
                    progress=False, version=runs["r4"].root.name, mode="exact")
    assert _tree_bytes(year_dir / runs["r4"].root.name) == {k.split("/", 1)[1]: v for k, v in before.items()
                                                           if k.startswith(runs["r4"].root.name + "/")}


def test_rerun_redoes_a_tile_whose_file_changed(runs: dict, map_world: dict[str, Path], map_bundle: Path,
                                                tmp_path: Path) -> None:
    """A record is trusted only while every file it lists has its sha256: a damaged COG and a deleted zarr chunk
    make their tiles run again (and come back identical); the other tiles are skipped."""
    import shutil

    cfg = load_pipeline(map_world["pipeline"])
    out = tmp_path / "copy"
    shutil.copytree(runs["r4"].root.parent.parent.parent, out)
    root = out / "mapworld" / str(YEAR) / runs["r4"].root.name
    good = _tree_bytes(root)
    cog = root / "cog" / "soc_mean" / "soc_mean_r000_c001.tif"
    cog.write_bytes(cog.read_bytes()[:-10] + b"0123456789")
    (root / MAP_ZARR / "q95" / "c" / "1" / "0").unlink()
    res = predict.run(cfg, map_bundle, out, year=YEAR, scheduler="threads", progress=False)
    assert (res.tiles_done, res.tiles_skipped) == (2, 2)
    now = _tree_bytes(root)
    for k in good:
        if k.startswith(("cog/", f"{MAP_ZARR}/")):
            assert now[k] == good[k], k
    rec = json.loads((root / MAP_DONE_DIR / "r000_c001.json").read_text())
    assert "cog/soc_mean/soc_mean_r000_c001.tif" in rec["files"] and f"{MAP_ZARR}/q95/c/0/1" in rec["files"]


def test_provenance_beside_the_maps_and_in_the_item(runs: dict, map_bundle: Path) -> None:
    import pystac

    from socmap.mapping.records import bundle_sha256

    root = runs["r4"].root
    prov = json.loads((root / MAP_PROVENANCE).read_text())
    assert prov["bundle"]["sha256"] == bundle_sha256(map_bundle) and prov["bundle"]["created"]
    assert prov["year"] == YEAR and prov["version"] == root.name and prov["region"] == "mapworld"
    assert prov["socmap_version"] and prov["started"] <= prov["finished"]
    assert prov["pipeline"]["data"]["covariates"][0]["name"] == "temp"
    tiles = prov["tiles"]  # done in this run, or skipped as done by an earlier one (an earlier test re-runs)
    assert tiles["total"] == 4 and len(tiles["done"]) + len(tiles["skipped"]) == 4 and tiles["failed"] == {}
    item = pystac.Item.from_file(str(root / MAP_ITEM))
    assert item.properties["socmap:provenance"]["bundle"]["sha256"] == prov["bundle"]["sha256"]
    assert "provenance" in item.assets


def test_mean_is_above_median_and_bounds_hold(runs: dict) -> None:
    """``soc_mean`` (expectation of the calibrated log-normal mixture) lies above ``soc_median`` (expm1 of the
    log-scale mean) on every mapped cell; the 5 %/95 % bounds bracket the median."""
    z = _zarr(runs["r4"].root)
    ok = np.isfinite(z["soc_median"])
    assert ok.sum() > 1000 and np.array_equal(ok, np.isfinite(z["soc_mean"]))
    assert (z["soc_mean"][ok] > z["soc_median"][ok]).all()
    assert (z["q05"][ok] < z["soc_median"][ok]).all() and (z["soc_median"][ok] < z["q95"][ok]).all()
    # the gap is the log-normal's: about (1 + median) (exp(v / 2) - 1), v the log-scale variance, which the sd
    # layer gives back: total_sd^2 = (1 + median)^2 exp(v) (exp(v) - 1), so exp(v) = (1 + sqrt(1 + 4 r)) / 2
    r = (z["total_sd"][ok] / (1 + z["soc_median"][ok])) ** 2
    v = np.log((1 + np.sqrt(1 + 4 * r)) / 2)
    gap = (z["soc_mean"][ok] - z["soc_median"][ok]) / ((1 + z["soc_median"][ok]) * np.expm1(v / 2))
    assert 0.5 < np.median(gap) < 1.05


def test_item_declares_projection_raster_and_file(runs: dict) -> None:
    import hashlib

    import pystac

    root = runs["r4"].root
    item = pystac.Item.from_file(str(root / MAP_ITEM))
    for uri in ("projection/v2.0.0", "raster/v1.1.0", "file/v2.1.0"):  # as pystac reads it (migrated)
        assert any(uri in e for e in item.stac_extensions), uri
    raw = json.loads((root / MAP_ITEM).read_text())  # as written: projection v1.2.0, proj:code and proj:epsg
    assert "https://stac-extensions.github.io/projection/v1.2.0/schema.json" in raw["stac_extensions"]
    for name, spec in LAYERS.items():
        assert (raw["assets"][name]["proj:code"], raw["assets"][name]["proj:epsg"]) == ("EPSG:4326", 4326)
        f = item.assets[name].extra_fields
        assert f["proj:code"] == "EPSG:4326" and f["proj:shape"] == [GRID_N, GRID_N]
        assert f["proj:transform"] == pytest.approx([GRID_RES, 0, 36.0, 0, -GRID_RES, -3.0])
        band = f["raster:bands"][0]
        assert band["data_type"] == spec.dtype and band["unit"] == spec.unit
        assert band["nodata"] == (255 if spec.dtype == "uint8" else -9999.0)
        assert (band["scale"], band["offset"]) == (1.0, 0.0)
        tile = item.assets[f"{name}_r001_c000"].extra_fields
        assert tile["proj:shape"] == [TILE, TILE]
        assert tile["proj:transform"] == pytest.approx([GRID_RES, 0, 36.0, 0, -GRID_RES, -3.0 - TILE * GRID_RES])
    for key in ("soc_mean", "soc_mean_r000_c001", "provenance"):
        data = (root / item.assets[key].href).read_bytes()
        f = item.assets[key].extra_fields
        assert f["file:size"] == len(data) and f["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()


def _vrt(root: Path, name: str) -> np.ndarray:
    import rasterio

    with rasterio.open(root / f"{name}.vrt") as src:
        return src.read(1, masked=True).astype(float).filled(np.nan)


def test_item_loads_in_odc_stac_stackstac_and_rasterio(runs: dict) -> None:
    """The STAC Item as a GIS user loads it, given no CRS, grid or bounds: odc-stac, stackstac and rasterio over
    the assets' hrefs read the VRT's values (and the zarr store's), cell for cell, on the same grid."""
    import odc.stac
    import pystac
    import rasterio
    import stackstac

    root = runs["r4"].root
    z = _zarr(root)
    bands = ["soc_mean", "soc_median", "total_sd"]
    vrt = {name: _vrt(root, name) for name in bands}
    for name in bands:
        np.testing.assert_array_equal(vrt[name], z[name], err_msg=name)  # NaN where NaN
    x = 36.0 + (np.arange(GRID_N) + 0.5) * GRID_RES
    y = -3.0 - (np.arange(GRID_N) + 0.5) * GRID_RES

    # odc-stac, on the Item as pystac reads it (which migrates the projection fields to v2: proj:code)
    item = pystac.Item.from_file(str(root / MAP_ITEM))
    item.make_asset_hrefs_absolute()
    ds = odc.stac.load([item], bands=bands)
    assert ds.odc.crs.epsg == 4326 and ds.soc_mean.shape == (1, GRID_N, GRID_N)
    np.testing.assert_allclose(ds.longitude.values, x)
    np.testing.assert_allclose(ds.latitude.values, y)
    for name in bands:
        v = ds[name].isel(time=0).values.astype(float)
        v[v == ds[name].attrs["nodata"]] = np.nan
        np.testing.assert_array_equal(v, vrt[name], err_msg=name)

    # stackstac reads proj:epsg, which pystac's reader drops: the Item's JSON as written, as a dict or unmigrated
    raw = json.loads((root / MAP_ITEM).read_text())
    for a in raw["assets"].values():
        a["href"] = str((root / a["href"]).resolve())
    kept = pystac.Item.from_dict(json.loads((root / MAP_ITEM).read_text()), href=str(root / MAP_ITEM),
                                 migrate=False)
    kept.make_asset_hrefs_absolute()
    # snapping the bounds to the resolution would add a column and a row where the grid's edge (36.0 degrees /
    # 0.005) is not exact in floating point
    for it in (raw, kept):
        st = stackstac.stack([it], assets=bands, xy_coords="center", snap_bounds=False).compute()
        assert st.shape == (1, len(bands), GRID_N, GRID_N) and int(st.epsg) == 4326
        np.testing.assert_allclose(st.x.values, x)
        np.testing.assert_allclose(st.y.values, y)
        for name in bands:
            np.testing.assert_array_equal(st.sel(band=name).isel(time=0).values, vrt[name], err_msg=name)

    # rasterio over every raster asset's href finds the CRS, grid and nodata the Item declares
    rasters = {k: a for k, a in raw["assets"].items() if "proj:shape" in a}
    assert len(rasters) == len(LAYERS) * 5  # the VRT and 4 tile COGs of each layer
    for key, a in rasters.items():
        with rasterio.open(a["href"]) as src:
            assert src.crs.to_epsg() == a["proj:epsg"] and a["proj:code"] == f"EPSG:{a['proj:epsg']}", key
            assert [src.height, src.width] == a["proj:shape"], key
            assert list(src.transform)[:6] == pytest.approx(a["proj:transform"]), key
            assert src.nodata == a["raster:bands"][0]["nodata"], key
    with rasterio.open(rasters["soc_mean"]["href"]) as src:
        np.testing.assert_array_equal(src.read(1, masked=True).astype(float).filled(np.nan), vrt["soc_mean"])


def test_collection_links_every_finished_year_and_version(runs: dict, map_world: dict[str, Path],
                                                          map_bundle: Path) -> None:
    """OUT/REGION/collection.json lists each finished year/version Item once (relative hrefs), with the extent
    over them and the years, versions and layers in its summaries; a re-run does not add a link, a run over part of
    the grid is not listed."""
    import pystac

    from socmap.mapping.catalog import COLLECTION
    from socmap.mapping.writers import core_validator

    out = runs["tmp"] / "series"
    one = load_pipeline(map_world["pipeline1"])
    r20 = predict.run(one, map_bundle, out, year=2020, scheduler="threads", progress=False)
    r21 = predict.run(one, map_bundle, out, year=2021, scheduler="threads", progress=False)
    again = predict.run(one, map_bundle, out, year=2021, scheduler="threads", progress=False)
    assert again.tiles_skipped == 1
    part = predict.run(load_pipeline(map_world["pipeline"]), map_bundle, out, year=2022, scheduler="threads",
                       tiles=["r000_c000"], progress=False)
    assert part.tiles_remaining == 3
    path = out / "mapworld" / COLLECTION
    doc = json.loads(path.read_text())
    hrefs = [ln["href"] for ln in doc["links"] if ln["rel"] == "item"]
    assert hrefs == [f"./{r.root.parent.name}/{r.root.name}/{MAP_ITEM}" for r in (r20, r21)]

    coll = pystac.Collection.from_file(str(path))
    coll.validate(validator=core_validator())
    items = list(coll.get_items())
    assert sorted(it.id for it in items) == sorted(json.loads((r.root / MAP_ITEM).read_text())["id"]
                                                  for r in (r20, r21))
    assert {it.assets["soc_mean"].get_absolute_href() for it in items} == {
        str(r.root / "soc_mean.vrt") for r in (r20, r21)}
    (w, s, e, n), = coll.extent.spatial.bboxes
    for it in items:
        assert w <= it.bbox[0] and s <= it.bbox[1] and e >= it.bbox[2] and n >= it.bbox[3]
    (t0, t1), = coll.extent.temporal.intervals
    assert (t0.year, t0.month, t0.day, t1.year, t1.month, t1.day) == (2020, 1, 1, 2021, 12, 31)
    assert coll.summaries.get_list("socmap:year") == [2020, 2021]
    assert coll.summaries.get_list("socmap:version") == sorted({r20.root.name, r21.root.name})
    assert coll.summaries.get_list("socmap:layers") == list(LAYERS)


def test_zarr_store_opens_quietly_with_consolidated_metadata(runs: dict) -> None:
    """``xr.open_zarr`` with no options finds the consolidated metadata (no warning); a resumed run keeps it."""
    import warnings

    import xarray as xr

    root = runs["r4"].root
    doc = json.loads((root / MAP_ZARR / "zarr.json").read_text())
    assert set(doc["consolidated_metadata"]["metadata"]) >= set(LAYERS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with xr.open_zarr(root / MAP_ZARR) as ds:
            np.testing.assert_array_equal(ds["soc_mean"].values, _zarr(root)["soc_mean"])
            assert doc["attributes"]["socmap_run_key"] == ds.attrs["socmap_run_key"]
