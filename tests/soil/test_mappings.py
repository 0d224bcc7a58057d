"""The shipped mappings (afsp, demo) on tiny tables shaped like their surveys, and pipeline-driven sources."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from socmap.data import list_mappings, load_mapping, prepare
from socmap.errors import ConfigError

AFSP_COLS = ["SOURCEID", "SOURCEDB", "lon", "lat", "date", "year", "top_cm", "bottom_cm", "soc_gkg", "PHIHOX",
             "SNDPPT", "SLTPPT", "CLYPPT"]


def test_shipped_mappings_load() -> None:
    assert {"afsp", "demo"} <= set(list_mappings())
    afsp = load_mapping("afsp")
    assert afsp.soc_unit == "g/kg" and afsp.source == "SOURCEDB"
    assert load_mapping("demo").soc_factor == 10.0


def test_afsp_mapping_placeholder_dates_replicates_and_default_year(tmp_path: Path) -> None:
    rows = [
        # AfSIS sentinel site: replicate 0-20 samples, placeholder date
        ("S-1", "Af_soilspec", 36.1, -6.9, "2012-10-02", 2012, 0, 20, 10.0, 6.5, None, None, None),
        ("S-1", "Af_soilspec", 36.1, -6.9, "2012-10-02", 2012, 0, 20, 14.0, 6.7, None, None, None),
        ("S-1", "Af_soilspec", 36.1, -6.9, "2012-10-02", 2012, 20, 50, 6.0, 6.9, None, None, None),
        # AfSPDB profile with an organic layer above the surface, a real date, and an exact duplicate row
        ("AO 1", "AfSPDB", 14.0, -12.0, "1975-05-01", 1975, -5, 0, 300.0, 5.0, 20, 30, 50),
        ("AO 1", "AfSPDB", 14.0, -12.0, "1975-05-01", 1975, 0, 30, 8.0, 5.5, 40, 30, 30),
        ("AO 1", "AfSPDB", 14.0, -12.0, "1975-05-01", 1975, 0, 30, 8.0, 5.5, 40, 30, 30),
        # AfSPDB profile without a date -> default year 1983, flagged
        ("AO 2", "AfSPDB", 15.0, -12.0, None, None, 0, 40, 5.0, 6.0, 60, 20, 20),
    ]
    csv = tmp_path / "afsp.csv"
    pd.DataFrame(rows, columns=AFSP_COLS).to_csv(csv, index=False)
    res = prepare.run(prepare.plain_pipeline(), [csv], tmp_path / "out", mappings=["afsp"], progress=False)
    s = res.samples.set_index("sample_id")
    assert s.loc["Af_soilspec:S-1", "soc_gkg"] == pytest.approx((12 * 20 + 6 * 10) / 30)
    assert s.loc["Af_soilspec:S-1", "year_is_placeholder"]
    assert s.loc["AfSPDB:AO 1", "soc_gkg"] == pytest.approx(8.0)
    assert s.loc["AfSPDB:AO 1", "year"] == 1975 and not s.loc["AfSPDB:AO 1", "year_is_placeholder"]
    assert s.loc["AfSPDB:AO 2", "year"] == 1983 and s.loc["AfSPDB:AO 2", "year_is_placeholder"]
    assert s.loc["AfSPDB:AO 1", "clay_pct"] == pytest.approx(30)
    rules = {k: v["count"] for k, v in res.report["rules"].items() if v["count"]}
    assert rules == {"exact_duplicate": 1, "organic_layer_above_surface": 1, "replicate_averaged": 1}


def test_demo_mapping_on_demo_shaped_survey(tmp_path: Path) -> None:
    cols = ["profile_id", "lab_sample_id", "longitude", "latitude", "sampling_date", "upper_depth_cm",
            "lower_depth_cm", "org_carbon_pct", "ph_h2o", "clay_pct"]
    rows = [
        ("P1", "L1", 37.0, -3.0, "2023-05-02", 0, 10, 2.0, 6.0, 30),
        ("P1", "L2", 37.0, -3.0, "2023-05-02", 10, 30, 1.0, 6.2, 32),
        ("P1", "L2", 37.0, -3.0, "2023-05-02", 10, 30, 1.0, 6.2, 32),  # exact duplicate
        ("P2", "L3", 37.01, -3.0, "2022-04-01", 0, 15, 1.5, 5.0, 20),
        ("P2", "L4", 37.01, -3.0, "2022-04-01", 0, 15, 2.5, 5.2, 22),  # replicate at one depth
        ("P2", "L5", 37.01, -3.0, "2022-04-01", 15, 30, 1.0, 5.4, 25),
        ("P3", "L6", 37.02, 999.0, "2022-04-01", 0, 30, 1.0, 5.4, 25),  # impossible latitude
        ("P4", "L7", None, None, "2022-04-01", 0, 30, 1.0, 5.4, 25),  # empty coordinates
        ("P5", "L8", 37.03, -3.0, "2022-04-01", 0, 30, 75.0, 5.4, 25),  # > 60 % SOC
        ("P6", "L9", 37.04, -3.0, "2024-01-09", 0, 20, 0.5, 7.0, 40),
        ("P6", "L10", 37.04, -3.0, "2024-01-09", 20, 50, -0.2, 7.0, 40),  # negative SOC
    ]
    csv = tmp_path / "soil_survey.csv"
    pd.DataFrame(rows, columns=cols).to_csv(csv, index=False)
    res = prepare.run(prepare.plain_pipeline(), [csv], tmp_path / "out", mappings=["demo"], progress=False)
    s = res.samples.set_index("sample_id")
    assert list(s.index) == ["demo:P1", "demo:P2", "demo:P6"]
    assert s.loc["demo:P1", "soc_gkg"] == pytest.approx((20 * 10 + 10 * 20) / 30)
    assert s.loc["demo:P2", "soc_gkg"] == pytest.approx((20 * 15 + 10 * 15) / 30)
    assert s.loc["demo:P6", "soc_gkg"] == pytest.approx(5.0)  # only 0-20 kept (coverage 2/3)
    assert s.loc["demo:P2", "year"] == 2022
    rules = {k: v["count"] for k, v in res.report["rules"].items() if v["count"]}
    assert rules == {"exact_duplicate": 1, "impossible_coordinates": 1, "missing_coordinates": 1,
                     "implausible_soc": 2, "replicate_averaged": 1}


def test_sources_from_pipeline_and_mapping_count_mismatch(tmp_path: Path, survey: tuple[Path, Path]) -> None:
    csv, mapping = survey
    pipe = tmp_path / "p.yaml"
    pipe.write_text(yaml.safe_dump({"name": "t", "grid": "africa", "stac": None, "data": {
        "sources": [{"path": csv.name, "mapping": mapping.name}],
        "split": {"method": "block", "block_km": 100}}}))
    from socmap.config import load_pipeline

    res = prepare.run(load_pipeline(pipe), None, tmp_path / "out", progress=False)
    assert res.report["sites_out"] == 60 and res.report["split"]["method"] == "block"
    with pytest.raises(ConfigError, match="2 inputs but 3 mappings"):
        prepare.run(prepare.plain_pipeline(), [csv, csv], tmp_path / "o2", mappings=[mapping] * 3, progress=False)
    assert not (tmp_path / "o2").exists()
