"""The documented annual refresh (`scripts/refresh.sh`, the line cron and the systemd timer run) maps a year with
the region's latest bundle and writes its zone table; the same line run again does nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from socmap.inference import registry
from tests.data import copy_stored_bundle

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "refresh.sh"


def _zones(path: Path) -> Path:
    import geopandas as gpd
    from shapely import box

    boxes = [box(36.02, -3.10, 36.10, -3.02), box(36.12, -3.30, 36.18, -3.20)]
    gpd.GeoDataFrame({"name": ["north", "middle"]}, geometry=boxes, crs="EPSG:4326").to_file(path, driver="GeoJSON")
    return path


def _refresh(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOCMAP_HOME": str(home), "SOCMAP": f"{sys.executable} -m socmap"}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(shutil.which("bash") is None, reason="requires bash")
def test_the_refresh_line_maps_once_and_then_does_nothing(map_world: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SOCMAP_HOME", str(home))
    version = registry.new_version("mapworld")
    shutil.copytree(copy_stored_bundle(tmp_path / "stored")[1], version)
    registry.publish("mapworld", version)
    pipeline = map_world["pipeline"].parent / "mapworld.yaml"  # named for its pipeline, beside its grid
    shutil.copyfile(map_world["pipeline"], pipeline)
    args = [str(pipeline), str(_zones(tmp_path / "zones.geojson")), "name", "2020"]

    first = _refresh(args, home)
    assert first.returncode == 0, first.stderr
    table = home / "zones" / "mapworld" / "2020.csv"
    assert "4 tiles done, 0 skipped" in first.stdout and table.is_file()
    assert (home / "maps" / "mapworld" / "2020" / "latest.json").is_file()
    stamp = table.stat().st_mtime_ns

    second = _refresh(args, home)
    assert second.returncode == 0, second.stderr
    assert "0 tiles done, 4 skipped" in second.stdout and "nothing to do" in second.stdout
    assert table.stat().st_mtime_ns == stamp


def test_the_refresh_line_says_how_to_call_it(tmp_path: Path) -> None:
    r = _refresh([], tmp_path)
    assert r.returncode == 2 and "REGION ZONES FIELD" in r.stderr
