"""The three fault tests of a map run (issue 12): a run killed half way (SIGKILL of its whole process group) is
resumed to byte-identical outputs; covariates served over HTTP with 503s and time-outs are retried, and a tile that
keeps failing is recorded, ends the run with exit code 3 and is the only one a re-run maps; a Dask worker process
killed mid-run does not change the maps.

Byte comparison: every file under the version folder (COGs, VRTs, every zarr chunk and metadata file, the
quick-look PNGs) except those that hold wall-clock times: ``provenance.json``, ``predict_summary.json``, ``item.json``
(it carries the provenance), the tile records in ``tiles_done/`` (seconds per tile; their file checksums are compared
instead) and the run logs in ``logs/``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import socmap
from socmap.config import load_pipeline
from socmap.io import MAP_DONE_DIR, MAP_FAILED_DIR, MAP_ITEM, MAP_LATEST, MAP_LOG_DIR, MAP_PROVENANCE, MAP_SUMMARY
from socmap.mapping import predict

YEAR = 2020
TIMED = {MAP_PROVENANCE, MAP_SUMMARY, MAP_ITEM}


def _pipeline(map_world: dict[str, Path], out: Path, *, tile: int, covariate_base: str | None = None) -> Path:
    """The test world's pipeline on a grid of ``tile``-cell tiles; covariates from ``covariate_base`` (a URL)."""
    root = map_world["root"]
    grid = yaml.safe_load((root / "grid4.yaml").read_text())
    grid.update(name=f"grid{tile}", tile_size=tile)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"grid{tile}.yaml").write_text(yaml.safe_dump(grid))
    pipe = yaml.safe_load(map_world["pipeline"].read_text())
    pipe["grid"] = f"grid{tile}.yaml"
    pipe["data"]["sources"][0]["path"] = str(root / "survey.csv")
    for c in pipe["data"]["covariates"]:
        c["path"] = f"{covariate_base}/{c['path']}" if covariate_base else str(root / c["path"])
    path = out / f"pipeline{tile}.yaml"
    path.write_text(yaml.safe_dump(pipe, sort_keys=False))
    return path


def _bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in TIMED and p.parent.name not in (MAP_DONE_DIR, MAP_LOG_DIR)}


def _records(root: Path) -> dict[str, dict[str, str]]:
    return {p.stem: json.loads(p.read_text())["files"] for p in (root / MAP_DONE_DIR).glob("*.json")}


def _assert_same_files(a: Path, b: Path) -> None:
    assert _records(a) == _records(b)
    fa, fb = _bytes(a), _bytes(b)
    assert sorted(fa) == sorted(fb)
    differ = [k for k in fa if fa[k] != fb[k]]
    assert not differ, differ[:10]
    assert any(k.startswith("cog/") for k in fa) and any("/c/" in k for k in fa)  # COGs and zarr chunks compared


