"""Composite semantics on local files: baseline offset, SCL mask, band order and units, S1 dB, DEM and slope."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from socmap.eo import S2_BANDS, SceneSet, aligned_geobox, build_composite, horn_terrain
from socmap.eo.bands import S2_INVALID_SCL, s2_offset


@pytest.fixture(scope="module")
def items(small_world: Path) -> dict[str, list[pystac.Item]]:
    cat = pystac.Catalog.from_file(str(small_world / "stac" / "catalog.json"))
    out = {}
    for c in cat.get_children():
        its = list(c.get_items())
        for i in its:
            i.make_asset_hrefs_absolute()
        out[c.id] = sorted(its, key=lambda i: i.datetime)
    return out


@pytest.fixture(scope="module")
def world_box(small_world_spec):  # type: ignore[no-untyped-def]
    x0, y0, x1, y1 = small_world_spec.bounds
    return aligned_geobox((x0 + 200, y0 + 200, x1 - 200, y1 - 200), small_world_spec.epsg, 10.0)


def _read(href: str) -> np.ndarray:
    with rasterio.open(href) as src:
        return src.read(1)


def _crop(a: np.ndarray, f: int = 1) -> np.ndarray:
    """The world raster at 10 m cropped like ``world_box`` (200 m inside each edge); f = native/10 m factor."""
    if f > 1:
        a = np.repeat(np.repeat(a, f, 0), f, 1)
    return a[20:-20, 20:-20]


def test_s2_offset_by_processing_baseline() -> None:
    assert s2_offset("03.01") == 0.0
    assert s2_offset("04.00") == -1000.0 and s2_offset("05.09") == -1000.0
    assert s2_offset(None) == -1000.0


def test_offset_removed_per_scene_and_band_order(items, world_box) -> None:  # type: ignore[no-untyped-def]
    s2 = items["sentinel-2-l2a"]
    old = [i for i in s2 if i.properties["s2:processing_baseline"] < "04.00"]
    new = [i for i in s2 if i.properties["s2:processing_baseline"] >= "04.00"]
    assert old and new
    for item, off in ((old[0], 0), (new[0], -1000)):
        comp = build_composite(SceneSet(s2=[item]), world_box, item.datetime.year, chunk_px=128)
        s2c = comp.ds["S2L2A"].values
        scl = _crop(_read(item.assets["SCL"].href), 2)
        clear = ~np.isin(scl, sorted(S2_INVALID_SCL))
        for k, band in enumerate(S2_BANDS):
            if band.native_res_m != 10:
                continue
            raw = _crop(_read(item.assets[band.asset].href)).astype(np.float32)
            np.testing.assert_array_equal(s2c[k][clear], raw[clear] + off)


def test_both_baselines_give_the_same_dn(items, world_box, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The old-baseline scene re-issued as baseline 05.09 (DN + 1000) composites to the same DN."""
    old = next(i for i in items["sentinel-2-l2a"] if i.properties["s2:processing_baseline"] < "04.00")
    twin = old.clone()
    twin.id = old.id + "_N0509"
    twin.properties["s2:processing_baseline"] = "05.09"
    for key, asset in old.assets.items():
        dst = tmp_path / f"{key}.tif"
        if key == "SCL":
            shutil.copy(asset.href, dst)
        else:
            with rasterio.open(asset.href) as src:
                prof, a = src.profile, src.read(1)
            with rasterio.open(dst, "w", **prof) as out:
                out.write(np.where(a > 0, a + 1000, 0).astype(np.uint16), 1)
        twin.assets[key].href = str(dst)
    a = build_composite(SceneSet(s2=[old]), world_box, 2022, chunk_px=128).ds["S2L2A"].values
    b = build_composite(SceneSet(s2=[twin]), world_box, 2022, chunk_px=128).ds["S2L2A"].values
    np.testing.assert_allclose(a, b, atol=1.0, equal_nan=True)  # bilinear on uint16 rounds to whole DN
    assert np.isfinite(a).mean() > 0.5


