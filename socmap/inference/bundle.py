"""A trained, calibrated SpTGNN deep ensemble in memory: what evaluation, mapping and aggregation predict with.

:func:`socmap.inference.loading.load_bundle` reads one from its folder (:mod:`socmap.inference.format`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar, cast, overload

import numpy as np
import pandas as pd
import torch

from socmap.config import PipelineConfig
from socmap.data.split import SPLIT_CODES
from socmap.errors import ModelError
from socmap.graph import HeteroGraph
from socmap.inference.applicability import AreaOfApplicability, spatial_folds
from socmap.inference.calibration import Calibration
from socmap.inference.card import ModelCard
from socmap.inference.distance import DistanceVariance, nearest_site_km
from socmap.inference.format import RESIDUALS_FILE, BundleInfo
from socmap.inference.growth import BlockResiduals
from socmap.inference.members import read_members
from socmap.inference.predict import member_outputs, new_points
from socmap.inference.predictive import EnsemblePrediction
from socmap.inference.scaler import TargetScaler
from socmap.model import LayerCache, NodeInputs, SpTGNN

if TYPE_CHECKING:
    from socmap.data import Preprocessor

__all__ = ["Bundle"]


T = TypeVar("T")


class _InfoField(Generic[T]):
    """A read-only :class:`Bundle` attribute that is one field of its ``bundle.json`` (:attr:`Bundle.info`), so
    each value is stored once."""

    def __init__(self, field_name: str, doc: str) -> None:
        self.field_name = field_name
        self.__doc__ = doc

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _InfoField[T]: ...

    @overload
    def __get__(self, obj: Bundle, owner: type | None = None) -> T: ...

    def __get__(self, obj: Bundle | None, owner: type | None = None) -> T | _InfoField[T]:
        return self if obj is None else cast(T, getattr(obj.info, self.field_name))


@dataclass
class Bundle:
    """A trained, calibrated SpTGNN deep ensemble and its training graph (see :mod:`socmap.inference.format`).

    The members' weights and layer caches are read on first use of :attr:`members` / :attr:`caches` (or of
    :meth:`predict_new`): evaluation and aggregation, which need only the stored node outputs
    (:meth:`predict_nodes`), never pay for them.
    """

    path: Path
    pipeline: PipelineConfig
    info: BundleInfo
    """bundle.json: members, seeds, calibration, feature columns, node covariate sources and fill values, ..."""
    card: ModelCard
    preprocessor: Preprocessor
    """Covariate preprocessing fitted on the training split."""
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
    """(d, 2) per-feature (min, max) over the training nodes, preprocessed units."""
    node_k: np.ndarray
    """(N,) spatial k per node as training built the graph (``HeteroGraph.node_k``): map cells are attached by
    the same rule from the training nodes' values, with no clustering at prediction time."""
    node_split: np.ndarray
    """(N,) split codes, :data:`socmap.data.split.SPLIT_CODES`."""
    node_member_mean: np.ndarray
    """(M, N) each member's transductive log(1+SOC) mean of every node (what ``evaluate`` scores)."""
    node_member_var: np.ndarray
    node_inputs: NodeInputs | None = None
    """Every graph node's inputs (labels: standardised training targets, NaN elsewhere)."""
    node_label_log: np.ndarray | None = None
    """(N,) observed log(1+SOC) of every node (all splits; for evaluation only)."""
    encoder_checkpoint: Path | None = None
    """The image encoder weights to use for new points (``encoder.pt`` in the bundle) or None."""
    device: str = "cpu"
    _models: list[SpTGNN] | None = field(default=None, repr=False)
    _caches: list[LayerCache] | None = field(default=None, repr=False)
    _area: list[tuple[BundleInfo, AreaOfApplicability | None]] = field(default_factory=list, repr=False)

    calibration = _InfoField[Calibration](
        "calibration", "Everything ``socmap train`` (or ``socmap calibrate``) fitted on the validation sites "
        "(:class:`socmap.inference.calibration.Calibration`); a piece a bundle predates is off.")
    feature_columns = _InfoField[list[str]](
        "feature_columns", "Tabular input columns in model order (``preprocessor.transform(df)[feature_columns]``).")
    covariate_sources = _InfoField[dict[str, str]](
        "node_covariates", "Relation -> where training read its per-node value (``samples:ndvi``, "
        "``image:ndvi_p50``, ...).")
    fill_values = _InfoField[dict[str, float]](
        "node_covariate_fill", "Relation -> the value a missing ``ndvi`` / ``elevation`` was filled with (training "
        "split's median).")
    image_dim = _InfoField[int]("image_dim", "Width of the image embedding the members take (0 without imagery).")
    n_members = _InfoField[int]("members", "Ensemble size (without loading the members).")

    @property
    def temperature(self) -> float:
        """T of eq. (7), :attr:`calibration`'s."""
        return self.calibration.temperature

    @property
    def sample_id(self) -> list[str]:
        return list(self.info.sample_id)

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
            self._models, self._caches = self._read_members()
        return self._models

    @property
    def caches(self) -> list[LayerCache]:
        """Per member, the layer embeddings of the TRAINING nodes (the only nodes a map cell attaches to) with
        their coordinates, NDVI, elevation, visible labels and ``node_k`` (read on first use)."""
        if self._caches is None:
            self._models, self._caches = self._read_members()
        return self._caches

    def _read_members(self) -> tuple[list[SpTGNN], list[LayerCache]]:
        train = np.flatnonzero(self.node_split == SPLIT_CODES["train"])
        label = None
        if self.pipeline.model.label_input:
            assert self.node_inputs is not None and self.node_inputs.label is not None
            label = self.node_inputs.label[torch.from_numpy(train)]
        template = LayerCache(hidden=[], lonlat=np.ascontiguousarray(self.node_lonlat[train]),
                              ndvi=None if self.node_ndvi is None else self.node_ndvi[train],
                              elevation=None if self.node_elevation is None else self.node_elevation[train],
                              label=label, node_k=self.node_k[train])
        return read_members(self.path, self.pipeline.model, self.info, train, template, self.device)

    @property
    def distance_var(self) -> DistanceVariance | None:
        """The distance-aware epistemic term (:mod:`socmap.inference.distance`); None for bundles without one."""
        return self.calibration.distance_var

    @property
    def mean_var_cap(self) -> float | None:
        """Cap on the variance that lifts the expectation (:attr:`EnsemblePrediction.mean_var_cap`), fitted on the
        validation sites by ``socmap train``; None: none (and every bundle written before it existed)."""
        return self.calibration.mean_var_cap

    @property
    def tail_dof(self) -> float | None:
        """Degrees of freedom of the predictive's Student t tails (:func:`socmap.inference.tails.fit_tail_dof`),
        fitted on the validation sites by ``socmap train``; None: Gaussian (and every bundle written before)."""
        return self.calibration.tail_dof

    def site_distance_km(self, lonlat: np.ndarray) -> np.ndarray:
        """(N,) great-circle distance, km, from each of ``lonlat`` (degrees) to its nearest training site (0 at a
        training node): what the calibration's distance pieces grow with."""
        train = self.node_split == SPLIT_CODES["train"]
        return nearest_site_km(lonlat, self.node_lonlat[train])

    @property
    def applicability(self) -> AreaOfApplicability | None:
        """The area of applicability over the training nodes' tabular inputs (:mod:`socmap.inference.applicability`:
        the stored weights, mean distance and threshold; a bundle without them gets equal weights and the CV rule
        over its training nodes); None without training tabular inputs (read on first use)."""
        if not self._area or self._area[0][0] is not self.info:  # built for this bundle.json's numbers
            self._area[:] = [(self.info, self._applicability())]
        return self._area[0][1]

    def _applicability(self) -> AreaOfApplicability | None:
        tab = None if self.node_inputs is None else self.node_inputs.tabular
        if tab is None or tab.shape[1] == 0:
            return None
        train = np.flatnonzero(self.node_split == SPLIT_CODES["train"])
        x = tab.double().cpu().numpy()[train]
        if self.info.applicability is not None:
            return AreaOfApplicability.from_info(x, self.info.applicability)
        split = self.pipeline.data.split
        return AreaOfApplicability.fit(x, spatial_folds(self.node_lonlat[train], split), seed=split.seed)

    def di(self, tabular: np.ndarray | None) -> np.ndarray | None:
        """(N,) dissimilarity index of points with (N, d) preprocessed tabular inputs ``tabular`` to the training
        nodes; None where it cannot be computed (no tabular inputs, no area of applicability)."""
        area = self.applicability
        if area is None or tabular is None:
            return None
        return area.di(np.asarray(tabular, np.float64))

    def node_di(self) -> np.ndarray | None:
        """(N,) dissimilarity index of every graph node to the training nodes (0 at a training node); None
        without tabular inputs."""
        tab = None if self.node_inputs is None else self.node_inputs.tabular
        return None if tab is None else self.di(tab.double().cpu().numpy())

    @property
    def block_residuals(self) -> BlockResiduals | None:
        """The out-of-fold block residuals the variance growth was fitted on (``block_residuals.parquet``); None
        for a bundle trained without ``train.variance_blocks_km``."""
        path = self.path / RESIDUALS_FILE
        return BlockResiduals.from_frame(pd.read_parquet(path)) if path.is_file() else None

    def predict_nodes(self, calibrated: bool = True) -> EnsemblePrediction:
        """Transductive prediction of every training-graph node (rows in samples.parquet order); calibrated:
        :attr:`calibration` applied (T, growth with distance and DI, distance term, mean cap, tail shape)."""
        di = self.node_di() if calibrated and self.calibration.uses_di else None
        return self._finish(self.node_member_mean, self.node_member_var, self.node_lonlat, calibrated, di)

    def fill_gaps(self, name: str, values: np.ndarray) -> np.ndarray:
        """``values`` (float64) of relation covariate ``name`` with NaN replaced as training filled its own."""
        v = np.asarray(values, np.float64)
        if name in self.fill_values and np.isnan(v).any():
            v = np.where(np.isnan(v), self.fill_values[name], v)
        return v

    def predict_new(self, lonlat: np.ndarray, year: np.ndarray, tabular: np.ndarray | None,
                    image: np.ndarray | None, ndvi: np.ndarray | None, elevation: np.ndarray | None, *,
                    batch_size: int = 65536, calibrated: bool = True, di: np.ndarray | None = None
                    ) -> EnsemblePrediction:
        """Predict new points attached to the training nodes by k-NN in-edges (the inductive cached path,
        :func:`socmap.model.attach_and_predict`; the map and the parity test use this one path).

        Args:
            lonlat: (N, 2) degrees. year: (N,) calendar year.
            tabular: (N, d) preprocessed covariates in :attr:`feature_columns` order (tabular stream on).
            image: (N, D) ViT embeddings, NaN rows where a point has none (image stream on).
            ndvi, elevation: (N,) for the ``ndvi`` / ``elevation`` relations; NaN is filled with
                :attr:`fill_values` (as training filled its nodes).
            batch_size: points per attachment + forward chunk.
            di: (N,) the points' dissimilarity index when the caller has it (the map computes it for its ``di``
                layer); None: computed from ``tabular`` where the calibration's growth needs it.
        """
        points = new_points(self.pipeline, len(self.feature_columns), self.fill_gaps, lonlat, year, tabular, image,
                            ndvi, elevation)
        mm, mv = member_outputs(self.members, self.caches, self.scaler, self.pipeline, points, batch_size)
        if calibrated and di is None and self.calibration.uses_di:
            di = self.di(points.tabular)
        return self._finish(mm, mv, points.lonlat, calibrated, di)

    def _finish(self, member_mean: np.ndarray, member_var: np.ndarray, lonlat: np.ndarray,
                calibrated: bool, di: np.ndarray | None = None) -> EnsemblePrediction:
        """The ensemble of members' outputs at ``lonlat``; calibrated: :attr:`calibration` applied at the points'
        distances from the training sites and their DI ``di`` (the one place both prediction paths calibrate)."""
        raw = EnsemblePrediction.from_members(member_mean, member_var)
        return self.calibration.apply(raw, self.site_distance_km(lonlat), di) if calibrated else raw

