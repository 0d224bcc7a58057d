"""The model bundle: one folder that prediction and evaluation need nothing beside.

Layout (format ``socmap-bundle/2``)::

    BUNDLE/
      bundle.json                    format, members, seeds, T, feature columns, widths, node covariate
                                     sources and fill values
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
      MODEL_CARD.md, model_card.json

Written under a temporary name and renamed into place (:func:`socmap.io.atomic_path`).
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import yaml

from socmap.config import PipelineConfig
from socmap.errors import ModelError
from socmap.graph import HeteroGraph
from socmap.model import LayerCache, NodeInputs, SpTGNN, attach_and_predict
from socmap.train.calibration import Calibration
from socmap.train.distance_var import DistanceVariance, nearest_site_km
from socmap.train.ensemble import EnsemblePrediction
from socmap.train.inputs import SPLIT_CODES, TargetScaler

if TYPE_CHECKING:
    from socmap.data import Preprocessor

__all__ = ["BUNDLE_FORMAT", "BUNDLE_JSON", "Bundle", "load_bundle", "resolved_pipeline_dict"]

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


def member_dir(root: Path, m: int) -> Path:
    return root / MEMBERS_DIR / f"{m:02d}"


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


# --------------------------------------------------------------------------------------------- loading
def _fail(path: Path, what: str) -> ModelError:
    return ModelError(f"model bundle {path}: {what}")


@dataclass
class Bundle:
    """A trained, calibrated SpTGNN deep ensemble and its training graph (see the module docstring).

    The members' weights and layer caches are read on first use of :attr:`members` / :attr:`caches` (or of
    :meth:`predict_new`): evaluation and aggregation, which need only the stored node outputs
    (:meth:`predict_nodes`), never pay for them.
    """

    path: Path
    pipeline: PipelineConfig
    temperature: float
    preprocessor: Preprocessor
    """Covariate preprocessing fitted on the training split."""
    feature_columns: list[str]
    """Tabular input columns in model order (``preprocessor.transform(df)[feature_columns]``)."""
    scaler: TargetScaler
    graph: HeteroGraph
    node_lonlat: np.ndarray
    """(N, 2) degrees, every graph node (all splits; :attr:`node_split` tells them apart)."""
    node_year: np.ndarray
    """(N,) sampling year of every graph node; ``node_ndvi`` and ``node_elevation`` likewise (None when the graph
    has no such relation)."""
    node_ndvi: np.ndarray | None
    node_elevation: np.ndarray | None
    tabular_range: np.ndarray
    """(d, 2) per-feature (min, max) over the training nodes (area of applicability)."""
    card: dict
    node_k: np.ndarray
    """(N,) spatial k per node as training built the graph (``HeteroGraph.node_k``): map cells are attached by
    the same rule from the training nodes' values, with no clustering at prediction time."""
    node_split: np.ndarray
    """(N,) split codes, :data:`socmap.train.inputs.SPLIT_CODES`."""
    node_member_mean: np.ndarray
    """(M, N) each member's transductive log(1+SOC) mean of every node (what ``evaluate`` scores)."""
    node_member_var: np.ndarray
    covariate_sources: dict[str, str] = field(default_factory=dict)
    """Relation -> where training read its per-node value (``samples:ndvi``, ``image:ndvi_p50``, ...)."""
    fill_values: dict[str, float] = field(default_factory=dict)
    """Relation -> the value a missing ``ndvi`` / ``elevation`` was filled with (training split's median)."""
    info: dict = field(default_factory=dict)
    """bundle.json."""
    node_inputs: NodeInputs | None = None
    """Every graph node's inputs (labels: standardised training targets, NaN elsewhere)."""
    node_label_log: np.ndarray | None = None
    """(N,) observed log(1+SOC) of every node (all splits; for evaluation only)."""
    encoder_checkpoint: Path | None = None
    """The image encoder weights to use for new points (``encoder.pt`` in the bundle) or None."""
    device: str = "cpu"
    _models: list[SpTGNN] | None = field(default=None, repr=False)
    _caches: list[LayerCache] | None = field(default=None, repr=False)

    @property
    def image_dim(self) -> int:
        return int(self.info.get("image_dim", 0))

    @property
    def n_members(self) -> int:
        """Ensemble size (without loading the members)."""
        return int(self.info["members"])

    @property
    def sample_id(self) -> list[str]:
        return list(self.info.get("sample_id", []))

    def check_samples(self, samples: pd.DataFrame, source: Path | str) -> None:
        """Raise :class:`~socmap.errors.ModelError` unless ``samples`` (read from ``source``) are the rows this
        bundle was trained on, in order: the same sample ids (where the bundle records them) and one row per node.
        Everything that pairs the stored node outputs with labels (evaluate, calibrate) needs it."""
        hint = "pass the data folder it was trained on"
        if self.sample_id and list(samples["sample_id"]) != self.sample_id:
            raise ModelError(f"model bundle {self.path} was trained on other samples than {source} (sample ids "
                             f"differ); {hint}")
        if len(samples) != len(self.node_lonlat):
            raise ModelError(f"model bundle {self.path} has {len(self.node_lonlat)} nodes, {source} has "
                             f"{len(samples)} rows; {hint}")

    @property
    def members(self) -> list[SpTGNN]:
        """The members in eval mode (read on first use)."""
        if self._models is None:
            self._models, self._caches = _load_members(self)
        return self._models

    @property
    def caches(self) -> list[LayerCache]:
        """Per member, the layer embeddings of the TRAINING nodes (the only nodes a map cell attaches to) with
        their coordinates, NDVI, elevation, visible labels and ``node_k`` (read on first use)."""
        if self._caches is None:
            self._models, self._caches = _load_members(self)
        return self._caches

    @functools.cached_property
    def calibration(self) -> Calibration:
        """Everything ``socmap train`` (or ``socmap calibrate``) fitted on the validation sites
        (:class:`socmap.train.calibration.Calibration`), read from :attr:`info` once (every map tile applies it);
        a piece a bundle predates is off."""
        return Calibration.from_info(self.info)

    @property
    def distance_var(self) -> DistanceVariance | None:
        """The distance-aware epistemic term (:mod:`socmap.train.distance_var`); None for bundles without one."""
        return self.calibration.distance_var

    @property
    def mean_var_cap(self) -> float | None:
        """Cap on the variance that lifts the expectation (:attr:`EnsemblePrediction.mean_var_cap`), fitted on the
        validation sites by ``socmap train``; None: none (and every bundle written before it existed)."""
        return self.calibration.mean_var_cap

    @property
    def tail_dof(self) -> float | None:
        """Degrees of freedom of the predictive's Student t tails (:func:`socmap.train.ensemble.fit_tail_dof`),
        fitted on the validation sites by ``socmap train``; None: Gaussian (and every bundle written before)."""
        return self.calibration.tail_dof

    def site_distance_km(self, lonlat: np.ndarray) -> np.ndarray:
        """(N,) great-circle distance, km, from each of ``lonlat`` (degrees) to its nearest training site (0 at a
        training node): what the calibration's distance pieces grow with."""
        train = self.node_split == SPLIT_CODES["train"]
        return nearest_site_km(lonlat, self.node_lonlat[train])

    def predict_nodes(self, calibrated: bool = True) -> EnsemblePrediction:
        """Transductive prediction of every training-graph node (rows in samples.parquet order); calibrated:
        :attr:`calibration` applied (T, distance growth and term, mean cap, tail shape)."""
        return self._finish(self.node_member_mean, self.node_member_var, self.node_lonlat, calibrated)

    def fill_gaps(self, name: str, values: np.ndarray) -> np.ndarray:
        """``values`` (float64) of relation covariate ``name`` with NaN replaced as training filled its own."""
        v = np.asarray(values, np.float64)
        if name in self.fill_values and np.isnan(v).any():
            v = np.where(np.isnan(v), self.fill_values[name], v)
        return v

    @torch.no_grad()
    def predict_new(self, lonlat: np.ndarray, year: np.ndarray, tabular: np.ndarray | None,
                    image: np.ndarray | None, ndvi: np.ndarray | None, elevation: np.ndarray | None, *,
                    batch_size: int = 65536, calibrated: bool = True) -> EnsemblePrediction:
        """Predict new points attached to the training nodes by k-NN in-edges (the inductive cached path,
        :func:`socmap.model.attach_and_predict`; the map and the parity test use this one path).

        Args:
            lonlat: (N, 2) degrees. year: (N,) calendar year.
            tabular: (N, d) preprocessed covariates in :attr:`feature_columns` order (tabular stream on).
            image: (N, D) ViT embeddings, NaN rows where a point has none (image stream on).
            ndvi, elevation: (N,) for the ``ndvi`` / ``elevation`` relations; NaN is filled with
                :attr:`fill_values` (as training filled its nodes).
            batch_size: points per attachment + forward chunk.
        """
        lonlat = np.asarray(lonlat, np.float64).reshape(-1, 2)
        n = len(lonlat)
        year = np.array(np.broadcast_to(np.asarray(year, np.float64), (n,)))
        streams = self.pipeline.model.streams
        if "tabular" in streams:
            if tabular is None:
                raise ModelError("this model uses tabular covariates: pass tabular (N, "
                                 f"{len(self.feature_columns)}) in feature_columns order")
            tabular = np.asarray(tabular, np.float32)
            if tabular.shape != (n, len(self.feature_columns)):
                raise ModelError(f"tabular must be ({n}, {len(self.feature_columns)}), got {tabular.shape}")
        else:
            tabular = None
        if "image" in streams:
            if image is None:
                raise ModelError("this model uses image embeddings: pass image (N, D), NaN rows where none")
            image = np.asarray(image, np.float32)
        else:
            image = None
        rel = self.pipeline.model.graph.relations
        if "ndvi" in rel and ndvi is None:
            raise ModelError("this model's graph has the 'ndvi' relation: pass ndvi (N,)")
        if "elevation" in rel and elevation is None:
            raise ModelError("this model's graph has the 'elevation' relation: pass elevation (N,) in m")
        nd = None if "ndvi" not in rel or ndvi is None else self.fill_gaps("ndvi", ndvi)
        el = None if "elevation" not in rel or elevation is None else self.fill_gaps("elevation", elevation)
        mm = np.empty((self.n_members, n))
        mv = np.empty((self.n_members, n))
        device = next(self.members[0].parameters()).device
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            img = None if image is None else torch.as_tensor(image[sl], device=device)
            inputs = NodeInputs(
                lonlat=torch.as_tensor(lonlat[sl], dtype=torch.float32, device=device),
                year=torch.as_tensor(year[sl], dtype=torch.float32, device=device),
                tabular=None if tabular is None else torch.as_tensor(tabular[sl], device=device),
                image=img, image_ok=None if img is None else torch.isfinite(img).all(dim=1))
            outs, _ = attach_and_predict(self.members, self.caches, inputs, self.pipeline.model.graph,
                                         new_ndvi=None if nd is None else nd[sl],
                                         new_elevation=None if el is None else el[sl], new_lonlat=lonlat[sl])
            for m, out in enumerate(outs):
                mm[m, sl] = self.scaler.inverse(out.soc.double().cpu().numpy())
                mv[m, sl] = np.exp(out.logvar.double().cpu().numpy()) * self.scaler.sd**2
        return self._finish(mm, mv, lonlat, calibrated)

    def _finish(self, member_mean: np.ndarray, member_var: np.ndarray, lonlat: np.ndarray,
                calibrated: bool) -> EnsemblePrediction:
        """The ensemble of members' outputs at ``lonlat``; calibrated: :attr:`calibration` applied at the points'
        distances from the training sites (the one place both prediction paths calibrate)."""
        raw = EnsemblePrediction.from_members(member_mean, member_var)
        return self.calibration.apply(raw, self.site_distance_km(lonlat)) if calibrated else raw


