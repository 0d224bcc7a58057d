"""Operations of a map run (issue 20): one run per version folder (a lock naming its holder; stale locks taken
over), source failures vs bugs inside a tile (failed tile, exit 3 / stop the run, exit 1 with the traceback in the
run's log) in this process and on a Dask cluster, and ``latest.json`` moving only when the whole grid is done."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import socmap
from socmap.config import load_pipeline
from socmap.io import MAP_DONE_DIR, MAP_FAILED_DIR, MAP_LATEST, MAP_LOCK, MAP_LOG_DIR
from socmap.mapping import predict
from socmap.mapping.lock import LockHeldError, acquire, holder_of, release

from .test_faults import _pipeline

YEAR = 2020


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(socmap.__file__).resolve().parents[1])}


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime ns) of every file and folder under ``root``: what a run that writes nothing leaves alone."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


# ------------------------------------------------------------------------------------------------- lock
def test_second_run_on_the_same_folder_exits_2_naming_the_holder(map_world: dict[str, Path], map_bundle: Path,
                                                                 tmp_path: Path) -> None:
    """Two real ``socmap predict`` processes on one version folder. The first is frozen (SIGSTOP) once it holds
    the lock, so nothing else moves the folder; the second ends with exit 2 and one line naming the first's host,
    pid and start time, and every file and folder under --out is as it was. The first then finishes (exit 0) and
    releases the lock."""
    out = tmp_path / "maps"
    cmd = [sys.executable, "-m", "socmap", "predict", "--pipeline", str(map_world["pipeline"]), "--year", str(YEAR),
           "--model", str(map_bundle), "--out", str(out), "--scheduler", "threads", "--no-progress"]
    first = subprocess.Popen(cmd, env=_env(), start_new_session=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    year_dir = out / "mapworld" / str(YEAR)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and first.poll() is None and not list(year_dir.glob(f"*/{MAP_LOCK}")):
            time.sleep(0.01)
        os.killpg(first.pid, signal.SIGSTOP)
        (lock,) = list(year_dir.glob(f"*/{MAP_LOCK}"))
        holder = holder_of(lock)
        assert holder is not None and holder.pid == first.pid
        before = _tree(out)
        second = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
        after = _tree(out)
        os.killpg(first.pid, signal.SIGCONT)
        first_out = first.communicate(timeout=300)[0].decode()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert second.returncode == 2, second.stderr
    assert len(lines) == 1 and lines[0].startswith("socmap: error: "), second.stderr
    for needle in (f"host {socket.gethostname()}", f"pid {first.pid}", f"started {holder.started}", str(lock)):
        assert needle in lines[0], (needle, lines[0])
    assert second.stdout == ""
    assert after == before  # the second run wrote nothing
    assert first.returncode == 0, first_out
    assert "4 tiles done" in first_out and not lock.exists()  # the lock goes with the run
    assert json.loads((year_dir / MAP_LATEST).read_text())["version"] == lock.parent.name


def _write_lock(root: Path, **holder: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lock = root / MAP_LOCK
    lock.write_text(json.dumps({"host": socket.gethostname(), "started": "2026-01-02T03:04:05Z", **holder}))
    return lock


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # reaped: the pid names no process
    return p.pid


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    lock = _write_lock(tmp_path / "v", pid=_dead_pid())
    me = acquire(tmp_path / "v")
    assert holder_of(lock) == me and me.pid == os.getpid()
    release(tmp_path / "v", me)
    assert not lock.exists()
    assert [p.name for p in (tmp_path / "v").iterdir()] == []  # no temporary or aside file left


def test_live_other_host_and_unreadable_locks_are_not_taken(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = _write_lock(tmp_path / "live", pid=sleeper.pid)
        blob = lock.read_bytes()
        with pytest.raises(LockHeldError, match=rf"pid {sleeper.pid}, started 2026-01-02T03:04:05Z") as held:
            acquire(tmp_path / "live")
        assert held.value.exit_code == 2 and lock.read_bytes() == blob
        # the same pid started at another tick is another process (pid reuse): the lock is stale
        reused = _write_lock(tmp_path / "reused", pid=sleeper.pid, proc_start=1)
        me = acquire(tmp_path / "reused")
        assert holder_of(reused) == me
    finally:
        sleeper.kill()
        sleeper.wait()
    _write_lock(tmp_path / "far", pid=_dead_pid(), host="elsewhere.example")  # cannot be checked from here
    with pytest.raises(LockHeldError, match=r"host elsewhere\.example"):
        acquire(tmp_path / "far")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / MAP_LOCK).write_text("{not json")
    with pytest.raises(LockHeldError, match="cannot be read"):
        acquire(tmp_path / "bad")


# ------------------------------------------------------------------------------------- failures vs bugs
def _damaged_bundle(map_bundle: Path, dest: Path) -> Path:
    """A copy of the bundle whose preprocessing has one standardisation mean too few: the bundle loads, and the
    first tile's feature transform raises a numpy shape error (a real bundle/pipeline mismatch, no mock)."""
    shutil.copytree(map_bundle, dest)
    pre = json.loads((dest / "preprocess.json").read_text())
    assert len(pre["mean"]) >= 2
    pre["mean"] = pre["mean"][:-1]
    (dest / "preprocess.json").write_text(json.dumps(pre))
    return dest


def _log_of(line: str) -> Path:
    m = re.search(r"traceback is in (\S+\.log);", line)
    assert m, line
    return Path(m.group(1))


