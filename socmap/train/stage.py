"""``socmap train``: the transductive graph, M members one after another, eq. (6) + (7), and the bundle."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from socmap.config import PipelineConfig
from socmap.errors import ModelError
from socmap.inference.applicability import AreaOfApplicability
from socmap.inference.calibration import Calibration, fit_calibration, validation_metrics
from socmap.inference.growth import BlockResiduals
from socmap.inference.writing import BundleMember, write_bundle
from socmap.metrics import rmse
from socmap.model import cache_layers
from socmap.train.block_residuals import block_residuals
from socmap.train.context import training_context
from socmap.train.importance import member_importance, training_applicability
from socmap.train.inputs import TrainingData, load_training_data
from socmap.train.records import bundle_info, encoder_source, graph_tensors, model_card
from socmap.train.trainer import GraphContext, MemberResult, evaluate_nodes, resolve_device, train_member

__all__ = ["WEAK_R2", "TrainResult", "node_di", "run", "training_context"]

WEAK_R2 = 0.10
"""Validation R2 below which ``socmap train`` warns that the ensemble barely beats the training mean."""


@dataclass
class TrainResult:
    """What :func:`run` (``socmap train``) wrote and how well it did (validation split, g/kg)."""

    path: Path
    members: int
    temperature: float
    val: dict[str, float]
    """Ensemble validation metrics: mape (%), rmse, mae (g/kg), r2, nll (calibrated, log(1+SOC)), picp95."""
    baseline_val_rmse: float
    """RMSE (g/kg) of predicting every validation site with the training sites' mean SOC."""
    seconds: float
    epochs: list[int]
    """Epochs each member ran."""
    mode: str
    device: str
    stopped_by: list[str] = field(default_factory=list)
    """Why each member stopped (:attr:`socmap.train.trainer.MemberResult.stopped_by`)."""

    def summary(self) -> str:
        v = self.val
        return (f"{self.members} member(s), {self.mode} graph on {self.device}, {self.seconds:.0f} s: val RMSE "
                f"{v['rmse']:.2f} g/kg (train-mean baseline {self.baseline_val_rmse:.2f}), R2 {v['r2']:.3f}, "
                f"MAPE {v['mape']:.1f} %, T {self.temperature:.2f}, PICP95 {v['picp95']:.2f} -> {self.path}"
                + "".join(f"; warning: {w}" for w in self.warnings()))

    def warnings(self) -> list[str]:
        """What a user should know before mapping with this bundle: an ensemble that barely beats the training
        mean on validation (R2 below :data:`WEAK_R2`), and members the time budget cut short."""
        out = []
        if self.val["r2"] < WEAK_R2:
            out.append(f"the ensemble barely beats the training mean on validation (R2 {self.val['r2']:.2f}; check "
                       "the covariates; on a CPU, use preset: cpu, the default, and few model and train keys over it)")
        if cut := self.stopped_by.count("time budget"):
            out.append(f"{cut} member(s) stopped at train.max_minutes before early stopping: a busier machine gives "
                       "another model; raise train.max_minutes for a reproducible one")
        return out


def _member_count(cfg: PipelineConfig, members: int | None) -> int:
    n = members if members is not None else cfg.train.ensemble_members
    if n < 1:
        raise ModelError(f"--members must be >= 1, got {n}")
    return n


def train_members(ctx: GraphContext, data: TrainingData, cfg: PipelineConfig, n_members: int, seed0: int, *,
                  progress: bool, epochs: int | None) -> tuple[list[MemberResult], list[BundleMember]]:
    """Train ``n_members`` members one after another (member m from seed ``seed0 + m``); each one's result and
    what the bundle keeps of it: its layer cache and node outputs in log(1+SOC) units."""
    scaler = ctx.scaler
    tab_dim = 0 if data.tabular is None else data.tabular.shape[1]
    img_dim = 0 if data.image is None else data.image.shape[1]
    train_years = data.year[data.mask("train")]
    results, kept = [], []
    for m in range(n_members):
        res = train_member(ctx, cfg, tab_dim, img_dim, seed0 + m, train_years=train_years, progress=progress,
                           desc=f"member {m + 1}/{n_members}", epochs=epochs)
        soc, logvar = evaluate_nodes(res.model, ctx)
        cache = cache_layers(res.model, replace(ctx.inputs, label=ctx.visible_labels()), ctx.graph,
                             ndvi=data.ndvi, elevation=data.elevation)
        kept.append(BundleMember(res.model, cache, scaler.inverse(soc.double().cpu().numpy()),
                                 logvar.double().cpu().numpy() + 2.0 * np.log(scaler.sd), res.history))
        results.append(res)
    return results, kept


