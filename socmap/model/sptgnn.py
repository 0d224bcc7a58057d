"""SpTGNN: streams -> MoE fusion -> Pre-MLP -> RGAT stack -> Post-MLP -> three heads (paper 3.2, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from socmap.config import ModelConfig
from socmap.encoders.positional import PositionalEncoder
from socmap.encoders.temporal import TemporalEncoder
from socmap.model.mlp import MLP
from socmap.model.moe import MoEStats, build_fusion
from socmap.model.rgat_block import RGATBlock

if TYPE_CHECKING:  # socmap.graph imports this module (inductive attachment)
    from socmap.graph.relations import HeteroGraph

__all__ = ["NodeInputs", "SpTGNN", "SpTGNNOutput"]

STREAMS = ("image", "tabular", "position", "time")


@dataclass
class NodeInputs:
    """Per-node inputs. ``lonlat`` (N, 2) degrees; ``year`` (N,) calendar year; ``tabular`` (N, d) preprocessed
    covariates; ``image`` (N, d_vit) cached ViT embedding (:func:`socmap.encoders.embed`); ``image_ok`` (N,) bool,
    False where a sample has no patch (a learned "no image" vector replaces its embedding)."""

    lonlat: Tensor
    year: Tensor
    tabular: Tensor | None = None
    image: Tensor | None = None
    image_ok: Tensor | None = None

    def __len__(self) -> int:
        return self.lonlat.size(0)

    def index(self, idx: Tensor) -> NodeInputs:
        return NodeInputs(**{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[idx])
                             for f in fields(self)})

    def to(self, device: torch.device | str) -> NodeInputs:
        return NodeInputs(**{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).to(device))
                             for f in fields(self)})


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


class SpTGNN(nn.Module):
    r"""The SpTGNN model (Algorithm 1).

    .. math::
        \mathbf u_i = \mathrm{MoE}\big([\mathbf h^{vit}_i; \mathbf x_i; \mathbf e^{pos}_i; \mathbf e^{time}_i]\big),
        \quad h^{(0)}_i = \mathrm{PreMLP}(\mathbf u_i),
        \quad h^{(\ell)} = \mathrm{LN}(\mathrm{Skip}(h^{(\ell-1)}) + \mathrm{RGAT}_\ell(h^{(\ell-1)}))

    .. math::
        h^\star_i = \mathrm{PostMLP}(h^{(L)}_i), \quad \hat y_i = w_y^\top h^\star_i + b_y, \quad
        \hat\iota_i = w_\iota^\top h^\star_i + b_\iota, \quad
        s_i = s_{min} + (s_{max} - s_{min}) \tfrac{1}{2}\big(1 + \tanh(w_\sigma^\top h^\star_i + b_\sigma)\big)

    Streams listed in ``cfg.streams`` are used; any can be switched off (no imagery: drop ``image``). The cached
    ViT embedding is the image stream (the ViT never runs here). ``cfg.graph.relations`` fixes the number of
    relations, in that order.

    Args:
        cfg (ModelConfig): the model block of a pipeline.
        tabular_dim (int): width of the tabular covariates (0 if the stream is off).
        image_dim (int): width of the cached ViT embedding (0 if the stream is off).

    Shapes:
        - **input:** :class:`NodeInputs` of :math:`N` nodes, a :class:`HeteroGraph` over them
        - **output:** :class:`SpTGNNOutput` with (N,) tensors
    """

    def __init__(self, cfg: ModelConfig, tabular_dim: int = 0, image_dim: int = 0) -> None:
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
        self.stream_dims = dims
        self.fusion = build_fusion(dims, cfg.moe)
        self.pre_mlp = MLP(cfg.moe.fusion_dim, cfg.pre_mlp.hidden, cfg.pre_mlp.out, cfg.pre_mlp.dropout)
        widths = [cfg.pre_mlp.out, *cfg.rgat.hidden_dims]
        r = len(cfg.graph.relations)
        self.relations = tuple(cfg.graph.relations)
        self.layers = nn.ModuleList(RGATBlock(a, b, r, cfg.rgat) for a, b in zip(widths[:-1], widths[1:]))
        self.post_mlp = MLP(widths[-1], cfg.post_mlp.hidden, cfg.post_mlp.out, cfg.post_mlp.dropout)
        self.post_act = nn.GELU()
        self.head_soc = nn.Linear(cfg.post_mlp.out, 1)
        self.head_moran = nn.Linear(cfg.post_mlp.out, 1)
        self.head_logvar = nn.Linear(cfg.post_mlp.out, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters") and not isinstance(m, SpTGNN):
                m.reset_parameters()
        if self.no_image is not None:
            nn.init.zeros_(self.no_image)

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
            elif s == "position":
                out[s] = self.pos_encoder(inputs.lonlat)  # type: ignore[misc]
            else:
                out[s] = self.time_encoder(inputs.year)  # type: ignore[misc]
        return out

    def encode(self, inputs: NodeInputs) -> tuple[Tensor, MoEStats]:
        """Per-node stage: streams -> fusion -> Pre-MLP; returns :math:`h^{(0)}` and the MoE stats."""
        u, stats = self.fusion(self.stream_inputs(inputs))
        return self.pre_mlp(u), stats

    def readout(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Post-MLP and the three heads: ``(soc, moran, logvar)``."""
        hs = self.post_act(self.post_mlp(h))
        s_min, s_max = self.cfg.logvar_min, self.cfg.logvar_max
        logvar = s_min + (s_max - s_min) * 0.5 * (1.0 + torch.tanh(self.head_logvar(hs).squeeze(-1)))
        return self.head_soc(hs).squeeze(-1), self.head_moran(hs).squeeze(-1), logvar

    def _check_graph(self, graph: HeteroGraph) -> None:
        if tuple(graph.relations) != self.relations:
            raise ValueError(f"graph relations {graph.relations} differ from the model's {self.relations}")

    def forward(self, inputs: NodeInputs, graph: HeteroGraph, return_hidden: bool = False) -> SpTGNNOutput:
        self._check_graph(graph)
        h, stats = self.encode(inputs)
        hidden = [h] if return_hidden else None
        for layer in self.layers:
            h = layer(h, graph.edge_index, graph.edge_type, graph.edge_weight)
            if hidden is not None:
                hidden.append(h)
        soc, moran, logvar = self.readout(h)
        return SpTGNNOutput(soc, moran, logvar, stats, hidden)
