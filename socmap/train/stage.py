"""``socmap train``: the transductive graph, M members one after another, eq. (6) + (7), and the bundle."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from socmap.config import PipelineConfig
from socmap.data.split import block_ids
from socmap.errors import ModelError
from socmap.graph import HeteroGraph, build_graph, spatial_local_morans_i
from socmap.metrics import rmse
from socmap.model import cache_layers
from socmap.train.bundle import write_bundle
from socmap.train.calibration import fit_calibration, validation_metrics
from socmap.train.inputs import TargetScaler, TrainingData, load_training_data
from socmap.train.trainer import GraphContext, MaskedGraph, evaluate_nodes, resolve_device, train_member

__all__ = ["TrainResult", "run", "training_context"]


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

    def summary(self) -> str:
        v = self.val
        return (f"{self.members} member(s), {self.mode} graph on {self.device}, {self.seconds:.0f} s: val RMSE "
                f"{v['rmse']:.2f} g/kg (train-mean baseline {self.baseline_val_rmse:.2f}), R2 {v['r2']:.3f}, "
                f"MAPE {v['mape']:.1f} %, T {self.temperature:.2f}, PICP95 {v['picp95']:.2f} -> {self.path}")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("socmap", "torch", "numpy", "pandas", "scikit-learn", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "n/a"
    return out


def _tails(dof: float | None) -> str:
    return "Gaussian" if dof is None else f"Student t, {dof:.2f} degrees of freedom (fitted on validation)"


def card_markdown(card: dict) -> str:
    """MODEL_CARD.md from the model card's JSON (``socmap calibrate`` rewrites both)."""
    v = card["validation"]
    lines = [
        f"# Model card: {card['pipeline']} SpTGNN ensemble", "",
        f"- Trained: {card['created']} in {card['training_seconds']:.0f} s on {card['device']} "
        f"({card['mode']} graph training)",
        f"- Data: {card['data']['dir']} ({card['data']['nodes']} sites; train / val / test "
        f"{card['data']['split']['train']} / {card['data']['split']['val']} / {card['data']['split']['test']})",
        f"- Target: log(1 + SOC g/kg), standardised (training mean {card['target']['mean']:.4f}, "
        f"sd {card['target']['sd']:.4f})",
        f"- Inputs: streams {card['inputs']['streams']}, {len(card['inputs']['feature_columns'])} tabular features, "
        f"relations {card['inputs']['relations']}, label input {card['inputs']['label_input']}",
        f"- Ensemble: {card['members']} members, seeds {card['seeds']}, epochs run {card['epochs']}, "
        f"best epochs {card['best_epochs']}",
        f"- Loss: {card['loss']}; temperature T = {card['temperature']:.4f} (fitted on validation, eq. 7); "
        f"predictive tails: {_tails(card.get('tail_dof'))}", "",
        "## Validation (g/kg)", "",
        "| metric | ensemble | train-mean baseline |", "|---|---|---|",
        f"| RMSE | {v['rmse']:.3f} | {card['baseline_val_rmse']:.3f} |",
        f"| MAE | {v['mae']:.3f} | |", f"| R2 | {v['r2']:.4f} | |", f"| MAPE (%) | {v['mape']:.2f} | |",
        f"| NLL (log(1+SOC), calibrated) | {v['nll']:.4f} | |", f"| PICP 95 % | {v['picp95']:.3f} | |", "",
        "## Software", "", *[f"- {k} {val}" for k, val in card["software"].items()], "",
    ]
    return "\n".join(lines)


def training_context(data: TrainingData, cfg: PipelineConfig, dev: torch.device) -> tuple[HeteroGraph, GraphContext]:
    """The sample graph and the tensors every member trains on: target scaler fitted on the training split,
    local Moran's I of the training targets (``socmap tune`` builds it once per worker and data set).

    Validation and test nodes are attached to the training nodes as a map cell is (``build_graph``'s
    ``train_mask``), so the predictions ``evaluate`` scores are the ones ``predict`` makes at those sites."""
    train_mask = data.mask("train")
    scaler = TargetScaler.fit(data.y_log[train_mask])
    graph = build_graph(data.lonlat, cfg.model.graph, ndvi=data.ndvi, elevation=data.elevation,
                        train_mask=train_mask)
    moran = spatial_local_morans_i(graph, scaler.transform(data.y_log), train_mask)
    ctx = GraphContext.build(data, graph, moran, scaler, cfg.model.label_input, dev)
    if cfg.train.mask_block_km is not None:
        ctx.masked = block_masked_graphs(data, cfg, train_mask, dev)
    return graph, ctx


