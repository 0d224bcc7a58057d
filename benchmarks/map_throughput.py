"""Benchmark: a whole-grid ``africa-coarse`` map from the CLI, as a user runs it: mapped cells per second.

Runs ``socmap predict --region africa-coarse --model BUNDLE --out TMP --no-progress`` in a fresh process ``--runs``
times (a fresh version folder each time, nothing resumed), reads each run's ``predict_summary.json`` and reports:

- ``run_seconds`` / ``cells_per_s``: the run as its summary line counts it (checks and bundle, start-up, tiles,
  mosaics and metadata), mapped (land) cells only;
- ``process_seconds`` / ``process_cells_per_s``: the whole process, the interpreter's start and imports included;
- the summary's ``plan_seconds``, ``startup_seconds``, ``map_seconds``, ``finish_seconds`` and the tiles' seconds by
  stage (summed over tiles, so over the threads or workers that ran them).

Without ``--model`` it first prepares the Africa samples (``socmap prepare``, ../shared beside the repository) and
trains a 3-member bundle of the shipped architecture for 3 rounds (about a minute): the map costs the same whatever
the weights, so the figure holds for the shipped bundle. Run it on an idle machine; the last line is one JSON object.

    python benchmarks/map_throughput.py [--model BUNDLE] [--runs 3] [--scheduler threads|ADDR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
REGION = "africa-coarse"


def _quick_bundle(work: Path) -> Path:
    """Prepare the Africa samples and train a 3-member bundle of the shipped architecture for 3 rounds."""
    sys.path.insert(0, str(ROOT))
    from socmap.config import load_pipeline
    from socmap.data import prepare
    from socmap.train import stage

    cfg = load_pipeline(ROOT / "pipelines" / f"{REGION}.yaml")
    data = work / "data"
    prepare.run(cfg, None, data, progress=False)
    out = work / "model"
    stage.run(cfg, data, out, epochs=3, progress=False)
    return out


def _one_run(model: Path, out: Path, scheduler: str | None) -> dict[str, float]:
    cmd = [sys.executable, "-m", "socmap", "predict", "--region", REGION, "--model", str(model), "--out", str(out),
           "--no-progress"]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    process = time.perf_counter() - t0
    (summary,) = out.glob(f"{REGION}/*/*/predict_summary.json")
    s = json.loads(summary.read_text())
    return {"process_seconds": process, "run_seconds": s["seconds"], "plan_seconds": s["plan_seconds"],
            "startup_seconds": s["startup_seconds"], "map_seconds": s["map_seconds"],
            "finish_seconds": s["finish_seconds"], "cells": s["cells"], "cells_mapped": s["cells_mapped"],
            **{f"tiles_{k}_seconds": v for k, v in s["task_seconds_by_stage"].items()}}


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="bundle to map with (default: a quick one, see above)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scheduler", default=None, help="passed to socmap predict (default: its own choice)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or _quick_bundle(Path(tmp))
        runs = [_one_run(model, Path(tmp) / f"maps{i}", args.scheduler) for i in range(args.runs)]
    for i, r in enumerate(runs):
        print(f"run {i}: {r['cells_mapped']} mapped cells, run {r['run_seconds']:.2f} s "
              f"({r['cells_mapped'] / r['run_seconds']:.0f} cells/s), process {r['process_seconds']:.2f} s; plan "
              f"{r['plan_seconds']:.2f}, start-up {r['startup_seconds']:.2f}, tiles {r['map_seconds']:.2f}, finish "
              f"{r['finish_seconds']:.2f} s")
    mapped = runs[0]["cells_mapped"]
    keys = sorted({k for r in runs for k in r if k.endswith("_seconds")})
    line: dict[str, object] = {"region": REGION, "runs": len(runs), "scheduler": args.scheduler or "default",
                               "cells": runs[0]["cells"], "cells_mapped": mapped,
                               **{k: round(median(r[k] for r in runs), 3) for k in keys},
                               "cells_per_s": round(mapped / median(r["run_seconds"] for r in runs)),
                               "cells_per_s_runs": [round(mapped / r["run_seconds"]) for r in runs],
                               "process_cells_per_s": round(mapped / median(r["process_seconds"] for r in runs))}
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
