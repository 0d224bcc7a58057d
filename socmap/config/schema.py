"""The typed pipeline and grid schema: one pydantic class per block of ``pipelines/<region>.yaml`` and
``grids/<name>.yaml``.

Every block forbids unknown keys and checks values on assignment too, so a typo or a value of the wrong type is
an error naming the dotted key (:func:`socmap.config.load_pipeline` adds the file). Units are in each field's
docstring. Reading the YAML files lives in :mod:`socmap.config.files` and :mod:`socmap.config.loading`; this module
only says what is valid.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from socmap.config.dotted import set_dotted
from socmap.config.files import find_grid, resolve_path, validate_yaml
from socmap.config.presets import DEFAULT_PRESET, Preset, apply_preset
from socmap.device import AUTO, Device


class _Strict(BaseModel):
    """Base for every config block: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


# --------------------------------------------------------------------------------------------- data
class SourceConfig(_Strict):
    """One soil survey table and the mapping that says how to read it (see ``socmap prepare``)."""

    path: str
    """CSV, Parquet or GeoPackage file (local path or URL)."""
    mapping: str
    """Name of a shipped mapping (``demo``, ``afsp``) or path to a mapping YAML."""


class CovariateLayer(_Strict):
    """A raster sampled at every point (and later at every map cell) as a tabular covariate."""

    name: str
    path: str
    """Local path or URL of a (Cloud-Optimized) GeoTIFF."""
    band: PositiveInt = 1
    unit: str = "1"
    """Physical unit after ``scale``/``offset`` (e.g. ``degC``, ``mm``, ``m``, ``class``)."""
    scale: float = 1.0
    offset: float = 0.0
    categorical: bool = False
    """Categorical layers (land cover) are one-hot encoded rather than standardised."""


class SplitConfig(_Strict):
    """Train/validation/test split (paper section 4.5: 90/5/5 stratified on 10 log(1+SOC) quantile bins)."""

    method: Literal["random", "block"] = "random"
    fractions: tuple[Fraction, Fraction, Fraction] = (0.90, 0.05, 0.05)
    strata: PositiveInt = 10
    block_km: PositiveFloat = 50.0
    """Block edge for the spatial block split, km; whole blocks are held out."""
    seed: int = 0

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        if abs(sum(self.fractions) - 1.0) > 1e-6:
            raise ValueError(f"fractions must sum to 1, got {sum(self.fractions):.3f}")
        return self


class DataConfig(_Strict):
    """Soil data, harmonisation limits and tabular covariates (paper sections 4.1, 4.3, 4.5)."""

    sources: list[SourceConfig] = Field(default_factory=list)
    soc_min_gkg: PositiveFloat = 0.5
    """Lowest plausible topsoil SOC, g/kg; lower values are dropped as implausible."""
    soc_max_gkg: PositiveFloat = 600.0
    """Highest plausible topsoil SOC, g/kg (organic soils reach ~580 g/kg)."""
    top_cm: float = 0.0
    bottom_cm: PositiveFloat = 30.0
    """Depth interval harmonised to, cm (topsoil 0-30 cm)."""
    covariates: list[CovariateLayer] = Field(default_factory=list)
    survey_covariates: list[str] = Field(default_factory=list)
    """Columns of the survey itself used as covariates (e.g. pH, sand, silt, clay); points only."""
    impute_k: PositiveInt = 5
    split: SplitConfig = Field(default_factory=SplitConfig)
    min_depth_coverage: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Fraction of [top_cm, bottom_cm] a profile's horizons must cover to be kept (0.5 = 15 of 30 cm)."""
    site_tolerance_m: PositiveFloat = 5.0
    """Profiles closer than this distance, m, are one site (averaged), within or across sources."""
    covariate_search_px: Annotated[int, Field(ge=0)] = 3
    """Radius, raster cells, searched for the nearest valid cell where a point falls on no-data."""
    covariate_min_coverage: Fraction = 0.5
    """A raster giving a value for fewer than this fraction of the points is an error (it does not cover them)."""
    year_range: tuple[int, int] = (1900, 2100)
    """Sampling years (calendar years) outside [first, last] are treated as missing (then the mapping's
    ``default_year`` applies, else the row is dropped as ``incomplete_metadata``)."""

    @model_validator(mode="after")
    def _ranges(self) -> DataConfig:
        if not self.bottom_cm > self.top_cm:
            raise ValueError(f"bottom_cm ({self.bottom_cm}) must be deeper than top_cm ({self.top_cm})")
        if not self.soc_max_gkg > self.soc_min_gkg:
            raise ValueError(f"soc_max_gkg ({self.soc_max_gkg}) must exceed soc_min_gkg ({self.soc_min_gkg})")
        if not self.year_range[1] >= self.year_range[0]:
            raise ValueError(f"year_range must be [first, last] with last >= first, got {list(self.year_range)}")
        return self


