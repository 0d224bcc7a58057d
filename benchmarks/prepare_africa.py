"""Benchmark: ``prepare`` on the real Africa horizons (AfSPDB + AfSIS) with the Africa pipeline's rasters.

Reads ../shared/data/afsp_africa_horizons.csv and the covariate layers of ../shared/data/covariates/ (both
relative to the repository root, never copied), prints the report figures and checks the result (unique sites,
SOC within the stated range, no NaN model feature), and ends with ONE line holding a JSON object of the
figures.

    python benchmarks/prepare_africa.py [--out DIR] [--split random|block]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary one)")
    ap.add_argument("--split", choices=["random", "block"], default=None)
    args = ap.parse_args()

    from socmap.config import load_pipeline
    from socmap.data import prepare

    csv = SHARED / "data" / "afsp_africa_horizons.csv"
    pipeline = load_pipeline(ROOT / "pipelines" / "africa.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "africa"
        t0 = time.perf_counter()
        res = prepare.run(pipeline, [csv], out, mappings=["afsp"], split=args.split, progress=False)
        seconds = time.perf_counter() - t0
    s, r = res.samples, res.report
    lo, hi = r["soc_range_gkg"]
    feats = s.filter(like="feat_")
    checks = {
        "sample_id_unique": bool(s.sample_id.is_unique),
        "no_duplicate_coordinates": not bool(s[["lon", "lat"]].round(6).duplicated().any()),
        "soc_within_range": bool(s.soc_gkg.between(lo, hi).all()),
        "features_finite": bool(np.isfinite(feats.to_numpy()).all()),
        "covariate_layers": len(pipeline.data.covariates),
    }
    print(f"input: {csv} ({r['rows_in']} rows)")
    print(f"topsoil horizons {r['topsoil_horizons']}, profiles {r['profiles']} ({r['profiles_kept']} kept), "
          f"sites out {r['sites_out']}")
    for rule, v in r["rules"].items():
        print(f"  {rule:30s} {v['level']:8s} {v['action']:7s} {v['count']:6d}  {v['by_source']}")
    print(f"SOC range used {lo}..{hi} g/kg; observed {r['soc_gkg']}")
    print(f"year {r['year']}; split {r['split']['method']} {r['split']['counts']}")
    miss = {k: v for k, v in r["covariates"]["missing_before_imputation"].items() if v}
    print(f"covariates: {len(r['covariates']['needed'])} layers -> {len(feats.columns)} features; "
          f"missing before imputation {miss}; checks {checks}; {seconds:.1f} s")
    figures = {
        "rows_in": r["rows_in"], "sites_out": r["sites_out"], "profiles": r["profiles"],
        "rules": {k: v["count"] for k, v in r["rules"].items()},
        "soc_range_gkg": r["soc_range_gkg"], "soc_gkg": r["soc_gkg"], "split": r["split"]["counts"],
        "split_method": r["split"]["method"], "features": len(feats.columns),
        "missing_before_imputation": miss, "checks": checks, "seconds": round(seconds, 2),
    }
    print(json.dumps(figures, separators=(",", ":")))
    ok = all(v for k, v in checks.items() if k != "covariate_layers")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
