"""Reading a model bundle folder (:mod:`socmap.inference.format`) into a :class:`~socmap.inference.bundle.Bundle`.

Every way a folder can be unusable (missing, another format, damaged, written before the format recorded what
prediction needs, trained with other covariates than the pipeline in hand) is one :class:`~socmap.errors.ModelError`
line naming the folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml

from socmap.config import PipelineConfig
from socmap.data.split import SPLIT_CODES
from socmap.errors import ModelError
from socmap.graph import HeteroGraph
from socmap.graph.relations import graph_label_edges
from socmap.inference.bundle import Bundle
from socmap.inference.card import ModelCard
from socmap.inference.format import (
    BUNDLE_FORMAT,
    BUNDLE_JSON,
    CARD_JSON,
    ENCODER_FILE,
    GRAPH_FILE,
    NODES_FILE,
    PIPELINE_YAML,
    SCALER_JSON,
    BundleInfo,
    bundle_error,
    covariate_signature,
    member_dir,
)
from socmap.inference.scaler import TargetScaler
from socmap.model import NodeInputs

if TYPE_CHECKING:
    from socmap.data import Preprocessor

__all__ = ["load_bundle", "read_pipeline"]


@dataclass
class _Files:
    """The bundle's files, read and parsed."""

    info: dict[str, Any]
    pipeline: PipelineConfig
    scaler: TargetScaler
    preprocessor: Preprocessor
    graph: dict[str, torch.Tensor]
    """graph.safetensors' tensors."""
    card: ModelCard