# ----------------------------------------------------------------------------------- earth observation
class StacConfig(_Strict):
    """Where imagery comes from: a STAC API or a static catalogue / ItemCollection file."""

    api: str | None = None
    """STAC API root URL (Planetary Computer, Earth Search v1, or a local one)."""
    catalog: str | None = None
    """Path or URL of a static catalogue / ItemCollection (the demo world)."""
    signing: Literal["none", "planetary_computer"] = "none"
    s2_collection: str = "sentinel-2-l2a"
    s1_collection: str = "sentinel-1-rtc"
    dem_collection: str = "cop-dem-glo-30"
    max_cloud_pct: Annotated[float, Field(ge=0, le=100)] = 25.0
    timeout_s: PositiveFloat = 60.0
    retries: Annotated[int, Field(ge=0)] = 3

    @model_validator(mode="after")
    def _one_source(self) -> StacConfig:
        if (self.api is None) == (self.catalog is None):
            raise ValueError("set exactly one of 'api' and 'catalog'")
        return self


class ImageryConfig(_Strict):
    """Patches around every sample (paper section 4.2)."""

    patch_size: PositiveInt = 224
    """Patch edge, pixels (TerraMind takes 224 x 224)."""
    resolution_m: PositiveFloat = 10.0
    """Patch pixel size, m; S2, S1 and the resampled DEM share it."""
    years: list[int] = Field(default_factory=lambda: [2022, 2023, 2024])
    enabled: bool = True
    """False where no imagery exists (the real Africa set): the image stream is switched off."""
    group_km: PositiveFloat = 10.0
    """Samples of one year in the same ``group_km`` x ``group_km`` cell (km, UTM) are composited from one read of
    their joint box (the cell plus a patch on each side) instead of one read per sample."""
    chunk_px: PositiveInt = 512
    """Dask chunk edge of the lazy composites, pixels (512 x 512 float32 = 1 MiB per band and scene)."""


# ----------------------------------------------------------------------------------------------- model
class EncoderConfig(_Strict):
    """Frozen TerraMind image encoder and the CLS-token patch-merge transformer (paper 3.3, Table 6)."""

    backbone: Literal["terramind_v1_tiny", "terramind_v1_small", "terramind_v1_base", "terramind_v1_large"] = (
        "terramind_v1_large"
    )
    checkpoint: str | None = None
    """Local checkpoint path (no model hub is reached); ``null`` means random weights."""
    modalities: list[Literal["S2L2A", "S1GRD", "DEM"]] = Field(default_factory=lambda: ["S2L2A", "S1GRD", "DEM"])
    merge: Literal["mean", "max"] = "mean"
    """Element-wise reduction of the per-modality token sequences."""
    cls_layers: PositiveInt = 2
    cls_heads: PositiveInt = 4
    cls_ff: PositiveInt = 1024
    batch_size: PositiveInt = 16
    finetune_epochs: Annotated[int, Field(ge=0)] = 0
    """ViT regression fine-tune on log SOC (0 = use the backbone as loaded)."""
    finetune_warmup_epochs: Annotated[int, Field(ge=0)] = 0
    finetune_loss: Literal["mse", "huber"] = "mse"
    finetune_lr: PositiveFloat = 1e-4
    """AdamW learning rate of the CLS-merge transformer and the regression head during the ViT fine-tune."""
    finetune_backbone_lr_scale: PositiveFloat = 0.1
    """Backbone learning rate = finetune_lr x this, once the frozen warm-up is over."""


class PositionalConfig(_Strict):
    """Multi-scale sinusoidal position encoder, eq. (1)."""

    scales: PositiveInt = 10
    sigma_min: PositiveFloat = 0.1
    sigma_max: PositiveFloat = 10.0
    """Scales sigma of eq. (1), in degrees of lon/lat (wavelength 2*pi*sigma degrees)."""
    out_dim: PositiveInt = 16
    hidden: PositiveInt = 64
    """Hidden width of the encoder's 2-layer MLP."""


class TemporalConfig(_Strict):
    """Fourier year encoder, eq. (2)."""

    frequencies: PositiveInt = 4
    """Number J of Fourier frequencies: pi, 2 pi, 4 pi, ... radians per year range (the slowest turns through half a
    cycle over [year_min, year_max], so every year in the range gets its own code)."""
    out_dim: PositiveInt = 8
    year_min: int | None = None
    year_max: int | None = None
    """Years mapped to 0 and 1 (t_min, t_max of eq. (2)), calendar years; years outside are clipped to the nearer
    end. ``null`` (the default) = fitted on the training years (their min and max) by the trainer and stored in the
    model's state dict. Set both or neither."""
    hidden: PositiveInt = 32
    """Hidden width of the encoder's 2-layer MLP."""

    @model_validator(mode="after")
    def _range(self) -> TemporalConfig:
        if (self.year_min is None) != (self.year_max is None):
            raise ValueError("set both year_min and year_max, or neither (null: fitted on the training years)")
        if self.year_min is not None and self.year_max is not None and self.year_max <= self.year_min:
            raise ValueError(f"year_max ({self.year_max}) must be > year_min ({self.year_min})")
        return self


