"""The shipped demo pipeline on the seeded demo world: held-out sites and the whole map against the known truth.

Reads a finished ``socmap demo --out DIR`` run (DIR/report/report.json: `socmap evaluate` on the demo's random
test split, the SpTGNN against XGBoost and the RFSI-like baseline; DIR/maps/demo/YEAR/VERSION/score_vs_truth.json:
the map against the world's true SOC over every cell) and prints one JSON line with the keys of
``benchmarks/real_data.py`` (``sptgnn_rmse``, ``xgb_rmse``, ..., ``ece_post``, ``cov95_post``) and the map's
``map_*`` scores.

    socmap demo --out DIR && python benchmarks/demo_world.py --run DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

METHODS = (("sptgnn", "SpTGNN"), ("sptgnn_median", "SpTGNN (median)"), ("xgb", "XGBoost"),
           ("xgb_smeared", "XGBoost (smeared)"), ("rfsi", "RFSI-like XGBoost"),
           ("rfsi_smeared", "RFSI-like XGBoost (smeared)"))


def _value(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        d = d.get(k, {}) if isinstance(d, dict) else {}
    return d.get("value") if isinstance(d, dict) else None


def summarise(run: Path) -> dict[str, Any]:
    """The JSON line of the demo run in ``run``."""
    from socmap.mapping.layout import resolve_maps

    rep = json.loads((run / "report" / "report.json").read_text())
    pt, post = rep["point"], rep["uncertainty"]["post"]
    line: dict[str, Any] = {"setting": "demo world", "pipeline": rep.get("meta", {}).get("pipeline"),
                            "members": rep.get("members"), "n_test": rep["n_eval"]}
    for key, name in METHODS:
        if name not in pt:
            continue
        for metric in ("rmse", "mae", "r2", "mape"):
            line[f"{key}_{metric}"] = _value(pt, name, metric)
        line[f"{key}_rmse_ci95"] = pt[name]["rmse"].get("ci95")
        ratio = rep.get("rmse_ratio", {}).get(name)
        if key != "sptgnn" and ratio:
            line[f"rmse_ratio_{key}"] = ratio["value"]
            line[f"rmse_ratio_{key}_ci95"] = ratio.get("ci95")
    line.update({"ece_post": _value(post, "ece"), "cov95_post": _value(post, "picp_vp"),
                 "cov95_gaussian_post": _value(post, "picp_gaussian"),
                 "cov95_predictive_post": _value(post, "picp_predictive"),
                 "temperature": rep["uncertainty"].get("temperature")})
    year_dirs = sorted(p for p in (run / "maps" / "demo").iterdir() if p.is_dir())
    score = json.loads((resolve_maps(year_dirs[-1]) / "score_vs_truth.json").read_text())
    unc = score.get("uncertainty") or {}
    line.update({"map_year": int(year_dirs[-1].name), "map_cells": score["n"], "map_r2": score["r2"],
                 "map_rmse": score["rmse"], "map_bias": score["bias"],
                 "map_median_rmse": score["layers"]["soc_median"]["rmse"], "map_z2": unc.get("z2"),
                 "map_q05_q95_coverage": unc.get("coverage")})
    return {k: _round(v) for k, v in line.items()}


def _round(v: Any) -> Any:
    if isinstance(v, list):
        return [_round(x) for x in v]
    return round(v, 4) if isinstance(v, float) else v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a `socmap demo --out DIR` folder")
    print(json.dumps(summarise(ap.parse_args().run)))


if __name__ == "__main__":
    main()
