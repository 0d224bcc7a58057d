"""`socmap predict` on the command line: a normal run, and each bad input ends with one line, exit 2, nothing
written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from socmap.cli import cli


def _run(args: list[str]) -> tuple[int, str]:
    r = CliRunner().invoke(cli, args)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


def _one_line_error(code: int, out: str, *needles: str) -> None:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert code == 2, out
    assert len(lines) == 1 and lines[0].startswith("socmap: error: "), out
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_cli_predict_writes_maps(map_world: dict[str, Path], map_bundle: Path, tmp_path: Path) -> None:
    code, out = _run(["predict", "--pipeline", str(map_world["pipeline"]), "--year", "2020", "--model",
                      str(map_bundle), "--out", str(tmp_path), "--scheduler", "threads", "--tiles", "r000_c001",
                      "--no-progress"])
    assert code == 0, out
    assert "1 tiles done" in out and "0 failed" in out and "cells/s" in out
    (root,) = [p for p in (tmp_path / "mapworld" / "2020").iterdir() if p.is_dir()]
    assert (root / "soc_mean.vrt").is_file() and (root / "cog" / "soc_mean" / "soc_mean_r000_c001.tif").is_file()


@pytest.mark.parametrize("case", ["region", "no_grid", "tile", "year_without_imagery", "other_covariates",
                                  "no_bundle", "unwritable", "out_is_file", "out_under_file", "bad_version"])
def test_cli_predict_bad_input(case: str, map_world: dict[str, Path], map_bundle: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "maps"
    opts = {"--year": "2020", "--model": str(map_bundle), "--pipeline": str(map_world["pipeline"]),
            "--scheduler": "threads"}
    needles: tuple[str, ...] = ()
    if case == "region":
        del opts["--pipeline"]
        opts["--region"] = "atlantis"
        needles = ("atlantis",)
    elif case == "tile":
        opts["--tiles"] = "r009_c000"
        needles = ("r009_c000",)
    elif case == "year_without_imagery":
        del opts["--pipeline"]
        opts.update({"--region": "demo", "--year": "1999"})
        needles = ("1999", "imagery")
    elif case == "other_covariates":
        opts["--pipeline"] = str(map_world["other"])
    elif case == "no_grid":
        import yaml

        pipe = yaml.safe_load(map_world["pipeline"].read_text())
        pipe.update(grid=str(tmp_path / "no-such-grid.yaml"), data={**pipe["data"], "sources": []})
        opts["--pipeline"] = str(tmp_path / "p.yaml")
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipe))
        needles = ("grid", "no-such-grid")
    elif case == "no_bundle":
        opts["--model"] = str(tmp_path / "nothing")
    elif case == "out_is_file":
        out_dir = tmp_path / "maps.txt"
        out_dir.write_text("not a folder")
        needles = ("not a folder",)
    elif case == "out_under_file":
        (tmp_path / "plain").write_text("a file")
        out_dir = tmp_path / "plain" / "maps"
        needles = ("not a folder",)
    elif case == "bad_version":
        opts["--version"] = "../../elsewhere"
        needles = ("version",)
    else:
        if os.geteuid() == 0:  # root writes through file modes: use a folder no one can create
            out_dir = Path("/proc/socmap-maps")
        else:
            locked = tmp_path / "locked"
            locked.mkdir()
            locked.chmod(0o500)
            out_dir = locked / "maps"
        needles = ("not writable",)
    opts["--out"] = str(out_dir)
    code, out = _run(["predict", *(x for kv in opts.items() for x in kv), "--no-progress"])
    _one_line_error(code, out, *needles)
    if case == "out_is_file":
        assert out_dir.read_text() == "not a folder"
    else:
        assert not out_dir.exists()


def test_disk_full_during_the_run_ends_with_one_line(map_world: dict[str, Path], map_bundle: Path,
                                                     tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE, as a full disk: GDAL then leaves a truncated COG and only logs it) hits the
    first tile's COGs: one line, exit 2, no truncated file in place, no tile recorded; without the limit the same
    command finishes."""
    import resource

    from socmap.io import MAP_DONE_DIR

    args = ["predict", "--pipeline", str(map_world["pipeline"]), "--year", "2020", "--model", str(map_bundle),
            "--out", str(tmp_path), "--scheduler", "threads", "--tiles", "r000_c000", "--no-progress"]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2500, hard))  # metadata files fit, a 32 x 32 float COG does not
    try:
        code, out = _run(args)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    _one_line_error(code, out, "could not be written whole", "run the same command again")
    assert not list(tmp_path.rglob("*.tif")) and not list(tmp_path.rglob(f"{MAP_DONE_DIR}/*.json"))
    code, out = _run(args)
    assert code == 0 and "1 tiles done" in out, out