class MoEConfig(_Strict):
    """Sparse mixture-of-experts fusion (paper 3.4, 3.7)."""

    fusion: Literal["moe", "concat"] = "moe"
    """``concat`` is the concat+MLP ablation."""
    experts: PositiveInt = 8
    expert_type: Literal["cross-gated", "concat", "additive"] = "cross-gated"
    fusion_dim: PositiveInt = 512
    top_k: PositiveInt | None = None
    """Experts routed per node; ``null`` = dense routing."""
    load_balance_weight: Annotated[float, Field(ge=0)] = 1.95e-2
    entropy_weight: Annotated[float, Field(ge=0)] = 1.0
    """Weight of the entropy-gap penalty in L_MoE (the paper uses unit weight)."""


Relation = Literal["spatial", "ndvi", "elevation"]
"""A relation (edge type) of the sample graph: paper Table 1."""


class GraphConfig(_Strict):
    """Heterogeneous graph relations (paper 3.5, Table 1, Table 6)."""

    relations: list[Relation] = Field(default_factory=lambda: list(get_args(Relation)))
    k_spatial: PositiveInt = 5
    k_ndvi: PositiveInt = 3
    max_distance_km: PositiveFloat = 2000.0
    tau_ndvi: PositiveFloat = 0.1
    """NDVI edge scale: weight exp(-|dNDVI| / tau_ndvi)."""
    slope_scale: PositiveFloat = 30.0
    """Elevation edge scale tau_t: weight exp(-|grad z| / slope_scale), grad z in m/km."""
    hdbscan_min_cluster_size: PositiveInt = 8
    """HDBSCAN min cluster size over the sample locations (haversine); used by ``spatial_k_mode='adaptive'``."""
    adaptive_k: PositiveInt = 10
    """Spatial neighbours of a node HDBSCAN calls noise (an isolated sample) under ``spatial_k_mode='adaptive'``."""
    spatial_k_mode: Literal["adaptive", "fixed"] = "adaptive"
    """``adaptive``: k_spatial inside HDBSCAN clusters, adaptive_k for noise nodes; ``fixed``: k_spatial for all."""
    min_distance_km: PositiveFloat = 0.01
    """Distance floor, km, for inverse-distance and slope weights (co-located samples)."""
    weighting: Literal["continuous", "idw", "adaptive"] = "continuous"
    """Edge weights. ``idw``: the paper's Table 1 (normalised inverse distance; exp(-|dNDVI|/tau_v)): a weight
    jumps when a node's k-set changes, so a map made by attaching cells to their k nearest sites is a mosaic of
    the sites' Voronoi cells. ``continuous``: each kernel minus its value at the (k+1)-th neighbour,
    :math:`w_{ij} \\propto K(d_{ij}) - K(d_{i,(k+1)})`, so a neighbour's weight reaches 0 as it leaves the k-set
    and a cell's inputs change continuously as it moves; elevation edges carry the spatial weight times the
    slope factor, and the label features and attention follow the weights. ``adaptive``: as ``continuous``, but
    the spatial kernel is the scale-adaptive biweight of ``label_k`` (radius ``label_radius`` x the nearest
    neighbour's distance, at least ``label_min_radius_km``, at most the (k+1)-th neighbour's): near neighbours
    share the weight instead of the nearest taking most of it as under ``1 / d``."""
    label_k: PositiveInt | None = None
    """Scale-adaptive label neighbourhood (``model.label_input``): with a value, the neighbours' labels enter
    through their own set of up to ``label_k`` nearest training sites instead of the spatial relation's k, each
    weighted by a biweight kernel :math:`(1 - (d / R)^2)^2` whose radius R is ``label_radius`` times the distance
    to the nearest observed site (at least ``label_min_radius_km``) and at most the distance to the farthest of
    the set. The weights reach 0 at R, so the label features change continuously as a cell moves, and far from
    the sites R grows with the gap: the features average many sites where the nearest one is hundreds of km away,
    instead of following whichever 10 sites are nearest (:mod:`socmap.model.label_kernel`). ``null``: the spatial
    relation's edges and weights."""
    label_radius: PositiveFloat = 3.0
    """R of the ``label_k`` kernel as a multiple of the distance to the nearest observed training site."""
    label_min_radius_km: PositiveFloat = 1.0
    """Smallest R of the ``label_k`` kernel, km (a cell on top of a site still averages its close neighbours)."""


