"""Writing a model bundle folder (:mod:`socmap.inference.format`), atomically: every file is written under a
temporary name and the folder renamed into place (:func:`socmap.io.atomic_path`)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from socmap.config import PipelineConfig
from socmap.inference.card import ModelCard, card_markdown
from socmap.inference.format import (
    BUNDLE_JSON,
    CACHE_FILE,
    CARD_JSON,
    CARD_MD,
    ENCODER_FILE,
    GRAPH_FILE,
    LOG_FILE,
    NODES_FILE,
    PIPELINE_YAML,
    RESIDUALS_FILE,
    SCALER_JSON,
    WEIGHTS_FILE,
    BundleInfo,
    member_dir,
    resolved_pipeline_dict,
)
from socmap.inference.growth import BlockResiduals
from socmap.inference.scaler import TargetScaler
from socmap.model import LayerCache, SpTGNN

__all__ = ["BundleMember", "card_json", "info_json", "write_bundle", "write_card"]


@dataclass
class BundleMember:
    """What the bundle keeps of one trained member."""

    model: SpTGNN
    """The member with its best epoch's weights."""
    cache: LayerCache
    """Its per-layer embeddings of every graph node."""
    node_mean: np.ndarray
    """(N,) its transductive mean of every node, log(1+SOC)."""
    node_logvar: np.ndarray
    """(N,) its log-variance of every node, log(1+SOC) units squared, log."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per-epoch training log rows."""


def _write_member(md: Path, member: BundleMember) -> None:
    from safetensors.torch import save_file

    md.mkdir(parents=True)
    state = member.model.state_dict()
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(md / WEIGHTS_FILE))
    save_file({f"hidden_{i}": h.detach().cpu().contiguous() for i, h in enumerate(member.cache.hidden)},
              str(md / CACHE_FILE))
    np.savez(md / NODES_FILE, mean=np.asarray(member.node_mean, np.float64),
             logvar=np.asarray(member.node_logvar, np.float64))
    pd.DataFrame(member.history).to_csv(md / LOG_FILE, index=False)


def write_card(folder: Path, card: ModelCard) -> None:
    """model_card.json and MODEL_CARD.md into ``folder``."""
    (folder / CARD_JSON).write_text(card_json(card))
    (folder / CARD_MD).write_text(card_markdown(card))


def card_json(card: ModelCard) -> str:
    """model_card.json's text."""
    return json.dumps(card.to_dict(), indent=1, default=str) + "\n"


def info_json(info: BundleInfo) -> str:
    """bundle.json's text."""
    return json.dumps(info.to_dict(), indent=1) + "\n"


def write_bundle(out: Path, *, cfg: PipelineConfig, info: BundleInfo, scaler: TargetScaler, data_dir: Path,
                 graph_tensors: dict[str, torch.Tensor], members: list[BundleMember], card: ModelCard,
                 encoder_src: Path | None, residuals: BlockResiduals | None = None) -> Path:
    """Write every bundle file into ``out`` atomically: the ensemble trained with ``cfg`` on ``data_dir`` (whose
    covariate preprocessing it copies), its training graph's tensors, with the image stream the encoder weights
    ``encoder_src``, and the block residuals its variance growth was fitted on."""
    from safetensors.torch import save_file

    from socmap.io import PREPROCESS, PREPROCESS_REFERENCE, atomic_path

    with atomic_path(Path(out)) as tmp:
        tmp.mkdir(parents=True)
        (tmp / BUNDLE_JSON).write_text(info_json(info))
        (tmp / PIPELINE_YAML).write_text(yaml.safe_dump(resolved_pipeline_dict(cfg), sort_keys=False))
        (tmp / SCALER_JSON).write_text(json.dumps(scaler.to_dict(), indent=1) + "\n")
        shutil.copy2(Path(data_dir) / PREPROCESS, tmp / PREPROCESS)
        shutil.copy2(Path(data_dir) / PREPROCESS_REFERENCE, tmp / PREPROCESS_REFERENCE)
        save_file({k: v.contiguous() for k, v in graph_tensors.items()}, str(tmp / GRAPH_FILE))
        for m, member in enumerate(members):
            _write_member(member_dir(tmp, m), member)
        if encoder_src is not None:
            shutil.copy2(encoder_src, tmp / ENCODER_FILE)
        if residuals is not None:
            residuals.to_frame().to_parquet(tmp / RESIDUALS_FILE, index=False)
        write_card(tmp, card)
    return Path(out)
