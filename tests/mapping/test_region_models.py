"""A region owns its models: `socmap train` without --out writes a versioned bundle under
$SOCMAP_HOME/models/REGION/ and names it in latest.json once complete; `socmap predict` without --model maps with
it, and without --out writes under $SOCMAP_HOME/maps."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from socmap.cli import cli
from socmap.errors import ModelError
from socmap.inference import registry
from tests.data import copy_stored_bundle


def _run(args: list[str]) -> tuple[int, str]:
    r = CliRunner().invoke(cli, args)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOCMAP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_train_then_predict_by_region_alone(map_world: dict[str, Path], home: Path, tmp_path: Path) -> None:
    data, _ = copy_stored_bundle(tmp_path / "stored")
    pipe = ["--pipeline", str(map_world["pipeline"])]
    predict = ["predict", *pipe, "--year", "2020", "--scheduler", "threads", "--tiles", "r000_c001", "--no-progress"]

    code, out = _run(predict)  # no model yet: one line that says the command that makes one
    assert code == 2 and out.count("\n") == 1 and "socmap train --region mapworld --data DATA" in out, out
    assert not (home / "maps").exists()

    code, out = _run(["train", *pipe, "--data", str(data), "--members", "1", "--no-progress"])
    assert code == 0, out
    latest = json.loads((home / "models" / "mapworld" / "latest.json").read_text())
    bundle = home / "models" / "mapworld" / latest["version"]
    assert (bundle / "bundle.json").is_file() and registry.latest_bundle("mapworld") == bundle

    code, out = _run(predict)
    assert code == 0, out
    assert out.splitlines()[0] == f"predict: model {bundle} (the latest bundle of region mapworld)"
    (root,) = [p for p in (home / "maps" / "mapworld" / "2020").iterdir() if p.is_dir()]
    assert (root / "soc_mean.vrt").is_file() and (root.parent / "latest.json").is_file() is False  # 1 of 4 tiles


def test_a_failed_training_leaves_latest_on_the_previous_bundle(map_world: dict[str, Path], home: Path,
                                                                 tmp_path: Path) -> None:
    first = registry.new_version("mapworld")
    first.mkdir(parents=True)
    registry.publish("mapworld", first)
    before = (home / "models" / "mapworld" / "latest.json").read_text()
    code, out = _run(["train", "--pipeline", str(map_world["pipeline"]), "--data", str(tmp_path / "missing"),
                      "--no-progress"])
    assert code == 2, out
    assert (home / "models" / "mapworld" / "latest.json").read_text() == before
    assert registry.latest_bundle("mapworld") == first


@pytest.mark.parametrize("damage", ["missing", "damaged", "unsafe", "gone"])
def test_latest_bundle_errors_name_the_fix(home: Path, damage: str) -> None:
    root = registry.models_root("r1")
    if damage != "missing":
        root.mkdir(parents=True)
        text = {"damaged": "{", "unsafe": json.dumps({"version": "../x"}), "gone": json.dumps({"version": "v1"})}
        (root / "latest.json").write_text(text[damage])
    with pytest.raises(ModelError, match="damaged" if damage in ("damaged", "unsafe") else "train"):
        registry.latest_bundle("r1")


def test_publish_takes_only_its_own_version_folders(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        registry.publish("r1", tmp_path / "elsewhere")
    v = registry.new_version("r1")
    assert v.parent == home / "models" / "r1" and not v.exists() and os.sep not in v.name


def test_predict_help_lists_the_shipped_pipelines() -> None:
    code, out = _run(["predict", "--help"])
    assert code == 0 and "africa-coarse" in out and "demo" in out