class RGATConfig(_Strict):
    """Relational graph attention stack (paper 3.6, Table 6)."""

    hidden_dims: list[PositiveInt] = Field(default_factory=lambda: [512, 256, 128, 64])
    heads: PositiveInt = 4
    bases: PositiveInt | None = 4
    attention_mechanism: Literal["within-relation", "across-relation"] = "within-relation"
    attention_mode: Literal["additive-self-attention", "multiplicative-self-attention"] = (
        "multiplicative-self-attention"
    )
    negative_slope: PositiveFloat = 0.106
    dropout: Fraction = 0.286
    edge_weights: bool = True
    """Feed each edge's weight (inverse distance, NDVI or slope similarity, in (0, 1]) to the attention logits."""
    edge_weight_mode: Literal["log-prior", "rgatconv"] = "log-prior"
    """How the edge weight w enters the attention logits (used when ``edge_weights`` is true).
    ``log-prior``: logit + c[r, h] * log(w), a learned coefficient per relation and head starting at 1, so a
    weaker neighbour (w < 1, log w < 0) is always pushed down and each relation scales its own weights.
    ``rgatconv``: RGATConv's one-dimensional edge feature (w W_e) E, which in multiplicative attention multiplies
    the logit (a weak neighbour's logit shrinks towards 0 rather than down); kept for the equivalence with
    torch_geometric.nn.RGATConv and for comparison."""


class MLPConfig(_Strict):
    hidden: list[PositiveInt] = Field(default_factory=list)
    out: PositiveInt = 128
    dropout: Fraction = 0.1


Stream = Literal["image", "tabular", "position", "time"]
"""An input stream of the fusion (paper 3.3)."""


class ModelConfig(_Strict):
    """SpTGNN architecture."""

    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    positional: PositionalConfig = Field(default_factory=PositionalConfig)
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    moe: MoEConfig = Field(default_factory=MoEConfig)
    graph: GraphConfig = Field(default_factory=GraphConfig)
    rgat: RGATConfig = Field(default_factory=RGATConfig)
    pre_mlp: MLPConfig = Field(default_factory=lambda: MLPConfig(hidden=[256, 128], out=256, dropout=0.161))
    post_mlp: MLPConfig = Field(default_factory=lambda: MLPConfig(hidden=[256, 128], out=128, dropout=0.10))
    streams: list[Stream] = Field(default_factory=lambda: list(get_args(Stream)))
    """Input streams fed to the fusion; drop one for an ablation or where it does not exist."""
    logvar_min: float = -10.0
    logvar_max: float = 5.0
    """Bounds s_min, s_max of the log-variance head."""
    label_input: bool = False
    """Label trick (stack notes): feed neighbours' observed targets over the spatial relation as an extra fusion
    stream (IDW mean, observed weight, observed fraction). The trainer must hide the loss nodes' own labels."""
    huber_delta: PositiveFloat = 1.0
    """Huber threshold of the main and Moran's I losses, in target units (log SOC)."""