def block_masked_graphs(data: TrainingData, cfg: PipelineConfig, train_mask: np.ndarray,
                        dev: torch.device) -> list[MaskedGraph]:
    """The ``train.mask_variants`` block-masked graphs of ``train.mask_block_km`` (see ``TrainConfig``).

    Each variant moves the block grid by a random offset, draws ``mask_block_fraction`` of the blocks that hold
    training nodes, and builds the graph with those nodes held out as ``build_graph`` holds out validation nodes
    (attached to the remaining training nodes as a map cell is). The draws follow ``train.seed``, so every member
    sees the same layouts.
    """
    tc = cfg.train
    assert tc.mask_block_km is not None
    rng = np.random.default_rng(tc.seed)
    tr = np.flatnonzero(train_mask)
    out = []
    for _ in range(tc.mask_variants):
        offset = rng.uniform(0.0, tc.mask_block_km, 2)
        ids = block_ids(data.lonlat[tr, 0], data.lonlat[tr, 1], tc.mask_block_km, (offset[0], offset[1]))
        blocks = np.unique(ids)
        n_held = min(len(blocks) - 1, max(1, round(tc.mask_block_fraction * len(blocks))))
        if n_held < 1:
            raise ModelError(f"train.mask_block_km {tc.mask_block_km:g}: the training nodes fill one block; "
                             "choose smaller blocks")
        held = tr[np.isin(ids, rng.choice(blocks, n_held, replace=False))]
        keep = train_mask.copy()
        keep[held] = False
        g = build_graph(data.lonlat, cfg.model.graph, ndvi=data.ndvi, elevation=data.elevation, train_mask=keep)
        out.append(MaskedGraph(g.to(dev), torch.as_tensor(held, device=dev), (float(offset[0]), float(offset[1]))))
    return out


