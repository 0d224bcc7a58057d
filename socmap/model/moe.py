"""Sparse mixture-of-experts fusion of the input streams (paper 3.4, 3.7) and the concat+MLP ablation."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from socmap.config import MoEConfig
from socmap.layers import MLP

__all__ = ["ConcatFusion", "MoEFusion", "MoEStats", "build_fusion", "moe_aux_losses"]

EXPERT_TYPES = ("cross-gated", "concat", "additive")


class MoEStats(NamedTuple):
    """Auxiliary terms of one fusion pass (all zero for :class:`ConcatFusion`)."""

    loss: Tensor
    """:math:`w_{LB} L_{LB} + w_{ent} L_{ent}` (the :math:`L_{MoE}` of eq. (3))."""
    load_balance: Tensor
    entropy: Tensor
    usage: Tensor
    """(E,) mean gate weight per expert over the batch."""


def moe_aux_losses(gates: Tensor, load_balance_weight: float, entropy_weight: float = 1.0) -> MoEStats:
    r"""Load-balancing and entropy penalties of paper 3.7 from the (N, E) gate weights (zeros where unrouted).

    .. math::
        \bar u_e = \tfrac{1}{N} \sum_i g_{i,e}, \quad
        L_{LB} = \tfrac{1}{E} \sum_e (\bar u_e - 1/E)^2, \quad
        L_{ent} = \log E + \sum_e \bar u_e \log \bar u_e, \quad
        L_{MoE} = w_{LB} L_{LB} + w_{ent} L_{ent}
    """
    e = gates.size(-1)
    usage = gates.mean(dim=0)
    lb = ((usage - 1.0 / e) ** 2).mean()
    ent = math.log(e) + torch.special.xlogy(usage, usage).sum()
    return MoEStats(load_balance_weight * lb + entropy_weight * ent, lb, ent, usage)


NORMALISED_STREAMS = ("image",)
"""Streams layer-normalised before fusion: the cached ViT embedding has an arbitrary scale. The others are already
on a unit scale (standardised covariates, the position and time encoders' MLP outputs, label features in target
units) and are passed through: a per-stream LayerNorm of a narrow stream throws its information away (two
covariates become (+1, -1) or (-1, +1) whatever their values; the 3-wide label stream loses the neighbours' SOC)."""


def stream_norm(name: str, dim: int) -> nn.Module:
    """LayerNorm for the streams in :data:`NORMALISED_STREAMS`, identity for the others."""
    return nn.LayerNorm(dim) if name in NORMALISED_STREAMS else nn.Identity()


class _Expert(nn.Module):
    """One expert :math:`f_e` over the per-stream normalised inputs (the three types: see :class:`MoEFusion`)."""

    def __init__(self, dims: list[int], fusion_dim: int, expert_type: str) -> None:
        super().__init__()
        self.expert_type = expert_type
        total = sum(dims)
        self.inp: nn.Linear | None = nn.Linear(total, fusion_dim) if expert_type == "concat" else None
        self.proj = None if expert_type == "concat" else nn.ModuleList(nn.Linear(d, fusion_dim) for d in dims)
        self.gate = (nn.ModuleList(nn.Linear(total, fusion_dim) for _ in dims) if expert_type == "cross-gated"
                     else None)
        self.out = nn.Linear(fusion_dim, fusion_dim)

    def forward(self, parts: list[Tensor], z: Tensor) -> Tensor:
        if self.inp is not None:  # concat: one hidden layer over all streams at once
            return self.out(F.gelu(self.inp(z)))
        assert self.proj is not None
        if self.gate is None:  # additive: a nonlinear projection per stream, summed; no cross-stream term
            return self.out(torch.stack([F.gelu(p(x)) for p, x in zip(self.proj, parts, strict=True)]).sum(0))
        # cross-gated: each stream's projection is gated by all streams, summed in place (no stacked copy)
        acc: Tensor | None = None
        for p, g, x in zip(self.proj, self.gate, parts, strict=True):
            term = torch.sigmoid(g(z)) * p(x)
            acc = term if acc is None else acc + term
        assert acc is not None
        return self.out(F.gelu(acc))


class MoEFusion(nn.Module):
    r"""Sparse mixture of experts over the input streams (Shazeer et al., 2017; paper 3.4, Algorithm 1).

    The image stream is layer-normalised (:func:`stream_norm`), then the streams are concatenated into
    :math:`\mathbf z_i`; the router sees :math:`\mathrm{LN}(\mathbf z_i)` as in Algorithm 1:

    .. math::
        \ell_i = W_g \mathrm{LN}(\mathbf z_i) + b_g, \quad
        \mathcal T_i = \operatorname{Top}_k(\ell_i), \quad
        g_{i,e} = \operatorname{softmax}(\ell_{i,\mathcal T_i})_e, \quad
        \mathbf u_i = \sum_{e \in \mathcal T_i} g_{i,e} f_e(\mathbf z_i)

    (dense routing, ``top_k=None``: all experts, softmax over all logits). Expert types, with
    :math:`\hat x_s` the normalised stream :math:`s` and :math:`F` = ``fusion_dim``:

    .. math::
        \text{concat: } f_e = W_2\,\mathrm{GELU}(W_1 \mathbf z), \quad
        \text{additive: } f_e = W_2 \textstyle\sum_s \mathrm{GELU}(P_s \hat x_s), \quad
        \text{cross-gated: } f_e = W_2\,\mathrm{GELU}\big(\textstyle\sum_s \sigma(G_s \mathbf z) \odot P_s \hat x_s\big)

    (biases omitted). The three are different function classes:

    - *concat* is one hidden layer over all streams together: any interaction between streams can be learnt.
    - *additive* passes each stream through its own nonlinear projection and sums them (a generalised additive
      model over streams): :math:`f_e(\mathbf z) = \sum_s g_s(\hat x_s)`, so an expert cannot model an interaction
      between streams (e.g. a product of a covariate and the year); the only cross-stream effects come from the
      router choosing and weighting experts by all streams. A stronger prior, fewer interactions to overfit.
    - *cross-gated* lets every stream open or close every other stream's projection, a multiplicative interaction
      ("expert types cross-gated" of Table 6 is this reading).

    With top-k routing an expert is evaluated only on the nodes routed to them; with dense routing on every node,
    without gathering or scattering rows.

    Args:
        stream_dims (dict[str, int]): width of each active stream (order kept).
        cfg (MoEConfig): experts, expert type, fusion width, top-k, loss weights.

    Shapes:
        - **input:** dict of :math:`(N, F_s)` tensors, one per stream in ``stream_dims``
        - **output:** :math:`(N, F)` and :class:`MoEStats`
    """

    def __init__(self, stream_dims: dict[str, int], cfg: MoEConfig) -> None:
        super().__init__()
        if not stream_dims:
            raise ValueError("at least one input stream is needed (image, tabular, position, time)")
        if cfg.expert_type not in EXPERT_TYPES:
            raise ValueError(f"expert_type must be one of {EXPERT_TYPES}, got {cfg.expert_type!r}")
        if cfg.top_k is not None and cfg.top_k > cfg.experts:
            raise ValueError(f"top_k ({cfg.top_k}) must be <= experts ({cfg.experts}) or null for dense routing")
        self.streams = list(stream_dims)
        dims = [stream_dims[s] for s in self.streams]
        self.norms = nn.ModuleList(stream_norm(s, d) for s, d in zip(self.streams, dims, strict=True))
        self.route_norm = nn.LayerNorm(sum(dims))
        self.gate = nn.Linear(sum(dims), cfg.experts)
        self.experts = nn.ModuleList(_Expert(dims, cfg.fusion_dim, cfg.expert_type) for _ in range(cfg.experts))
        self.top_k, self.num_experts, self.out_dim = cfg.top_k, cfg.experts, cfg.fusion_dim
        self.load_balance_weight, self.entropy_weight = cfg.load_balance_weight, cfg.entropy_weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.LayerNorm)):
                m.reset_parameters()

    def route(self, z: Tensor) -> Tensor:
        """(N, E) gate weights from the concatenated streams ``z``, zero for experts outside a node's top-k."""
        logits = self.gate(self.route_norm(z))
        if self.top_k is None or self.top_k >= self.num_experts:
            return torch.softmax(logits, dim=-1)
        top, idx = logits.topk(self.top_k, dim=-1)
        return torch.zeros_like(logits).scatter(-1, idx, torch.softmax(top, dim=-1))

    def forward(self, streams: dict[str, Tensor]) -> tuple[Tensor, MoEStats]:
        missing = [s for s in self.streams if s not in streams]
        if missing:
            raise ValueError(f"missing input streams {missing}; this fusion was built for {self.streams}")
        parts = [norm(streams[s]) for norm, s in zip(self.norms, self.streams, strict=False)]
        z = torch.cat(parts, dim=-1)
        gates = self.route(z)
        out = z.new_zeros(z.size(0), self.out_dim)
        for e, expert in enumerate(self.experts):
            if self.top_k is None or self.top_k >= self.num_experts:  # dense: every node, no gather or scatter
                out = out + gates[:, e, None] * expert(parts, z)
                continue
            idx = torch.nonzero(gates[:, e] > 0, as_tuple=True)[0]
            if idx.numel() == 0:
                continue
            y = expert([p[idx] for p in parts], z[idx])
            out = out.index_add(0, idx, gates[idx, e, None] * y)
        return out, moe_aux_losses(gates, self.load_balance_weight, self.entropy_weight)


