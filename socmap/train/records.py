"""What ``socmap train`` records in the bundle beside the weights: bundle.json, the model card, the training
graph's tensors and the image encoder's weights (:mod:`socmap.inference.format`)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from socmap.config import PipelineConfig
from socmap.errors import ModelError
from socmap.graph import HeteroGraph
from socmap.inference.calibration import Calibration
from socmap.inference.card import ModelCard
from socmap.inference.format import BundleInfo
from socmap.inference.scaler import TargetScaler
from socmap.train.inputs import TrainingData
from socmap.train.trainer import MemberResult

__all__ = ["bundle_info", "encoder_source", "graph_tensors", "model_card"]

ENCODER_KEYS = ("backbone", "modalities", "merge", "dim", "patch_size", "checkpoint", "pretrained", "seed")
"""The embeddings store's attributes bundle.json keeps as the encoder's settings."""


def software_versions() -> dict[str, str]:
    """Python's and the key packages' versions (``n/a`` where one is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("socmap", "torch", "numpy", "pandas", "scikit-learn", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "n/a"
    return out


def encoder_source(cfg: PipelineConfig, data: TrainingData, data_dir: Path) -> Path | None:
    """The image encoder weights the embeddings were made with (the bundle carries a copy), None without the
    image stream or without a weights file; ModelError when the store names a file that is gone."""
    if "image" not in cfg.model.streams or data.embeddings_attrs is None:
        return None
    ck = data.embeddings_attrs.get("checkpoint")
    if not ck:
        return None
    src = Path(ck) if Path(ck).is_absolute() else data_dir / ck
    if not src.is_file():
        raise ModelError(f"embeddings.zarr says its encoder weights are {ck}, which does not exist; run "
                         "`socmap embed` again so the bundle can carry them")
    return src


def bundle_info(cfg: PipelineConfig, data: TrainingData, graph: HeteroGraph, results: list[MemberResult],
                calibration: Calibration, cov_sources: dict[str, str], encoder_src: Path | None,
                created: str, applicability: dict[str, Any] | None = None) -> BundleInfo:
    """bundle.json of the ensemble ``results`` trained on ``data`` over ``graph``; ``applicability`` from
    :func:`socmap.train.importance.training_applicability`."""
    train = data.mask("train")
    train_years = data.year[train]
    tab_range = (np.stack([data.tabular[train].min(0), data.tabular[train].max(0)], axis=1)
                 if data.tabular is not None else np.zeros((0, 2)))
    attrs = data.embeddings_attrs
    return BundleInfo(
        created=created, members=len(results), seeds=[r.seed for r in results], calibration=calibration,
        feature_columns=data.feature_columns, tabular_dim=0 if data.tabular is None else data.tabular.shape[1],
        image_dim=0 if data.image is None else data.image.shape[1], relations=list(graph.relations),
        num_nodes=len(data), mode=results[0].mode, label_input=cfg.model.label_input,
        train_year_range=[float(train_years.min()), float(train_years.max())], tabular_range=tab_range.tolist(),
        node_covariates=cov_sources, node_covariate_fill=data.fill_values,
        encoder_checkpoint=None if encoder_src is None else str(encoder_src),
        encoder=None if attrs is None else {k: attrs.get(k) for k in ENCODER_KEYS},
        sample_id=data.sample_id.tolist(), applicability=applicability,
    )


def model_card(cfg: PipelineConfig, data_dir: Path, data: TrainingData, graph: HeteroGraph, scaler: TargetScaler,
               info: BundleInfo, results: list[MemberResult], validation: dict[str, float], baseline: float,
               seconds: float, device: str) -> ModelCard:
    """The model card of the ensemble ``results``: ``validation`` its calibrated validation figures, ``baseline``
    the train-mean RMSE (g/kg), ``seconds`` the training time."""
    return ModelCard(
        pipeline=cfg.name, created=info.created, training_seconds=seconds, device=device, mode=info.mode,
        data={"dir": str(data_dir.resolve()), "nodes": len(data),
              "split": {k: int(data.mask(k).sum()) for k in ("train", "val", "test")},
              "edges": int(graph.edge_index.shape[1])},
        target={"transform": "log1p, standardised", **scaler.to_dict()},
        inputs={"streams": list(cfg.model.streams), "feature_columns": data.feature_columns,
                "relations": list(graph.relations), "node_covariates": info.node_covariates,
                "label_input": cfg.model.label_input},
        members=info.members, seeds=info.seeds, epochs=[len(r.history) for r in results],
        best_epochs=[r.best_epoch for r in results], member_val=[r.best_val for r in results],
        member_seconds=[r.seconds for r in results], loss=cfg.train.loss, calibration=info.calibration,
        validation=validation, baseline_val_rmse=baseline, software=software_versions(),
        train_config=cfg.train.model_dump(mode="json"), stopped_by=[r.stopped_by for r in results],
    )


def graph_tensors(data: TrainingData, graph: HeteroGraph, scaler: TargetScaler) -> dict[str, torch.Tensor]:
    """graph.safetensors: the training graph's edges and every node's inputs, labels and split code."""
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
        assert data.image_ok is not None
        t["image_ok"] = torch.from_numpy(data.image_ok.astype(np.bool_))
    if data.ndvi is not None:
        t["ndvi"] = torch.from_numpy(data.ndvi.astype(np.float64))
    if data.elevation is not None:
        t["elevation"] = torch.from_numpy(data.elevation.astype(np.float64))
    return t
