"""`socmap evaluate` on bad input: exit code 2 and one line naming what is wrong; nothing written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from socmap.cli import cli


def _run(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["evaluate", *args])
    return res.exit_code, res.output


def test_missing_samples(tmp_path: Path) -> None:
    code, out = _run(["--region", "demo", "--data", str(tmp_path / "nodata"), "--model", str(tmp_path / "m"),
                      "--out", str(tmp_path / "report")])
    assert code == 2
    assert out.startswith("socmap: error:") and "samples.parquet" in out and out.count("\n") == 1
    assert not (tmp_path / "report").exists()


def test_missing_bundle(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"sample_id": ["a"], "lon": [0.0], "lat": [0.0], "year": [2020], "soc_gkg": [10.0],
                  "split": ["test"]}).to_parquet(data / "samples.parquet")
    code, out = _run(["--region", "demo", "--data", str(data), "--model", str(tmp_path / "nomodel"),
                      "--out", str(tmp_path / "report")])
    assert code == 2 and out.startswith("socmap: error:") and out.count("\n") == 1
    assert not (tmp_path / "report").exists()


def test_bad_protocol_is_a_usage_error(tmp_path: Path) -> None:
    code, _ = _run(["--region", "demo", "--data", str(tmp_path), "--model", str(tmp_path), "--out",
                    str(tmp_path / "r"), "--protocol", "loo"])
    assert code == 2