def _read_json(path: Path, root: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise bundle_error(root, f"cannot read {path.name} ({exc.__class__.__name__}); train it again") from None


def _read_info(root: Path) -> dict[str, Any]:
    """bundle.json of a folder that exists and is a bundle of this format."""
    if not root.is_dir():
        raise ModelError(f"model bundle {root} not found (a folder written by `socmap train`)")
    if not (root / BUNDLE_JSON).is_file():
        raise bundle_error(root, f"no {BUNDLE_JSON}: not a socmap model bundle, or a damaged one; train it again")
    info = _read_json(root / BUNDLE_JSON, root)
    if info.get("format") != BUNDLE_FORMAT:
        raise bundle_error(root, f"format {info.get('format')!r} is not {BUNDLE_FORMAT!r} (written by another socmap "
                                 "version); train it again with this version")
    return info


def _load_pipeline_yaml(root: Path) -> PipelineConfig:
    """The bundle's pipeline.yaml, parsed with libyaml's safe loader where PyYAML has it (the same document as
    ``yaml.safe_load``, about 7 times faster: some 20 ms of every bundle load for a 9 kB file)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return PipelineConfig.model_validate(yaml.load((root / PIPELINE_YAML).read_text(), Loader=loader))


def read_pipeline(path: Path | str) -> PipelineConfig:
    """The resolved pipeline the bundle at ``path`` was trained with (its pipeline.yaml)."""
    root = Path(path)
    _read_info(root)
    try:
        return _load_pipeline_yaml(root)
    except (OSError, ValueError, TypeError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise bundle_error(root, f"damaged ({exc.__class__.__name__}: {msg}); train it again") from None


def _read_files(root: Path) -> _Files:
    """Every file but the members'; ModelError (one line) on a damaged one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from socmap.data import Preprocessor
    from socmap.errors import DataError

    info = _read_info(root)
    try:
        pipeline = _load_pipeline_yaml(root)
        scaler = TargetScaler.from_dict(_read_json(root / SCALER_JSON, root))
        pre = Preprocessor.load(root)
        gt = load_file(str(root / GRAPH_FILE))
        card = ModelCard.from_dict(_read_json(root / CARD_JSON, root))
    except (OSError, ValueError, KeyError, TypeError, DataError, SafetensorError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise bundle_error(root, f"damaged ({exc.__class__.__name__}: {msg}); train it again") from None
    return _Files(info, pipeline, scaler, pre, gt, card)


def _compare(bundle_cfg: PipelineConfig, cfg: PipelineConfig, root: Path) -> None:
    """ModelError unless ``cfg`` has the covariates, streams and relations the bundle was trained with."""
    a, b = covariate_signature(bundle_cfg), covariate_signature(cfg)
    for key in a:
        if a[key] != b[key]:
            only_b = [x for x in b[key] if x not in a[key]]
            only_a = [x for x in a[key] if x not in b[key]]
            detail = f"pipeline adds {only_b}" if only_b else ""
            detail += ("; " if detail and only_a else "") + (f"pipeline lacks {only_a}" if only_a else "")
            detail = detail or "same names, different order"
            raise bundle_error(root, f"{key} differ from pipeline {cfg.name!r} ({detail}); bundle has {a[key]}, "
                                     f"pipeline has {b[key]}; train again with this pipeline")
    if tuple(bundle_cfg.model.graph.relations) != tuple(cfg.model.graph.relations):
        raise bundle_error(root, f"graph relations differ: bundle {bundle_cfg.model.graph.relations}, pipeline "
                                 f"{cfg.model.graph.relations}")


def _check(files: _Files, cfg: PipelineConfig | None, root: Path) -> BundleInfo:
    """The checked bundle.json: it agrees with ``cfg`` (when given) and with preprocess.json, and records what
    prediction needs."""
    if cfg is not None:
        _compare(files.pipeline, cfg, root)
    raw = files.info
    feature_columns = list(raw["feature_columns"])
    if "tabular" in files.pipeline.model.streams and list(files.preprocessor.feature_names) != feature_columns:
        raise bundle_error(root, f"preprocess.json features {files.preprocessor.feature_names} differ from the "
                                 f"model's {feature_columns}")
    missing = [k for k, present in (("graph node_k", "node_k" in files.graph),
                                    ("node_covariates", "node_covariates" in raw),
                                    ("node_covariate_fill", "node_covariate_fill" in raw)) if not present]
    if missing:
        raise bundle_error(root, f"lacks {', '.join(missing)} (written before train recorded them); train it again")
    try:
        return BundleInfo.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise bundle_error(root, f"damaged {BUNDLE_JSON} ({exc.__class__.__name__}: {exc}); train it again") from None


def _graph(gt: dict[str, torch.Tensor], info: BundleInfo, pipeline: PipelineConfig) -> HeteroGraph:
    """The training graph as ``train`` built it; the label edges (``model.graph.label_k``), a k-NN of the stored
    coordinates, are rebuilt rather than stored."""
    labels = None
    if pipeline.model.graph.label_k is not None:
        train = gt["split"].numpy().astype(np.int8) == SPLIT_CODES["train"]
        labels = graph_label_edges(gt["lonlat"].double().numpy(), pipeline.model.graph.label_k, train)
    return HeteroGraph(gt["edge_index"].long(), gt["edge_type"].long(), gt["edge_weight"].float(), info.num_nodes,
                       tuple(info.relations), node_k=gt["node_k"].long().numpy(), label_edges=labels)


def _node_inputs(gt: dict[str, torch.Tensor], pipeline: PipelineConfig) -> NodeInputs:
    """Every graph node's inputs; labels (the label trick) the standardised training targets, NaN elsewhere."""
    return NodeInputs(lonlat=gt["lonlat"].float(), year=gt["year"].float(), tabular=gt.get("tabular"),
                      image=gt.get("image"), image_ok=gt["image_ok"].bool() if "image_ok" in gt else None,
                      label=gt["label_z"].float() if pipeline.model.label_input else None)


def _member_outputs(root: Path, members: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) each member's stored node mean and variance, log(1+SOC) units."""
    mmean, mvar = [], []
    for m in range(members):
        try:
            nodes = np.load(member_dir(root, m) / NODES_FILE)
            mmean.append(nodes["mean"])
            mvar.append(np.exp(nodes["logvar"]))
        except (OSError, ValueError, KeyError) as exc:
            msg = " ".join(str(exc).split())[:160]
            raise bundle_error(root, f"member {m:02d} is damaged ({exc.__class__.__name__}: {msg}); train it again"
                               ) from None
    return np.stack(mmean), np.stack(mvar)


def load_bundle(path: Path | str, cfg: PipelineConfig | None = None, device: str = "cpu", *,
                load_members: bool = True) -> Bundle:
    """Read a bundle written by :func:`socmap.train.stage.run`; members in eval mode on ``device``.

    ``load_members=False`` defers reading the members' weights and layer caches to their first use (callers that
    only score the stored node outputs, :meth:`Bundle.predict_nodes`, never read them).

    Raises :class:`ModelError` (one line) for a missing, damaged or other-format bundle, one written before the
    bundle recorded node k, covariate sources and fill values (train it again), or one whose covariates (layer
    names, survey covariates, streams, relations) differ from ``cfg``'s.
    """
    root = Path(path)
    files = _read_files(root)
    info = _check(files, cfg, root)
    gt = files.graph
    mean, var = _member_outputs(root, info.members)
    enc = root / ENCODER_FILE
    bundle = Bundle(
        path=root, pipeline=files.pipeline, info=info, card=files.card, preprocessor=files.preprocessor,
        scaler=files.scaler, graph=_graph(gt, info, files.pipeline), node_lonlat=gt["lonlat"].double().numpy(),
        node_year=gt["year"].double().numpy(), node_ndvi=gt["ndvi"].double().numpy() if "ndvi" in gt else None,
        node_elevation=gt["elevation"].double().numpy() if "elevation" in gt else None,
        tabular_range=np.asarray(info.tabular_range or np.zeros((0, 2)), np.float64).reshape(-1, 2),
        node_k=gt["node_k"].long().numpy(), node_split=gt["split"].numpy().astype(np.int8),
        node_member_mean=mean, node_member_var=var, node_inputs=_node_inputs(gt, files.pipeline),
        node_label_log=gt["label_log"].double().numpy(), encoder_checkpoint=enc if enc.is_file() else None,
        device=device)
    if load_members:
        _ = bundle.members  # fail now, with the path, on damaged weights
        if info.feature_columns:  # a bundle loaded to predict new points: no map tile pays for the imputer's import
            files.preprocessor.ready_imputer()
    return bundle
