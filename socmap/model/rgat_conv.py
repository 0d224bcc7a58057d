"""Relational graph attention layer that transforms each node once per relation (fast RGATConv).

:class:`torch_geometric.nn.RGATConv` gathers one ``F_in x (H*C)`` weight matrix per *edge* (``index_select`` then
``bmm``): memory grows as ``|E| * F_in * H * C``. The same maths is computed here by transforming every node once per
relation (``X W_r``, memory ``|V| * R * H * C``) and gathering the transformed rows per edge (``|E| * H * C``).
With weights copied from ``RGATConv`` both layers compute the same function (tests/model/test_rgat_conv.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.utils import softmax

__all__ = ["FastRGATConv"]

MECHANISMS = ("within-relation", "across-relation")
MODES = ("additive-self-attention", "multiplicative-self-attention")


def _glorot(t: Tensor) -> None:
    # Same rule as torch_geometric.nn.inits.glorot (uniform, sqrt(6 / (fan_in + fan_out)) on the last two dims).
    a = math.sqrt(6.0 / (t.size(-2) + t.size(-1)))
    with torch.no_grad():
        t.uniform_(-a, a)


class FastRGATConv(nn.Module):
    r"""Relational graph attention (Busbridge et al., 2019, https://arxiv.org/abs/1904.05811), node-wise transform.

    For relation :math:`r` the node features are transformed once,
    :math:`G_r = X W_r` with :math:`W_r = \sum_b a_{rb} V_b` under basis decomposition. For an edge
    :math:`j \xrightarrow{r} i` the query and key are gathered rows:

    .. math::
        q_{i,r} = G_r[i]\, Q, \qquad k_{j,r} = G_r[j]\, K, \qquad
        \epsilon_{ij} = (w_{ij} W_e)\, E \;\text{(optional edge term)}

    .. math::
        \text{additive: } \beta_{ij}^{r} = \operatorname{LeakyReLU}(q_{i,r} + k_{j,r} + \epsilon_{ij}), \qquad
        \text{multiplicative: } \beta_{ij}^{r} = q_{i,r} \odot k_{j,r} \;(\odot\, \epsilon_{ij})

    .. math::
        \alpha_{ij}^{r} = \operatorname{softmax}_{j \in \mathcal{N}_r(i)}(\beta_{ij}^{r}) \;\text{(within-relation)},
        \qquad
        \alpha_{ij}^{r} = \operatorname{softmax}_{(j, r') : j \in \mathcal{N}_{r'}(i)}(\beta_{ij}^{r'})
        \;\text{(across-relation)}

    .. math::
        h_i' = \big\Vert_{h=1}^{H} \sum_{r} \sum_{j \in \mathcal{N}_r(i)} \alpha_{ij,h}^{r}\, G_r[j]_h + b

    This is exactly :class:`torch_geometric.nn.RGATConv` with ``mod=None`` (same parameter names, so a state dict
    copies across with ``strict=False``; RGATConv's unused ``w, l1, b1, l2, b2`` are not created here).
    Block-diagonal decomposition and the cardinality-preserving ``mod`` variants are not implemented.

    Args:
        in_channels (int): input width :math:`F_{in}`.
        out_channels (int): width per head :math:`C`.
        num_relations (int): number of relations :math:`R`.
        num_bases (int, optional): basis decomposition with this many bases; ``None`` = one full matrix per
            relation. (default: ``None``)
        attention_mechanism (str): ``"within-relation"`` or ``"across-relation"``. (default: ``"across-relation"``)
        attention_mode (str): ``"additive-self-attention"`` or ``"multiplicative-self-attention"``.
            (default: ``"additive-self-attention"``)
        heads (int): attention heads :math:`H`. (default: 1)
        dim (int): attention channels per head :math:`D` (multiplicative mode only). (default: 1)
        concat (bool): concatenate heads (``True``) or average them. (default: ``True``)
        negative_slope (float): LeakyReLU slope of the additive mode. (default: 0.2)
        dropout (float): dropout on the attention coefficients during training. (default: 0.0)
        edge_dim (int, optional): width of edge features (1 for an edge weight). (default: ``None``)
        bias (bool): add a learned bias. (default: ``True``)

    Shapes:
        - **input:** node features :math:`(|V|, F_{in})` or a pair :math:`((|V_s|, F_{in}), (|V_t|, F_{in}))` for a
          bipartite graph (sources, targets), edge index :math:`(2, |E|)` (row 0 = source, row 1 = target),
          edge type :math:`(|E|)`, optional edge features :math:`(|E|, F_e)` or :math:`(|E|)`
        - **output:** :math:`(|V_t|, H \cdot D \cdot C)` with ``concat=True``, :math:`(|V_t|, D \cdot C)` otherwise
          (:math:`D = 1` in additive mode)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_relations: int,
        num_bases: int | None = None,
        attention_mechanism: str = "across-relation",
        attention_mode: str = "additive-self-attention",
        heads: int = 1,
        dim: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        edge_dim: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if attention_mechanism not in MECHANISMS:
            raise ValueError(f"attention_mechanism must be one of {MECHANISMS}, got {attention_mechanism!r}")
        if attention_mode not in MODES:
            raise ValueError(f"attention_mode must be one of {MODES}, got {attention_mode!r}")
        if attention_mode == "additive-self-attention" and dim > 1:
            raise ValueError("dim > 1 needs attention_mode='multiplicative-self-attention'")
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("num_relations", num_relations), ("heads", heads), ("dim", dim)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if num_bases is not None and num_bases < 1:
            raise ValueError(f"num_bases must be None or >= 1, got {num_bases}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_relations, self.num_bases = num_relations, num_bases
        self.attention_mechanism, self.attention_mode = attention_mechanism, attention_mode
        self.heads, self.dim, self.concat = heads, dim, concat
        self.negative_slope, self.dropout, self.edge_dim = negative_slope, dropout, edge_dim

        hc = heads * out_channels
        self.q = nn.Parameter(torch.empty(hc, heads * dim))
        self.k = nn.Parameter(torch.empty(hc, heads * dim))
        if bias:
            self.bias = nn.Parameter(torch.empty((heads if concat else 1) * dim * out_channels))
        else:
            self.register_parameter("bias", None)
        if edge_dim is not None:
            self.lin_edge = nn.Linear(edge_dim, hc, bias=False)
            self.e = nn.Parameter(torch.empty(hc, heads * dim))
        else:
            self.lin_edge = None
            self.register_parameter("e", None)
        if num_bases is not None:
            self.att = nn.Parameter(torch.empty(num_relations, num_bases))
            self.basis = nn.Parameter(torch.empty(num_bases, in_channels, hc))
            self.register_parameter("weight", None)
        else:
            self.weight = nn.Parameter(torch.empty(num_relations, in_channels, hc))
            self.register_parameter("att", None)
            self.register_parameter("basis", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot for weights, bases, coefficients, query, key and edge maps; zeros for the bias."""
        for p in (self.weight, self.basis, self.att, self.q, self.k, self.e):
            if p is not None:
                _glorot(p)
        if self.lin_edge is not None:
            _glorot(self.lin_edge.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def relation_weights(self) -> Tensor:
        """:math:`W_r` for every relation, ``(R, F_in, H*C)``."""
        if self.num_bases is not None:
            w = torch.matmul(self.att, self.basis.view(self.num_bases, -1))
            return w.view(self.num_relations, self.in_channels, self.heads * self.out_channels)
        return self.weight

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        edge_index: Tensor,
        edge_type: Tensor,
        edge_attr: Tensor | None = None,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Apply the layer; see the class docstring for shapes. Returns ``(out, alpha)`` if asked."""
        x_src, x_dst = x if isinstance(x, tuple) else (x, x)
        n_dst = x_dst.size(0)
        r_count, heads, dim, c = self.num_relations, self.heads, self.dim, self.out_channels
        src, dst = edge_index[0], edge_index[1]
        w = self.relation_weights()  # (R, F, HC)

        # One transform per node and relation, then gather rows per edge: |V| R H C memory, not |E| F H C.
        g_src = torch.einsum("nf,rfo->nro", x_src, w)  # (Ns, R, HC)
        out_j = g_src[src, edge_type]  # (E, HC)
        # Queries: only q = G_r[i] Q is needed, so fold Q into W first when it is cheaper ((R, F, H*D)).
        wq = torch.matmul(w, self.q)  # (R, F, H*D)
        wk = torch.matmul(w, self.k)
        q_dst = torch.einsum("nf,rfo->nro", x_dst, wq)  # (Nt, R, H*D)
        k_src = torch.einsum("nf,rfo->nro", x_src, wk)  # (Ns, R, H*D)
        qi = q_dst[dst, edge_type]
        kj = k_src[src, edge_type]

        alpha_edge: Tensor | None = None
        if edge_attr is not None:
            if self.lin_edge is None:
                raise ValueError("edge_attr given but the layer was built with edge_dim=None")
            if edge_attr.dim() == 1:
                edge_attr = edge_attr.view(-1, 1)
            alpha_edge = torch.matmul(self.lin_edge(edge_attr), self.e)  # (E, H*D)

        if self.attention_mode == "additive-self-attention":
            alpha = qi + kj if alpha_edge is None else qi + kj + alpha_edge
            alpha = F.leaky_relu(alpha, self.negative_slope)
        else:
            alpha = qi * kj if alpha_edge is None else (qi * kj) * alpha_edge

        if self.attention_mechanism == "within-relation":
            group = dst * r_count + edge_type
            alpha = softmax(alpha, group, num_nodes=n_dst * r_count)
        else:
            alpha = softmax(alpha, dst, num_nodes=n_dst)
        att = alpha
        if self.training and self.dropout > 0:
            alpha = F.dropout(alpha, p=self.dropout, training=True)

        if self.attention_mode == "additive-self-attention":
            msg = alpha.view(-1, heads, 1) * out_j.view(-1, heads, c)  # (E, H, C)
        else:
            msg = alpha.view(-1, heads, dim, 1) * out_j.view(-1, heads, 1, c)  # (E, H, D, C)
        out = msg.new_zeros((n_dst, *msg.shape[1:]))
        out.index_add_(0, dst, msg)
        out = out.reshape(n_dst, -1) if self.concat else out.mean(dim=1).reshape(n_dst, -1)
        if self.bias is not None:
            out = out + self.bias
        if return_attention_weights:
            return out, att
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, heads={self.heads}, relations={self.num_relations}, "
                f"bases={self.num_bases}, {self.attention_mechanism}, {self.attention_mode}")
