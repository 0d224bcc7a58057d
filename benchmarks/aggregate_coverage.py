"""Do the zone intervals of `socmap aggregate` cover the true zone mean? Random polygons over the demo map.

Needs a finished demo run (``socmap demo --out DIR``: DIR/model and DIR/maps/demo/YEAR, mapped with
``output.member_maps``). For each of several seeds, 50 random star-shaped polygons of 0.25-25 km2 (log-uniform)
are laid over the map; each zone's area-weighted mean SOC and its 90 % interval are computed as `socmap aggregate`
does, and compared with the true zone mean (the world's 10 m truth averaged onto the map grid, same weights).
Prints the coverage by zone size and the naive (cells independent) coverage, then one JSON line.

    python benchmarks/aggregate_coverage.py --run DIR [--seeds 0,1,2,3,4] [--zones 50]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    from socmap.aggregate.check import covered_share, map_coverage
    from socmap.aggregate.interval import LEVEL
    from socmap.config import load_pipeline
    from socmap.demo.world import WorldSpec, default_world_dir, ensure_world

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a `socmap demo --out DIR` folder")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--zones", type=int, default=50, help="zones per seed")
    ap.add_argument("--level", type=float, default=LEVEL)
    a = ap.parse_args()
    year = load_pipeline("demo").output.year
    world = ensure_world(default_world_dir(), WorldSpec(), progress=False)
    seeds = [int(s) for s in a.seeds.split(",")]
    t0 = time.perf_counter()
    chk, corr = map_coverage(a.run / "maps" / "demo" / str(year), a.run / "model",
                             world / "truth" / f"soc_true_{year}.tif", seeds=seeds, n_zones=a.zones, level=a.level)
    secs = time.perf_counter() - t0
    print(f"correlogram of held-out residuals: range {corr.len_scale_km:.3f} km, nugget share "
          f"{corr.nugget_share:.3f}, map-wide share {corr.shared_share:.3f}, sill {corr.sill:.3f}, mean residual "
          f"{corr.mean_residual:+.3f} ({corr.n_points} points)")
    print(chk.line())
    tab = chk.table
    y = tab["reference_mean"]
    by_size = {}
    for lo, hi in ((0.25, 1.0), (1.0, 5.0), (5.0, 25.0)):
        s = tab[(tab["area_km2"] >= lo) & (tab["area_km2"] < hi + 1e-9)]
        ys = y[s.index]
        cov = covered_share(s, ys)
        naive = covered_share(s, ys, naive=True)
        by_size[f"{lo:g}-{hi:g}km2"] = {"zones": len(s), "coverage": round(cov, 3), "naive_coverage": round(naive, 3)}
        print(f"  zones of {lo:g}-{hi:g} km2: {len(s)}, coverage {cov:.1%}, naive {naive:.1%}")
    by_seed = {}
    for s_ in seeds:
        s = tab[tab["zone"].str.startswith(f"z{s_}_")]
        ys = y[s.index]
        by_seed[str(s_)] = round(covered_share(s, ys), 3)
    print("  coverage by seed: " + ", ".join(f"{k}: {v:.1%}" for k, v in by_seed.items()))
    out = {**chk.figures(), "seeds": seeds, "by_size": by_size, "by_seed": by_seed, "seconds": round(secs, 1),
           "correlogram": {"len_scale_km": round(corr.len_scale_km, 4), "nugget_share": round(corr.nugget_share, 4),
                           "shared_share": round(corr.shared_share, 4), "sill": round(corr.sill, 4),
                           "n_points": corr.n_points}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