def run(cfg: PipelineConfig, data_dir: Path, out: Path, *, members: int | None = None, device: str = "auto",
        seed: int | None = None, progress: bool = True, epochs: int | None = None) -> TrainResult:
    """Train the SpTGNN deep ensemble on ``data_dir`` and write the bundle ``out``.

    Args:
        cfg: the pipeline; its ``train`` block is the optimisation.
        data_dir: folder from ``socmap prepare`` (+ ``embed`` when the image stream is on).
        out: bundle folder to write (replaced atomically).
        members: ensemble size (default ``train.ensemble_members``).
        device: ``auto``, ``cpu`` or ``cuda`` (default ``auto``; ``train.device`` when ``auto`` is given and the
            pipeline names one).
        seed: seed of member 0 (default ``train.seed``); member m uses seed + m.
        progress: a tqdm bar per member.
        epochs: override ``train.epochs`` (tests, benchmarks).
    """
    t0 = time.perf_counter()
    data_dir = Path(data_dir)
    tc = cfg.train
    n_members = members if members is not None else tc.ensemble_members
    if n_members < 1:
        raise ModelError(f"--members must be >= 1, got {n_members}")
    seed0 = tc.seed if seed is None else seed
    dev = resolve_device(tc.device if device == "auto" else device)
    data, _pre, cov_sources = load_training_data(data_dir, cfg)
    train_mask = data.mask("train")
    graph, ctx = training_context(data, cfg, dev)
    scaler = ctx.scaler
    tab_dim = 0 if data.tabular is None else data.tabular.shape[1]
    img_dim = 0 if data.image is None else data.image.shape[1]
    train_years = data.year[train_mask]
    results, mems = [], []
    for m in range(n_members):
        res = train_member(ctx, cfg, tab_dim, img_dim, seed0 + m, train_years=train_years, progress=progress,
                           desc=f"member {m + 1}/{n_members}", epochs=epochs)
        soc, logvar = evaluate_nodes(res.model, ctx)
        cache = cache_layers(res.model, replace(ctx.inputs, label=ctx.visible_labels()), ctx.graph,
                             ndvi=data.ndvi, elevation=data.elevation)
        mems.append({"state": res.model.state_dict(), "cache": cache,
                     "mean": scaler.inverse(soc.double().cpu().numpy()),
                     "logvar": logvar.double().cpu().numpy() + 2.0 * np.log(scaler.sd),
                     "history": res.history})
        results.append(res)
    member_mean = np.stack([m["mean"] for m in mems])
    member_var = np.exp(np.stack([m["logvar"] for m in mems]))
    val = data.mask("val")
    calib, cal = fit_calibration(member_mean, member_var, data.soc_gkg, data.lonlat, train_mask, val, seed=seed0)
    temperature = calib.temperature
    metrics = validation_metrics(cal, data.soc_gkg[val])
    baseline = float(rmse(data.soc_gkg[val], np.full_like(data.soc_gkg[val], data.soc_gkg[train_mask].mean())))
    seconds = time.perf_counter() - t0

    split_counts = {k: int(data.mask(k).sum()) for k in ("train", "val", "test")}
    tab_range = (np.stack([data.tabular[train_mask].min(0), data.tabular[train_mask].max(0)], axis=1)
                 if data.tabular is not None else np.zeros((0, 2)))
    enc_src = None
    if "image" in cfg.model.streams and data.embeddings_attrs is not None:
        ck = data.embeddings_attrs.get("checkpoint")
        if ck:
            enc_src = Path(ck) if Path(ck).is_absolute() else data_dir / ck
            if not enc_src.is_file():
                raise ModelError(f"embeddings.zarr says its encoder weights are {ck}, which does not exist; run "
                                 "`socmap embed` again so the bundle can carry them")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    info = {
        "created": created, "members": n_members, "seeds": [r.seed for r in results], **calib.to_info(),
        "feature_columns": data.feature_columns, "tabular_dim": tab_dim, "image_dim": img_dim,
        "relations": list(graph.relations), "num_nodes": len(data), "mode": results[0].mode,
        "label_input": cfg.model.label_input, "train_year_range": [float(train_years.min()),
                                                                    float(train_years.max())],
        "tabular_range": tab_range.tolist(), "node_covariates": cov_sources,
        "node_covariate_fill": data.fill_values,
        "encoder_checkpoint": None if enc_src is None else str(enc_src),
        "encoder": None if data.embeddings_attrs is None else {
            k: data.embeddings_attrs.get(k) for k in ("backbone", "modalities", "merge", "dim", "patch_size",
                                                     "checkpoint", "pretrained", "seed")},
        "sample_id": data.sample_id.tolist(),
    }
    card = {
        "pipeline": cfg.name, "created": created, "training_seconds": seconds, "device": str(dev),
        "mode": results[0].mode,
        "data": {"dir": str(data_dir.resolve()), "nodes": len(data), "split": split_counts,
                 "edges": int(graph.edge_index.shape[1])},
        "target": {"transform": "log1p, standardised", **scaler.to_dict()},
        "inputs": {"streams": list(cfg.model.streams), "feature_columns": data.feature_columns,
                   "relations": list(graph.relations), "node_covariates": cov_sources,
                   "label_input": cfg.model.label_input},
        "members": n_members, "seeds": info["seeds"], "epochs": [len(r.history) for r in results],
        "best_epochs": [r.best_epoch for r in results], "member_val": [r.best_val for r in results],
        "member_seconds": [r.seconds for r in results], "loss": tc.loss, **calib.to_info(),
        "validation": metrics, "baseline_val_rmse": baseline, "software": _versions(),
        "train_config": tc.model_dump(mode="json"),
    }
    graph_tensors = _graph_tensors(data, graph, scaler)
    write_bundle(Path(out), cfg=cfg, info=info, scaler=scaler, data_dir=data_dir, graph_tensors=graph_tensors,
                 members=mems, card=card, card_md=card_markdown(card), encoder_src=enc_src)
    return TrainResult(path=Path(out), members=n_members, temperature=temperature, val=metrics,
                       baseline_val_rmse=baseline, seconds=time.perf_counter() - t0,
                       epochs=[len(r.history) for r in results], mode=results[0].mode, device=str(dev))


def _graph_tensors(data, graph, scaler: TargetScaler) -> dict[str, torch.Tensor]:
    train = data.mask("train")
    t: dict[str, torch.Tensor] = {
        "edge_index": graph.edge_index.cpu(), "edge_type": graph.edge_type.cpu(),
        "edge_weight": graph.edge_weight.cpu(),
        "lonlat": torch.from_numpy(np.ascontiguousarray(data.lonlat, np.float64)),
        "year": torch.from_numpy(np.ascontiguousarray(data.year, np.float64)),
        "label_log": torch.from_numpy(data.y_log.astype(np.float64)),
        "label_z": torch.from_numpy(np.where(train, scaler.transform(data.y_log), np.nan).astype(np.float32)),
        "split": torch.from_numpy(data.split.astype(np.int8)),
    }
    if graph.node_k is not None:
        t["node_k"] = torch.from_numpy(np.asarray(graph.node_k, np.int64))
    if data.tabular is not None:
        t["tabular"] = torch.from_numpy(data.tabular)
    if data.image is not None:
        t["image"] = torch.from_numpy(data.image)
        t["image_ok"] = torch.from_numpy(data.image_ok.astype(np.bool_))
    if data.ndvi is not None:
        t["ndvi"] = torch.from_numpy(data.ndvi.astype(np.float64))
    if data.elevation is not None:
        t["elevation"] = torch.from_numpy(data.elevation.astype(np.float64))
    return t
