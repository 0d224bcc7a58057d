"""Fast vs exact map-cell image embeddings on one demo-world tile: agreement and time.

``python benchmarks/map_imagery.py [--tile-row 0 --tile-col 0 --every 5 --year 2024 --data DATA]`` builds the
tile's composite once (timed apart), embeds every ok cell in fast mode (one token map per tile) and every
``every``-th row and column of cells in exact mode (one 224-px patch per cell: the full tile is ~100x slower), and
prints, over the cells both modes embed:

* ``fast_vs_exact_corr``: Pearson correlation of all embedding entries, each dimension centred first;
* ``fast_vs_exact_rmse``: RMSE of the entries (embedding units) and ``rel_rmse`` = RMSE / sd of the exact entries;
* ``fast_s_per_tile``, ``exact_s_per_tile`` (extrapolated from the subsample to every ok cell) and
  ``fast_speedup`` = their ratio (encoder time only; ``composite_s`` is the same for both);
* ``block_vs_exact_corr``, ``block_s_per_tile`` (the subsample's time per encoder pass x ``blocks_per_tile``) and
  ``block_speedup``: the same for block mode (one full-encoder pass per distinct 16-px block of cells);
* ``exact_shift_corr``: the same correlation between exact embeddings of the subsample and of the same cells moved
  by ``--shift-m`` (default 10 m = one pixel) east: how much the exact embedding itself changes when its patch
  moves by one pixel, the scale to read ``fast_vs_exact_corr`` against (fast mode moves a cell's neighbourhood by
  up to 8 px onto the token lattice).

The encoder is the one ``embed`` used for ``--data`` (default: the seeded random draw ``embed`` makes without a
checkpoint, i.e. the demo chain's encoder). :func:`measure` is what ``benchmarks/map_scaling.py`` imports. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tile_cells(grid: Any, tile_row: int, tile_col: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Cell centres (row-major, north first) of one tile of ``grid`` and the tile's edge in cells."""
    xmin, _ymin, _xmax, ymax = grid.bounds
    rows, cols = grid.shape
    t = grid.tile_size
    r0, c0 = tile_row * t, tile_col * t
    nr, nc = min(t, rows - r0), min(t, cols - c0)
    if nr <= 0 or nc <= 0:
        raise SystemExit(f"tile ({tile_row}, {tile_col}) is outside the {rows} x {cols} grid")
    res = grid.resolution
    gx, gy = np.meshgrid(xmin + (c0 + np.arange(nc) + 0.5) * res, ymax - (r0 + np.arange(nr) + 0.5) * res)
    return gx.ravel(), gy.ravel(), nc


