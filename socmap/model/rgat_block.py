"""One layer of the RGAT stack: relational attention, activation, residual projection and LayerNorm (paper 3.6)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from socmap.config import RGATConfig
from socmap.model.rgat_conv import FastRGATConv

__all__ = ["RGATBlock"]


class RGATBlock(nn.Module):
    r"""A stack layer of Algorithm 1: :math:`h^{(\ell)} = \mathrm{LN}(\mathrm{Skip}(h^{(\ell-1)}) + h')`.

    .. math::
        h'_i = \mathrm{Dropout}\big(\mathrm{ELU}(\mathrm{RGAT}(h^{(\ell-1)})_i)\big), \qquad
        h^{(\ell)}_i = \mathrm{LN}\big(W_{skip} h^{(\ell-1)}_i + h'_i\big)

    ``RGAT`` is :class:`FastRGATConv` with ``heads`` concatenated heads of width ``out_dim / heads`` (``out_dim``
    must be a multiple of ``heads``); the skip is a learned linear projection (no bias) even when the widths match.
    ``dropout`` acts both on the attention coefficients and on :math:`h'`. With ``edge_weights=True`` the edge
    weight (in (0, 1]) enters the attention logits as set by ``edge_weight_mode``: ``"log-prior"`` adds
    :math:`c_{r,h} \log w` (a learned coefficient per relation and head, 1 after reset), ``"rgatconv"`` uses
    RGATConv's one-dimensional edge feature.

    Shapes:
        - **input:** :math:`(|V|, F_{in})` or a (sources, targets) pair, edge index :math:`(2, |E|)`,
          edge type :math:`(|E|)`, edge weight :math:`(|E|)`
        - **output:** :math:`(|V_t|, F_{out})`
    """

    def __init__(self, in_dim: int, out_dim: int, num_relations: int, cfg: RGATConfig) -> None:
        super().__init__()
        if out_dim % cfg.heads:
            raise ValueError(f"RGAT width {out_dim} must be a multiple of heads={cfg.heads}")
        self.edge_mode: str | None = cfg.edge_weight_mode if cfg.edge_weights else None
        self.conv = FastRGATConv(
            in_dim, out_dim // cfg.heads, num_relations, num_bases=cfg.bases,
            attention_mechanism=cfg.attention_mechanism, attention_mode=cfg.attention_mode, heads=cfg.heads,
            negative_slope=cfg.negative_slope, dropout=cfg.dropout,
            edge_dim=1 if self.edge_mode == "rgatconv" else None, edge_prior=self.edge_mode == "log-prior",
        )
        # Built uninitialised: reset_parameters() is the one place weights are set.
        self.skip = nn.utils.skip_init(nn.Linear, in_dim, out_dim, bias=False)
        self.norm = nn.utils.skip_init(nn.LayerNorm, out_dim)
        self.dropout = cfg.dropout
        self.in_dim, self.out_dim = in_dim, out_dim
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        self.skip.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, x: Tensor | tuple[Tensor, Tensor], edge_index: Tensor, edge_type: Tensor,
                edge_weight: Tensor | None = None) -> Tensor:
        x_dst = x[1] if isinstance(x, tuple) else x
        if self.edge_mode == "log-prior":
            h = self.conv(x, edge_index, edge_type, edge_weight=edge_weight)
        elif self.edge_mode == "rgatconv":
            h = self.conv(x, edge_index, edge_type, edge_weight)
        else:
            h = self.conv(x, edge_index, edge_type)
        assert isinstance(h, Tensor)
        h = F.dropout(F.elu(h), p=self.dropout, training=self.training)
        return self.norm(self.skip(x_dst) + h)
