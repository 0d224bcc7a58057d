"""`socmap prepare` end to end on small files; each bad input: exit 2, one line naming the file, no output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from socmap.cli import cli
from socmap.data import Preprocessor, prepare
from tests.soil.helpers import write_mapping, write_raster


def _pipeline(tmp_path: Path, layers: list[dict], **data: object) -> Path:
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump({"name": "t", "grid": "africa", "stac": None,
                                 "data": {"covariates": layers, **data}}))
    return p


def _rasters(tmp_path: Path) -> list[dict]:
    rng = np.random.default_rng(5)
    temp = rng.normal(20, 3, (10, 10)).astype("float32")
    temp[0, 0] = -9999
    lc = rng.choice([10, 20, 30], (10, 10)).astype("uint8")
    return [
        {"name": "temp", "path": str(write_raster(tmp_path / "temp.tif", temp)), "unit": "degC"},
        {"name": "lc", "path": str(write_raster(tmp_path / "lc.tif", lc, nodata=255)), "unit": "class",
         "categorical": True},
    ]


def test_prepare_cli_multi_format_with_covariates(tmp_path: Path, survey: tuple[Path, Path]) -> None:
    csv, mapping = survey
    df = pd.read_csv(csv)
    half = df[df.pid.isin([f"p{i}" for i in range(30, 45)])].copy()
    df[~df.pid.isin(half.pid)].to_csv(csv, index=False)
    pq = tmp_path / "b.parquet"
    half.assign(pid=half.pid + "x").to_parquet(pq)
    import geopandas as gpd

    g = df[df.pid.isin([f"p{i}" for i in range(45, 60)])].copy()
    gdf = gpd.GeoDataFrame(g.drop(columns=["x", "y"]).assign(pid=g.pid + "g"),
                           geometry=gpd.points_from_xy(g.x, g.y), crs="EPSG:4326")
    gpkg = tmp_path / "c.gpkg"
    gdf.to_file(gpkg, driver="GPKG")
    gmap = write_mapping(tmp_path / "gmap.yaml", x=None, y=None, crs=None, source_name="gp")
    pipe = _pipeline(tmp_path, _rasters(tmp_path))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["prepare", "--input", str(csv), "--input", str(pq), "--input", str(gpkg),
                                 "--mapping", str(mapping), "--mapping", str(mapping), "--mapping", str(gmap),
                                 "--out", str(out), "--pipeline", str(pipe)])
    assert r.exit_code == 0, r.output
    s = pd.read_parquet(out / "samples.parquet")
    rep = json.loads((out / "prepare_report.json").read_text())
    assert {"sample_id", "lon", "lat", "year", "soc_gkg", "source", "split"} <= set(s.columns)
    # csv: p0-29 + p45-59; parquet: p30-44 renamed; gpkg: p45-59 again (same coordinates, source "gp")
    assert len(s) == rep["sites_out"] == 60
    assert rep["rules"]["same_site_cross_source"]["count"] == 15
    assert s.sample_id.is_unique
    assert set(s.source) == {"s1", "gp+s1"}
    assert rep["rows_in"] - rep["dropped_rows"] - rep["merged_rows"] == rep["topsoil_horizons"]
    assert rep["profiles"] - rep["dropped_profiles"] - rep["merged_profiles"] == rep["sites_out"]
    assert rep["rows_in"] == 90 + 30 + 30 and rep["covariates"]["needed"] == ["temp", "lc"]
    assert {"temp", "lc", "feat_temp", "feat_lc_10"} <= set(s.columns)
    assert not s.filter(like="feat_").isna().any().any()
    pre = Preprocessor.load(out)  # prediction applies the saved transform to raw covariates
    np.testing.assert_allclose(pre.transform(s)["temp"], s["feat_temp"])
    train = s[s.split == "train"]
    assert pre.mean[0] == pytest.approx(train.temp.mean())
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_prepare_block_split_and_rerun_replaces(tmp_path: Path, survey: tuple[Path, Path]) -> None:
    csv, mapping = survey
    res = prepare.run(prepare.plain_pipeline(), [csv], tmp_path / "o", mappings=[mapping], split="block",
                      progress=False)
    assert res.report["split"]["method"] == "block"
    res2 = prepare.run(prepare.plain_pipeline(), [csv], tmp_path / "o", mappings=[mapping], progress=False)
    assert res2.report["split"]["method"] == "random"
    assert json.loads((tmp_path / "o" / "prepare_report.json").read_text())["split"]["method"] == "random"


def _bad(tmp_path: Path, case: str) -> tuple[list[str], str, str]:
    """(args, the file the message must name, a phrase it must hold) for one bad input."""
    good = pd.DataFrame({"pid": ["a", "b"], "x": [1.0, 2.0], "y": [1.0, 2.0], "soc": [10.0, 12.0],
                         "top": [0, 0], "bot": [30, 30], "yr": [2015, 2016]})
    csv = tmp_path / "s.csv"
    good.to_csv(csv, index=False)
    mp = write_mapping(tmp_path / "m.yaml")
    if case == "missing_column":
        good.drop(columns="soc").to_csv(csv, index=False)
        return ["--input", str(csv), "--mapping", str(mp)], str(csv), "missing column(s) 'soc'"
    if case == "misspelled_column":
        mp = write_mapping(tmp_path / "m.yaml", soc="SOC_gkg")
        return ["--input", str(csv), "--mapping", str(mp)], str(csv), "did you mean 'soc'"
    if case == "unknown_unit":
        mp = write_mapping(tmp_path / "m.yaml", soc_unit="kg/ha")
        return ["--input", str(csv), "--mapping", str(mp)], str(mp), "unknown SOC unit 'kg/ha'"
    if case == "unknown_crs":
        mp = write_mapping(tmp_path / "m.yaml", crs="EPSG:99999")
        return ["--input", str(csv), "--mapping", str(mp)], str(mp), "unknown CRS 'EPSG:99999'"
    if case == "empty_file":
        csv.write_text("")
        return ["--input", str(csv), "--mapping", str(mp)], str(csv), "empty"
    if case == "header_only":
        csv.write_text("pid,x,y,soc,top,bot,yr\n")
        return ["--input", str(csv), "--mapping", str(mp)], str(csv), "no rows"
    if case == "not_a_table_csv":
        csv.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
        return ["--input", str(csv), "--mapping", str(mp)], str(csv), "not a text table"
    if case == "not_a_table_parquet":
        pq = tmp_path / "s.parquet"
        pq.write_text("pid,x\n1,2\n")
        return ["--input", str(pq), "--mapping", str(mp)], str(pq), "not a readable PARQUET table"
    if case == "unknown_format":
        f = tmp_path / "s.xlsx"
        f.write_text("x")
        return ["--input", str(f), "--mapping", str(mp)], str(f), "unknown table format"
    if case == "missing_file":
        return ["--input", str(tmp_path / "nope.csv"), "--mapping", str(mp)], "nope.csv", "file not found"
    if case == "unknown_mapping":
        return ["--input", str(csv), "--mapping", "afspp"], "afspp", "no shipped mapping"
    if case == "raster_not_covering":
        far = write_raster(tmp_path / "far.tif", np.ones((4, 4), "float32"), west=120, north=60)
        pipe = _pipeline(tmp_path, [{"name": "far", "path": str(far)}])
        return (["--input", str(csv), "--mapping", str(mp), "--pipeline", str(pipe)], str(far),
                "does not cover the points")
    if case == "raster_missing":
        pipe = _pipeline(tmp_path, [{"name": "gone", "path": str(tmp_path / "gone.tif")}])
        return (["--input", str(csv), "--mapping", str(mp), "--pipeline", str(pipe)], "gone.tif",
                "cannot open the raster")
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_column", "misspelled_column", "unknown_unit", "unknown_crs",
                                  "empty_file", "header_only", "not_a_table_csv", "not_a_table_parquet",
                                  "unknown_format", "missing_file", "unknown_mapping", "raster_not_covering",
                                  "raster_missing"])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path: Path, case: str) -> None:
    args, names, phrase = _bad(tmp_path, case)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["prepare", *args, "--out", str(out)])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("socmap: error: ")
    assert names in lines[0] and phrase in lines[0], lines[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".out.tmp-*"))
