"""Real-data benchmark: prepare -> train (the ensemble) -> baselines -> evaluation on a real survey file.

    python benchmarks/real_data.py --input ../shared/data/afsp_africa_horizons.csv --mapping afsp \\
        --setting mappable --members 5 --out /tmp/africa-mappable

Settings, both without imagery (the pipeline's ``image`` stream is dropped if it has one):

- ``mappable``: only inputs that exist wall to wall: the pipeline's covariate rasters, position and year.
- ``point``: the same plus the survey's own pH and texture (``ph_h2o``, ``sand_pct``, ``silt_pct``,
  ``clay_pct``, those the mapping provides) as ``data.survey_covariates``, as the paper's tabular set mixes both.

Writes OUT/data (prepare), OUT/model (the bundle) and OUT/report (report.md, report.json, figures), prints the
headline table and ends with one JSON line: sptgnn_rmse, sptgnn_r2, sptgnn_mape, xgb_rmse, xgb_r2, rfsi_rmse,
rfsi_r2, ece_post, cov95_post (Vysochanskij-Petunin), n_test, seconds, setting (and a few more); and, for protocol
prefix P ("" random split, "block_" block protocol), every method by every metric of the report's methods-by-metrics
section (``socmap.evaluate.skill.skill_json``): P{m}_{rmse,mae,rmse_log,r2} for m in sptgnn, xgb, xgb_smeared, rfsi,
rfsi_smeared, qrf, rk (qrf and rk: their predictive means; qrf_median, rk_median too), P{m}_{crps,cov95} for sptgnn,
qrf, rk, Pratio_{rmse,mae,rmse_log}_best with _ci95 [lo, hi] (10 km cluster bootstrap) and Pcov95_by_distance.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SURVEY_COLUMNS = ("ph_h2o", "sand_pct", "silt_pct", "clay_pct")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", required=True, type=Path, help="Survey table (CSV, Parquet, GeoPackage).")
    ap.add_argument("--mapping", required=True, help="Mapping name (afsp, demo) or YAML path.")
    ap.add_argument("--pipeline", default="africa-coarse",
                    help="Pipeline name or YAML (covariate rasters, model, training); default africa-coarse.")
    ap.add_argument("--setting", choices=["mappable", "point"], default="mappable")
    ap.add_argument("--members", type=int, default=None, help="Ensemble members (default: the pipeline's).")
    ap.add_argument("--epochs", type=int, default=None, help="Cap on training epochs (default: the pipeline's).")
    ap.add_argument("--protocol", choices=["random", "block"], default="random")
    ap.add_argument("--block-folds", type=int, default=1,
                    help="With --protocol block: 1 one held-out set of blocks; K >= 2 spatial K-fold CV.")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true",
                    help="Keep OUT/data and OUT/model where they exist (re-run only what is missing).")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)

    from socmap.config import load_pipeline
    from socmap.data import prepare
    from socmap.data.columns import load_mapping
    from socmap.evaluate import stage as evaluate
    from socmap.evaluate.skill import skill_json
    from socmap.train import stage as train

    t0 = time.perf_counter()
    p = Path(args.pipeline)
    cfg = load_pipeline(p if p.suffix in (".yaml", ".yml") else args.pipeline)
    cfg.model.streams = [s for s in cfg.model.streams if s != "image"]
    cfg.model.encoder.finetune_epochs = 0
    if args.epochs is not None:
        cfg.train.epochs = args.epochs
    if args.setting == "point":
        provided = set(load_mapping(args.mapping).covariates)
        cfg.data.survey_covariates = [c for c in SURVEY_COLUMNS if c in provided]
        if not cfg.data.survey_covariates:
            raise SystemExit(f"mapping {args.mapping} provides none of {SURVEY_COLUMNS}: no POINT setting")
    else:
        cfg.data.survey_covariates = []
    out = args.out.resolve()
    data, model, report = out / "data", out / "model", out / "report"

    ts = time.perf_counter()
    if not (args.reuse and (data / "samples.parquet").exists()):
        prep = prepare.run(cfg, [args.input], data, mappings=[args.mapping], progress=False)
        print(f"prepare: {prep.report['sites_out']} sites, split {prep.report['split']['counts']} "
              f"({time.perf_counter() - ts:.0f} s)", flush=True)
    ts = time.perf_counter()
    if not (args.reuse and (model / "bundle.json").exists()):
        tr = train.run(cfg, data, model, members=args.members, device=args.device, seed=args.seed, progress=True)
        print(f"train: {tr.summary()} ({time.perf_counter() - ts:.0f} s)", flush=True)
    t_train = time.perf_counter() - ts
    ts = time.perf_counter()
    res = evaluate.run(cfg, data, model, report, protocol=args.protocol, n_boot=args.bootstrap, seed=args.seed,
                       device=args.device, block_folds=args.block_folds)
    t_eval = time.perf_counter() - ts
    rep = res.report
    print(f"evaluate: {res.summary()} ({t_eval:.0f} s)\n")
    print((report / "report.md").read_text().split("## SpTGNN on the validation")[0])

    pt, post, pre = rep["point"], rep["uncertainty"]["post"], rep["uncertainty"]["pre"]
    line = {
        "setting": args.setting,
        "pipeline": cfg.name,
        "members": rep["members"],
        "n_test": rep["n_eval"],
        "sptgnn_rmse": pt["SpTGNN"]["rmse"]["value"],
        "sptgnn_rmse_ci95": pt["SpTGNN"]["rmse"].get("ci95"),
        "sptgnn_r2": pt["SpTGNN"]["r2"]["value"],
        "sptgnn_mape": pt["SpTGNN"]["mape"]["value"],
        "sptgnn_mae": pt["SpTGNN"]["mae"]["value"],
        "sptgnn_median_rmse": pt.get("SpTGNN (median)", {}).get("rmse", {}).get("value"),
        "xgb_rmse": pt["XGBoost"]["rmse"]["value"],
        "xgb_r2": pt["XGBoost"]["r2"]["value"],
        "xgb_mape": pt["XGBoost"]["mape"]["value"],
        "rfsi_rmse": pt["RFSI-like XGBoost"]["rmse"]["value"],
        "rfsi_r2": pt["RFSI-like XGBoost"]["r2"]["value"],
        "xgb_smeared_rmse": pt.get("XGBoost (smeared)", {}).get("rmse", {}).get("value"),
        "rfsi_smeared_rmse": pt.get("RFSI-like XGBoost (smeared)", {}).get("rmse", {}).get("value"),
        "ece_pre": pre["ece"]["value"],
        "ece_post": post["ece"]["value"],
        "cov95_post": post["picp_vp"]["value"],
        "cov95_gaussian_post": post["picp_gaussian"]["value"],
        "cov95_predictive_post": post.get("picp_predictive", {}).get("value"),
        "ece_gaussian_post": post.get("ece_gaussian", {}).get("value"),
        "tail_dof": rep.get("tail_dof"),
        "distance_power": rep["uncertainty"].get("distance_power"),
        "nll_post": post["nll"]["value"],
        "crps_post": post["crps"]["value"],
        "temperature": rep["uncertainty"]["temperature"],
        "epistemic_fraction": post["epistemic_fraction"]["value"],
        "seconds": round(time.perf_counter() - t0, 1),
        "seconds_train": round(t_train, 1),
        "report": str(report),
    }
    ratio_keys = (("xgb", "XGBoost"), ("xgb_smeared", "XGBoost (smeared)"), ("rfsi", "RFSI-like XGBoost"),
                  ("rfsi_smeared", "RFSI-like XGBoost (smeared)"))
    for prefix, ratios in (("", rep.get("rmse_ratio", {})), ("block_", rep.get("block", {}).get("rmse_ratio", {}))):
        for k, n in ratio_keys:
            if n in ratios:
                line[f"{prefix}rmse_ratio_{k}"] = ratios[n]["value"]
                ci = ratios[n].get("ci95")
                line[f"{prefix}rmse_ratio_{k}_ci95"] = None if ci is None else [round(c, 4) for c in ci]
    if "block" in rep:
        b = rep["block"]["point"]
        line.update({f"block_{k}_rmse": b[n]["rmse"]["value"]
                     for k, n in (("sptgnn", "SpTGNN"), ("sptgnn_median", "SpTGNN (median)"), ("xgb", "XGBoost"),
                                  ("rfsi", "RFSI-like XGBoost"),
                                  ("xgb_smeared", "XGBoost (smeared)"), ("rfsi_smeared", "RFSI-like XGBoost (smeared)"))
                     if n in b})
        if "uncertainty_post" in rep["block"]:
            bu = rep["block"]["uncertainty_post"]
            line.update({"block_cov95_post": bu["picp_vp"]["value"], "block_ece_post": bu["ece"]["value"],
                         "block_cov95_gaussian_post": bu["picp_gaussian"]["value"],
                         "block_cov95_predictive_post": bu.get("picp_predictive", {}).get("value"),
                         "block_ece_gaussian_post": bu.get("ece_gaussian", {}).get("value")})
        line["block_folds"] = rep["block"].get("folds_k", 1)
        line["block_val_sptgnn_rmse"] = rep["block"].get("val_rmse", {}).get("SpTGNN")
        line["block_n"] = b["SpTGNN"]["n"]
    for prefix, skill in (("", rep.get("skill")), ("block_", rep.get("block", {}).get("skill"))):
        for k, v in skill_json(skill, prefix).items():
            line.setdefault(k, v)  # the keys above stay as they are (the same numbers where they overlap)
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