def _load_members(b: Bundle) -> tuple[list[SpTGNN], list[LayerCache]]:
    """Every member's weights (eval mode, on ``b.device``) and its layer cache of the training nodes."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from socmap.train.trainer import fit_year_range

    dev = torch.device(b.device)
    train = np.flatnonzero(b.node_split == SPLIT_CODES["train"])
    tidx = torch.from_numpy(train)
    label = None
    if b.pipeline.model.label_input:
        assert b.node_inputs is not None and b.node_inputs.label is not None
        label = b.node_inputs.label[tidx]
    lonlat = np.ascontiguousarray(b.node_lonlat[train])
    ndvi = None if b.node_ndvi is None else b.node_ndvi[train]
    elev = None if b.node_elevation is None else b.node_elevation[train]
    node_k = b.node_k[train]
    models: list[SpTGNN] = []
    caches: list[LayerCache] = []
    for m in range(b.n_members):
        md = member_dir(b.path, m)
        try:
            model = SpTGNN(b.pipeline.model, tabular_dim=len(b.feature_columns) if "tabular" in
                           b.pipeline.model.streams else 0, image_dim=b.image_dim)
            fit_year_range(model, np.asarray(b.info["train_year_range"], np.float64))
            model.load_state_dict(load_file(str(md / WEIGHTS_FILE)))
            cstate = load_file(str(md / CACHE_FILE))
            hidden = [cstate[f"hidden_{i}"][tidx].to(dev) for i in range(len(model.layers))]
        except (OSError, ValueError, KeyError, RuntimeError, IndexError, SafetensorError) as exc:
            msg = " ".join(str(exc).split())[:160]
            raise _fail(b.path, f"member {m:02d} is damaged ({exc.__class__.__name__}: {msg}); train it again"
                        ) from None
        models.append(model.to(dev).eval())
        caches.append(LayerCache(hidden=hidden, lonlat=lonlat, ndvi=ndvi, elevation=elev,
                                 label=None if label is None else label.to(dev), node_k=node_k))
    return models, caches


def _read_json(path: Path, root: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(root, f"cannot read {path.name} ({exc.__class__.__name__}); train it again") from None


def _compare(bundle_cfg: PipelineConfig, cfg: PipelineConfig, root: Path) -> None:
    a, b = covariate_signature(bundle_cfg), covariate_signature(cfg)
    for key in a:
        if a[key] != b[key]:
            only_b = [x for x in b[key] if x not in a[key]]
            only_a = [x for x in a[key] if x not in b[key]]
            detail = f"pipeline adds {only_b}" if only_b else ""
            detail += ("; " if detail and only_a else "") + (f"pipeline lacks {only_a}" if only_a else "")
            detail = detail or "same names, different order"
            raise _fail(root, f"{key} differ from pipeline {cfg.name!r} ({detail}); bundle has {a[key]}, "
                              f"pipeline has {b[key]}; train again with this pipeline")
    if tuple(bundle_cfg.model.graph.relations) != tuple(cfg.model.graph.relations):
        raise _fail(root, f"graph relations differ: bundle {bundle_cfg.model.graph.relations}, pipeline "
                          f"{cfg.model.graph.relations}")


def load_bundle(path: Path | str, cfg: PipelineConfig | None = None, device: str = "cpu", *,
                load_members: bool = True) -> Bundle:
    """Read a bundle written by :func:`socmap.train.stage.run`; members in eval mode on ``device``.

    ``load_members=False`` defers reading the members' weights and layer caches to their first use (callers that
    only score the stored node outputs, :meth:`Bundle.predict_nodes`, never read them).

    Raises :class:`ModelError` (one line) for a missing, damaged or other-format bundle, one written before the
    bundle recorded node k, covariate sources and fill values (train it again), or one whose covariates (layer
    names, survey covariates, streams, relations) differ from ``cfg``'s.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from socmap.data import Preprocessor
    from socmap.errors import DataError

    root = Path(path)
    if not root.is_dir():
        raise ModelError(f"model bundle {root} not found (a folder written by `socmap train`)")
    if not (root / BUNDLE_JSON).is_file():
        raise _fail(root, f"no {BUNDLE_JSON}: not a socmap model bundle, or a damaged one; train it again")
    info = _read_json(root / BUNDLE_JSON, root)
    if info.get("format") != BUNDLE_FORMAT:
        raise _fail(root, f"format {info.get('format')!r} is not {BUNDLE_FORMAT!r} (written by another socmap "
                          "version); train it again with this version")
    try:
        pipeline = PipelineConfig.model_validate(yaml.safe_load((root / PIPELINE_YAML).read_text()))
        scaler = TargetScaler.from_dict(_read_json(root / SCALER_JSON, root))
        pre = Preprocessor.load(root)
        gt = load_file(str(root / GRAPH_FILE))
        card = _read_json(root / CARD_JSON, root)
    except (OSError, ValueError, KeyError, TypeError, DataError, SafetensorError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise _fail(root, f"damaged ({exc.__class__.__name__}: {msg}); train it again") from None
    if cfg is not None:
        _compare(pipeline, cfg, root)
    feature_columns = list(info["feature_columns"])
    if "tabular" in pipeline.model.streams and list(pre.feature_names) != feature_columns:
        raise _fail(root, f"preprocess.json features {pre.feature_names} differ from the model's {feature_columns}")
    missing = [k for k, present in (("graph node_k", "node_k" in gt), ("node_covariates", "node_covariates" in info),
                                    ("node_covariate_fill", "node_covariate_fill" in info)) if not present]
    if missing:
        raise _fail(root, f"lacks {', '.join(missing)} (written before train recorded them); train it again")
    relations = tuple(info["relations"])
    node_k = gt["node_k"].long().numpy()
    graph = HeteroGraph(gt["edge_index"].long(), gt["edge_type"].long(), gt["edge_weight"].float(),
                        int(info["num_nodes"]), relations, node_k=node_k)
    label_z = gt["label_z"].float()
    tab = gt.get("tabular")
    inputs = NodeInputs(lonlat=gt["lonlat"].float(), year=gt["year"].float(), tabular=tab, image=gt.get("image"),
                        image_ok=gt["image_ok"].bool() if "image_ok" in gt else None,
                        label=label_z if pipeline.model.label_input else None)
    mmean, mvar = [], []
    for m in range(int(info["members"])):
        try:
            nodes = np.load(member_dir(root, m) / NODES_FILE)
            mmean.append(nodes["mean"])
            mvar.append(np.exp(nodes["logvar"]))
        except (OSError, ValueError, KeyError) as exc:
            msg = " ".join(str(exc).split())[:160]
            raise _fail(root, f"member {m:02d} is damaged ({exc.__class__.__name__}: {msg}); train it again"
                        ) from None
    tabular_range = np.asarray(info.get("tabular_range", np.zeros((0, 2))), np.float64).reshape(-1, 2)
    enc = root / ENCODER_FILE
    bundle = Bundle(
        path=root, pipeline=pipeline, temperature=float(info["temperature"]), preprocessor=pre,
        feature_columns=feature_columns, scaler=scaler, graph=graph, node_lonlat=gt["lonlat"].double().numpy(),
        node_year=gt["year"].double().numpy(),
        node_ndvi=gt["ndvi"].double().numpy() if "ndvi" in gt else None,
        node_elevation=gt["elevation"].double().numpy() if "elevation" in gt else None,
        tabular_range=tabular_range, card=card, node_k=node_k, node_split=gt["split"].numpy().astype(np.int8),
        node_member_mean=np.stack(mmean), node_member_var=np.stack(mvar),
        covariate_sources=dict(info["node_covariates"]),
        fill_values={k: float(v) for k, v in info["node_covariate_fill"].items()}, info=info, node_inputs=inputs,
        node_label_log=gt["label_log"].double().numpy(), encoder_checkpoint=enc if enc.is_file() else None,
        device=device)
    if load_members:
        _ = bundle.members  # fail now, with the path, on damaged weights
        if feature_columns:  # a bundle loaded to predict new points: no map tile pays for the imputer's import
            pre.ready_imputer()
    return bundle


# --------------------------------------------------------------------------------------------- writing
def write_bundle(out: Path, *, cfg: PipelineConfig, info: dict, scaler: TargetScaler, data_dir: Path,
                 graph_tensors: dict[str, torch.Tensor], members: list[dict[str, Any]], card: dict,
                 card_md: str, encoder_src: Path | None) -> Path:
    """Write every bundle file into ``out`` atomically.

    ``members``: per member a dict with ``state`` (state_dict), ``cache`` (LayerCache), ``mean`` and ``logvar``
    ((N,) log(1+SOC) units) and ``history`` (list of per-epoch dicts).
    """
    from safetensors.torch import save_file

    from socmap.io import PREPROCESS, PREPROCESS_REFERENCE, atomic_path

    with atomic_path(Path(out)) as tmp:
        tmp.mkdir(parents=True)
        (tmp / BUNDLE_JSON).write_text(json.dumps({"format": BUNDLE_FORMAT, **info}, indent=1) + "\n")
        (tmp / PIPELINE_YAML).write_text(yaml.safe_dump(resolved_pipeline_dict(cfg), sort_keys=False))
        (tmp / SCALER_JSON).write_text(json.dumps(scaler.to_dict(), indent=1) + "\n")
        shutil.copy2(Path(data_dir) / PREPROCESS, tmp / PREPROCESS)
        shutil.copy2(Path(data_dir) / PREPROCESS_REFERENCE, tmp / PREPROCESS_REFERENCE)
        save_file({k: v.contiguous() for k, v in graph_tensors.items()}, str(tmp / GRAPH_FILE))
        for m, mem in enumerate(members):
            md = member_dir(tmp, m)
            md.mkdir(parents=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in mem["state"].items()}, str(md / WEIGHTS_FILE))
            cache: LayerCache = mem["cache"]
            save_file({f"hidden_{i}": h.detach().cpu().contiguous() for i, h in enumerate(cache.hidden)},
                      str(md / CACHE_FILE))
            np.savez(md / NODES_FILE, mean=np.asarray(mem["mean"], np.float64),
                     logvar=np.asarray(mem["logvar"], np.float64))
            pd.DataFrame(mem["history"]).to_csv(md / LOG_FILE, index=False)
        if encoder_src is not None:
            shutil.copy2(encoder_src, tmp / ENCODER_FILE)
        (tmp / CARD_JSON).write_text(json.dumps(card, indent=1, default=str) + "\n")
        (tmp / CARD_MD).write_text(card_md)
    return Path(out)


def split_code(name: str) -> int:
    return SPLIT_CODES[name]
