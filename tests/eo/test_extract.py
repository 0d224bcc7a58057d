"""End-to-end extraction over a real HTTP server and a real STAC API (rustac) on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pystac
import pytest
import zarr

from socmap.eo import COVARIATE_COLUMNS, extract, imagery_year_for
from tests.eo.conftest import pipeline, samples_frame, write_samples
from tests.eo.servers import ServedFolder

N = 24
P = 32


@pytest.fixture(scope="module")
def api_run(small_world: Path, served_world: ServedFolder, stac_api: Any,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One extraction of N samples through rustac + the range server, then a second run of the same."""
    tmp = tmp_path_factory.mktemp("api-run")
    samples = write_samples(small_world, tmp / "samples.parquet", N)
    cfg = pipeline(api=stac_api.url, patch=P)
    served_world.app.reset()
    first = extract.run(cfg, samples, tmp / "out", scheduler="threads", progress=False)
    hits1 = list(served_world.app.hits)
    served_world.app.reset()
    second = extract.run(cfg, samples, tmp / "out", scheduler="threads", progress=False)
    hits2 = list(served_world.app.hits)
    return {"out": tmp / "out", "first": first, "second": second, "hits1": hits1, "hits2": hits2, "cfg": cfg}


def test_fills_store_with_patches_for_every_sample(api_run: dict[str, Any], small_world: Path) -> None:
    res = api_run["first"]
    assert (res.n_samples, res.n_ok, res.n_missing, res.n_extracted) == (N, N, 0, N)
    g = zarr.open_group(str(api_run["out"] / "patches.zarr"), mode="r")
    assert g["S2L2A"].shape == (N, 11, P, P) and g["S2L2A"].dtype == np.float32
    assert g["S1GRD"].shape == (N, 2, P, P) and g["DEM"].shape == (N, 1, P, P)
    assert g["S2L2A"].chunks == (1, 11, P, P)
    assert list(g["sample_id"][:]) == pd.read_csv(small_world / "truth" / "sites.csv")["profile_id"][:N].tolist()
    assert g["ok"][:].all() and g["done"][:].all()
    assert g.attrs["bands"]["S2L2A"] == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    assert g.attrs["bands"]["S1GRD"] == ["VV", "VH"]
    assert g.attrs["patch_size"] == P and g.attrs["resolution_m"] == 10.0
    assert set(g.attrs["units"]) == {"S2L2A", "S1GRD", "DEM"}
    prov = json.loads(str(g["provenance"][0]))
    assert prov["S2L2A"] and prov["S1GRD"] and prov["DEM"]
    s2 = g["S2L2A"][:]
    assert np.isfinite(s2).mean() > 0.99
    assert 0 < np.nanmedian(s2) < 6000  # DN = 10000 x reflectance, offset removed
    rep = json.loads((api_run["out"] / "extract_report.json").read_text())
    assert rep["samples"] == N and rep["ok"] == N
    assert pd.read_csv(api_run["out"] / "extract_failures.csv").empty


def test_gdal_made_ranged_reads(api_run: dict[str, Any], small_world: Path) -> None:
    data = [h for h in api_run["hits1"] if h.path.endswith(".tif") and h.method == "GET"]
    assert data, "no COG was read over HTTP"
    ranged = [h for h in data if h.range is not None and h.status == 206]
    assert len(ranged) >= len(data) * 0.9
    served: dict[str, int] = {}
    for h in data:
        served[h.path] = served.get(h.path, 0) + h.nbytes
    assert any(n < (small_world / p).stat().st_size for p, n in served.items())


def test_second_run_fetches_nothing(api_run: dict[str, Any]) -> None:
    res = api_run["second"]
    assert res.n_extracted == 0 and res.n_ok == N
    assert api_run["hits2"] == []