def measure(cfg: Any, year: int, crs: str, cell_x: np.ndarray, cell_y: np.ndarray, encoder: Any, *,
            cell_size_m: float, ncols: int, every: int = 5, batch_size: int = 16, shift_m: float | None = 10.0
            ) -> dict[str, Any]:
    """Fast (all cells) vs exact (every ``every``-th row and column) embeddings of one tile; figures as a dict.

    ``cell_x``, ``cell_y``: the tile's cell centres in ``crs``, row-major with ``ncols`` cells per row.
    ``shift_m``: also embed the subsample moved by this many metres east (exact) for ``exact_shift_corr``; None
    skips it.
    """
    from socmap.mapping.imagery import tile_composites, tile_image_embeddings

    t0 = time.perf_counter()
    comps = tile_composites(cfg, year, crs, cell_x, cell_y, cell_size_m=cell_size_m)
    t_comp = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast, ok = tile_image_embeddings(cfg, year, crs, cell_x, cell_y, encoder, mode="fast", cell_size_m=cell_size_m,
                                     batch_size=batch_size, composites=comps)
    t_fast = time.perf_counter() - t0
    n = len(cell_x)
    r, c = np.divmod(np.arange(n), ncols)
    sub = np.flatnonzero((r % every == every // 2) & (c % every == every // 2))
    t0 = time.perf_counter()
    sub_comps = tile_composites(cfg, year, crs, cell_x[sub], cell_y[sub], cell_size_m=cell_size_m)
    t_sub_comp = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact, ok_e = tile_image_embeddings(cfg, year, crs, cell_x[sub], cell_y[sub], encoder, mode="exact",
                                        cell_size_m=cell_size_m, batch_size=batch_size, composites=sub_comps)
    t_exact_sub = time.perf_counter() - t0
    if not np.array_equal(ok[sub], ok_e):
        raise AssertionError("fast and exact disagree on which cells are ok")
    both = ok_e
    a, b = fast[sub][both].astype(np.float64), exact[both].astype(np.float64)
    if len(a) < 2:
        raise SystemExit("fewer than 2 cells with imagery in this tile; pick another")
    corr = _corr(a, b)
    t0 = time.perf_counter()
    block, _ = tile_image_embeddings(cfg, year, crs, cell_x[sub], cell_y[sub], encoder, mode="block",
                                     cell_size_m=cell_size_m, batch_size=batch_size, composites=sub_comps)
    t_block_sub = time.perf_counter() - t0
    n_blocks = _count_blocks(comps, int(cfg.imagery.patch_size))
    block_corr = _corr(block[both].astype(np.float64), b)
    block_tile = t_block_sub / max(int(both.sum()), 1) * n_blocks
    shift_corr = None
    if shift_m:
        sx = cell_x[sub] + shift_m  # a projected grid CRS in metres (the demo's UTM grid)
        moved, ok_m = tile_image_embeddings(cfg, year, crs, sx, cell_y[sub], encoder, mode="exact",
                                            cell_size_m=cell_size_m, batch_size=batch_size)
        keep = both & ok_m
        shift_corr = round(_corr(exact[keep].astype(np.float64), moved[keep].astype(np.float64)), 4)
    rmse = float(np.sqrt(((a - b) ** 2).mean()))
    per_cell = t_exact_sub / max(int(both.sum()), 1)
    exact_tile = per_cell * int(ok.sum())
    return {
        "cells": n, "cells_ok": int(ok.sum()), "cells_compared": int(both.sum()), "exact_every": every,
        "dim": int(a.shape[1]), "composite_s": round(t_comp, 2), "fast_s_per_tile": round(t_fast, 2),
        "exact_s_per_cell": round(per_cell, 4), "exact_s_per_tile": round(exact_tile, 1),
        "exact_subsample_s": round(t_exact_sub, 2), "subsample_composite_s": round(t_sub_comp, 2),
        "fast_vs_exact_corr": round(corr, 4), "fast_vs_exact_rmse": round(rmse, 4),
        "rel_rmse": round(rmse / float(b.std()), 4), "exact_shift_m": shift_m, "exact_shift_corr": shift_corr,
        "block_vs_exact_corr": round(block_corr, 4), "blocks_per_tile": n_blocks,
        "block_s_per_tile": round(block_tile, 1), "block_speedup": round(exact_tile / max(block_tile, 1e-9), 1),
        "fast_speedup": round(exact_tile / t_fast, 1),
    }


def _count_blocks(comps: list[Any], patch: int) -> int:
    """Distinct 16-px blocks (block-mode encoder passes) among a tile's ok cells."""
    from socmap.mapping.imagery import _blocks, _patch_ok

    return sum(len(_blocks(tc, np.flatnonzero(_patch_ok(tc, patch)), patch)[0]) for tc in comps)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of all entries of two (n, D) arrays, each column centred first."""
    ac, bc = a - a.mean(0), b - b.mean(0)
    return float((ac * bc).sum() / np.sqrt((ac * ac).sum() * (bc * bc).sum()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from socmap.config import load_pipeline
    from socmap.mapping.imagery import load_map_encoder

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--region", default="demo")
    ap.add_argument("--year", type=int, default=None, help="default: the pipeline's output.year")
    ap.add_argument("--tile-row", type=int, default=0)
    ap.add_argument("--tile-col", type=int, default=0)
    ap.add_argument("--every", type=int, default=5, help="exact mode on every N-th row and column of cells")
    ap.add_argument("--data", type=Path, default=None, help="data folder whose embed encoder to use")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--shift-m", type=float, default=10.0, help="reference shift of the exact patches, m (0: skip)")
    args = ap.parse_args(argv)
    cfg = load_pipeline(args.region)
    grid = cfg.load_grid()
    year = args.year or cfg.output.year
    x, y, ncols = tile_cells(grid, args.tile_row, args.tile_col)
    enc = load_map_encoder(cfg, args.data)
    print(f"{args.region} tile ({args.tile_row}, {args.tile_col}): {len(x)} cells of {grid.resolution:g} m, "
          f"year {year}, {cfg.model.encoder.backbone}, patch {cfg.imagery.patch_size} px, "
          f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    res = measure(cfg, year, grid.crs, x, y, enc, cell_size_m=grid.resolution, ncols=ncols, every=args.every,
                  batch_size=args.batch_size, shift_m=args.shift_m or None)
    for k, v in res.items():
        print(f"  {k:24s} {v}")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
