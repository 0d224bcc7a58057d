"""Benchmark: what the graph and the neighbour inputs add to the SpTGNN, on the validation sites only.

Trains the pipeline's ensemble on a prepared data folder (``socmap prepare``'s output) once per variant and scores
each calibrated bundle on the validation split (the test sites are never read):

- ``shipped``: the pipeline as it is;
- ``no_graph``: the same inputs (covariates, year, and the neighbours' labels over the spatial relation) through the
  fusion and the MLPs only: no relational graph-attention layer (``model.rgat.hidden_dims: []``);
- ``no_label_inputs``: the shipped graph without the neighbours' labels as inputs (``model.label_input: false``).

Training is bounded by rounds (``train.epochs`` and early stopping), so the figures do not depend on the machine's
load. Usage::

    socmap prepare --region africa-coarse --out DATA
    python benchmarks/ablation.py --pipeline pipelines/africa-coarse.yaml --data DATA --out DIR

Prints one line per variant and ends with one JSON line: ``{variant}_{rmse,mae,rmse_log}`` of the expectation
(``soc_mean``) and ``{variant}_median_{rmse,mae,rmse_log}`` of the median (``soc_median``), g/kg and log(1 + g/kg),
with ``{variant}_epochs`` and ``{variant}_seconds``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict[str, Any]] = {
    "shipped": {},
    "no_graph": {"model.rgat.hidden_dims": []},
    "no_label_inputs": {"model.label_input": False},
}
"""Variant -> dotted pipeline keys it sets."""


def variant_pipeline(cfg: Any, updates: dict[str, Any]) -> Any:
    """A validated copy of the pipeline ``cfg`` with the dotted ``updates`` set."""
    from socmap.config import PipelineConfig
    from socmap.config.dotted import set_dotted

    d = cfg.model_dump(mode="json")
    for key, value in updates.items():
        set_dotted(d, key, value)
    return PipelineConfig.model_validate(d)


def validation_scores(bundle_dir: Path) -> dict[str, float]:
    """RMSE, MAE (g/kg) and RMSE of log(1 + SOC) of the calibrated expectation and median on the validation
    sites of a bundle."""
    from socmap.data.split import SPLIT_CODES
    from socmap.inference import load_bundle
    from socmap.metrics import mae, rmse

    bundle = load_bundle(bundle_dir)
    pred = bundle.predict_nodes(calibrated=True)
    val = np.asarray(bundle.node_split) == SPLIT_CODES["val"]
    y = np.expm1(np.asarray(bundle.node_label_log, np.float64)[val])
    out: dict[str, float] = {}
    for name, est in (("", pred.mean_gkg()[val]), ("median_", np.expm1(np.asarray(pred.mean)[val]))):
        out[f"{name}rmse"] = round(float(rmse(y, est)), 4)
        out[f"{name}mae"] = round(float(mae(y, est)), 4)
        out[f"{name}rmse_log"] = round(float(rmse(np.log1p(y), np.log1p(est))), 4)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "africa-coarse.yaml")
    ap.add_argument("--data", required=True, type=Path, help="a prepared data folder (socmap prepare's output)")
    ap.add_argument("--out", required=True, type=Path, help="where each variant's bundle goes (OUT/VARIANT)")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--members", type=int, default=None, help="ensemble members (default: the pipeline's)")
    ap.add_argument("--seed", type=int, default=None, help="seed of member 0 (default: the pipeline's train.seed)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from socmap.config import load_pipeline
    from socmap.errors import SocmapError

    result: dict[str, Any] = {}
    try:
        cfg = load_pipeline(args.pipeline)
        result["pipeline"] = cfg.name
        for name in args.variants:
            result.update(_variant(name, cfg, args))
    except SocmapError as exc:
        raise SystemExit(f"ablation: error: {exc}") from None
    print(json.dumps(result))
    return result


def _variant(name: str, cfg: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Train variant ``name`` of ``cfg`` into ``args.out / name`` and return its figures."""
    from socmap.train import stage as train

    t0 = time.perf_counter()
    res = train.run(variant_pipeline(cfg, VARIANTS[name]), args.data, args.out / name, members=args.members,
                    seed=args.seed, progress=False)
    scores = validation_scores(args.out / name)
    print(f"{name}: validation RMSE {scores['rmse']:.3f} g/kg, MAE {scores['mae']:.3f}, RMSE log "
          f"{scores['rmse_log']:.4f} (median: {scores['median_rmse']:.3f} / {scores['median_mae']:.3f} / "
          f"{scores['median_rmse_log']:.4f}), epochs {list(res.epochs)}", flush=True)
    return {**{f"{name}_{k}": v for k, v in scores.items()}, f"{name}_epochs": list(res.epochs),
            f"{name}_seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    main()