def test_cloud_filter_drops_cloudy_scenes(api_run: dict[str, Any], small_world: Path) -> None:
    cat = pystac.Catalog.from_file(str(small_world / "stac" / "catalog.json"))
    s2 = {i.id: i for i in cat.get_child("sentinel-2-l2a").get_items()}  # type: ignore[union-attr]
    cloudy = {k for k, i in s2.items() if i.properties["eo:cloud_cover"] >= 25}
    assert cloudy, "the test world should contain cloudy scenes"
    g = zarr.open_group(str(api_run["out"] / "patches.zarr"), mode="r")
    used = set()
    for p in g["provenance"][:]:
        used |= set(json.loads(str(p))["S2L2A"])
    assert used and not (used & cloudy)
    assert used <= set(s2)


def test_covariates_are_plausible(api_run: dict[str, Any]) -> None:
    cov = pd.read_parquet(api_run["out"] / "image_covariates.parquet")
    assert list(cov.columns) == ["sample_id", "year", "imagery_year", *COVARIATE_COLUMNS] and len(cov) == N
    assert cov["ndvi_p50"].between(-0.2, 1.0).all()
    assert (cov["ndvi_p10"] <= cov["ndvi_p50"] + 1e-6).all() and (cov["ndvi_p50"] <= cov["ndvi_p90"] + 1e-6).all()
    for c in ("sos_doy", "pos_doy", "eos_doy"):
        v = cov[c].dropna()
        assert v.between(1, 366).all()
    ph = cov.dropna(subset=["pos_doy"])
    assert (ph["sos_doy"] <= ph["pos_doy"]).all() and (ph["pos_doy"] <= ph["eos_doy"]).all()
    assert (cov["slope_deg"] >= 0).all() and cov["elevation_m"].between(0, 6000).all()
    assert cov["aspect_deg"].dropna().between(0, 360).all()
    assert cov["s1_vv_db"].between(-40, 10).all()


# ----------------------------------------------------------------------------------- the imagery year
def test_imagery_year_is_the_nearest_archive_year() -> None:
    got = imagery_year_for([1938, 2012, 2015, 2022, 2023, 2030], [2024, 2022, 2023])
    assert got.tolist() == [2022, 2022, 2022, 2022, 2023, 2024]
    assert imagery_year_for([2020], [2018, 2022]).tolist() == [2018]  # a tie takes the earlier year
    assert imagery_year_for([1990, 2021], []).tolist() == [1990, 2021]  # no archive given: own year


def test_sample_older_than_the_archive_gets_first_archive_year(small_world: Path, tmp_path: Path) -> None:
    df = samples_frame(small_world)
    base = df[df.year == 2022].head(2).reset_index(drop=True)
    old = base.iloc[[0]].copy()
    old["sample_id"], old["year"] = "OLD2015", 2015
    table = pd.concat([base, old], ignore_index=True)
    cfg = pipeline(catalog=str(small_world / "stac" / "catalog.json"), patch=16)
    assert min(cfg.imagery.years) == 2022
    res = extract.run(cfg, table, tmp_path / "out", scheduler="threads", progress=False)
    assert res.n_ok == 3 and res.failure_rows == []
    g = zarr.open_group(str(tmp_path / "out" / "patches.zarr"), mode="r")
    assert g["year"][:].tolist() == [2022, 2022, 2015]  # the sampling year is kept (the temporal encoder's)
    assert g["imagery_year"][:].tolist() == [2022, 2022, 2022]
    np.testing.assert_array_equal(g["S2L2A"][2], g["S2L2A"][0])  # same place, same imagery year
    cov = pd.read_parquet(tmp_path / "out" / "image_covariates.parquet").set_index("sample_id")
    assert (cov.loc["OLD2015", "year"], cov.loc["OLD2015", "imagery_year"]) == (2015, 2022)
    np.testing.assert_array_equal(cov.loc["OLD2015", list(COVARIATE_COLUMNS)].to_numpy(),
                                  cov.loc[base.sample_id[0], list(COVARIATE_COLUMNS)].to_numpy())
    rep = json.loads((tmp_path / "out" / "extract_report.json").read_text())
    assert rep["samples_imaged_in_another_year"] == 1
