"""Every harmonisation rule on a hand-made table: units, depth weighting, dedup, drops, reprojection."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer

from socmap.config import DataConfig
from tests.soil.helpers import harmonise, row


@pytest.mark.parametrize(("unit", "value", "om_factor", "expected_gkg"), [
    ("g/kg", 12.0, None, 12.0),
    ("permille", 12.0, None, 12.0),
    ("‰", 12.0, None, 12.0),
    ("mg/g", 12.0, None, 12.0),
    ("percent", 1.2, None, 12.0),
    ("%", 1.2, None, 12.0),
    ("om_percent", 1.724, None, 10.0),  # van Bemmelen 1.724 by default
    ("om_percent", 2.0, 2.0, 10.0),  # stated factor
    ("om_g/kg", 20.0, 2.0, 10.0),
])
def test_soc_unit_conversion(unit: str, value: float, om_factor: float | None, expected_gkg: float) -> None:
    extra = {"om_factor": om_factor} if om_factor else {}
    sites, _ = harmonise([row(soc=value)], soc_unit=unit, **extra)
    assert sites.soc_gkg.iloc[0] == pytest.approx(expected_gkg)


def test_depth_weighting_by_hand() -> None:
    # 0-10 @ 20, 10-20 @ 10, 20-50 @ 4 -> weights 10, 10, 10 over 0-30: (200 + 100 + 40) / 30
    rows = [row(soc=20, top=0, bot=10), row(soc=10, top=10, bot=20), row(soc=4, top=20, bot=50),
            row(soc=99, top=50, bot=80)]  # below topsoil: no weight, dropped as below_topsoil
    sites, led = harmonise(rows)
    assert sites.soc_gkg.iloc[0] == pytest.approx(340 / 30)
    assert sites.depth_coverage.iloc[0] == pytest.approx(1.0)
    assert led.total("below_topsoil") == 1


def test_depth_weighting_uneven_horizons_and_covariates() -> None:
    # 0-15 @ 12 (pH 6), 15-45 @ 3 (pH 8): weights 15 and 15 -> SOC 7.5, pH 7
    rows = [row(soc=12, top=0, bot=15, ph=6.0), row(soc=3, top=15, bot=45, ph=8.0)]
    sites, _ = harmonise(rows, covariates={"ph_h2o": "ph"})
    assert sites.soc_gkg.iloc[0] == pytest.approx(7.5)
    assert sites.ph_h2o.iloc[0] == pytest.approx(7.0)


def test_depth_coverage_threshold_drops_profile() -> None:
    # p1 covers 0-10 of 0-30 (1/3 < 0.5): dropped; p2 covers 0-20 (2/3): kept, weighted over what it has
    rows = [row("p1", x=1, soc=5, top=0, bot=10), row("p2", x=2, soc=8, top=0, bot=20)]
    sites, led = harmonise(rows)
    assert list(sites.sample_id) == ["s1:p2"]
    assert led.total("insufficient_depth_coverage") == 1
    sites, led = harmonise(rows, settings=DataConfig(min_depth_coverage=0.3))
    assert len(sites) == 2


def test_organic_layer_above_surface_and_invalid_depth() -> None:
    rows = [row(soc=300, top=-9, bot=0), row(soc=10, top=0, bot=30), row(soc=10, top=20, bot=10)]
    sites, led = harmonise(rows)
    assert sites.soc_gkg.iloc[0] == pytest.approx(10)
    assert led.total("organic_layer_above_surface") == 1
    assert led.total("invalid_depth") == 1


def test_exact_duplicates_dropped() -> None:
    rows = [row(soc=10, top=0, bot=10), row(soc=10, top=0, bot=10), row(soc=4, top=10, bot=30)]
    sites, led = harmonise(rows)
    assert led.total("exact_duplicate") == 1
    assert led.total("replicate_averaged") == 0
    assert sites.soc_gkg.iloc[0] == pytest.approx((10 * 10 + 4 * 20) / 30)


def test_replicates_averaged_before_weighting() -> None:
    # two lab replicates of 0-10 (10 and 14 -> 12), one 10-30 @ 3: (12*10 + 3*20)/30 = 6
    rows = [row(soc=10, top=0, bot=10, lab="a"), row(soc=14, top=0, bot=10, lab="b"),
            row(soc=3, top=10, bot=30)]
    sites, led = harmonise(rows)
    assert led.total("replicate_averaged") == 1
    assert sites.soc_gkg.iloc[0] == pytest.approx(6.0)
    assert sites.n_rows.iloc[0] == 3


def test_same_site_same_source_merged() -> None:
    # two profiles 1 m apart (< 5 m tolerance) -> one site, mean SOC; a third 1 km away stays apart
    rows = [row("a", x=10.0, y=5.0, soc=10), row("b", x=10.0 + 1e-5 * 0.9, y=5.0, soc=20),
            row("c", x=10.01, y=5.0, soc=5)]
    sites, led = harmonise(rows)
    assert len(sites) == 2
    assert led.total("same_site_same_source") == 1
    merged = sites.set_index("sample_id").loc["s1:a"]
    assert merged.soc_gkg == pytest.approx(15)
    assert merged.n_profiles == 2


def test_same_site_cross_source_merged() -> None:
    rows = [row("a", soc=10, db="AfSPDB"), row("a2", soc=30, db="WISE")]
    sites, led = harmonise(rows, source="db")
    assert len(sites) == 1
    assert led.total("same_site_cross_source") == 1
    assert sites.source.iloc[0] == "AfSPDB+WISE"
    assert sites.soc_gkg.iloc[0] == pytest.approx(20)


@pytest.mark.parametrize(("bad", "rule"), [
    (dict(x=np.nan), "missing_coordinates"),
    (dict(y="n/a"), "missing_coordinates"),
    (dict(y=999.0), "impossible_coordinates"),
    (dict(x=-200.0), "impossible_coordinates"),
    (dict(x=0.0, y=0.0), "impossible_coordinates"),
    (dict(soc=np.nan), "missing_soc"),
    (dict(soc=-1.0), "implausible_soc"),
    (dict(soc=0.1), "implausible_soc"),
    (dict(soc=700.0), "implausible_soc"),
    (dict(pid=None), "incomplete_metadata"),
    (dict(top=np.nan), "incomplete_metadata"),
    (dict(yr=None), "incomplete_metadata"),
])
def test_drop_rules(bad: dict, rule: str) -> None:
    rows = [row("good", x=20.0), row(**{**row("bad", x=21.0), **bad})]
    sites, led = harmonise(rows)
    assert list(sites.sample_id) == ["s1:good"]
    assert led.total(rule) == 1
    others = {k: led.total(k) for k in led.counts if k != rule and led.total(k)}
    assert others == {}


def test_default_year_fills_and_flags_placeholder() -> None:
    rows = [row("a", x=1, yr=None, db="A"), row("b", x=2, yr=None, db="B"), row("c", x=3, yr=2001, db="A"),
            row("d", x=4, yr=None, dt="2012-10-02", db="A")]
    sites, led = harmonise(rows, source="db", date="dt", default_year={"A": 1983},
                           placeholder_dates={"A": "2012-10-02"})
    s = sites.set_index("sample_id")
    assert led.total("incomplete_metadata") == 1  # B has no default year
    assert s.loc["A:a", "year"] == 1983 and s.loc["A:a", "year_is_placeholder"]
    assert s.loc["A:c", "year"] == 2001 and not s.loc["A:c", "year_is_placeholder"]
    assert s.loc["A:d", "year"] == 2012 and s.loc["A:d", "year_is_placeholder"]


def test_reprojection_from_utm_matches_pyproj() -> None:
    e, n = 500_000.0 + 12_345.6, 9_300_000.0 - 7_890.1  # EPSG:32737, UTM 37S (East Africa)
    sites, _ = harmonise([row(x=e, y=n)], crs="EPSG:32737")
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(e, n)
    assert sites.lon.iloc[0] == pytest.approx(lon, abs=1e-9)
    assert sites.lat.iloc[0] == pytest.approx(lat, abs=1e-9)
    assert 38 < lon < 40 and -7 < lat < -6


def test_depth_in_metres() -> None:
    sites, _ = harmonise([row(soc=10, top=0, bot=0.1), row(soc=4, top=0.1, bot=0.3)], depth_unit="m")
    assert sites.soc_gkg.iloc[0] == pytest.approx(6.0)


def test_fixed_depth_point_survey() -> None:
    sites, _ = harmonise([row(soc=10), row("b", x=2, soc=20)], top=None, bottom=None, fixed_depth_cm=(0, 20))
    assert sorted(sites.soc_gkg) == [10, 20]
    assert sites.depth_coverage.iloc[0] == pytest.approx(20 / 30)
