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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap.config import PipelineConfig
from socmap.errors import DataError
from socmap.evaluate.baselines import run_baselines
from socmap.evaluate.bootstrap import N_BOOT, point_metrics, uncertainty_metrics
from socmap.evaluate.report import baseline_predictions, ratio_rows, score_predictions, write_report
from socmap.evaluate.skill import SkillRows, skill_report, sptgnn_skill_rows
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
    from socmap.inference import load_bundle
    from socmap.train import stage

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


@dataclass
class _BlockPool:
    """The block protocol's results, pooled over its splits: each site's prediction from the split that tested
    it, each split's calibration and its validation predictions."""

    n: int
    """Sites (rows of samples.parquet)."""
    tested: np.ndarray = field(init=False)
    pooled: dict[str, np.ndarray] = field(default_factory=dict)
    """Method -> its prediction (g/kg) of each tested site, NaN elsewhere."""
    mu: np.ndarray = field(init=False)
    alea: np.ndarray = field(init=False)
    epi: np.ndarray = field(init=False)
    dof: np.ndarray = field(init=False)
    """Each site's predictive tails, from the split that tested it (inf: Gaussian)."""
    per_fold: list[dict[str, Any]] = field(default_factory=list)
    temperatures: list[float] = field(default_factory=list)
    powers: list[float] = field(default_factory=list)
    """Each split's fitted distance power of T."""
    caps: list[float | None] = field(default_factory=list)
    """Each split's fitted mean_var_cap."""
    tails: list[float | None] = field(default_factory=list)
    """Each split's fitted tail_dof."""
    val_y: list[np.ndarray] = field(default_factory=list)
    """Each split's validation blocks' observed SOC (g/kg)..."""
    val_pred: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {"SpTGNN": [], "SpTGNN (median)": []})
    """... and the SpTGNN's predictions there."""

    def __post_init__(self) -> None:
        self.tested = np.zeros(self.n, bool)
        self.mu, self.alea, self.epi = (np.full(self.n, np.nan) for _ in range(3))
        self.dof = np.full(self.n, np.inf)

    def add_split(self, part: np.ndarray, y_all: np.ndarray, pred: Any, calib: Any,
                  baselines: dict[str, np.ndarray]) -> None:
        """One split's SpTGNN prediction ``pred`` of every node with its calibration ``calib``, and the baselines'
        predictions of its test sites."""
        self.temperatures.append(round(float(calib.temperature), 4))
        self.powers.append(calib.distance_power)
        self.caps.append(calib.mean_var_cap)
        self.tails.append(calib.tail_dof)
        test, val = part == "test", part == "val"
        self.tested |= test
        expect, median = pred.mean_gkg(), np.expm1(np.asarray(pred.mean))
        self.val_y.append(y_all[val])
        self.val_pred["SpTGNN"].append(expect[val])
        self.val_pred["SpTGNN (median)"].append(median[val])
        preds = {"SpTGNN": expect[test], "SpTGNN (median)": median[test], **baselines}
        self.mu[test] = np.asarray(pred.mean)[test]
        self.alea[test] = np.asarray(pred.aleatoric_var)[test]
        self.epi[test] = np.asarray(pred.epistemic_var)[test]
        self.dof[test] = np.inf if calib.tail_dof is None else calib.tail_dof
        for name, v in preds.items():
            self.pooled.setdefault(name, np.full(self.n, np.nan))[test] = v
        y = y_all[test]
        self.per_fold.append({"n": int(test.sum()), **{name: float(rmse(y, v)) for name, v in preds.items()}})

    def scores(self, y_all: np.ndarray, *, folds_k: int, n_boot: int, seed: int) -> dict[str, Any]:
        """Point and uncertainty metrics of the tested sites, pooled, and what each split's calibration fitted."""
        y = y_all[self.tested]
        pred_t = {name: v[self.tested] for name, v in self.pooled.items()}
        rows = {name: point_metrics(y, v, n_boot=n_boot, seed=seed) for name, v in pred_t.items()}
        t = self.tested
        unc = uncertainty_metrics(np.log1p(y), self.mu[t], self.alea[t], self.epi[t], n_boot=n_boot, seed=seed,
                                  dof=self.dof[t])
        return {"point": rows, "rmse_ratio": ratio_rows(y, pred_t, n_boot=n_boot, seed=seed),
                "uncertainty_post": unc, "folds_k": folds_k, "temperatures": self.temperatures,
                "distance_powers": self.powers, "mean_var_caps": self.caps, "tail_dofs": self.tails,
                # what a configuration may be chosen on (the test blocks are scored once per config)
                "val_rmse": {k: float(rmse(np.concatenate(self.val_y), np.concatenate(v)))
                             for k, v in self.val_pred.items()}}


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
    pool = _BlockPool(len(samples))
    skill_parts: list[SkillRows] = []
    for f, part in enumerate(parts):
        blk = samples.copy()
        blk["split"] = part
        ftmp = tmp / f"block-{f}"
        data = _shadow_data(data_dir, blk, ftmp)
        pred, calib = _train_and_predict(data, cfg, ftmp / "model", members=members, seed=seed + f, device=device)
        test = part == "test"
        base = baseline_predictions(run_baselines(blk, feature_columns, eval_mask=test, seed=seed))
        pool.add_split(part, y_all, pred, calib, base)
        skill_parts.append(sptgnn_skill_rows(blk, feature_columns, pred, test, base, seed=seed))
        shutil.rmtree(ftmp, ignore_errors=True)
    out = pool.scores(y_all, folds_k=max(1, folds), n_boot=n_boot, seed=seed)
    out["skill"] = skill_report(SkillRows.concat(skill_parts), n_boot=n_boot, seed=seed)
    how = (f"SpTGNN retrained with {members} member(s), the held-out nodes attached to the training nodes as map "
           "cells are; its uncertainty calibrated on each split's own validation blocks.")
    if folds <= 1:
        out["counts"] = {str(k): int(v) for k, v in pd.Series(parts[0]).value_counts().items()}
        out["note"] = f"Whole {sp.block_km:g} km blocks held out (split sizes {out['counts']}). " + how
    else:
        out["folds"] = pool.per_fold
        out["note"] = (f"Spatial {folds}-fold cross-validation over whole {sp.block_km:g} km blocks: every site is "
                       f"tested once, by the fold that held its block out ({int(pool.tested.sum())} sites pooled). "
                       + how)
    return out


