"""SpTGNN: streams -> MoE fusion -> Pre-MLP -> RGAT stack -> Post-MLP -> three heads (paper 3.2, Algorithm 1)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from socmap.config import ModelConfig
from socmap.graph.relations import HeteroGraph, edge_length_km
from socmap.layers import MLP
from socmap.model.label_kernel import adaptive_label_features
from socmap.model.moe import MoEStats, build_fusion
from socmap.model.positional import PositionalEncoder
from socmap.model.rgat_block import RGATBlock
from socmap.model.temporal import TemporalEncoder

__all__ = ["NodeInputs", "SpTGNN", "SpTGNNOutput", "label_features"]

STREAMS = ("image", "tabular", "position", "time")


@dataclass
class NodeInputs:
    """Per-node inputs. ``lonlat`` (N, 2) degrees; ``year`` (N,) calendar year; ``tabular`` (N, d) preprocessed
    covariates; ``image`` (N, d_vit) cached ViT embedding (:func:`socmap.encoders.embed.run`); ``image_ok`` (N,) bool,
    False where a sample has no patch (a learned "no image" vector replaces its embedding)."""

    lonlat: Tensor
    year: Tensor
    tabular: Tensor | None = None
    image: Tensor | None = None
    image_ok: Tensor | None = None
    label: Tensor | None = None
    """(N,) observed target used as an *input* by the optional label trick (``model.label_input``); NaN where
    hidden. The trainer must hide the labels of the nodes it computes the loss on (see :func:`label_features`)."""

    def __len__(self) -> int:
        return self.lonlat.size(0)

    def map(self, fn: Callable[[Tensor], Tensor]) -> NodeInputs:
        """A copy with ``fn`` applied to every tensor field (None fields stay None)."""
        def opt(t: Tensor | None) -> Tensor | None:
            return None if t is None else fn(t)

        return NodeInputs(fn(self.lonlat), fn(self.year), opt(self.tabular), opt(self.image), opt(self.image_ok),
                          opt(self.label))

    def index(self, idx: Tensor) -> NodeInputs:
        return self.map(lambda t: t[idx])

    def to(self, device: torch.device | str) -> NodeInputs:
        return self.map(lambda t: t.to(device))


@dataclass
class SpTGNNOutput:
    """``soc`` (N,) point prediction (target units, e.g. log SOC); ``moran`` (N,) local Moran's I auxiliary;
    ``logvar`` (N,) bounded log-variance :math:`s_i`; ``moe`` the fusion's :class:`MoEStats` (``moe.loss`` is
    :math:`L_{MoE}`); ``hidden`` the per-layer node embeddings :math:`h^{(0)} \\dots h^{(L)}` when asked."""

    soc: Tensor
    moran: Tensor
    logvar: Tensor
    moe: MoEStats
    hidden: list[Tensor] | None = None

    @property
    def moe_loss(self) -> Tensor:
        return self.moe.loss

    @property
    def variance(self) -> Tensor:
        return self.logvar.exp()


def label_features(label_src: Tensor, edge_index: Tensor, edge_weight: Tensor, num_targets: int,
                   dist_km: Tensor | None = None) -> Tensor:
    r"""Neighbours' observed targets over the spatial relation (the optional "label trick").

    For target :math:`i` with spatial in-edges :math:`j \to i` (weights :math:`w_{ij}`) and observed set
    :math:`O` (finite ``label_src``):

    .. math::
        \big[\tfrac{\sum_{j \in O} w_{ij} y_j}{\sum_{j \in O} w_{ij}},\ \sum_{j \in O} w_{ij},\
        \tfrac{|O \cap \mathcal N(i)|}{|\mathcal N(i)|}\big]

    (0 where no neighbour is observed). With ``dist_km`` (E,) edge lengths (continuous weighting,
    ``model.graph.weighting``) the features are :math:`[\bar y_O, \sum_O w / \sum w,
    \log(1 + \sum_O w d / \sum_O w)]`: the observed share is weighted, not counted (a count jumps when the k-set
    changes), and the third says how far, in km, the observed neighbours are, so the model can widen its variance
    away from the data. A node's own label never enters its own feature (the spatial relation
    has no self-loops), but it reaches its neighbours' features and so comes back after two RGAT hops: the trainer
    must hide (NaN) the labels of the nodes whose loss it computes, e.g. a random half of the training nodes per
    step, and all validation/test labels.

    Shapes: ``label_src`` (|V_s|,), ``edge_index`` (2, E) spatial edges, ``edge_weight`` (E,) -> (|V_t|, 3).
    """
    src, dst = edge_index[0], edge_index[1]
    y = label_src[src]
    obs = torch.isfinite(y)
    w = torch.where(obs, edge_weight, torch.zeros_like(edge_weight))
    yw = torch.where(obs, y, torch.zeros_like(y)) * w
    z = label_src.new_zeros(num_targets)
    sw = z.index_add(0, dst, w)
    mean = z.index_add(0, dst, yw) / sw.clamp_min(1e-12)
    if dist_km is not None:
        share = sw / z.index_add(0, dst, edge_weight).clamp_min(1e-12)
        mean_d = z.index_add(0, dst, w * dist_km.to(w.dtype)) / sw.clamp_min(1e-12)
        return torch.stack([mean, share, torch.log1p(mean_d)], dim=1)
    n_all = z.index_add(0, dst, torch.ones_like(w))
    n_obs = z.index_add(0, dst, obs.to(w.dtype))
    return torch.stack([mean, sw, n_obs / n_all.clamp_min(1.0)], dim=1)


class SpTGNN(nn.Module):
    r"""The SpTGNN model (Algorithm 1).

    .. math::
        \mathbf u_i = \mathrm{MoE}\big([\mathbf h^{vit}_i; \mathbf x_i; \mathbf e^{pos}_i; \mathbf e^{time}_i]\big),
        \quad h^{(0)}_i = \mathrm{PreMLP}(\mathbf u_i),
        \quad h^{(\ell)} = \mathrm{LN}(\mathrm{Skip}(h^{(\ell-1)}) + \mathrm{RGAT}_\ell(h^{(\ell-1)}))

    .. math::
        h^\star_i = \mathrm{GELU}(\mathrm{PostMLP}(h^{(L)}_i)), \quad \hat y_i = w_y^\top h^\star_i + b_y, \quad
        \hat\iota_i = w_\iota^\top h^\star_i + b_\iota, \quad
        s_i = s_{min} + (s_{max} - s_{min}) \tfrac{1}{2}\big(1 + \tanh(w_\sigma^\top h^\star_i + b_\sigma)\big)

    Streams listed in ``cfg.streams`` are used; any can be switched off (no imagery: drop ``image``). The cached
    ViT embedding is the image stream (the ViT never runs here). ``cfg.graph.relations`` fixes the number of
    relations, in that order.

    Args:
        cfg (ModelConfig): the model block of a pipeline.
        tabular_dim (int): width of the tabular covariates (0 if the stream is off).
        image_dim (int): width of the cached ViT embedding (0 if the stream is off).
        year_range (tuple[float, float], optional): ``(t_min, t_max)`` of the temporal encoder, calendar years;
            overrides ``cfg.temporal.year_min/year_max``. Otherwise, where the config leaves them null, call
            :meth:`fit_year_range` on the training years before the first forward pass. The range is a buffer of
            the state dict, so a loaded model has it.

    Shapes:
        - **input:** :class:`NodeInputs` of :math:`N` nodes, a :class:`HeteroGraph` over them
        - **output:** :class:`SpTGNNOutput` with (N,) tensors
    """

    def __init__(self, cfg: ModelConfig, tabular_dim: int = 0, image_dim: int = 0,
                 year_range: tuple[float, float] | None = None) -> None:
        super().__init__()
        bad = [s for s in cfg.streams if s not in STREAMS]
        if bad or not cfg.streams:
            raise ValueError(f"streams must be a non-empty subset of {STREAMS}, got {cfg.streams}")
        if cfg.logvar_max <= cfg.logvar_min:
            raise ValueError(f"logvar_max ({cfg.logvar_max}) must be > logvar_min ({cfg.logvar_min})")
        self.cfg = cfg
        self.streams = [s for s in STREAMS if s in cfg.streams]
        dims: dict[str, int] = {}
        if "image" in self.streams:
            if image_dim < 1:
                raise ValueError("the image stream is on: give image_dim (the cached embedding width) or drop "
                                 "'image' from model.streams")
            dims["image"] = image_dim
            self.no_image = nn.Parameter(torch.zeros(image_dim))
        else:
            self.register_parameter("no_image", None)
        if "tabular" in self.streams:
            if tabular_dim < 1:
                raise ValueError("the tabular stream is on: give tabular_dim or drop 'tabular' from model.streams")
            dims["tabular"] = tabular_dim
        self.pos_encoder = PositionalEncoder(cfg.positional) if "position" in self.streams else None
        if self.pos_encoder is not None:
            dims["position"] = cfg.positional.out_dim
        self.time_encoder = TemporalEncoder(cfg.temporal) if "time" in self.streams else None
        if self.time_encoder is not None:
            dims["time"] = cfg.temporal.out_dim
            if year_range is not None:
                self.time_encoder.set_year_range(*year_range)
        self.label_input = cfg.label_input
        if self.label_input:
            if "spatial" not in cfg.graph.relations:
                raise ValueError("label_input needs the 'spatial' relation in model.graph.relations")
            dims["label"] = 3
        self.stream_dims = dims
        self.fusion = build_fusion(dims, cfg.moe)
        self.pre_mlp = MLP(cfg.moe.fusion_dim, cfg.pre_mlp.hidden, cfg.pre_mlp.out, cfg.pre_mlp.dropout)
        widths = [cfg.pre_mlp.out, *cfg.rgat.hidden_dims]
        r = len(cfg.graph.relations)
        self.relations = tuple(cfg.graph.relations)
        self.layers = nn.ModuleList(RGATBlock(a, b, r, cfg.rgat) for a, b in itertools.pairwise(widths))
        self._edge_km: tuple[tuple[Tensor, Tensor, Tensor], Tensor] | None = None
        """Edge lengths of the last label-feature call, by tensor identity (training reuses one graph)."""
        if cfg.graph.weighting in ("continuous", "adaptive"):
            for layer in self.layers:
                assert isinstance(layer, RGATBlock)
                layer.conv.prior_min = 1.0
        self.post_mlp = MLP(widths[-1], cfg.post_mlp.hidden, cfg.post_mlp.out, cfg.post_mlp.dropout)
        self.post_act = nn.GELU()
        self.head_soc = nn.Linear(cfg.post_mlp.out, 1)
        self.head_moran = nn.Linear(cfg.post_mlp.out, 1)
        self.head_logvar = nn.Linear(cfg.post_mlp.out, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each sub-module re-initialises its own parameters (every parameter is finite afterwards)."""
        parts = [self.pos_encoder, self.time_encoder, self.fusion, self.pre_mlp, *self.layers, self.post_mlp,
                 self.head_soc, self.head_moran, self.head_logvar]
        for m in parts:
            if m is not None:
                m.reset_parameters()
        if self.no_image is not None:
            nn.init.zeros_(self.no_image)

    def fit_year_range(self, years: np.ndarray | Tensor) -> tuple[float, float] | None:
        """Fit the temporal encoder's year range on the training years (min, max) and return the range in use.

        Call it with the *training* nodes' years only, so prediction sees the same encoding; years outside the
        range are clipped to its ends at encoding time. A range fixed by the config
        (``model.temporal.year_min/year_max``) is kept as it is. Returns None if the time stream is off.
        """
        if self.time_encoder is None:
            return None
        if self.cfg.temporal.year_min is not None:
            return self.time_encoder.year_range
        return self.time_encoder.fit_year_range(years)

    # -------------------------------------------------------------------------------------------- stages
    def stream_inputs(self, inputs: NodeInputs) -> dict[str, Tensor]:
        """The active streams' tensors, encoded (position, time) or as given (image, tabular)."""
        out: dict[str, Tensor] = {}
        for s in self.streams:
            if s == "image":
                if inputs.image is None:
                    raise ValueError("the image stream is on but NodeInputs.image is None")
                img = inputs.image
                ok = inputs.image_ok if inputs.image_ok is not None else torch.isfinite(img).all(dim=1)
                out[s] = torch.where(ok[:, None], torch.nan_to_num(img), self.no_image.expand_as(img))
            elif s == "tabular":
                if inputs.tabular is None:
                    raise ValueError("the tabular stream is on but NodeInputs.tabular is None")
                out[s] = inputs.tabular
            elif s == "position" and self.pos_encoder is not None:
                out[s] = self.pos_encoder(inputs.lonlat)
            elif s == "time" and self.time_encoder is not None:
                out[s] = self.time_encoder(inputs.year)
        return out

    def encode(self, inputs: NodeInputs, label_feats: Tensor | None = None) -> tuple[Tensor, MoEStats]:
        """Per-node stage: streams -> fusion -> Pre-MLP; returns :math:`h^{(0)}` and the MoE stats.

        ``label_feats`` (N, 3) from :func:`label_features` is needed when ``model.label_input`` is on.
        """
        streams = self.stream_inputs(inputs)
        if self.label_input:
            if label_feats is None:
                raise ValueError("model.label_input is on: pass label_feats (see label_features)")
            streams["label"] = label_feats
        u, stats = self.fusion(streams)
        return self.pre_mlp(u), stats

    def graph_label_features(self, inputs: NodeInputs, graph: HeteroGraph) -> Tensor | None:
        """:func:`label_features` of ``inputs.label`` over the graph's spatial relation (None when off)."""
        if not self.label_input:
            return None
        if inputs.label is None:
            raise ValueError("model.label_input is on but NodeInputs.label is None (NaN marks hidden labels)")
        if self.cfg.graph.label_k is not None:
            return self.kernel_label_features(inputs.label.float(), graph)
        ei, w = graph.relation("spatial")
        return self.label_features(inputs.label.float(), ei, w, inputs.lonlat, inputs.lonlat)

    def kernel_label_features(self, label_src: Tensor, graph: HeteroGraph) -> Tensor:
        """The scale-adaptive label features (``model.graph.label_k``,
        :func:`socmap.model.label_kernel.adaptive_label_features`) of ``graph``'s targets over its
        ``label_edges``."""
        if graph.label_edges is None:
            raise ValueError("model.graph.label_k is set but the graph has no label edges (build it with the same "
                             "graph config)")
        g = self.cfg.graph
        ei, dist = (t.to(label_src.device) for t in graph.label_edges)
        return adaptive_label_features(label_src, ei, dist, graph.num_nodes,
                                       radius=g.label_radius, min_radius_km=g.label_min_radius_km)

    def label_features(self, label_src: Tensor, edge_index: Tensor, edge_weight: Tensor, src_lonlat: Tensor,
                       dst_lonlat: Tensor) -> Tensor:
        """:func:`label_features` as this model's graph weighting defines them (edge lengths under
        ``continuous``), for spatial edges from ``src_lonlat`` nodes to ``dst_lonlat`` nodes (degrees)."""
        dist = None
        if self.cfg.graph.weighting in ("continuous", "adaptive"):
            key = (edge_index, src_lonlat, dst_lonlat)
            hit = self._edge_km
            if hit is not None and all(a is b for a, b in zip(hit[0], key, strict=True)):
                dist = hit[1]  # the same graph and coordinates as last call (every training step)
            else:
                dist = edge_length_km(src_lonlat.to(edge_index.device), dst_lonlat, edge_index)
                self._edge_km = (key, dist)
        return label_features(label_src, edge_index, edge_weight, len(dst_lonlat), dist)

    def readout(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Post-MLP and the three heads: ``(soc, moran, logvar)``."""
        hs = self.post_act(self.post_mlp(h))
        s_min, s_max = self.cfg.logvar_min, self.cfg.logvar_max
        logvar = s_min + (s_max - s_min) * 0.5 * (1.0 + torch.tanh(self.head_logvar(hs).squeeze(-1)))
        return self.head_soc(hs).squeeze(-1), self.head_moran(hs).squeeze(-1), logvar

    def check_graph(self, graph: HeteroGraph) -> None:
        """Raise ValueError unless ``graph`` has this model's relations, in the same order."""
        if tuple(graph.relations) != self.relations:
            raise ValueError(f"graph relations {graph.relations} differ from the model's {self.relations}")

    def forward(self, inputs: NodeInputs, graph: HeteroGraph, return_hidden: bool = False,
                label_feats: Tensor | None = None) -> SpTGNNOutput:
        """``label_feats`` (N, 3), when given, replaces the label features of ``inputs.label`` over ``graph``:
        a sampled subgraph lacks the spatial in-edges of its outermost nodes, so the trainer computes them on the
        whole graph."""
        self.check_graph(graph)
        if label_feats is None:
            label_feats = self.graph_label_features(inputs, graph)
        h, stats = self.encode(inputs, label_feats)
        hidden = [h] if return_hidden else None
        for layer in self.layers:
            h = layer(h, graph.edge_index, graph.edge_type, graph.edge_weight)
            if hidden is not None:
                hidden.append(h)
        soc, moran, logvar = self.readout(h)
        return SpTGNNOutput(soc, moran, logvar, stats, hidden)
