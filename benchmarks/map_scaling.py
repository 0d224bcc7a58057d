"""How the mapping job's cost grows with area: map 1x and 4x the area and compare time and peak memory.

Each map runs in a fresh subprocess (``socmap.mapping.predict.run`` with tiles in-process, ``--scheduler
threads``) so its peak resident memory (ru_maxrss) is its own. The 4x run maps a 2 x 2 block of tiles whose
top-left tile is the 1x run's tile, so both cover comparable land. Figures: ``time_ratio_4x`` (tile-loop wall time,
goal <= 4.4: cost linear in area), ``mem_ratio_4x`` (peak RSS, goal <= 1.2: tiles stream, nothing holds the whole
region), ``cells_per_s`` (4x run). ``fast_vs_exact_corr`` and ``fast_speedup`` compare the image embedding modes
of imagery pipelines; they are null here (no-imagery pipeline) unless ``socmap.mapping.imagery`` provides
``fast_vs_exact`` and ``--imagery-pipeline`` is given.

Usage::

    python benchmarks/map_scaling.py --pipeline pipelines/africa-coarse.yaml --model MODEL [--tile r001_c001]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from socmap.config import load_pipeline
from socmap.mapping import predict
cfg = load_pipeline(sys.argv[1])
res = predict.run(cfg, Path(sys.argv[3]), Path(sys.argv[4]), year=int(sys.argv[2]), scheduler="threads",
                  tiles=sys.argv[5].split(","), progress=False)
tiles = {p.stem: round(json.loads(p.read_text())["seconds"], 2) for p in (res.root / "tiles_done").glob("*.json")}
print(json.dumps({"seconds": res.seconds, "map_seconds": res.map_seconds, "cells": res.cells, "tile_s": tiles,
                  "cells_mapped": res.cells_mapped, "tiles": res.tiles_done,
                  "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _block(tile: str) -> list[str]:
    """The 2 x 2 block of tile ids whose top-left is ``tile`` (``rRRR_cCCC``)."""
    r, c = int(tile[1:4]), int(tile[6:9])
    return [f"r{r + i:03d}_c{c + j:03d}" for i in (0, 1) for j in (0, 1)]


def _run(pipeline: str, year: int, model: str, tiles: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="socmap-mapbench-") as out:
        proc = subprocess.run([sys.executable, "-c", _CHILD, pipeline, str(year), model, out, ",".join(tiles)],
                              capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"map run failed (tiles {tiles})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipeline", default="pipelines/africa-coarse.yaml", help="no-imagery pipeline YAML")
    ap.add_argument("--model", required=True, help="bundle trained with that pipeline")
    ap.add_argument("--year", type=int, default=None, help="map year (default: the pipeline's output.year)")
    ap.add_argument("--tile", default="r001_c001", help="the 1x tile; 4x adds its right, lower, lower-right")
    args = ap.parse_args(argv)
    from socmap.config import load_pipeline

    cfg = load_pipeline(args.pipeline)
    year = args.year or cfg.output.year
    grid = cfg.load_grid()
    print(f"pipeline {cfg.name}, grid {grid.name} ({grid.shape[0]} x {grid.shape[1]} cells, tiles of "
          f"{grid.tile_size}), year {year}, model {args.model}")
    one = _run(args.pipeline, year, args.model, [args.tile])
    print(f"1x: {one['tiles']} tile, {one['cells']} cells ({one['cells_mapped']} mapped): tile loop "
          f"{one['map_seconds']:.1f} s (run {one['seconds']:.1f} s), peak RSS {one['max_rss_mib']:.0f} MiB; "
          f"per tile {one['tile_s']}")
    four = _run(args.pipeline, year, args.model, _block(args.tile))
    print(f"4x: {four['tiles']} tiles, {four['cells']} cells ({four['cells_mapped']} mapped): tile loop "
          f"{four['map_seconds']:.1f} s (run {four['seconds']:.1f} s), peak RSS {four['max_rss_mib']:.0f} MiB; "
          f"per tile {four['tile_s']}")
    time_ratio = four["map_seconds"] / one["map_seconds"]
    mem_ratio = four["max_rss_mib"] / one["max_rss_mib"]
    cells_ratio = four["cells_mapped"] / max(1, one["cells_mapped"])
    print(f"time ratio 4x/1x: {time_ratio:.2f} (goal <= 4.4; mapped-cell ratio {cells_ratio:.2f}); "
          f"peak memory ratio: {mem_ratio:.2f} (goal <= 1.2)")
    result = {"time_ratio_4x": round(time_ratio, 3), "mem_ratio_4x": round(mem_ratio, 3),
              "cells_per_s": round(four["cells"] / four["map_seconds"], 1),
              "mapped_cells_per_s": round(four["cells_mapped"] / four["map_seconds"], 1),
              "cells_ratio_4x": round(cells_ratio, 3), "seconds_1x": round(one["map_seconds"], 2),
              "seconds_4x": round(four["map_seconds"], 2), "max_rss_mib_1x": round(one["max_rss_mib"]),
              "max_rss_mib_4x": round(four["max_rss_mib"]), "fast_vs_exact_corr": None, "fast_speedup": None}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
