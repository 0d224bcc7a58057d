"""The demo world: determinism, reuse, STAC validity and the properties the later stages rely on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio

from socmap.demo.world import WORLD_S2_BANDS, WorldSpec, ensure_world, world_matches

TINY = WorldSpec(seed=3, size_m=1200.0, s2_doys=(18, 200), s1_doys=(150,), years=(2022, 2023), n_sites=40,
                 margin_m=100.0, scene_margin_m=0.0)


def _hashes(root: Path) -> dict[str, str]:
    return json.loads((root / "world.json").read_text())["files"]


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = ensure_world(tmp_path / "a", TINY, progress=False)
    b = ensure_world(tmp_path / "b", TINY, progress=False)
    ha, hb = _hashes(a), _hashes(b)
    assert len(ha) > 20
    assert ha == hb
    # the manifest hashes are the real bytes
    for rel in list(ha)[:5]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_other_seed_other_world(tmp_path: Path) -> None:
    a = ensure_world(tmp_path / "a", TINY, progress=False)
    c = ensure_world(tmp_path / "c", WorldSpec(**{**TINY.__dict__, "seed": 4}), progress=False)
    assert _hashes(a)["truth/soc_true_2022.tif"] != _hashes(c)["truth/soc_true_2022.tif"]


def test_second_run_reuses_world(tmp_path: Path) -> None:
    root = ensure_world(tmp_path / "w", TINY, progress=False)
    stamp = (root / "world.json").stat().st_mtime_ns
    assert ensure_world(tmp_path / "w", TINY, progress=False) == root
    assert (root / "world.json").stat().st_mtime_ns == stamp
    # a changed spec or a missing file regenerates
    (root / "truth" / "soc_true_2023.tif").unlink()
    assert not world_matches(root, TINY)
    ensure_world(root, TINY, progress=False)
    assert (root / "truth" / "soc_true_2023.tif").is_file()


@pytest.fixture(scope="module")
def catalog(small_world: Path) -> pystac.Catalog:
    return pystac.Catalog.from_file(str(small_world / "stac" / "catalog.json"))


class _CoreSchemaValidator:
    """pystac's JSON-schema validator on the STAC core schemas pystac bundles (no network).

    The extension schemas (proj, eo, raster, sar, sat) live on stac-extensions.github.io, which these machines
    cannot reach; ``test_asset_metadata_matches_files`` checks those fields against the files themselves.
    """

    def __enter__(self) -> None:
        import pystac.validation as v
        from pystac.validation.stac_validator import JsonSchemaSTACValidator

        class CoreOnly(JsonSchemaSTACValidator):
            def validate_extension(self, *args: object, **kwargs: object) -> None:
                return None

        self._v = v
        v.set_validator(CoreOnly())

    def __exit__(self, *exc: object) -> None:
        from pystac.validation.stac_validator import JsonSchemaSTACValidator

        self._v.set_validator(JsonSchemaSTACValidator())


def test_catalog_validates(catalog: pystac.Catalog, small_world_spec: WorldSpec) -> None:
    with _CoreSchemaValidator():
        n = catalog.validate_all()
    spec = small_world_spec
    n_expected = len(spec.years) * (len(spec.s2_doys) + len(spec.s1_doys)) + 2
    assert n == n_expected
    ids = {c.id for c in catalog.get_children()}
    assert ids == {"sentinel-2-l2a", "sentinel-1-rtc", "cop-dem-glo-30", "demo-covariates"}


def test_validator_rejects_a_broken_item(catalog: pystac.Catalog) -> None:
    item = next(catalog.get_items(recursive=True))
    d = item.to_dict()
    del d["geometry"]
    with _CoreSchemaValidator(), pytest.raises(pystac.errors.STACValidationError):
        pystac.validation.validate_dict(d)


def test_asset_metadata_matches_files(catalog: pystac.Catalog) -> None:
    """proj:code/shape/transform and raster:bands nodata/dtype agree with every COG; COGs validate."""
    from rio_cogeo.cogeo import cog_validate

    n = 0
    for item in catalog.get_items(recursive=True):
        assert "https://stac-extensions.github.io/projection/v2.0.0/schema.json" in item.stac_extensions
        for key, asset in item.assets.items():
            href = asset.get_absolute_href()
            with rasterio.open(href) as src:
                assert [src.height, src.width] == asset.extra_fields["proj:shape"], (item.id, key)
                assert list(src.transform)[:6] == pytest.approx(asset.extra_fields["proj:transform"])
                assert src.crs.to_epsg() == int(asset.extra_fields["proj:code"].split(":")[1])
                band = asset.extra_fields["raster:bands"][0]
                assert band["data_type"] == src.dtypes[0]
                assert band.get("nodata") == src.nodata
            valid, errors, _ = cog_validate(href, quiet=True)
            assert valid, (href, errors)
            n += 1
    assert n > 30


def test_sentinel2_conventions(catalog: pystac.Catalog) -> None:
    s2 = list(catalog.get_child("sentinel-2-l2a").get_items())
    baselines = {i.properties["s2:processing_baseline"] for i in s2}
    assert baselines == {"03.01", "05.09"}  # one scene before 2022-01-25 keeps the old baseline
    for item in s2:
        assert set(item.assets) == {*(b.name for b in WORLD_S2_BANDS), "SCL"}
        offset = item.assets["B04"].extra_fields["raster:bands"][0]["offset"]
        assert offset == (0.0 if item.properties["s2:processing_baseline"] < "04.00" else -0.1)
        with rasterio.open(item.assets["SCL"].get_absolute_href()) as src:
            scl = src.read(1)
        cloudy = np.isin(scl, [8, 9]).mean() * 100
        assert cloudy == pytest.approx(item.properties["eo:cloud_cover"], abs=3.0)
        assert item.assets["B02"].extra_fields["proj:transform"][0] == 10.0
        assert item.assets["B05"].extra_fields["proj:transform"][0] == 20.0
        assert item.assets["B01"].extra_fields["proj:transform"][0] == 60.0
    assert max(i.properties["eo:cloud_cover"] for i in s2) > 25.0  # scenes the extractor must skip


def test_survey_matches_truth(small_world: Path, small_world_spec: WorldSpec) -> None:
    """Profiles sampled exactly over 0-30 cm give back the true SOC within the planted lab noise."""
    survey = pd.read_csv(small_world / "survey" / "soil_survey.csv")
    sites = pd.read_csv(small_world / "truth" / "sites.csv").set_index("profile_id")
    assert len(sites) == small_world_spec.n_sites
    assert {"profile_id", "longitude", "latitude", "sampling_date", "upper_depth_cm", "lower_depth_cm",
            "org_carbon_pct"} <= set(survey.columns)
    good = survey[survey.profile_id.isin(sites.index)].drop_duplicates()
    good = good[~good.lab_sample_id.str.endswith("-R")]
    top = good[good.upper_depth_cm < 30]
    full = top.groupby("profile_id").filter(lambda g: g.lower_depth_cm.max() == 30)
    w = full.lower_depth_cm - full.upper_depth_cm
    est = (full.org_carbon_pct * 10 * w).groupby(full.profile_id).sum() / w.groupby(full.profile_id).sum()
    ratio = est / sites.loc[est.index, "soc_true_gkg"]
    assert len(ratio) > 30
    assert abs(np.log(ratio).mean()) < 0.03 and np.log(ratio).std() < 0.08
    # the planted faults are there
    assert survey.latitude.isna().sum() >= 3 and (survey.latitude == 999).sum() >= 2
    assert survey.duplicated().sum() >= 4
    assert (survey.org_carbon_pct < 0).any() and (survey.org_carbon_pct > 60).any()


def test_truth_carries_each_relation(small_world: Path) -> None:
    """True SOC depends on land cover (NDVI relation), terrain (elevation relation) and is autocorrelated."""
    with rasterio.open(small_world / "truth" / "soc_true_2023.tif") as src:
        soc = src.read(1)
    with rasterio.open(small_world / "covariates" / "landcover.tif") as src:
        lc = src.read(1)
    means = {c: float(np.log(soc[lc == c]).mean()) for c in np.unique(lc) if (lc == c).sum() > 500}
    assert len(means) >= 3 and max(means.values()) - min(means.values()) > 0.3
    log = np.log(soc)
    near = np.corrcoef(log[:, :-5].ravel(), log[:, 5:].ravel())[0, 1]  # 50 m apart
    far = np.corrcoef(log[:, :-150].ravel(), log[:, 150:].ravel())[0, 1]  # 1.5 km apart
    assert near > 0.8 and far < near - 0.3


def test_rasters_reach_beyond_the_region(tmp_path: Path) -> None:
    """With ``scene_margin_m`` the scenes, DEM and covariates cover the region plus the margin on every side, the
    truth covers the region exactly, and each site's true SOC is the truth raster's value at its pixel."""
    from pyproj import Transformer

    spec = WorldSpec(**{**TINY.__dict__, "scene_margin_m": 500.0})
    assert WorldSpec().scene_margin_m >= 112 * WorldSpec().resolution_m  # half a 224-px patch at 10 m
    root = ensure_world(tmp_path / "m", spec, progress=False)
    xmin, ymin, xmax, ymax = spec.bounds
    want = (xmin - 500, ymin - 500, xmax + 500, ymax + 500)
    assert spec.raster_bounds == want
    cat = pystac.Catalog.from_file(str(root / "stac" / "catalog.json"))
    for item in cat.get_items(recursive=True):
        for key, asset in item.assets.items():
            with rasterio.open(asset.get_absolute_href()) as src:
                b = src.bounds
                if src.crs.to_epsg() == 4326:  # the DEM: its lon/lat box holds the margin's corners
                    lon, lat = Transformer.from_crs(spec.epsg, 4326, always_xy=True).transform(
                        [want[0], want[2]], [want[1], want[3]])
                    assert b.left <= min(lon) and b.right >= max(lon) and b.bottom <= min(lat) and b.top >= max(lat)
                else:
                    assert (b.left, b.top) == pytest.approx((want[0], want[3])), (item.id, key)
                    assert b.right >= want[2] - src.res[0] and b.bottom <= want[1] + src.res[1], (item.id, key)
    with rasterio.open(root / "truth" / "soc_true_2022.tif") as src:
        assert tuple(src.bounds) == pytest.approx(spec.bounds) and src.shape == (spec.n, spec.n)
        truth = src.read(1)
        sites = pd.read_csv(root / "truth" / "sites.csv")
        one = sites[sites.year == 2022]
        rows, cols = rasterio.transform.rowcol(src.transform, one.x.to_numpy(), one.y.to_numpy())
    np.testing.assert_allclose(truth[rows, cols], one.soc_true_gkg.to_numpy(), rtol=1e-3)
    assert ((sites.x > xmin) & (sites.x < xmax) & (sites.y > ymin) & (sites.y < ymax)).all()