class ConcatFusion(nn.Module):
    r"""The concat+MLP ablation (paper 5.5): the stream normalisation of :class:`MoEFusion`, concatenation,
    ``MLP(sum F_s, [F], F)``.

    .. math::
        \mathbf u_i = W_2\,\mathrm{GELU}(W_1 [\hat x_{i,1}; \dots; \hat x_{i,S}])

    Shapes:
        - **input:** dict of :math:`(N, F_s)` tensors
        - **output:** :math:`(N, F)` and :class:`MoEStats` of zeros
    """

    def __init__(self, stream_dims: dict[str, int], cfg: MoEConfig) -> None:
        super().__init__()
        if not stream_dims:
            raise ValueError("at least one input stream is needed (image, tabular, position, time)")
        self.streams = list(stream_dims)
        dims = [stream_dims[s] for s in self.streams]
        self.norms = nn.ModuleList(stream_norm(s, d) for s, d in zip(self.streams, dims, strict=True))
        self.mlp = MLP(sum(dims), [cfg.fusion_dim], cfg.fusion_dim)
        self.out_dim = cfg.fusion_dim

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.LayerNorm):
                m.reset_parameters()
        self.mlp.reset_parameters()

    def forward(self, streams: dict[str, Tensor]) -> tuple[Tensor, MoEStats]:
        z = torch.cat([norm(streams[s]) for norm, s in zip(self.norms, self.streams, strict=False)], dim=-1)
        zero = z.new_zeros(())
        return self.mlp(z), MoEStats(zero, zero, zero, z.new_zeros(0))


def build_fusion(stream_dims: dict[str, int], cfg: MoEConfig) -> MoEFusion | ConcatFusion:
    """``MoEFusion`` for ``cfg.fusion == "moe"``, ``ConcatFusion`` for ``"concat"``."""
    if cfg.fusion == "moe":
        return MoEFusion(stream_dims, cfg)
    if cfg.fusion == "concat":
        return ConcatFusion(stream_dims, cfg)
    raise ValueError(f"fusion must be 'moe' or 'concat', got {cfg.fusion!r}")
