"""Bad input and failure paths: off-raster patches, empty searches, bad endpoints, HTTP errors, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from click.testing import CliRunner

from socmap.cli import cli
from socmap.eo import extract
from socmap.io import PATCHES, SAMPLES
from tests.eo.conftest import pipeline, pipeline_yaml, samples_frame, write_samples
from tests.eo.servers import ServedFolder, free_port, http_items


def test_off_raster_and_empty_search_are_recorded_and_run_goes_on(small_world: Path, tmp_path: Path) -> None:
    df = samples_frame(small_world, 3)
    edge = df.iloc[[0]].copy()
    edge["sample_id"] = "EDGE"
    world_bbox = json.loads((small_world / "stac" / "sentinel-2-l2a").glob("*/*.json").__next__().read_text())["bbox"]
    edge["lon"], edge["lat"] = world_bbox[0] + 0.0003, float(df["lat"].mean())  # ~30 m inside the west edge
    early = df.iloc[[1]].copy()
    early["sample_id"], early["year"] = "Y2019", 2019
    table = pd.concat([df, edge, early], ignore_index=True)
    cfg = pipeline(catalog=str(small_world / "stac" / "catalog.json"), patch=32)
    cfg.imagery.years = [2019, *cfg.imagery.years]  # 2019 is an imagery year, but the catalogue has no scene then
    res = extract.run(cfg, table, tmp_path / "out", scheduler="threads", progress=False)
    assert res.n_samples == 5 and res.n_ok == 3 and res.n_missing == 2
    fails = pd.read_csv(tmp_path / "out" / "extract_failures.csv")
    assert list(fails.columns) == ["sample_id", "year", "modality", "reason", "attempts"]
    edge_rows = fails[fails.sample_id == "EDGE"]
    assert edge_rows["reason"].str.contains("falls off the raster").all()
    assert set(edge_rows["modality"]) >= {"S2L2A", "S1GRD"}
    early_rows = fails[fails.sample_id == "Y2019"]
    assert set(early_rows["modality"]) == {"S2L2A", "S1GRD"}
    assert early_rows["reason"].str.contains("no sentinel-.* items.* in 2019", regex=True).all()
    g = zarr.open_group(str(tmp_path / "out" / "patches.zarr"), mode="r")
    assert list(g["ok"][:]) == [True, True, True, False, False]
    assert g["done"][:].all()  # permanent failures are not retried
    assert np.isnan(g["S2L2A"][4]).all() and np.isfinite(g["DEM"][4]).all()


def _one_line_exit_2(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("socmap: error: ")
    return lines[0]


def _data_dir(world: Path, path: Path, n: int) -> Path:
    path.mkdir(parents=True)
    write_samples(world, path / SAMPLES, n)
    return path


def _only_samples(data: Path) -> bool:
    return sorted(p.name for p in data.iterdir()) == [SAMPLES]


def test_unreachable_endpoint_one_line_error(small_world: Path, tmp_path: Path) -> None:
    data = _data_dir(small_world, tmp_path / "data", 3)
    y = pipeline_yaml(tmp_path / "p.yaml", api=f"http://127.0.0.1:{free_port()}", retries=0)
    msg = _one_line_exit_2(["extract", "--data", str(data), "--pipeline", str(y), "--scheduler", "threads"])
    assert "cannot open STAC API" in msg
    assert _only_samples(data)


@pytest.mark.requires_rustac
def test_wrong_collection_one_line_error(small_world: Path, stac_api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = _data_dir(small_world, tmp_path / "data", 3)
    y = pipeline_yaml(tmp_path / "p.yaml", api=stac_api.url, s2_collection="sentinel-2-l2a-typo")
    msg = _one_line_exit_2(["extract", "--data", str(data), "--pipeline", str(y), "--scheduler", "threads"])
    assert "sentinel-2-l2a-typo" in msg and "sentinel-2-l2a" in msg.split("available:")[1]
    assert _only_samples(data)
    y2 = pipeline_yaml(tmp_path / "p2.yaml", catalog=str(small_world / "stac" / "catalog.json"),
                       dem_collection="cop-dem-glo-90")
    # the deprecated spelling (--samples FILE --out DIR) still works
    msg = _one_line_exit_2(["extract", "--samples", str(data / SAMPLES), "--out", str(tmp_path / "out2"),
                            "--pipeline", str(y2), "--scheduler", "threads"])
    assert "cop-dem-glo-90" in msg and not (tmp_path / "out2").exists()
    msg = _one_line_exit_2(["extract", "--pipeline", str(y2)])
    assert "--data DIR" in msg


def test_cli_extract_on_a_local_cluster(small_world: Path, tmp_path: Path) -> None:
    data = _data_dir(small_world, tmp_path / "data", 6)
    y = pipeline_yaml(tmp_path / "p.yaml", catalog=str(small_world / "stac" / "catalog.json"), patch=16)
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    r = CliRunner(env=env).invoke(cli, ["extract", "--data", str(data), "--pipeline", str(y), "--workers", "1",
                                        "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "6/6 samples ok" in r.output
    assert zarr.open_group(str(data / PATCHES), mode="r")["S2L2A"].shape == (6, 11, 16, 16)


# ----------------------------------------------------------------------------------- injected HTTP errors
@pytest.fixture
def faulty_world(small_world: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    srv = ServedFolder(small_world)
    files = http_items(small_world, srv.url, tmp_path)
    try:
        yield srv, files[-1]  # the ItemCollection with http hrefs (read as a static catalogue)
    finally:
        srv.close()


def test_transient_http_errors_are_retried(faulty_world, small_world: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv, items = faulty_world
    s2 = json.loads(items.read_text())["features"]
    target = next(f for f in s2 if f["collection"] == "sentinel-2-l2a" and f["properties"]["eo:cloud_cover"] < 25
                  and f["properties"]["datetime"].startswith("2022"))
    suffix = f"{target['id']}/B04.tif"
    srv.app.faults[suffix] = 2
    df = samples_frame(small_world)
    df = df[df.year == 2022].head(4)
    res = extract.run(pipeline(catalog=str(items), patch=16, retries=3), df, tmp_path / "out", scheduler="threads",
                      progress=False)
    hits = [h for h in srv.app.hits if h.path.endswith(suffix)]
    assert [h.status for h in hits][:2] == [503, 503]
    assert any(h.status in (200, 206) for h in hits[2:])  # the retry then succeeded
    assert res.n_ok == 4 and res.failure_rows == []
    g = zarr.open_group(str(tmp_path / "out" / "patches.zarr"), mode="r")
    assert all(target["id"] in json.loads(str(p))["S2L2A"] for p in g["provenance"][:])


def test_persistent_http_error_goes_to_failure_table(faulty_world, small_world: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv, items = faulty_world
    feats = json.loads(items.read_text())["features"]
    target = next(f for f in feats
                  if f["collection"] == "sentinel-1-rtc" and f["properties"]["datetime"].startswith("2023"))
    srv.app.faults[f"{target['id']}/vh.tif"] = -1
    df = samples_frame(small_world)
    df = pd.concat([df[df.year == 2023].head(3), df[df.year == 2024].head(2)])
    res = extract.run(pipeline(catalog=str(items), patch=16, retries=1), df, tmp_path / "out", scheduler="threads",
                      progress=False)
    fails = pd.read_csv(tmp_path / "out" / "extract_failures.csv")
    assert len(fails) == 3 and set(fails["modality"]) == {"S1GRD"} and (fails["attempts"] == 2).all()
    assert fails["reason"].str.contains(f"asset vh of item {target['id']}", regex=False).all()
    assert fails["reason"].str.contains("503").all()
    assert res.n_ok == 2 and res.n_missing == 3  # the 2024 samples went on
    g = zarr.open_group(str(tmp_path / "out" / "patches.zarr"), mode="r")
    assert list(g["done"][:]) == [False, False, False, True, True]  # transient: a re-run retries them
    srv.app.faults.clear()
    res2 = extract.run(pipeline(catalog=str(items), patch=16, retries=1), df, tmp_path / "out", scheduler="threads",
                       progress=False)
    assert res2.n_extracted == 3 and res2.n_ok == 5


# ----------------------------------------------------------------------------------- kill and resume
_RUNNER = """
import sys
from socmap.eo import extract
sys.path.insert(0, {root!r})
from tests.eo.conftest import pipeline
cfg = pipeline(catalog={catalog!r}, patch=32)
cfg.imagery.group_km = 0.4
extract.run(cfg, {samples!r}, {out!r}, scheduler="threads", progress=False)
"""


def _run(root: Path, catalog: str, samples: Path, out: Path) -> subprocess.Popen:  # type: ignore[type-arg]
    code = _RUNNER.format(root=str(root), catalog=catalog, samples=str(samples), out=str(out))
    return subprocess.Popen([sys.executable, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_killed_run_resumes_to_identical_arrays(small_world: Path, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    catalog = str(small_world / "stac" / "catalog.json")
    samples = write_samples(small_world, tmp_path / "s.parquet", 60)
    killed = tmp_path / "killed"
    proc = _run(root, catalog, samples, killed)
    done_at_kill = 0
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                done_at_kill = int(zarr.open_group(str(killed / "patches.zarr"), mode="r")["done"][:].sum())
            except Exception:
                done_at_kill = 0
            if done_at_kill >= 5:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert 5 <= done_at_kill < 60, f"could not kill half way (done={done_at_kill}, rc={proc.returncode})"
    assert not (killed / "image_covariates.parquet").exists()
    cfg = pipeline(catalog=catalog, patch=32)
    cfg.imagery.group_km = 0.4
    res = extract.run(cfg, samples, killed, scheduler="threads", progress=False)
    assert res.n_ok == 60 and 0 < res.n_extracted <= 60 - done_at_kill
    full = extract.run(cfg, samples, tmp_path / "full", scheduler="threads", progress=False)
    a = zarr.open_group(str(killed / "patches.zarr"), mode="r")
    b = zarr.open_group(str(tmp_path / "full" / "patches.zarr"), mode="r")
    for name in ("S2L2A", "S1GRD", "DEM", "covariates", "ok", "sample_id"):
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
    pd.testing.assert_frame_equal(pd.read_parquet(killed / "image_covariates.parquet"),
                                  pd.read_parquet(tmp_path / "full" / "image_covariates.parquet"))
    assert full.n_ok == 60