class TrainConfig(_Strict):
    """Optimisation of the SpTGNN deep ensemble (paper 3.7, 3.8, 5.1, Table 6); read by ``socmap train``.

    Targets are :math:`y = \\log(1 + \\mathrm{SOC})` standardised with the training split's mean and sd; every loss
    below is computed on that standardised target, every metric is reported in g/kg.
    """

    learning_rate: PositiveFloat = 1.95e-4
    """AdamW learning rate (per optimiser step)."""
    weight_decay: Annotated[float, Field(ge=0)] = 2.79e-5
    """AdamW decoupled weight decay."""
    grad_clip: PositiveFloat = 0.5
    """Maximum global L2 norm of the gradient (clipped before each step)."""
    epochs: PositiveInt = 100
    """Maximum epochs. Full-graph mode: one optimiser step per epoch; mini-batch mode: one pass over the training
    nodes in batches of ``batch_size`` seed nodes."""
    early_stop_patience: PositiveInt = 30
    """Epochs (validation rounds, see ``val_every_steps``) without a better validation ``select_metric`` before a
    member stops; the best round's weights are kept."""
    select_metric: Literal["rmse", "nll", "mape"] = "nll"
    """Validation figure that picks the kept weights and drives early stopping: ``nll`` (the Gaussian NLL of the
    standardised log target: a proper score of the whole predictive, robust on a small validation split), ``rmse``
    (g/kg; a few large sites dominate it on a small split) or ``mape`` (%, the paper's; it rewards
    under-prediction, so a map selected on it is biased low). Demo world map R2 against the truth: nll 0.888, rmse
    0.844 (30 validation sites); africa-coarse selects on rmse (1,040 validation sites)."""
    lr_patience: PositiveInt = 10
    """ReduceLROnPlateau patience, epochs without a lower validation loss before the learning rate is halved."""
    batch_size: PositiveInt = 32
    """Mini-batch mode: seed nodes per step (each step runs on their L-hop in-neighbourhood, L = RGAT layers)."""
    fanouts: list[PositiveInt] | None = None
    """Mini-batch mode: in-edges sampled per node, relation and hop, seeds' hop first (one entry per RGAT layer),
    as PyG's NeighborLoader does; ``null`` keeps every in-edge (the exact L-hop neighbourhood, which on a k-NN
    graph grows to most of the graph within 3-4 hops)."""
    val_every_steps: PositiveInt | None = None
    """Optimiser steps per validation round; a round counts as one "epoch" of ``epochs``, the patiences, the
    hybrid warm-up and the log. ``null``: one step (full graph) or one pass over the training nodes
    (mini-batch) per round."""
    aux_weight: Annotated[float, Field(ge=0)] = 5.3e-5
    """lambda_a of eq. (3): weight of the Huber loss of the local Moran's I head."""
    loss: Literal["huber", "mse", "hybrid", "nll", "beta-nll"] = "hybrid"
    """Main loss of eq. (3): Huber; MSE; Gaussian NLL (eq. 4); beta-NLL (eq. 5); hybrid = MSE for
    ``warm_start_epochs`` epochs, then MSE + ``nll_weight`` x NLL."""
    nll_weight: Annotated[float, Field(ge=0)] = 0.05
    """Weight of the NLL term of the hybrid loss after the warm-up."""
    beta: Annotated[float, Field(ge=0, le=1)] = 0.5
    """beta of the beta-NLL (eq. 5): each node's NLL is weighted by the stop-gradient sigma^(2 beta)."""
    warm_start_epochs: Annotated[int, Field(ge=0)] = 30
    """Hybrid loss: epochs trained on MSE alone before the NLL term is added."""
    ensemble_members: PositiveInt = 5
    """Deep-ensemble size M (members differ in seed: initialisation and batch order)."""
    seed: int = 0
    """Seed of member 0; member m uses seed + m."""
    device: Device = AUTO
    """Torch device of training (:mod:`socmap.device`: ``auto`` is CUDA when present, else the CPU); ``socmap
    train --device`` overrides it."""
    mode: Literal["auto", "full", "minibatch"] = "auto"
    """``full``: one step per epoch over the whole graph (loss on a random ``loss_fraction`` of the training nodes);
    ``minibatch``: steps on the L-hop subgraphs of ``batch_size`` seed nodes; ``auto``: full when the graph has at
    most ``full_graph_max_nodes`` nodes."""
    full_graph_max_nodes: PositiveInt = 30000
    """Largest graph (nodes) that ``mode: auto`` trains full-graph."""
    max_minutes: PositiveFloat | None = None
    """Wall-clock budget per member, minutes: a member stops after the epoch that crosses it (best epoch kept);
    ``null`` = no budget."""
    loss_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Full-graph mode: fraction of the training nodes whose loss a step computes, drawn afresh each step. With
    ``model.label_input`` these are the nodes whose labels are hidden from the inputs in that step, so it must be
    < 1 there (the other training labels are the visible ones)."""
    mask_block_km: PositiveFloat | None = None
    """Full-graph mode, spatial label masking, km: with a value, a share (``mask_block_steps``) of the
    steps computes the loss on the training nodes inside a random ``mask_block_fraction`` of the ``mask_block_km``
    squares, and those nodes are detached from the graph as map cells are (in-edges from the visible training
    nodes only, no out-edges). Random hidden nodes always have visible neighbours a few km away; a map cell in an
    unsurveyed region has its nearest sites hundreds of km away, and only these steps show the model that case
    (label features from distant sites, attention over far neighbours), so it learns to lean on the covariates
    and to widen its variance there. ``null``: random nodes only. Measured once on Africa's block protocol (100 km,
    half the steps): worse, see the development notes; an option to tune, not a default."""
    mask_block_steps: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Share of the full-graph steps that mask blocks when ``mask_block_km`` is set (the rest mask random nodes)."""
    mask_block_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    """Share of the occupied blocks whose training nodes a block-masked step holds out."""
    mask_variants: PositiveInt = 8
    """Block layouts (random grid offset and block draw) built once before training, each a graph the masked
    steps cycle through at random (a graph build takes seconds; one per step would dominate the step)."""
    variance_blocks_km: list[PositiveFloat] = Field(default_factory=list)
    """Spatial block cross-validation inside the training part for the variance growth, km: for each size one
    extra model (one member, the same configuration) is trained without a random ``variance_block_fraction`` of
    the blocks of that size that hold training sites, and predicts them. Its residuals there, at their distance to
    the remaining sites and their dissimilarity index, fit how the variance grows away from the data
    (:mod:`socmap.inference.growth`); sizes from the site spacing to a sizeable share of the region let the
    held-out distances span the map's. Each size costs about one member's training; a size whose one block holds
    every training site is skipped. Empty: the growth is fitted on the validation sites alone, almost all of them
    near a training site."""
    variance_block_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    """Share of the occupied blocks each ``variance_blocks_km`` fold holds out."""