def test_scl_masks_clouds_out_of_the_median(items, world_box) -> None:  # type: ignore[no-untyped-def]
    s2 = items["sentinel-2-l2a"]
    scls = {i.id: _crop(_read(i.assets["SCL"].href), 2) for i in s2}
    item = max(s2, key=lambda i: np.isin(scls[i.id], [3, 8, 9]).mean())
    bad = np.isin(scls[item.id], sorted(S2_INVALID_SCL))
    assert bad.any() and (~bad).any()
    single = build_composite(SceneSet(s2=[item]), world_box, 2022, chunk_px=128).ds["S2L2A"].values
    assert np.isnan(single[:, bad]).all() and np.isfinite(single[:, ~bad]).all()
    # several scenes: the median is over the clear observations only
    same_year = [i for i in s2 if i.datetime.year == item.datetime.year]
    comp = build_composite(SceneSet(s2=same_year), world_box, item.datetime.year, chunk_px=128)
    med = comp.ds["S2L2A"].values[0]
    stack = []
    for i in same_year:
        v = _crop(_read(i.assets["B02"].href)).astype(np.float32) + s2_offset(i.properties["s2:processing_baseline"])
        stack.append(np.where(np.isin(scls[i.id], sorted(S2_INVALID_SCL)), np.nan, v))
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning) if np.isnan(stack).all(0).any() else _null():
        expect = np.nanmedian(np.stack(stack), axis=0)
    np.testing.assert_allclose(med, expect, equal_nan=True)
    assert (comp.ds["s2_clear"].values == np.isfinite(np.stack(stack)).sum(0)).all()


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def test_s1_in_db(items, world_box) -> None:  # type: ignore[no-untyped-def]
    s1 = items["sentinel-1-rtc"][0]
    comp = build_composite(SceneSet(s1=[s1]), world_box, s1.datetime.year, chunk_px=128)
    got = comp.ds["S1GRD"].values
    for k, key in enumerate(("vv", "vh")):
        lin = _crop(_read(s1.assets[key].href))
        np.testing.assert_allclose(got[k], 10 * np.log10(lin), rtol=1e-5, atol=1e-4)
    assert -35 < np.nanmedian(got[1]) < np.nanmedian(got[0]) < 5  # VH below VV, both in dB


def test_dem_resampled_to_10m_grid_and_slope(items, world_box, small_world: Path) -> None:  # type: ignore[no-untyped-def]
    comp = build_composite(SceneSet(dem=items["cop-dem-glo-30"]), world_box, 2022, chunk_px=128)
    dem = comp.ds["DEM"].values[0]
    assert dem.shape == tuple(world_box.shape) and np.isfinite(dem).all()
    assert comp.ds.attrs["resolution_m"] == 10.0
    # the value at a pixel centre matches the geographic DEM sampled there
    from pyproj import Transformer

    r, c = 77, 123
    x = world_box.transform.c + (c + 0.5) * 10
    y = world_box.transform.f - (r + 0.5) * 10
    lon, lat = Transformer.from_crs(world_box.crs.epsg, 4326, always_xy=True).transform(x, y)
    with rasterio.open(items["cop-dem-glo-30"][0].assets["data"].href) as src:
        ref = next(src.sample([(lon, lat)]))[0]
    assert abs(dem[r, c] - ref) < 5.0
    slope = comp.ds["slope_deg"].values
    expect, _ = horn_terrain(dem, 10.0)
    np.testing.assert_allclose(slope, expect, atol=1e-4)
    assert (slope >= 0).all() and slope.max() < 90


def test_horn_terrain_on_a_plane() -> None:
    yy, xx = np.mgrid[0:20, 0:20]
    z = 0.1 * xx * 10.0  # rises 0.1 m per m to the east
    slope, aspect = horn_terrain(z, 10.0)
    np.testing.assert_allclose(slope[2:-2, 2:-2], np.degrees(np.arctan(0.1)), rtol=1e-6)
    np.testing.assert_allclose(aspect[2:-2, 2:-2], 270.0)  # faces west (downslope)
    slope, aspect = horn_terrain(-yy * 1.0, 10.0)  # falls to the south (rows go south)
    np.testing.assert_allclose(aspect[2:-2, 2:-2], 180.0)