def test_bug_in_a_tile_stops_the_run_exit_1_traceback_in_the_log(map_world: dict[str, Path], map_bundle: Path,
                                                                 tmp_path: Path) -> None:
    from click.testing import CliRunner

    from socmap.cli import cli

    model = _damaged_bundle(map_bundle, tmp_path / "damaged")
    out = tmp_path / "maps"
    r = CliRunner().invoke(cli, ["predict", "--pipeline", str(map_world["pipeline"]), "--year", str(YEAR),
                                 "--model", str(model), "--out", str(out), "--scheduler", "threads",
                                 "--no-progress"])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1, r.output
    assert len(lines) == 1 and re.match(r"socmap: error: a bug stopped the run at tile r00[01]_c00[01]: ValueError",
                                        lines[0]), r.output
    log = _log_of(lines[0])
    (root,) = [p for p in (out / "mapworld" / str(YEAR)).iterdir() if p.is_dir()]
    assert log.parent == root / MAP_LOG_DIR and log.is_file()
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "ValueError" in text
    assert "preprocess.py" in text and "_encode" in text  # the frames inside the tile
    assert not list(root.glob(f"{MAP_FAILED_DIR}/*.json")) and not list(root.glob(f"{MAP_DONE_DIR}/*.json"))
    assert not (root / MAP_LOCK).exists() and not (root.parent / MAP_LATEST).exists()


def test_dask_path_source_failure_is_a_failed_tile_and_a_bug_stops_the_run(map_world: dict[str, Path],
                                                                           map_bundle: Path, tmp_path: Path) -> None:
    """On a 1-worker LocalCluster (the exceptions come back from the worker process): covariates on a port where
    nothing listens fail every try and make a failed tile (exit 3); the damaged bundle stops the run (exit 1) with
    the worker's traceback in the log."""
    from distributed import Client, LocalCluster

    from socmap.mapping.predict import TilesFailedError
    from socmap.mapping.runlog import BugInTileError

    with socket.socket() as s:  # a free port, closed again: connections to it are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = load_pipeline(_pipeline(map_world, tmp_path / "down", tile=64, covariate_base=f"http://127.0.0.1:{port}"))
    cfg = load_pipeline(map_world["pipeline1"])
    model = _damaged_bundle(map_bundle, tmp_path / "damaged")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      worker_dashboard_address=":0") as cluster, Client(cluster):
        with pytest.raises(TilesFailedError) as failed:
            predict.run(down, map_bundle, tmp_path / "src", year=YEAR, scheduler=cluster.scheduler_address,
                        progress=False)
        with pytest.raises(BugInTileError) as bug:
            predict.run(cfg, model, tmp_path / "bug", year=YEAR, scheduler=cluster.scheduler_address, progress=False)
    assert failed.value.exit_code == 3 and "1 of 1 tiles failed" in str(failed.value)
    (src,) = [p for p in (tmp_path / "src" / "mapworld" / str(YEAR)).iterdir() if p.is_dir()]
    rec = json.loads((src / MAP_FAILED_DIR / "r000_c000.json").read_text())
    assert f"127.0.0.1:{port}" in rec["reason"] and "4 attempts" in rec["reason"]
    (src_log,) = (src / MAP_LOG_DIR).glob("*.log")
    assert "tile r000_c000 failed" in src_log.read_text() and "Traceback" not in src_log.read_text()
    assert not (src / MAP_LOCK).exists()

    assert bug.value.exit_code == 1 and "ValueError" in str(bug.value)
    text = _log_of(str(bug.value)).read_text()
    assert "Traceback (most recent call last)" in text and "_encode" in text  # frames from the worker
    (root,) = [p for p in (tmp_path / "bug" / "mapworld" / str(YEAR)).iterdir() if p.is_dir()]
    assert not list(root.glob(f"{MAP_FAILED_DIR}/*.json")) and not (root / MAP_LOCK).exists()


# ------------------------------------------------------------------------------------------ latest.json
def test_latest_moves_only_when_the_whole_grid_is_done(map_world: dict[str, Path], map_bundle: Path,
                                                        tmp_path: Path) -> None:
    from click.testing import CliRunner

    from socmap.cli import cli

    out = tmp_path / "maps"
    args = ["predict", "--pipeline", str(map_world["pipeline"]), "--year", str(YEAR), "--model", str(map_bundle),
            "--out", str(out), "--scheduler", "threads", "--no-progress"]
    latest = out / "mapworld" / str(YEAR) / MAP_LATEST
    r = CliRunner().invoke(cli, [*args, "--tiles", "r000_c000"])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1].endswith("; 3 tiles of the grid remain, so latest.json was not moved")
    assert not latest.exists()
    r = CliRunner().invoke(cli, [*args, "--tiles", "r000_c001,r001_c000"])
    assert r.exit_code == 0 and r.output.strip().splitlines()[-1].endswith("; 1 tiles of the grid remain, so "
                                                                          "latest.json was not moved"), r.output
    assert not latest.exists()
    r = CliRunner().invoke(cli, [*args, "--tiles", "r001_c001"])  # the last tile: the grid is whole
    last = r.output.strip().splitlines()[-1]
    assert r.exit_code == 0 and "1 tiles done" in last and "remain" not in last, r.output
    (root,) = [p for p in latest.parent.iterdir() if p.is_dir()]
    assert json.loads(latest.read_text())["version"] == root.name
    summary = json.loads((root / "predict_summary.json").read_text())
    assert summary["tiles_remaining"] == 0