# ---------------------------------------------------------------------------------------------- tuning
class TuneParam(_Strict):
    """One searched hyper-parameter: a list of ``choices`` (categorical) or a numeric range ``[low, high]``.

    The key it sits under in ``tune.space`` is the dotted pipeline key it sets (``train.learning_rate``,
    ``model.rgat.hidden_dims``); every value must be one that key accepts (checked on load).
    """

    choices: list[Any] | None = None
    """Categorical values (numbers, strings, lists such as RGAT widths ``[256, 128]``)."""
    low: float | None = None
    high: float | None = None
    """Numeric range, both ends included (in the key's own units)."""
    log: bool = False
    """Sample the range on a log scale (learning rate, weight decay); needs ``low > 0``."""
    integer: bool = False
    """Integer range (e.g. ``train.warm_start_epochs``)."""

    @model_validator(mode="after")
    def _one_kind(self) -> TuneParam:
        ranged = self.low is not None or self.high is not None
        if (self.choices is not None) == ranged:
            raise ValueError("give either choices: [...] or low and high")
        if self.choices is not None:
            if not self.choices:
                raise ValueError("choices must hold at least one value")
            if self.log or self.integer:
                raise ValueError("log / integer apply to a low-high range, not to choices")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high")
        if not self.high >= self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self

    def values_to_check(self) -> list[Any]:
        """Values to validate against the pipeline key: every choice, or the two ends of the range."""
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.integer:
            return [int(self.low), int(self.high)]
        return [self.low, self.high, self.low + (self.high - self.low) * 0.377]  # a non-integer inside


class PrunerConfig(_Strict):
    """Early stopping of bad trials from the validation MAPE each epoch reports (best so far, %)."""

    kind: Literal["median", "halving", "none"] = "median"
    """``median``: optuna's MedianPruner (stop a trial whose best MAPE is worse than the median of earlier trials
    at the same epoch); ``halving``: SuccessiveHalvingPruner (asynchronous successive halving); ``none``."""
    startup_trials: Annotated[int, Field(ge=0)] = 4
    """median: trials finished before any is pruned."""
    warmup_epochs: Annotated[int, Field(ge=0)] = 5
    """median: epochs a trial always runs before it can be pruned."""
    min_resource: PositiveInt = 5
    """halving: epochs of the first rung."""
    reduction_factor: Annotated[int, Field(ge=2)] = 3
    """halving: 1 / the fraction of trials promoted to the next rung."""


class TuneConfig(_Strict):
    """The two-step hyper-parameter search of ``socmap tune`` (paper 5.2, Table 6).

    Step 1 (*wide*) samples ``space``; step 2 (*narrow*) samples the space narrowed to the top quartile of step 1:
    categoricals keep the values that occur there, ranges shrink to the span those trials cover. Trials are ranked
    on the validation split only: MAPE (%) of the best epoch, R2 breaking ties.
    """

    space: dict[str, TuneParam]
    """Searched keys (dotted pipeline keys) and their values or ranges."""
    wide_trials: PositiveInt = 24
    narrow_trials: Annotated[int, Field(ge=0)] = 16
    """Trials of each step; ``--trials N`` splits N in the same proportion."""
    epochs: PositiveInt = 30
    """Maximum epochs of each trial (one member; early stopping as in ``train``); ``--epochs`` overrides."""
    trial_minutes: PositiveFloat | None = None
    """Wall-clock budget of one trial, minutes (sets ``train.max_minutes`` in the trials); ``null`` = none."""
    top_fraction: Annotated[float, Field(gt=0, le=1)] = 0.25
    """Fraction of step 1's finished trials (best first) that defines the narrowed space (0.25 = top quartile)."""
    startup_trials: PositiveInt = 8
    """Random trials before the TPE sampler models the results (per step)."""
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    final_members: PositiveInt | None = None
    """Ensemble members of the final retrain of the best and the hand-set configuration (``null`` =
    ``train.ensemble_members``)."""
    final_epochs: PositiveInt | None = None
    """Epochs of the final retrains (``null`` = ``train.epochs``); the same for both configurations."""
    seed: int = 0
    """Seed of the samplers and of every trial's training."""
    enqueue_hand_set: bool = True
    """Make the pipeline's own (hand-set) values the wide step's first trial, for every searched key whose
    hand-set value lies inside the space: the search then always holds the configuration it is compared with,
    and its best is at least as good on validation (with the same epochs per trial)."""

    @model_validator(mode="after")
    def _check(self) -> TuneConfig:
        if not self.space:
            raise ValueError("space must name at least one key to search")
        return self


