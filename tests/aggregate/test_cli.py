"""`socmap aggregate` end to end on a real (small) map: member maps in the store, the CSV / GeoPackage / chart /
metadata it writes, and one-line errors for bad zone files and fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from socmap.cli import cli


def _run(args: list[str]) -> tuple[int, str]:
    r = CliRunner().invoke(cli, args)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


@pytest.fixture(scope="module")
def maps(map_world: dict[str, Path], map_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from socmap.config import load_pipeline
    from socmap.mapping import predict

    cfg = load_pipeline(map_world["pipeline"])
    res = predict.run(cfg, map_bundle, tmp_path_factory.mktemp("aggmaps"), year=2020, scheduler="threads",
                      progress=False)
    return res.root


@pytest.fixture(scope="module")
def zones_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three polygons in Web Mercator (not the map's CRS); one reaches into the sea corner and beyond the grid."""
    import geopandas as gpd
    from shapely import box

    boxes = [box(36.02, -3.10, 36.10, -3.02), box(36.12, -3.30, 36.18, -3.20), box(36.24, -3.36, 36.30, -3.22)]
    g = gpd.GeoDataFrame({"name": ["north", "middle", "sea edge"], "code": [1, 2, 3]}, geometry=boxes,
                         crs="EPSG:4326").to_crs("EPSG:3857")
    path = tmp_path_factory.mktemp("zones") / "zones.geojson"
    g.to_file(path, driver="GeoJSON")
    return path


def test_member_maps_carry_the_epistemic_variance(maps: Path, map_bundle: Path) -> None:
    import rioxarray  # noqa: F401  (the .rio accessor)
    import xarray as xr

    with xr.open_zarr(maps / "soc.zarr", consolidated=False) as ds:
        xs, ys, crs = ds["x"].values, ds["y"].values, ds.rio.crs
        mem = np.asarray(ds["soc_member"].values, np.float64)
        soc = np.asarray(ds["soc_mean"].values, np.float64)
        med = np.asarray(ds["soc_median"].values, np.float64)
        epi = np.asarray(ds["epistemic_var"].values, np.float64)
        alea = np.asarray(ds["aleatoric_var"].values, np.float64)
    assert mem.shape == (2, 64, 64)
    ok = np.isfinite(soc)
    assert ok.sum() > 1000 and np.isfinite(mem[:, ok]).all() and np.isnan(mem[:, ~ok]).all()
    # each member's map is its calibrated expectation, and their mean is the map's expectation (soc_mean)
    np.testing.assert_allclose(mem[:, ok].mean(axis=0), soc[ok], rtol=1e-5)
    # their spread on the log scale, back-transformed by the delta method about the median, follows the map's
    # epistemic variance: equal but for the members' own variances (log1p of a member's map is c_m + T^2 s_m^2 / 2,
    # and s_m^2 differs between members: about 11 % here)
    var = np.var(np.log1p(mem[:, ok]), axis=0, ddof=1) * (1 + med[ok]) ** 2
    # the layers are shares of the log-normal variance (1 + med)^2 exp(v) (exp(v) - 1): back to the delta method's
    # (1 + med)^2 v, the scale of the members' log spread above
    r = (epi[ok] + alea[ok]) / (1 + med[ok]) ** 2
    v = np.log((1 + np.sqrt(1 + 4 * r)) / 2)
    lift = np.exp(v) * np.expm1(v) / v
    epi, alea = epi.copy(), alea.copy()
    epi[ok], alea[ok] = epi[ok] / lift, alea[ok] / lift
    # the map's epistemic variance also holds the bundle's distance pieces, which widen every member alike and so
    # are not in their spread: the growth g(d) of the calibrated variance and the distance term dv(d), so
    # epi = g epi_members + (g - 1) alea + dv (1 + med)^2 (delta method, as the layers): take them out
    from pyproj import Transformer

    from socmap.inference import distance_growth, load_bundle

    x, y = np.meshgrid(xs, ys)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x[ok], y[ok])
    b = load_bundle(map_bundle, load_members=False)
    dist = b.site_distance_km(np.c_[lon, lat])
    g = distance_growth(dist, b.calibration.distance_power)
    dv = 0.0 if b.distance_var is None else b.distance_var(dist)
    epi_members = (epi[ok] - (g - 1) * alea[ok] - dv * (1 + med[ok]) ** 2) / g
    # (members whose own variances differ more widen the spread of their expectations: 1.39x here, with the
    # continuous-weight, RMSE-selected members; the correlation stays 0.999)
    ratio = np.median(var / epi_members)
    assert 0.7 < ratio < 1.6 and np.corrcoef(var, epi_members)[0, 1] > 0.95