def test_sigkill_half_way_then_resume_is_byte_identical(map_world: dict[str, Path], map_bundle: Path,
                                                        tmp_path: Path) -> None:
    """``socmap predict`` on 4 tiles in a subprocess (its own session), SIGKILL to the whole process group once a
    tile is recorded, the same command again: every output equals an uninterrupted run's, byte for byte."""
    pipe = map_world["pipeline"]
    cmd = [sys.executable, "-m", "socmap", "predict", "--pipeline", str(pipe), "--year", str(YEAR), "--model",
           str(map_bundle), "--out", str(tmp_path / "killed"), "--scheduler", "synchronous", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(socmap.__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    year_dir = tmp_path / "killed" / "mapworld" / str(YEAR)
    deadline = time.time() + 240
    n_done = 0
    try:
        while time.time() < deadline and proc.poll() is None:
            n_done = len(list(year_dir.glob(f"*/{MAP_DONE_DIR}/*.json")))
            if n_done >= 1:
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0].decode()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {out[-2000:]}"
    (version,) = [p for p in year_dir.iterdir() if p.is_dir()]
    n_done = len(list((version / MAP_DONE_DIR).glob("*.json")))
    assert 1 <= n_done < 4 and not (year_dir / MAP_LATEST).exists()  # half way: no finished run yet

    from click.testing import CliRunner

    from socmap.cli import cli

    res = CliRunner().invoke(cli, cmd[3:])  # the same command again (in this process: no second start-up)
    assert res.exit_code == 0, res.output
    assert f"{4 - n_done} tiles done, {n_done} skipped" in res.output
    clean = predict.run(load_pipeline(pipe), map_bundle, tmp_path / "clean", year=YEAR, scheduler="threads",
                        progress=False)
    assert clean.root.name == version.name  # the same command lands in the same version folder
    _assert_same_files(version, clean.root)
    assert json.loads((year_dir / MAP_LATEST).read_text())["version"] == version.name


# ------------------------------------------------------------------------------------------ flaky source
class _FlakyCovariates:
    """WSGI middleware over the range-capable test file server: the first requests for ``temp.tif`` answer 503,
    one stalls past GDAL's time-out, and while exactly one tile is recorded as done (the second tile is being
    mapped) every request for ``temp.tif`` answers 503: that tile keeps failing, the others recover."""

    def __init__(self, app: Any, year_dir: Path, stall_s: float) -> None:
        self.app, self.year_dir, self.stall_s = app, year_dir, stall_s
        self.transient_503 = 2
        self.stalls = 1
        self.outage = True
        self.log: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def _state(self) -> tuple[int, int]:
        done = len(list(self.year_dir.glob(f"*/{MAP_DONE_DIR}/*.json")))
        failed = len(list(self.year_dir.glob(f"*/{MAP_FAILED_DIR}/*.json")))
        return done, failed

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        from werkzeug.wrappers import Response

        path = environ.get("PATH_INFO", "")
        if path.endswith("temp.tif"):
            with self.lock:
                done, failed = self._state()
                if self.transient_503 > 0:
                    self.transient_503 -= 1
                    status = 503
                elif self.stalls > 0:
                    self.stalls -= 1
                    status = 0
                elif self.outage and done == 1 and failed == 0:
                    status = 503
                else:
                    status = 200
                self.log.append((path, status))
            if status == 503:
                return Response("injected outage", status=503)(environ, start_response)
            if status == 0:
                time.sleep(self.stall_s)  # GDAL gave up long ago: a time-out on the client side
        return self.app(environ, start_response)


def test_flaky_http_covariates_retry_record_failure_exit_3_and_rerun(map_world: dict[str, Path], map_bundle: Path,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from socmap.cli import cli
    from tests.eo.servers import ServedFolder

    served = ServedFolder(map_world["root"])
    out = tmp_path / "maps"
    flaky = _FlakyCovariates(served.app, out / "mapworld" / str(YEAR), stall_s=4.0)
    served.server.app = flaky  # werkzeug's server calls .app per request
    try:
        # every open asks the server (no cached answers), a stalled request times out after 1 s
        monkeypatch.setenv("CPL_VSIL_CURL_NON_CACHED", f"/vsicurl/{served.url}")
        monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
        monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
        pipe = _pipeline(map_world, tmp_path, tile=32, covariate_base=served.url)
        args = ["predict", "--pipeline", str(pipe), "--year", str(YEAR), "--model", str(map_bundle), "--out",
                str(out), "--scheduler", "synchronous", "--no-progress"]
        r = CliRunner().invoke(cli, args)
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 3, r.output
        assert len(lines) == 1 and lines[0].startswith("socmap: error: 1 of 4 tiles failed"), r.output
        assert "temp.tif" in lines[0] and "run the same command again" in lines[0]
        statuses = [s for _, s in flaky.log]
        assert statuses[:3] == [503, 503, 0] and statuses.count(503) >= 2 + 4  # 2 transient + 4 tries of a tile
        (root,) = [p for p in (out / "mapworld" / str(YEAR)).iterdir() if p.is_dir()]
        failed = sorted(p.stem for p in (root / MAP_FAILED_DIR).glob("*.json"))
        assert failed == ["r000_c001"]
        rec = json.loads((root / MAP_FAILED_DIR / "r000_c001.json").read_text())
        assert "temp.tif" in rec["reason"] and "4 attempts" in rec["reason"]
        assert len(list((root / MAP_DONE_DIR).glob("*.json"))) == 3
        assert not (out / "mapworld" / str(YEAR) / MAP_LATEST).exists()
        prov = json.loads((root / MAP_PROVENANCE).read_text())
        assert list(prov["tiles"]["failed"]) == ["r000_c001"]

        flaky.outage = False  # the source is back: the re-run maps only the failed tile
        n_before = len(flaky.log)
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, r.output
        assert "1 tiles done, 3 skipped" in r.output
        assert not list((root / MAP_FAILED_DIR).glob("*.json"))
        assert len(flaky.log) > n_before
    finally:
        served.close()
    clean = predict.run(load_pipeline(_pipeline(map_world, tmp_path / "local", tile=32)), map_bundle,
                        tmp_path / "clean", year=YEAR, scheduler="threads", progress=False)
    _assert_same_files(root, clean.root)  # same bytes as a run on the local files


# ------------------------------------------------------------------------------------------- worker loss
def test_worker_process_killed_mid_run(map_world: dict[str, Path], map_bundle: Path, tmp_path: Path) -> None:
    """A 2-worker LocalCluster (worker processes under nannies); once a tile is recorded, one worker process is
    SIGKILLed. Its tasks go to the other worker (and the nanny's restarted one, which loads the bundle again), the
    run completes and every output equals an uninterrupted run on the same cluster."""
    from distributed import Client, LocalCluster

    pipe = load_pipeline(map_world["pipeline"])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      worker_dashboard_address=":0") as cluster, Client(cluster) as client:
        clean = predict.run(pipe, map_bundle, tmp_path / "clean", year=YEAR, scheduler=cluster.scheduler_address,
                            progress=False)
        year_dir = tmp_path / "lost" / "mapworld" / str(YEAR)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["res"] = predict.run(pipe, map_bundle, tmp_path / "lost", year=YEAR,
                                            scheduler=cluster.scheduler_address, progress=False)
            except BaseException as exc:  # reported below
                result["exc"] = exc

        th = threading.Thread(target=run)
        th.start()
        deadline = time.time() + 120
        while time.time() < deadline and th.is_alive():
            if len(list(year_dir.glob(f"*/{MAP_DONE_DIR}/*.json"))) >= 1:
                break
            time.sleep(0.02)
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        killed_mid_run = th.is_alive()
        os.kill(victim, signal.SIGKILL)
        th.join(240)
        assert not th.is_alive()
    assert "exc" not in result, result.get("exc")
    res = result["res"]
    assert killed_mid_run and res.tiles_failed == 0 and res.tiles_done == 4
    _assert_same_files(res.root, clean.root)