def _check_options(protocol: str, block_folds: int) -> None:
    if protocol not in ("random", "block"):
        raise DataError(f"unknown protocol {protocol!r}: random or block")
    if block_folds < 1:
        raise DataError(f"block_folds must be >= 1, got {block_folds}")


def _score_bundle(cfg: PipelineConfig, data_dir: Path, model: Path, samples: pd.DataFrame, *, protocol: str,
                  baselines: bool, n_boot: int, seed: int) -> tuple[dict[str, Any], Any, Any]:
    """The bundle's stored predictions of the test split scored against the baselines: (report, figure data,
    bundle)."""
    from socmap.inference import load_bundle

    bundle = load_bundle(model, cfg, load_members=False)  # scores stored node outputs: no weights
    bundle.check_samples(samples, data_dir / SAMPLES)
    raw = bundle.predict_nodes(calibrated=False)
    test = (samples["split"] == "test").to_numpy()
    base = run_baselines(samples, bundle.feature_columns, eval_mask=test, seed=seed) if baselines else None
    dist = bundle.site_distance_km(bundle.node_lonlat)
    di = bundle.node_di() if bundle.calibration.uses_di else None
    report, fig = score_predictions(samples, raw, bundle.calibration, baselines=base, n_boot=n_boot, seed=seed,
                                    dist_km=dist, di=di)
    if base is not None:  # the probabilistic baselines and every method by every metric
        rows = sptgnn_skill_rows(samples, list(bundle.feature_columns), bundle.calibration.apply(raw, dist, di), test,
                                 fig.predictions_gkg, seed=seed)
        report["skill"] = skill_report(rows, n_boot=n_boot, seed=seed)
    report["meta"] = {"pipeline": cfg.name, "bundle": str(model.resolve()),
                      "data": str(data_dir.resolve()), "protocol": protocol, "seed": seed, "n_boot": n_boot,
                      "feature_columns": list(bundle.feature_columns)}
    return report, fig, bundle


def _retrain_sections(bundle: Any, data_dir: Path, samples: pd.DataFrame, *, ablations: bool, block: bool,
                      block_members: int | None, block_folds: int, seed: int, device: str,
                      n_boot: int) -> dict[str, Any]:
    """The report sections that retrain from the bundle's pipeline: ``ablations`` and ``block`` (where asked)."""
    out: dict[str, Any] = {}
    if not (ablations or block):
        return out
    with tempfile.TemporaryDirectory(prefix="socmap-evaluate-") as td:
        if ablations:
            out["ablations"] = _run_ablations(data_dir, bundle.pipeline, samples, Path(td), seed=seed, device=device,
                                              n_boot=n_boot)
        if block:
            members = block_members or bundle.n_members
            out["block"] = _run_block(data_dir, bundle.pipeline, samples, list(bundle.feature_columns), Path(td),
                                      members=members, seed=seed, device=device, n_boot=n_boot, folds=block_folds)
        shutil.rmtree(td, ignore_errors=True)
    return out


def _not_run(*, baselines: bool, ablations: bool, block: bool) -> dict[str, str]:
    """The report's "Not run" section: each part left out, and how to run it."""
    not_run: dict[str, str] = {}
    if not baselines:
        not_run["baselines"] = "skipped (baselines=False)"
    if not ablations:
        not_run["ablations"] = "off (run `socmap evaluate --ablations`; retrains one member per variant)"
    if not block:
        not_run["block split"] = "off (run `socmap evaluate --protocol block`; retrains the ensemble)"
    return not_run


def run(cfg: PipelineConfig, data_dir: Path, model: Path, out: Path, *, protocol: str = "random",
        ablations: bool = False, n_boot: int = N_BOOT, seed: int = 0, baselines: bool = True,
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
        device: torch device for retraining (ablations, block protocol; :mod:`socmap.device`).
        block_members: ensemble members for the block-split retrain (default: the bundle's member count).
        block_folds: 1: one block split (``data.split.fractions`` held out); K >= 2: spatial K-fold
            cross-validation, every block tested once (K retrains; one split's few dozen test blocks make a noisy
            RMSE).
    """
    _check_options(protocol, block_folds)
    t0 = time.perf_counter()
    data_dir, model, out = Path(data_dir), Path(model), Path(out)
    samples = _load_samples(data_dir)
    report, fig, bundle = _score_bundle(cfg, data_dir, model, samples, protocol=protocol, baselines=baselines,
                                        n_boot=n_boot, seed=seed)
    block = protocol == "block"
    report.update(_retrain_sections(bundle, data_dir, samples, ablations=ablations, block=block,
                                    block_members=block_members, block_folds=block_folds, seed=seed, device=device,
                                    n_boot=n_boot))
    report["not_run"] = _not_run(baselines=baselines, ablations=ablations, block=block)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_report(report, out, fig)
    return EvaluationResult(out=out, report=report, seconds=time.perf_counter() - t0)
