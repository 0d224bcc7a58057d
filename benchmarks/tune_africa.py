"""Benchmark: ``socmap tune`` on the real Africa set (africa-coarse: raster covariates, position, year; no imagery).

A small honest search that fits a shared 2-core CPU in ~25 minutes, so everything is scaled down from the shipped
``africa-coarse`` tune section and stated here:

- widths: the Table 6 step-1 choices divided by 4 (RGAT [64, 32] / [64, 96, 48] / [128, 64, 32, 16]; fusion
  64 / 128 / 256), experts 2 / 4 / 8 (halved), pre/post MLPs [64] -> 64 and [32] -> 32;
- the hand-set configuration is the pipeline with the same reductions (RGAT [64, 32], fusion 64, 4 experts,
  lr 3e-3: the reduced setting of benchmarks/train_africa.py);
- few trials (default 12: 7 wide + 5 narrow), few epochs per trial (default 30 full-graph steps) and a per-trial
  wall-clock budget (2.5 min, so a slow configuration runs fewer epochs); the final retrain is one member each
  for at most ``--final-epochs`` (100) epochs and ``--final-minutes`` (6) minutes, the same for both.

Trials run on a LocalCluster of ``--workers`` processes. Prints the trials, the best-vs-hand-set table and, last,
one JSON line with the figures.

Usage::

    python benchmarks/tune_africa.py --out /tmp/tune-africa            # data: /work/runs/africa-coarse/data
    python benchmarks/tune_africa.py --trials 16 --epochs 40 --trial-minutes 4 --final-minutes 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REDUCED_SPACE = {
    "model.rgat.hidden_dims": {"choices": [[64, 32], [64, 96, 48], [128, 64, 32, 16]]},
    "train.learning_rate": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
    "model.moe.expert_type": {"choices": ["cross-gated", "concat", "additive"]},
    "model.moe.fusion_dim": {"choices": [64, 128, 256]},
    "model.moe.experts": {"choices": [2, 4, 8]},
    "model.rgat.attention_mechanism": {"choices": ["within-relation", "across-relation"]},
    "model.rgat.attention_mode": {"choices": ["additive-self-attention", "multiplicative-self-attention"]},
    "model.rgat.dropout": {"low": 0.1, "high": 0.4},
    "train.weight_decay": {"low": 1.0e-6, "high": 1.0e-3, "log": True},
    "train.loss_fraction": {"low": 0.3, "high": 0.9},
}


def reduced_pipeline(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from socmap.config import PipelineConfig, load_pipeline

    cfg = load_pipeline(args.pipeline)
    d = cfg.model_dump(mode="json")
    d["model"]["rgat"].update({"hidden_dims": [64, 32]})
    d["model"]["moe"].update({"fusion_dim": 64, "experts": 4})
    d["model"]["pre_mlp"] = {"hidden": [64], "out": 64, "dropout": 0.161}
    d["model"]["post_mlp"] = {"hidden": [32], "out": 32, "dropout": 0.10}
    d["train"].update({"learning_rate": 3e-3, "device": "cpu", "max_minutes": args.final_minutes})
    tw = max(1, round(args.trials * 0.6))
    d["tune"] = {"wide_trials": tw, "narrow_trials": args.trials - tw, "epochs": args.epochs,
                 "trial_minutes": args.trial_minutes, "top_fraction": 0.25, "startup_trials": max(2, tw - 2),
                 "pruner": {"kind": "median", "startup_trials": 2, "warmup_epochs": max(1, args.epochs // 3)},
                 "final_members": 1, "final_epochs": args.final_epochs, "seed": 0, "space": REDUCED_SPACE}
    out = PipelineConfig.model_validate(d)
    out.source_file = cfg.source_file
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default="africa-coarse")
    ap.add_argument("--data", type=Path, default=Path("/work/runs/africa-coarse/data"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/tune-africa"))
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=30, help="epochs (full-graph steps) per trial")
    ap.add_argument("--trial-minutes", type=float, default=2.5)
    ap.add_argument("--final-minutes", type=float, default=6.0, help="wall-clock budget of each final retrain")
    ap.add_argument("--final-epochs", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from socmap.io import TUNE_REPORT_MD, TUNE_TRIALS
    from socmap.tune import stage as tune

    cfg = reduced_pipeline(args)
    t0 = time.perf_counter()
    res = tune.run(cfg, args.data, args.out, trials=args.trials, workers=args.workers, progress=False)
    seconds = time.perf_counter() - t0
    df = pd.read_csv(args.out / TUNE_TRIALS)
    cols = ["step", "number", "state", "val_mape", "val_r2", "val_rmse", "epochs_run", "seconds"]
    print(df[cols].to_string(index=False))
    print((args.out / TUNE_REPORT_MD).read_text())
    print(res.summary())
    fin = res.final or {}

    def pick(name: str, split: str) -> dict[str, float]:
        m = fin[name][split]
        return {k: round(float(m[k]), 4) for k in ("mape", "rmse", "mae", "r2", "picp95")}

    result = {
        "seconds": round(seconds, 1), "trials": res.counts, "states": df["state"].value_counts().to_dict(),
        "epochs_per_trial": args.epochs, "trial_minutes": args.trial_minutes, "final_epochs": args.final_epochs,
        "final_minutes": args.final_minutes, "workers": args.workers,
        "final_epochs_run": {k: fin[k]["epochs_run"] for k in ("best", "hand-set")},
        "best_trial": {"step": res.best["step"], "number": res.best["number"],
                       "val_mape": round(res.best["val_mape"], 3), "val_r2": round(res.best["val_r2"], 4)},
        "best_params": res.best["params"],
        "best_val": pick("best", "val"), "best_test": pick("best", "test"),
        "hand_set_val": pick("hand-set", "val"), "hand_set_test": pick("hand-set", "test"),
        "winner_on_val": fin.get("winner_val"), "n_val": fin["best"]["val"]["n"], "n_test": fin["best"]["test"]["n"],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
