"""``scripts/install.sh`` with an option whose value is missing: a usage line and exit 2, not bash's "unbound
variable" (the script runs under ``set -u``). Nothing is installed: the check comes before any step."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="requires bash")
@pytest.mark.parametrize("args", [["--venv"], ["--extras"], ["--extras", "--venv", "x"]])
def test_option_without_value_prints_usage_and_exits_2(args: list[str], tmp_path: Path) -> None:
    r = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"install.sh: {args[0]} needs a value" in r.stderr
    assert "usage: scripts/install.sh [--venv DIR] [--extras LIST] [--no-editable]" in r.stderr
    assert "unbound variable" not in r.stderr and r.stdout == ""
    assert not (SCRIPT.parents[1] / "x").exists()  # the bad value was not taken as a venv folder