def test_cli_aggregate_writes_every_output(maps: Path, zones_file: Path, tmp_path: Path) -> None:
    import geopandas as gpd
    import pandas as pd

    out = tmp_path / "by_zone.csv"
    code, text = _run(["aggregate", "--maps", str(maps), "--zones", str(zones_file), "--field", "name", "--out",
                       str(out), "--level", "0.9", "--no-progress"])
    assert code == 0, text
    assert "3 zones" in text and "correlogram" in text
    t = pd.read_csv(out)
    assert list(t["zone"]) == ["north", "middle", "sea edge"]
    for col in ("area_km2", "cells", "soc_mean_gkg", "soc_lo_gkg", "soc_hi_gkg", "naive_lo_gkg", "outside_aoa_share"):
        assert t[col].notna().all(), col
    assert (t["soc_lo_gkg"] < t["soc_mean_gkg"]).all() and (t["soc_mean_gkg"] < t["soc_hi_gkg"]).all()
    # correlated errors widen the interval beyond the independent-cells one
    assert ((t["soc_hi_gkg"] - t["soc_lo_gkg"]) > (t["naive_hi_gkg"] - t["naive_lo_gkg"])).all()
    # the sea corner holds no mapped cells: the edge zone's mapped area is less than its area
    assert t.loc[2, "mapped_km2"] < 0.8 * t.loc[2, "area_km2"]
    assert abs(t.loc[0, "mapped_km2"] - t.loc[0, "area_km2"]) < 0.02 * t.loc[0, "area_km2"]
    # sites lie west of 36.20 only: the eastern zone is mostly outside the area of applicability
    assert t.loc[2, "outside_aoa_share"] > t.loc[0, "outside_aoa_share"]
    g = gpd.read_file(out.with_suffix(".gpkg"))
    assert len(g) == 3 and "soc_mean_gkg" in g.columns
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["members_in_map"] and meta["correlogram"]["n_points"] >= 12 and meta["level"] == 0.9
    assert out.with_suffix(".png").stat().st_size > 5000


@pytest.mark.parametrize("case", ["missing", "not_vector", "field"])
def test_cli_aggregate_bad_zones(case: str, maps: Path, zones_file: Path, tmp_path: Path) -> None:
    zones, field, needle = zones_file, "name", ""
    if case == "missing":
        zones, needle = tmp_path / "nope.gpkg", "not found"
    elif case == "not_vector":
        zones = tmp_path / "zones.gpkg"
        zones.write_text("this is not a GeoPackage\n")
        needle = "cannot read zones file"
    else:
        field, needle = "province", "'province' is not a column"
    code, text = _run(["aggregate", "--maps", str(maps), "--zones", str(zones), "--field", field, "--out",
                       str(tmp_path / "x.csv"), "--no-progress"])
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("socmap: error: "), text
    assert needle in lines[0], lines[0]
    assert not (tmp_path / "x.csv").exists()


def test_windowed_read_gives_the_same_zone_figures(maps: Path, zones_file: Path) -> None:
    from socmap.aggregate.correlogram import Correlogram
    from socmap.aggregate.stage import aggregate_zones, load_map, map_crs
    from socmap.aggregate.zones import read_zones

    zones = read_zones(zones_file, "name", map_crs(maps)).iloc[:2]
    full = load_map(maps)
    win = load_map(maps, tuple(float(v) for v in zones.total_bounds))  # type: ignore[arg-type]
    assert win.soc.size < full.soc.size
    c = Correlogram(len_scale_km=2.0, nugget_share=0.2, shared_share=0.05)
    a, b = aggregate_zones(full, zones, c), aggregate_zones(win, zones, c)
    cols = ["cells", "mapped_km2", "soc_mean_gkg", "soc_lo_gkg", "soc_hi_gkg", "naive_lo_gkg"]
    np.testing.assert_allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), rtol=1e-9)
