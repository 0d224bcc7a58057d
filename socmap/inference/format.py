"""The model bundle's on-disk format: one folder that prediction and evaluation need nothing beside.

Layout (format ``socmap-bundle/2``)::

    BUNDLE/
      bundle.json                    format, members, seeds, calibration, feature columns, widths, node covariate
                                     sources and fill values, area of applicability (:class:`BundleInfo`)
      pipeline.yaml                  the resolved pipeline the ensemble was trained with
      target_scaler.json             log(1+SOC) mean and sd of the training split
      preprocess.json                covariate preprocessing fitted on train (+ preprocess_reference.parquet)
      graph.safetensors              training graph: edges, node_k, lonlat, year, tabular, image, ndvi,
                                     elevation, labels (log(1+SOC), every split), split codes
      members/NN/weights.safetensors member NN's weights (best epoch)
      members/NN/cache.safetensors   its per-layer embeddings of every graph node (the inductive path uses the
                                     training nodes': a map cell attaches to nothing else)
      members/NN/nodes.npz           its transductive outputs on every node: mean, logvar (log(1+SOC) units)
      members/NN/log.csv             per-epoch training log
      encoder.pt                     the image encoder weights `embed` used (image stream on, when a file)
      block_residuals.parquet        out-of-fold residuals of the block cross-validation the variance growth was
                                     fitted on (``train.variance_blocks_km`` set; :class:`BlockResiduals`)
      MODEL_CARD.md, model_card.json the model card (:class:`socmap.inference.card.ModelCard`)

Written by :func:`socmap.inference.writing.write_bundle`, read by :func:`socmap.inference.loading.load_bundle`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socmap.config import PipelineConfig
from socmap.errors import ModelError
from socmap.inference.calibration import Calibration

__all__ = ["BUNDLE_FORMAT", "BUNDLE_JSON", "BundleInfo", "bundle_error", "covariate_signature", "member_dir",
           "resolved_pipeline_dict"]

BUNDLE_FORMAT = "socmap-bundle/2"
"""2: held-out nodes attached to the training nodes as map cells are; node k, covariate sources and fill values."""
BUNDLE_JSON = "bundle.json"
PIPELINE_YAML = "pipeline.yaml"
SCALER_JSON = "target_scaler.json"
GRAPH_FILE = "graph.safetensors"
MEMBERS_DIR = "members"
WEIGHTS_FILE = "weights.safetensors"
CACHE_FILE = "cache.safetensors"
NODES_FILE = "nodes.npz"
LOG_FILE = "log.csv"
ENCODER_FILE = "encoder.pt"
CARD_MD = "MODEL_CARD.md"
CARD_JSON = "model_card.json"
RESIDUALS_FILE = "block_residuals.parquet"


def member_dir(root: Path, m: int) -> Path:
    """The folder of member ``m`` inside the bundle ``root``."""
    return root / MEMBERS_DIR / f"{m:02d}"


def bundle_error(root: Path, what: str) -> ModelError:
    """The one-line error for a bundle at ``root`` that cannot be used."""
    return ModelError(f"model bundle {root}: {what}")


def resolved_pipeline_dict(cfg: PipelineConfig) -> dict[str, Any]:
    """The pipeline as a plain dict with its file paths made absolute (it is read back from inside the bundle)."""
    d = cfg.model_dump(mode="json")
    for s in d["data"]["sources"]:
        s["path"] = cfg.resolve(s["path"])
    for c in d["data"]["covariates"]:
        c["path"] = cfg.resolve(c["path"])
    if d.get("stac") and d["stac"].get("catalog"):
        d["stac"]["catalog"] = cfg.resolve(d["stac"]["catalog"])
    if d["model"]["encoder"].get("checkpoint"):
        d["model"]["encoder"]["checkpoint"] = cfg.resolve(d["model"]["encoder"]["checkpoint"])
    for key in ("bulk_density", "coarse_fragments"):
        if d["output"].get(key):
            d["output"][key] = cfg.resolve(d["output"][key])
    if str(d["grid"]).endswith((".yaml", ".yml")):
        d["grid"] = cfg.resolve(d["grid"])
    return d


def covariate_signature(cfg: PipelineConfig) -> dict[str, list[str]]:
    """What the tabular inputs are made of: covariate layer names, survey covariates, model streams."""
    return {"covariates": [c.name for c in cfg.data.covariates], "survey_covariates": list(cfg.data.survey_covariates),
            "streams": list(cfg.model.streams)}


@dataclass
class BundleInfo:
    """``bundle.json``: what the bundle's arrays do not say themselves.

    The calibration's keys (``temperature``, ``distance_power``, ``distance_var``, ``mean_var_cap``,
    ``tail_dof``) sit at the top level of the file; a key a bundle predates reads as that piece switched off.
    """

    created: str
    """UTC time of training, ISO 8601."""
    members: int
    """Ensemble size."""
    seeds: list[int]
    """Each member's training seed."""
    calibration: Calibration
    feature_columns: list[str]
    """Tabular input columns in model order."""
    tabular_dim: int
    image_dim: int
    """Width of the image embeddings (0: image stream off)."""
    relations: list[str]
    """The graph's relations, in edge-type order."""
    num_nodes: int
    mode: str
    """``full`` or ``minibatch``: how the members were trained."""
    label_input: bool
    train_year_range: list[float]
    """(min, max) calendar year of the training nodes: the temporal encoder's fitted range."""
    tabular_range: list[list[float]]
    """(d, 2) per-feature (min, max) over the training nodes, preprocessed units."""
    node_covariates: dict[str, str]
    """Relation -> where training read its per-node value (``samples:ndvi``, ``image:ndvi_p50``, ...)."""
    node_covariate_fill: dict[str, float]
    """Relation -> the value a missing ``ndvi`` / ``elevation`` was filled with (training split's median)."""
    encoder_checkpoint: str | None = None
    """Where the image encoder weights were copied from (None: no file)."""
    encoder: dict[str, Any] | None = None
    """The embeddings' encoder settings (backbone, modalities, ...), None without the image stream."""
    sample_id: list[str] = field(default_factory=list)
    """Every node's sample id, in samples.parquet order."""
    applicability: dict[str, Any] | None = None
    """Area of applicability (:mod:`socmap.inference.applicability`): the predictors' ``weights`` (their
    permutation ``importance``, validation RMSE increase in log(1 + SOC), clipped at 0), the training points'
    ``mean_distance`` and the DI ``threshold``. None (tabular stream off, or bundles written before it): equal
    weights, with the mean distance and the threshold computed from the training nodes when a map is made."""
    format: str = BUNDLE_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, keys in the order train writes them (``applicability`` only where there is one)."""
        doc = {
            "format": self.format, "created": self.created, "members": self.members, "seeds": list(self.seeds),
            **self.calibration.to_info(), "feature_columns": list(self.feature_columns),
            "tabular_dim": self.tabular_dim, "image_dim": self.image_dim, "relations": list(self.relations),
            "num_nodes": self.num_nodes, "mode": self.mode, "label_input": self.label_input,
            "train_year_range": list(self.train_year_range), "tabular_range": self.tabular_range,
            "node_covariates": dict(self.node_covariates), "node_covariate_fill": dict(self.node_covariate_fill),
            "encoder_checkpoint": self.encoder_checkpoint, "encoder": self.encoder, "sample_id": list(self.sample_id),
        }
        if self.applicability is not None:
            doc["applicability"] = self.applicability
        return doc

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BundleInfo:
        """Read :meth:`to_dict`'s document (KeyError / TypeError / ValueError on a damaged one)."""
        return cls(
            created=str(d.get("created", "")), members=int(d["members"]), seeds=[int(s) for s in d.get("seeds") or []],
            calibration=Calibration.from_info(d), feature_columns=[str(c) for c in d["feature_columns"]],
            tabular_dim=int(d.get("tabular_dim", len(d["feature_columns"]))), image_dim=int(d.get("image_dim", 0)),
            relations=[str(r) for r in d["relations"]], num_nodes=int(d["num_nodes"]), mode=str(d.get("mode", "")),
            label_input=bool(d.get("label_input", False)),
            train_year_range=[float(y) for y in d["train_year_range"]],
            tabular_range=[[float(x) for x in row] for row in d.get("tabular_range", [])],
            node_covariates={str(k): str(v) for k, v in d["node_covariates"].items()},
            node_covariate_fill={str(k): float(v) for k, v in d["node_covariate_fill"].items()},
            encoder_checkpoint=d.get("encoder_checkpoint"), encoder=d.get("encoder"),
            sample_id=[str(s) for s in d.get("sample_id", [])], applicability=d.get("applicability"),
            format=str(d["format"]),
        )