# ---------------------------------------------------------------------------------------------- output
class OutputConfig(_Strict):
    """Map products written by ``socmap predict`` (``DIR/REGION/YEAR/``)."""

    year: int = 2024
    """Map year used when ``socmap predict`` is run without ``--year`` (calendar year)."""
    formats: list[Literal["cog", "zarr"]] = Field(default_factory=lambda: ["cog", "zarr"])
    """``cog``: one Cloud-Optimized GeoTIFF per tile and layer plus a VRT mosaic per layer; ``zarr``: one zarr v3
    store holding every layer."""
    variables: list[
        Literal["soc_mean", "soc_median", "aleatoric_var", "epistemic_var", "total_sd", "q05", "q95", "aoa"]
    ] = Field(
        default_factory=lambda: ["soc_mean", "soc_median", "aleatoric_var", "epistemic_var", "total_sd", "q05",
                                  "q95", "aoa"]
    )
    """Layers written: SOC expectation (g/kg; what zone means and stocks need) and median (g/kg), aleatoric and
    epistemic variance ((g/kg)^2), total sd (g/kg), 5 % and 95 % bounds (g/kg), area-of-applicability flag
    (1 = outside)."""
    nodata: float = -9999.0
    """No-data value of the float layers (cells outside the covariate rasters' data, e.g. sea); the uint8 ``aoa``
    layer uses 255."""
    embedding_mode: Literal["fast", "exact"] = "fast"
    """fast: one token map per tile, max over a cell's 224-px neighbourhood; exact: a patch per cell."""
    mask_layers: list[str] = Field(default_factory=list)
    """Covariate layers (``data.covariates`` names) whose own cell must hold data for a map cell to be mapped
    (e.g. a land-cover layer that covers only the mapped land). Empty: a cell is mapped where at least one
    covariate layer has data at the cell itself; cells where none has (sea) are no-data."""
    mask_exclude_codes: list[float] = Field(default_factory=list)
    """Values of the ``mask_layers`` that also mean "not mapped" (e.g. CGLS land-cover code 200, open sea)."""
    aoa_distance_quantile: Annotated[float, Field(gt=0, le=1)] = 0.99
    """Area of applicability, distance rule: a cell whose nearest training node is farther than this quantile of
    the training nodes' own nearest-neighbour distances (great circle, km) is flagged."""
    aoa_range_margin: Annotated[float, Field(ge=0)] = 0.1
    """Area of applicability, range rule: a cell with any tabular input outside its training [min, max] by more
    than this fraction of the training range is flagged."""
    quicklook_px: PositiveInt = 1024
    """Longest edge of the quick-look PNGs, pixels (the mosaic is read decimated, never whole)."""
    member_maps: bool = True
    """Also write each ensemble member's calibrated SOC map (``soc_member``, (member, y, x), g/kg) into the zarr
    store: ``socmap aggregate`` takes the epistemic part of a zone mean's interval from the members' zone means."""
    bulk_density: str | None = None
    """Fine-earth bulk density raster of 0-30 cm (``socmap aggregate`` turns SOC into a stock where given); any
    CRS and resolution, averaged onto the map grid. Unit: g/cm3 after ``bulk_density_scale``."""
    bulk_density_scale: Annotated[float, Field(gt=0)] = 1.0
    """Factor from the raster's values to g/cm3 (SoilGrids ``bdod`` is in cg/cm3: 0.01)."""
    coarse_fragments: str | None = None
    """Optional coarse-fragment raster of 0-30 cm, volume fraction 0..1 after ``coarse_fragments_scale``
    (absent: no coarse fragments)."""
    coarse_fragments_scale: Annotated[float, Field(gt=0)] = 1.0
    """Factor from the raster's values to a volume fraction (SoilGrids ``cfvo`` is in cm3/dm3: 0.001)."""

    @model_validator(mode="after")
    def _check(self) -> OutputConfig:
        if not self.formats:
            raise ValueError("formats must name at least one of cog, zarr")
        if not self.variables:
            raise ValueError("variables must name at least one layer")
        return self


