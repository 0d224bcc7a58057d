"""``socmap evaluate``: score a model bundle against the baselines on the same split and write the report.

Protocol ``random`` (default, the paper's): the bundle's own transductive predictions of the held-out test nodes
(``Bundle.predict_nodes``; the paper itself calls this an upper bound), XGBoost and the RFSI-like spatial XGBoost
fitted on the same training rows with the same inputs. Optional, because each retrains (``socmap.train``):

- ``ablations``: single-member re-runs under one shared protocol (same seed, schedule and data) of the full
  model and of five variants: spatial-only graph, concat fusion, no imagery stream, no temporal encoder, no
  Moran's I loss (Table 11 plus the two the paper left out), scored on the validation split like Table 11 and on
  the test split.
- ``block``: the spatial block split (inductive; test sites in blocks no training site shares): the data are
  re-split by ``socmap.data.split.block_split`` with the pipeline's ``data.split`` (block_km, fractions, seed),
  the SpTGNN is retrained on that split and compared with both baselines on its test blocks. The covariate
  preprocessing stays the one prepare fitted (on the random split's training rows: feature scaling only, no
  labels reach a test block).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap.config import PipelineConfig
from socmap.errors import DataError
from socmap.evaluate.baselines import run_baselines
from socmap.evaluate.metrics import point_metrics, uncertainty_metrics
from socmap.evaluate.report import baseline_predictions, ratio_rows, score_predictions, write_report
from socmap.io import SAMPLES
from socmap.metrics import rmse

__all__ = ["ABLATIONS", "EvaluationResult", "ablation_config", "run"]

ABLATIONS = ("full", "spatial-only graph", "concat fusion", "no imagery", "no temporal encoder", "no Moran loss")
"""The ablation variants, in report order (``full`` is the controlled re-run of the configuration)."""


@dataclass
class EvaluationResult:
    """What :func:`run` (``socmap evaluate``) wrote and its headline numbers."""

    out: Path
    report: dict[str, Any]
    seconds: float

    def summary(self) -> str:
        p, u = self.report["point"], self.report["uncertainty"]["post"]
        parts = [f"{name} RMSE {m['rmse']['value']:.2f}" for name, m in p.items()]
        return (f"n_test {self.report['n_eval']}: " + ", ".join(parts) + f" g/kg; post-cal ECE "
                f"{u['ece']['value']:.3f}, Cov@95 {u['picp_vp']['value']:.3f} -> {self.out}")


def ablation_config(cfg: PipelineConfig, variant: str) -> PipelineConfig | None:
    """The pipeline of one ablation variant, or None where it does not apply (e.g. no imagery to remove)."""
    c = cfg.model_copy(deep=True)
    if variant == "full":
        return c
    if variant == "spatial-only graph":
        if c.model.graph.relations == ["spatial"]:
            return None
        c.model.graph.relations = ["spatial"]
    elif variant == "concat fusion":
        if c.model.moe.fusion == "concat":
            return None
        c.model.moe.fusion = "concat"
    elif variant == "no imagery":
        if "image" not in c.model.streams:
            return None
        c.model.streams = [s for s in c.model.streams if s != "image"]
    elif variant == "no temporal encoder":
        if "time" not in c.model.streams:
            return None
        c.model.streams = [s for s in c.model.streams if s != "time"]
    elif variant == "no Moran loss":
        if c.train.aux_weight == 0:
            return None
        c.train.aux_weight = 0.0
    else:
        raise ValueError(f"unknown ablation {variant!r}; one of {ABLATIONS}")
    return c


def _load_samples(data_dir: Path) -> pd.DataFrame:
    path = Path(data_dir) / SAMPLES
    if not path.exists():
        raise DataError(f"{path} not found; run `socmap prepare` first")
    df = pd.read_parquet(path)
    for col in ("soc_gkg", "split", "lon", "lat", "year"):
        if col not in df.columns:
            raise DataError(f"{path} lacks the column {col!r}; run `socmap prepare` again")
    return df


def _shadow_data(data_dir: Path, samples: pd.DataFrame, tmp: Path) -> Path:
    """A data folder in ``tmp`` whose samples.parquet is ``samples``; every other entry links to ``data_dir``."""
    dst = tmp / "data"
    dst.mkdir(parents=True)
    for p in Path(data_dir).iterdir():
        if p.name != SAMPLES and not p.name.startswith("."):
            (dst / p.name).symlink_to(p.resolve())
    samples.to_parquet(dst / SAMPLES, index=False)
    return dst


def _train_and_predict(data_dir: Path, cfg: PipelineConfig, out: Path, *, members: int, seed: int,
                       device: str) -> tuple[Any, Any]:
    """Train a bundle into ``out``; its calibrated prediction of every node and its calibration."""
    from socmap.train import load_bundle, stage

    stage.run(cfg, data_dir, out, members=members, device=device, seed=seed, progress=False)
    bundle = load_bundle(out, cfg, load_members=False)
    return bundle.predict_nodes(calibrated=True), bundle.calibration


def _run_ablations(data_dir: Path, cfg: PipelineConfig, samples: pd.DataFrame, tmp: Path, *, seed: int,
                   device: str, n_boot: int) -> dict[str, Any]:
    y = samples["soc_gkg"].to_numpy(float)
    split = samples["split"].to_numpy()
    rows_val: dict[str, Any] = {}
    rows_test: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for variant in ABLATIONS:
        vcfg = ablation_config(cfg, variant)
        if vcfg is None:
            skipped[variant] = "the component is already off in this pipeline"
            continue
        pred, _ = _train_and_predict(data_dir, vcfg, tmp / f"ablation-{len(rows_val)}", members=1, seed=seed,
                                     device=device)
        soc = np.expm1(np.asarray(pred.mean))
        rows_val[variant] = point_metrics(y[split == "val"], soc[split == "val"], n_boot=n_boot, seed=seed)
        rows_test[variant] = point_metrics(y[split == "test"], soc[split == "test"], n_boot=n_boot, seed=seed)
    note = ("Single-member re-runs (same seed, schedule and data) scored on the validation split like the paper's "
            "Table 11; the test split: `point_test` in report.json.")
    if skipped:
        note += " Not applicable here: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + "."
    return {"note": note, "point": rows_val, "point_test": rows_test, "skipped": skipped}


def _run_block(data_dir: Path, cfg: PipelineConfig, samples: pd.DataFrame, feature_columns: list[str], tmp: Path,
               *, members: int, seed: int, device: str, n_boot: int, folds: int = 1) -> dict[str, Any]:
    """The block protocol: retrain on whole held-out ``block_km`` blocks and score the held-out blocks. One split
    (``folds`` 1: ``data.split.fractions`` of the samples in test blocks) or spatial K-fold cross-validation
    (``folds`` >= 2: every block tested once, one retrain per fold, the folds' test predictions pooled)."""
    from socmap.data.split import block_folds, block_split

    sp = cfg.data.split
    lon, lat = samples["lon"].to_numpy(), samples["lat"].to_numpy()
    parts = [block_split(lon, lat, sp)] if folds <= 1 else block_folds(lon, lat, sp, folds)
    y_all = samples["soc_gkg"].to_numpy(float)
    tested = np.zeros(len(samples), bool)
    pooled: dict[str, np.ndarray] = {}
    mu, alea, epi = (np.full(len(samples), np.nan) for _ in range(3))
    dof = np.full(len(samples), np.inf)  # each site's predictive tails, from the fold that tested it (inf: Gaussian)
    per_fold: list[dict[str, Any]] = []
    temperatures: list[float] = []
    powers: list[float] = []  # each split's fitted distance power of T
    caps: list[float | None] = []  # each split's fitted mean_var_cap
    tails: list[float | None] = []  # each split's fitted tail_dof
    val_y: list[np.ndarray] = []  # each split's validation blocks, and the SpTGNN's predictions there
    val_pred: dict[str, list[np.ndarray]] = {"SpTGNN": [], "SpTGNN (median)": []}
    for f, part in enumerate(parts):
        blk = samples.copy()
        blk["split"] = part
        ftmp = tmp / f"block-{f}"
        data = _shadow_data(data_dir, blk, ftmp)
        pred, calib = _train_and_predict(data, cfg, ftmp / "model", members=members, seed=seed + f, device=device)
        temperatures.append(round(float(calib.temperature), 4))
        powers.append(calib.distance_power)
        caps.append(calib.mean_var_cap)
        tails.append(calib.tail_dof)
        test = part == "test"
        tested |= test
        val = part == "val"
        expect, median = pred.mean_gkg(), np.expm1(np.asarray(pred.mean))
        val_y.append(y_all[val])
        val_pred["SpTGNN"].append(expect[val])
        val_pred["SpTGNN (median)"].append(median[val])
        preds = {"SpTGNN": expect[test], "SpTGNN (median)": median[test]}
        mu[test] = np.asarray(pred.mean)[test]
        alea[test] = np.asarray(pred.aleatoric_var)[test]
        epi[test] = np.asarray(pred.epistemic_var)[test]
        dof[test] = np.inf if calib.tail_dof is None else calib.tail_dof
        preds.update(baseline_predictions(run_baselines(blk, feature_columns, eval_mask=test, seed=seed)))
        for name, v in preds.items():
            pooled.setdefault(name, np.full(len(samples), np.nan))[test] = v
        y = y_all[test]
        per_fold.append({"n": int(test.sum()), **{name: float(rmse(y, v)) for name, v in preds.items()}})
        shutil.rmtree(ftmp, ignore_errors=True)
    y = y_all[tested]
    pred_t = {name: v[tested] for name, v in pooled.items()}
    rows = {name: point_metrics(y, v, n_boot=n_boot, seed=seed) for name, v in pred_t.items()}
    unc = uncertainty_metrics(np.log1p(y), mu[tested], alea[tested], epi[tested], n_boot=n_boot, seed=seed,
                              dof=dof[tested])
    out: dict[str, Any] = {"point": rows, "rmse_ratio": ratio_rows(y, pred_t, n_boot=n_boot, seed=seed),
                           "uncertainty_post": unc, "folds_k": max(1, folds),
                           "temperatures": temperatures, "distance_powers": powers, "mean_var_caps": caps,
                           "tail_dofs": tails,
                           # what a configuration may be chosen on (the test blocks are scored once per config)
                           "val_rmse": {k: float(rmse(np.concatenate(val_y), np.concatenate(v)))
                                        for k, v in val_pred.items()}}
    how = (f"SpTGNN retrained with {members} member(s), the held-out nodes attached to the training nodes as map "
           "cells are; its uncertainty calibrated on each split's own validation blocks.")
    if folds <= 1:
        out["counts"] = {str(k): int(v) for k, v in pd.Series(parts[0]).value_counts().items()}
        out["note"] = f"Whole {sp.block_km:g} km blocks held out (split sizes {out['counts']}). " + how
    else:
        out["folds"] = per_fold
        out["note"] = (f"Spatial {folds}-fold cross-validation over whole {sp.block_km:g} km blocks: every site is "
                       f"tested once, by the fold that held its block out ({len(y)} sites pooled). " + how)
    return out


def run(cfg: PipelineConfig, data_dir: Path, model: Path, out: Path, *, protocol: str = "random",
        ablations: bool = False, n_boot: int = 1000, seed: int = 0, baselines: bool = True,
        device: str = "cpu", block_members: int | None = None, block_folds: int = 1,
        progress: bool = True) -> EvaluationResult:
    """Score the bundle at ``model`` on ``data_dir``'s test split against the baselines; write the report to ``out``.

    Args:
        cfg: the pipeline (checked against the bundle's covariates by ``load_bundle``).
        data_dir: the data folder the bundle was trained on (samples.parquet in the same row order).
        model: the bundle folder ``socmap train`` wrote.
        out: report folder (report.md, report.json, figures; replaced atomically).
        protocol: ``random`` (the data's own split) or ``block`` (adds a retrained spatial block split section).
        ablations: retrain the ablation variants (single members; slow).
        n_boot: bootstrap resamples for the 95 % intervals (0: none).
        seed: seed of the bootstrap, the baselines and any retraining.
        baselines: fit XGBoost and the RFSI-like baseline (off only to save time in a quick check).
        device: torch device for retraining (ablations, block protocol).
        block_members: ensemble members for the block-split retrain (default: the bundle's member count).
        block_folds: 1: one block split (``data.split.fractions`` held out); K >= 2: spatial K-fold
            cross-validation, every block tested once (K retrains; one split's few dozen test blocks make a noisy
            RMSE).
    """
    if protocol not in ("random", "block"):
        raise DataError(f"unknown protocol {protocol!r}: random or block")
    if block_folds < 1:
        raise DataError(f"block_folds must be >= 1, got {block_folds}")
    t0 = time.perf_counter()
    samples = _load_samples(data_dir)
    from socmap.train import load_bundle

    bundle = load_bundle(Path(model), cfg, load_members=False)  # scores stored node outputs: no weights
    bundle.check_samples(samples, Path(data_dir) / SAMPLES)
    raw = bundle.predict_nodes(calibrated=False)
    test = (samples["split"] == "test").to_numpy()
    base = run_baselines(samples, bundle.feature_columns, eval_mask=test, seed=seed) if baselines else None
    report, fig = score_predictions(samples, raw, bundle.calibration, baselines=base, n_boot=n_boot, seed=seed,
                                    dist_km=bundle.site_distance_km(bundle.node_lonlat))
    report["meta"] = {"pipeline": cfg.name, "bundle": str(Path(model).resolve()),
                      "data": str(Path(data_dir).resolve()), "protocol": protocol, "seed": seed, "n_boot": n_boot,
                      "feature_columns": list(bundle.feature_columns)}
    not_run: dict[str, str] = {}
    if not baselines:
        not_run["baselines"] = "skipped (baselines=False)"
    if ablations or protocol == "block":
        with tempfile.TemporaryDirectory(prefix="socmap-evaluate-") as td:
            if ablations:
                report["ablations"] = _run_ablations(Path(data_dir), bundle.pipeline, samples, Path(td), seed=seed,
                                                     device=device, n_boot=n_boot)
            if protocol == "block":
                members = block_members or bundle.n_members
                report["block"] = _run_block(Path(data_dir), bundle.pipeline, samples, list(bundle.feature_columns),
                                             Path(td), members=members, seed=seed, device=device, n_boot=n_boot,
                                             folds=block_folds)
            shutil.rmtree(td, ignore_errors=True)
    if not ablations:
        not_run["ablations"] = "off (run `socmap evaluate --ablations`; retrains one member per variant)"
    if protocol != "block":
        not_run["block split"] = "off (run `socmap evaluate --protocol block`; retrains the ensemble)"
    report["not_run"] = not_run
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_report(report, Path(out), fig)
    return EvaluationResult(out=Path(out), report=report, seconds=time.perf_counter() - t0)
