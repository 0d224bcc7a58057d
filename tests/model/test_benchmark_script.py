"""Smoke test of benchmarks/rgat_layer.py at a tiny size: it ends with one JSON line holding the figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_prints_json_line():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "rgat_layer.py"), "--nodes", "300", "--edges", "1500",
         "--in-channels", "16", "--out-channels", "4", "--africa-nodes", "300", "--africa-widths", "16,32,16",
         "--repeats", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("pyg_peak_mb", "ours_peak_mb", "pyg_s", "ours_s", "mem_ratio", "time_ratio", "max_abs_diff",
                "africa_s", "africa_peak_mb", "africa_matmul_s", "africa_ratio_to_matmul", "africa_first_s"):
        assert summary[key] is not None, key
    assert summary["max_abs_diff"] < 1e-4