class PipelineConfig(_Strict):
    """A whole region's pipeline: data, imagery, model, training and outputs."""

    preset: Preset = DEFAULT_PRESET
    """Set-up the ``model`` and ``train`` keys this YAML leaves out come from (:mod:`socmap.config.presets`):
    ``cpu``, the configuration measured on 2 CPU cores (narrow widths, label trick, full-graph steps, 3
    members); ``table6``, the paper's Table 6 set-up for GPUs (the defaults listed in the ``model`` and ``train``
    tables). Keys the YAML sets always win; nested sections merge key by key."""
    name: str
    description: str = ""
    grid: str
    """Grid name (``grids/<name>.yaml``) or path to a grid YAML."""
    data: DataConfig = Field(default_factory=DataConfig)
    stac: StacConfig | None = None
    """``null`` where no imagery is used (the real Africa point set)."""
    imagery: ImageryConfig = Field(default_factory=ImageryConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    tune: TuneConfig | None = None
    """Hyper-parameter search space and budget of ``socmap tune``; ``null`` where none is declared."""

    source_file: Path | None = Field(default=None, exclude=True)
    """The YAML this config was read from (set by :func:`load_pipeline`)."""

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        """The preset's ``model`` / ``train`` values under every key the YAML does not set."""
        return apply_preset(data)

    @model_validator(mode="after")
    def _tune_keys(self) -> PipelineConfig:
        """Every ``tune.space`` key is a pipeline key outside ``tune`` and every value it may take is valid there."""
        if self.tune is None:
            return self
        base = self.model_dump(mode="json", exclude={"tune"})
        for key, param in self.tune.space.items():
            parts = key.split(".")
            node: Any = base
            for i, part in enumerate(parts):
                if not isinstance(node, dict) or part not in node:
                    raise ValueError(f"tune.space: {key!r} is not a pipeline key ({'.'.join(parts[: i + 1])!r} "
                                     "does not exist)")
                node = node[part]
            if parts[0] in ("name", "description", "grid", "data", "stac", "imagery", "output"):
                raise ValueError(f"tune.space: {key!r} cannot be searched (only model.* and train.* keys)")
            for value in param.values_to_check():
                trial = set_dotted(copy.deepcopy(base), key, value)
                try:
                    PipelineConfig.model_validate(trial)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"])
                    hint = "; add integer: true" if first["type"].startswith("int_") and param.low is not None else ""
                    raise ValueError(f"tune.space: {key!r} value {value!r} is not valid ({where}: "
                                     f"{first['msg'].removeprefix('Value error, ')}{hint})") from None
        return self

    def resolve(self, path: str | None) -> str | None:
        """A path from this pipeline, made absolute against the YAML's folder (URLs pass through)."""
        return resolve_path(path, self.source_file)

    def missing_relation_inputs(self) -> list[str]:
        """One message per graph relation whose per-site value nothing in this pipeline provides.

        The ``ndvi`` and ``elevation`` relations read a covariate layer of that name (at the sites and at every
        map cell), a survey covariate of that name or, with imagery, the image covariates ``socmap extract``
        writes; ``socmap train`` stops on the same gap once the data is prepared, this finds it from the YAML alone.
        """
        layers = {layer.name for layer in self.data.covariates} | set(self.data.survey_covariates)
        imagery = self.imagery.enabled and self.stac is not None
        return [f"the {rel!r} relation needs a per-sample {rel} value: add a covariate layer named {rel!r} to "
                f"data.covariates" + (", run `socmap extract` (image covariates)," if imagery else "")
                + f" or drop {rel!r} from model.graph.relations"
                for rel in ("ndvi", "elevation")
                if rel in self.model.graph.relations and rel not in layers and not imagery]

    def load_grid(self) -> GridConfig:
        """The grid this pipeline maps onto."""
        base = self.source_file.parent if self.source_file else None
        return GridConfig.from_yaml(find_grid(self.grid, base).resolve())

    @classmethod
    def from_yaml(cls, path: Path) -> PipelineConfig:
        """The pipeline in the YAML at ``path`` (absolute), which it remembers as its :attr:`source_file`."""
        cfg = validate_yaml(cls, path)
        cfg.source_file = path
        return cfg


class GridConfig(_Strict):
    """Map grid: cells of ``resolution`` CRS units, in tiles of ``tile_size`` x ``tile_size`` cells."""

    name: str
    crs: str
    """Anything pyproj understands: ``EPSG:32737``, ``ESRI:102022``..."""
    resolution: PositiveFloat
    """Cell size in CRS units (metres for projected CRSs)."""
    bounds: tuple[float, float, float, float]
    """(xmin, ymin, xmax, ymax) in CRS units."""
    tile_size: PositiveInt = 512
    """Tile edge in cells; a tile is the unit of work of the mapping job."""

    source_file: Path | None = Field(default=None, exclude=True)
    """The YAML this grid was read from (set by :meth:`from_yaml`)."""

    @classmethod
    def from_yaml(cls, path: Path) -> GridConfig:
        """The grid in the YAML at ``path`` (absolute), which it remembers as its :attr:`source_file`."""
        cfg = validate_yaml(cls, path)
        cfg.source_file = path
        return cfg

    @model_validator(mode="after")
    def _check(self) -> GridConfig:
        xmin, ymin, xmax, ymax = self.bounds
        if not (xmax > xmin and ymax > ymin):
            raise ValueError(f"bounds must be (xmin, ymin, xmax, ymax) with max > min, got {self.bounds}")
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(self.crs)
        except CRSError as exc:
            raise ValueError(f"unknown crs {self.crs!r}") from exc
        return self

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the whole grid."""
        xmin, ymin, xmax, ymax = self.bounds
        return (round((ymax - ymin) / self.resolution), round((xmax - xmin) / self.resolution))