@dataclass
class _Fit:
    """The ensemble's calibration and how well the calibrated ensemble does on the validation split (g/kg)."""

    calibration: Calibration
    validation: dict[str, float]
    baseline: float
    """RMSE of the training sites' mean SOC."""


def _calibrate(data: TrainingData, members: list[BundleMember], seed: int, applicability: dict | None,
               residuals: BlockResiduals | None) -> _Fit:
    """Fit the calibration on the held-out sites (validation split, block residuals) and score the calibrated
    ensemble on the validation split."""
    member_mean = np.stack([m.node_mean for m in members])
    member_var = np.exp(np.stack([m.node_logvar for m in members]))
    train, val = data.mask("train"), data.mask("val")
    di, di_scale = node_di(data, applicability)
    calib, cal = fit_calibration(member_mean, member_var, data.soc_gkg, data.lonlat, train, val, seed=seed,
                                 residuals=residuals, di=di, di_scale=di_scale)
    metrics = validation_metrics(cal, data.soc_gkg[val])
    baseline = float(rmse(data.soc_gkg[val], np.full_like(data.soc_gkg[val], data.soc_gkg[train].mean())))
    return _Fit(calib, metrics, baseline)


def node_di(data: TrainingData, applicability: dict | None) -> tuple[np.ndarray | None, float]:
    """Every node's dissimilarity index to the training nodes and the AoA threshold (the growth's DI unit); (None,
    NaN) without an area of applicability."""
    if applicability is None or data.tabular is None:
        return None, float("nan")
    area = AreaOfApplicability.from_info(data.tabular[data.mask("train")], applicability)
    return area.di(data.tabular), float(area.threshold)


def run(cfg: PipelineConfig, data_dir: Path, out: Path, *, members: int | None = None, device: str | None = None,
        seed: int | None = None, progress: bool = True, epochs: int | None = None) -> TrainResult:
    """Train the SpTGNN deep ensemble on ``data_dir`` and write the bundle ``out``.

    Args:
        cfg: the pipeline; its ``train`` block is the optimisation.
        data_dir: folder from ``socmap prepare`` (+ ``embed`` when the image stream is on).
        out: bundle folder to write (replaced atomically).
        members: ensemble size (default ``train.ensemble_members``).
        device: ``auto``, ``cpu`` or ``cuda`` (:mod:`socmap.device`; default ``train.device``).
        seed: seed of member 0 (default ``train.seed``); member m uses seed + m.
        progress: a tqdm bar per member.
        epochs: override ``train.epochs`` (tests, benchmarks).
    """
    t0 = time.perf_counter()
    data_dir = Path(data_dir)
    n_members = _member_count(cfg, members)
    seed0 = cfg.train.seed if seed is None else seed
    dev = resolve_device(cfg.train.device if device is None else device)
    # load
    data, _pre, cov_sources = load_training_data(data_dir, cfg)
    graph, ctx = training_context(data, cfg, dev)
    # compute
    results, kept = train_members(ctx, data, cfg, n_members, seed0, progress=progress, epochs=epochs)
    importance = member_importance(cfg, data, kept[0], ctx.scaler, graph.node_k, seed0)
    applicability = training_applicability(cfg, data, importance)
    residuals = block_residuals(data, cfg, dev, applicability, seed=seed0, progress=progress, epochs=epochs)
    fit = _calibrate(data, kept, seed0, applicability, residuals)
    seconds = time.perf_counter() - t0
    # write
    enc_src = encoder_source(cfg, data, data_dir)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    info = bundle_info(cfg, data, graph, results, fit.calibration, cov_sources, enc_src, created, applicability)
    card = model_card(cfg, data_dir, data, graph, ctx.scaler, info, results, fit.validation, fit.baseline, seconds,
                      str(dev))
    write_bundle(Path(out), cfg=cfg, info=info, scaler=ctx.scaler, data_dir=data_dir,
                 graph_tensors=graph_tensors(data, graph, ctx.scaler), members=kept, card=card, encoder_src=enc_src,
                 residuals=residuals)
    return TrainResult(path=Path(out), members=n_members, temperature=fit.calibration.temperature,
                       val=fit.validation, baseline_val_rmse=fit.baseline, seconds=time.perf_counter() - t0,
                       epochs=[len(r.history) for r in results], mode=results[0].mode, device=str(dev),
                       stopped_by=[r.stopped_by for r in results])
