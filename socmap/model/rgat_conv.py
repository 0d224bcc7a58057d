"""Relational graph attention layer computed as a sparse attention matrix times node-wise transforms (fast RGATConv).

:class:`torch_geometric.nn.RGATConv` gathers one ``F_in x (H*C)`` weight matrix per *edge* (``index_select`` then
``bmm``): memory grows as ``|E| * F_in * H * C``. The same maths is computed here in three steps whose per-edge
tensors are never wider than the attention channels ``H * D``:

1. one dense product transforms every source node for every relation, ``G = X [W_1 | ... | W_R]`` (under basis
   decomposition through the ``B`` bases instead when ``B < R``), and a narrow one gives queries and keys;
2. the attention logits and their segment softmax are computed per edge and channel, ``(|E|, H * D)``;
3. the messages are aggregated by a sparse (CSR) product of the attention matrix, rows ``(target, channel)`` and
   columns ``(source, relation, head)``, with the rows of ``G``; its backward is one sampled dense-dense product
   (the gradient of the attention values) and one product with the transposed matrix.

With weights copied from ``RGATConv`` (and ``edge_prior=False``) both layers compute the same function
(tests/model/test_rgat_conv.py). ``edge_prior=True`` replaces RGATConv's edge-feature term by a log-weight prior on
the logits (:class:`FastRGATConv`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["FastRGATConv"]

MECHANISMS = ("within-relation", "across-relation")
MODES = ("additive-self-attention", "multiplicative-self-attention")


def _glorot(t: Tensor) -> None:
    # Same rule as torch_geometric.nn.inits.glorot (uniform, sqrt(6 / (fan_in + fan_out)) on the last two dims).
    a = math.sqrt(6.0 / (t.size(-2) + t.size(-1)))
    with torch.no_grad():
        t.uniform_(-a, a)


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the products used here are stable
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support", category=UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)


def _check_arguments(in_channels: int, out_channels: int, num_relations: int, num_bases: int | None,
                     attention_mechanism: str, attention_mode: str, heads: int, dim: int, dropout: float) -> None:
    """:class:`FastRGATConv`'s arguments must name a known mechanism and mode and be in range."""
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


@dataclass(frozen=True)
class _Plan:
    """CSR layout of one graph's attention matrix for a layer with ``K = H * D`` attention channels.

    Rows are ``target * K + channel``, columns ``(source * R + relation) * H + head`` (a row of ``G`` viewed as
    ``(|V_s| R H, C)``). Built once per graph (indices only) and reused while the graph tensors are unchanged.
    """

    rows: int
    cols: int
    q_index: Tensor  # (E,) target * R + relation: row of the (|V_t| R, K) query table
    k_index: Tensor  # (E,) source * R + relation: row of the (|V_s| R, K) key table
    group: Tensor  # (E,) softmax segment of each edge
    num_groups: int
    crow: Tensor  # (rows + 1,)
    col: Tensor  # (E K,)
    val_index: Tensor  # (E K,) position in alpha.reshape(-1) of each CSR value
    dst: Tensor  # (E,) target of each edge
    pos: Tensor  # (E, K) CSR position of (edge, channel)
    heads: int
    dim: int
    idx_dtype: torch.dtype

    @cached_property
    def _transposed(self) -> tuple[Tensor, Tensor, Tensor]:
        """A^T's layout, built on the first backward (inference never needs it): row (source, relation, head)
        holds that block's edges in (source, relation)-sorted order, D entries (the head's channels) each; it
        starts at K start[g] + h D count[g]."""
        heads, dim, dev = self.heads, self.dim, self.pos.device
        k_ch = heads * dim
        n_e = self.k_index.numel()
        order_t, count, start_t, rank_t = _segments(self.k_index, self.cols // heads)
        g_sorted = self.k_index[order_t]
        h_off = (torch.arange(heads, device=dev) * dim).view(1, heads, 1)
        tpos = ((k_ch * start_t[g_sorted] + rank_t * dim).view(-1, 1, 1) + h_off * count[g_sorted].view(-1, 1, 1)
                + torch.arange(dim, device=dev).view(1, 1, dim)).reshape(-1)  # (E H D), channel k = h D + d
        perm_t = torch.empty(n_e * k_ch, dtype=torch.long, device=dev)
        perm_t[tpos] = self.pos[order_t].reshape(-1)
        col_t = torch.empty(n_e * k_ch, dtype=torch.long, device=dev)
        ch = torch.arange(k_ch, device=dev)
        col_t[tpos] = (self.dst[order_t].unsqueeze(1) * k_ch + ch.unsqueeze(0)).reshape(-1)
        crow_t = torch.empty(self.cols + 1, dtype=torch.long, device=dev)
        crow_t[:-1] = ((k_ch * start_t[:-1]).unsqueeze(1) + h_off.view(1, heads) * count.unsqueeze(1)).reshape(-1)
        crow_t[-1] = n_e * k_ch
        return crow_t.to(self.idx_dtype), col_t.to(self.idx_dtype), perm_t

    @property
    def crow_t(self) -> Tensor:  # transposed matrix (cols + 1,)
        return self._transposed[0]

    @property
    def col_t(self) -> Tensor:  # (E K,)
        return self._transposed[1]

    @property
    def perm_t(self) -> Tensor:  # (E K,) CSR value position of each transposed value
        return self._transposed[2]


def _segments(key: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Stable order of ``key`` (values in ``[0, n)``), the count and start of each key, and each sorted item's rank
    within its key."""
    order = torch.argsort(key, stable=True)
    count = torch.bincount(key, minlength=n)
    start = torch.zeros(n + 1, dtype=torch.long, device=key.device)
    start[1:] = torch.cumsum(count, 0)
    rank = torch.arange(key.numel(), device=key.device) - start[key[order]]
    return order, count, start, rank


def _build_plan(edge_index: Tensor, edge_type: Tensor, n_src: int, n_dst: int, relations: int, heads: int,
                dim: int, within: bool) -> _Plan:
    dev = edge_index.device
    src, dst = edge_index[0].long(), edge_index[1].long()
    et = edge_type.long()
    n_e, k_ch = src.numel(), heads * dim
    rows, cols = n_dst * k_ch, n_src * relations * heads
    if n_e:  # the sparse kernels do not check their indices: an out-of-range one must fail here, not crash there
        for name, t, n in (("source node", src, n_src), ("target node", dst, n_dst), ("edge type", et, relations)):
            lo, hi = (int(v) for v in torch.aminmax(t))
            if lo < 0 or hi >= n:
                raise ValueError(f"{name} indices span [{lo}, {hi}], outside [0, {n})")
    idx_dtype = torch.int32 if max(n_e * k_ch, rows, cols) < 2**31 - 1 else torch.int64
    ch = torch.arange(k_ch, device=dev)
    src_key = src * relations + et  # (source, relation): a column block of A, a row block of A^T

    # A: row (i, k) holds target i's in-edges in dst-sorted order and starts at K start[i] + k deg[i].
    order, deg, start, rank = _segments(dst, n_dst)
    d_sorted = dst[order]
    pos_sorted = (k_ch * start[d_sorted] + rank).unsqueeze(1) + ch.unsqueeze(0) * deg[d_sorted].unsqueeze(1)
    pos = torch.empty_like(pos_sorted)
    pos[order] = pos_sorted  # (E, K): CSR position of (edge, channel)
    val_index = torch.empty(n_e * k_ch, dtype=torch.long, device=dev)
    val_index[pos_sorted.reshape(-1)] = (order.unsqueeze(1) * k_ch + ch.unsqueeze(0)).reshape(-1)
    col = torch.empty(n_e * k_ch, dtype=torch.long, device=dev)
    col[pos.reshape(-1)] = (src_key.unsqueeze(1) * heads + (ch // dim).unsqueeze(0)).reshape(-1)
    crow = torch.empty(rows + 1, dtype=torch.long, device=dev)
    crow[:-1] = ((k_ch * start[:-1]).unsqueeze(1) + ch.unsqueeze(0) * deg.unsqueeze(1)).reshape(-1)
    crow[-1] = n_e * k_ch

    group, num_groups = (dst * relations + et, n_dst * relations) if within else (dst, n_dst)
    return _Plan(rows=rows, cols=cols, q_index=dst * relations + et, k_index=src_key, group=group,
                 num_groups=num_groups, crow=crow.to(idx_dtype), col=col.to(idx_dtype), val_index=val_index,
                 dst=dst, pos=pos, heads=heads, dim=dim, idx_dtype=idx_dtype)


def _spmm(a: Tensor, dense: Tensor) -> Tensor:
    """``a @ dense`` for a CSR ``a``. On an MKL CPU build the product is written straight into an uninitialised
    output (``addmm(out=C, beta=0)``: MKL overwrites C when beta is 0), which skips the zero fill and the copy
    that ``a @ dense`` makes of an output as large as ``dense`` (|V| R H C floats in the backward)."""
    if dense.device.type == "cpu" and torch.backends.mkl.is_available():
        out = torch.empty((a.size(0), dense.size(1)), dtype=dense.dtype, device=dense.device)
        return torch.addmm(out, a, dense, beta=0.0, out=out)
    return a @ dense


# The last CSR layout built, shared by every layer (a stack's layers all see the same graph tensors). It keeps that
# one graph's index tensors alive until another graph replaces it.
_LAST_PLAN: dict[str, tuple[tuple, _Plan]] = {}


class _AttentionSpMM(torch.autograd.Function):
    """``A @ G`` for the sparse attention matrix ``A`` (values from autograd, pattern from the plan)."""

    @staticmethod
    def forward(ctx: Any, values: Tensor, dense: Tensor, plan: _Plan) -> Tensor:
        ctx.save_for_backward(values, dense)
        ctx.plan = plan
        return _spmm(_csr(plan.crow, plan.col, values, (plan.rows, plan.cols)), dense)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        values, dense = ctx.saved_tensors
        plan: _Plan = ctx.plan
        grad = grad.contiguous()
        g_values = g_dense = None
        if ctx.needs_input_grad[0]:  # dL/dA_ij = <dL/dout_i, G_j> on A's pattern only (sampled product)
            pattern = _csr(plan.crow, plan.col, values.detach(), (plan.rows, plan.cols))
            g_values = torch.sparse.sampled_addmm(pattern, grad, dense.t(), beta=0.0).values()
        if ctx.needs_input_grad[1]:
            at = _csr(plan.crow_t, plan.col_t, values.detach()[plan.perm_t], (plan.cols, plan.rows))
            g_dense = _spmm(at, grad)
        return g_values, g_dense, None


class _SegmentSoftmax(torch.autograd.Function):
    """Softmax of ``(E, K)`` logits over the edges of each group (``group`` (E,) in ``[0, num_groups)``), per
    channel; the same function as ``torch_geometric.utils.softmax`` in fewer passes over the edges."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, group: Tensor, num_groups: int) -> Tensor:
        shape = (num_groups, logits.size(1))
        top = logits.new_full(shape, -math.inf).scatter_reduce_(0, group.view(-1, 1).expand_as(logits), logits,
                                                                 "amax", include_self=True)
        ex = (logits - top.index_select(0, group)).exp_()
        total = logits.new_zeros(shape).index_add_(0, group, ex)
        out = ex.div_(total.index_select(0, group))
        ctx.save_for_backward(out, group)
        ctx.num_groups = num_groups
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        out, group = ctx.saved_tensors
        ga = grad * out  # d softmax: a * (g - sum_group a g)
        total = ga.new_zeros((ctx.num_groups, ga.size(1))).index_add_(0, group, ga)
        return ga.sub_(out * total.index_select(0, group)), None, None


class FastRGATConv(nn.Module):
    r"""Relational graph attention (Busbridge et al., 2019, https://arxiv.org/abs/1904.05811), node-wise transform.

    For relation :math:`r` the node features are transformed once,
    :math:`G_r = X W_r` with :math:`W_r = \sum_b a_{rb} V_b` under basis decomposition. For an edge
    :math:`j \xrightarrow{r} i` the query and key are gathered rows:

    .. math::
        q_{i,r} = G_r[i]\, Q, \qquad k_{j,r} = G_r[j]\, K, \qquad
        \epsilon_{ij} = (w_{ij} W_e)\, E \;\text{(optional RGATConv edge term)}

    .. math::
        \text{additive: } \beta_{ij}^{r} = \operatorname{LeakyReLU}(q_{i,r} + k_{j,r} + \epsilon_{ij}), \qquad
        \text{multiplicative: } \beta_{ij}^{r} = q_{i,r} \odot k_{j,r} \;(\odot\, \epsilon_{ij})

    With ``edge_prior=True`` the edge weight :math:`w_{ij} \in (0, 1]` enters instead as an additive prior on the
    logit, :math:`\beta_{ij}^{r} \leftarrow \beta_{ij}^{r} + c_{r,h} \log w_{ij}` with a learned coefficient per
    relation and head, :math:`c_{r,h} = 1` after :meth:`reset_parameters`. Since :math:`\log w \le 0`, a weaker
    (farther, less similar) neighbour is pushed *down* whatever the sign and size of the content term, which the
    multiplicative edge term cannot do (it shrinks a logit towards 0), and each relation scales its own weight.
    With :math:`c = 1` and no content term, within-relation attention is :math:`w_{ij} / \sum_j w_{ij}` (inverse
    distance weighting on the spatial relation). Across relations the prior also compares the relations' weight
    scales (socmap's spatial weights are normalised per target, the NDVI and slope weights are not), which
    :math:`c_{r,h}` rescales but cannot shift.

    .. math::
        \alpha_{ij}^{r} = \operatorname{softmax}_{j \in \mathcal{N}_r(i)}(\beta_{ij}^{r}) \;\text{(within-relation)},
        \qquad
        \alpha_{ij}^{r} = \operatorname{softmax}_{(j, r') : j \in \mathcal{N}_{r'}(i)}(\beta_{ij}^{r'})
        \;\text{(across-relation)}

    .. math::
        h_i' = \big\Vert_{h=1}^{H} \sum_{r} \sum_{j \in \mathcal{N}_r(i)} \alpha_{ij,h}^{r}\, G_r[j]_h + b

    Without the prior this is exactly :class:`torch_geometric.nn.RGATConv` with ``mod=None`` (same parameter names,
    so a state dict copies across once RGATConv's unused ``w, l1, b1, l2, b2`` are dropped). Block-diagonal
    decomposition and the cardinality-preserving ``mod`` variants are not implemented.

    Cost: the dense products are those of a linear layer ``F_in -> R H C`` (``B H C`` when ``B < R``); everything
    per edge is ``(|E|, H D)``. The CSR layout of a graph is computed on the first call and reused while the same
    ``edge_index`` / ``edge_type`` tensors (unchanged in place) come back, as in full-graph training; the last
    layout built is shared with the other layers of the same ``R``, ``H``, ``D`` and mechanism (a whole stack, or
    every layer of one inductive prediction batch, builds it once).

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
        edge_dim (int, optional): width of RGATConv-style edge features (1 for an edge weight). (default: ``None``)
        edge_prior (bool): learn the log-weight prior :math:`c_{r,h}` (``edge_prior``, shape ``(R, H)``) and take
            the edge weight through ``forward(..., edge_weight=w)``. (default: ``False``)
        bias (bool): add a learned bias. (default: ``True``)

    Shapes:
        - **input:** node features :math:`(|V|, F_{in})` or a pair :math:`((|V_s|, F_{in}), (|V_t|, F_{in}))` for a
          bipartite graph (sources, targets), edge index :math:`(2, |E|)` (row 0 = source, row 1 = target),
          edge type :math:`(|E|)`, optional edge features :math:`(|E|, F_e)` or :math:`(|E|)`, optional edge
          weight :math:`(|E|)` (with ``edge_prior``; must be :math:`> 0`, values below ``1e-30`` count as ``1e-30``)
        - **output:** :math:`(|V_t|, H \cdot D \cdot C)` with ``concat=True``, :math:`(|V_t|, D \cdot C)` otherwise
          (:math:`D = 1` in additive mode); attention weights :math:`(|E|, H \cdot D)` in edge order when asked
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
        edge_prior: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        _check_arguments(in_channels, out_channels, num_relations, num_bases, attention_mechanism, attention_mode,
                         heads, dim, dropout)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_relations, self.num_bases = num_relations, num_bases
        self.attention_mechanism, self.attention_mode = attention_mechanism, attention_mode
        self.heads, self.dim, self.concat = heads, dim, concat
        self.negative_slope, self.dropout, self.edge_dim = negative_slope, dropout, edge_dim
        # parameters are registered in a fixed order (query, key, bias, edge map, prior, relation weights): it is
        # the order of .parameters(), which optimisers and gradient clipping follow
        self._add_attention_parameters(bias)
        self.prior_min: float | None = None
        """Floor of the prior coefficients (None: free). At >= 1 a neighbour's attention vanishes with its weight
        (softmax of logit + c log w is at most w^c times the weight-free share): set under continuous weighting so
        a neighbour leaving the k-set (w -> 0) fades out of the attention instead of dropping out of it."""
        self._add_relation_parameters(edge_prior)
        # Caches as one (key, value) tuple each: map tiles on two threads share a member, and a tuple is read and
        # replaced whole, so a thread never pairs one graph's key with another graph's value.
        self._plan_entry: tuple[tuple, _Plan] | None = None
        self._prior_entry: tuple[tuple, Tensor] | None = None
        self.reset_parameters()

    def _add_attention_parameters(self, bias: bool) -> None:
        """Query and key maps ``(H C, H D)``, the output bias and, with ``edge_dim``, the edge-feature maps."""
        hc, hd = self.heads * self.out_channels, self.heads * self.dim
        self.q = nn.Parameter(torch.empty(hc, hd))
        self.k = nn.Parameter(torch.empty(hc, hd))
        if bias:
            self.bias = nn.Parameter(torch.empty((self.heads if self.concat else 1) * self.dim * self.out_channels))
        else:
            self.register_parameter("bias", None)
        self.lin_edge: nn.Linear | None
        if self.edge_dim is not None:
            self.lin_edge = nn.utils.skip_init(nn.Linear, self.edge_dim, hc, bias=False)
            self.e = nn.Parameter(torch.empty(hc, hd))
        else:
            self.lin_edge = None
            self.register_parameter("e", None)

    def _add_relation_parameters(self, edge_prior: bool) -> None:
        """The log-weight prior coefficients ``(R, H)`` (with ``edge_prior``) and the relation weights: ``(R, F_in,
        H C)``, or basis coefficients ``(R, B)`` and bases ``(B, F_in, H C)`` with ``num_bases``."""
        r_count, f_in, hc = self.num_relations, self.in_channels, self.heads * self.out_channels
        if edge_prior:
            self.edge_prior = nn.Parameter(torch.empty(r_count, self.heads))
        else:
            self.register_parameter("edge_prior", None)
        if self.num_bases is not None:
            self.att = nn.Parameter(torch.empty(r_count, self.num_bases))
            self.basis = nn.Parameter(torch.empty(self.num_bases, f_in, hc))
            self.register_parameter("weight", None)
        else:
            self.weight = nn.Parameter(torch.empty(r_count, f_in, hc))
            self.register_parameter("att", None)
            self.register_parameter("basis", None)

    def reset_parameters(self) -> None:
        """Glorot for weights, bases, coefficients, query, key and edge maps; zeros for the bias; 1 for the
        log-weight prior coefficients (the prior starts as attention proportional to the edge weight)."""
        for p in (self.weight, self.basis, self.att, self.q, self.k, self.e):
            if p is not None:
                _glorot(p)
        if self.lin_edge is not None:
            _glorot(self.lin_edge.weight)
        if self.edge_prior is not None:
            nn.init.ones_(self.edge_prior)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def relation_weights(self) -> Tensor:
        """:math:`W_r` for every relation, ``(R, F_in, H*C)``."""
        if self.num_bases is not None:
            w = torch.matmul(self.att, self.basis.view(self.num_bases, -1))
            return w.view(self.num_relations, self.in_channels, self.heads * self.out_channels)
        return self.weight

    def _get_plan(self, edge_index: Tensor, edge_type: Tensor, n_src: int, n_dst: int) -> _Plan:
        # Keys hold the graph tensors themselves, so their ids cannot be reused while cached; the version counters
        # catch in-place changes. The last plan built by any layer is shared: the layers of a stack run on one graph.
        meta = (edge_index._version, edge_type._version, n_src, n_dst, self.num_relations, self.heads, self.dim,
                self.attention_mechanism == "within-relation")
        for entry in (self._plan_entry, _LAST_PLAN.get("entry")):
            if entry is not None and entry[0][0] is edge_index and entry[0][1] is edge_type and entry[0][2] == meta:
                plan = entry[1]
                break
        else:
            plan = _build_plan(edge_index, edge_type, n_src, n_dst, self.num_relations, self.heads, self.dim,
                               self.attention_mechanism == "within-relation")
            _LAST_PLAN["entry"] = ((edge_index, edge_type, meta), plan)
        self._plan_entry = ((edge_index, edge_type, meta), plan)
        return plan

    def _log_weight_by_relation(self, edge_weight: Tensor, edge_type: Tensor, dtype: torch.dtype) -> Tensor:
        r"""``(E, R)``: :math:`\log w_e` in column ``type_e``, 0 elsewhere, so that the prior is one product with
        the ``(R, H)`` coefficients. Cached like the CSR layout (unless the weights need a gradient)."""
        key = (edge_weight, edge_type, (edge_weight._version, edge_type._version, dtype))
        entry = self._prior_entry
        if (not edge_weight.requires_grad and entry is not None and entry[0][0] is edge_weight
                and entry[0][1] is edge_type and entry[0][2] == key[2]):
            return entry[1]
        log_w = torch.log(edge_weight.reshape(-1, 1).clamp_min(1e-30)).to(dtype)
        basis = log_w.new_zeros((log_w.size(0), self.num_relations)).scatter(1, edge_type.long().view(-1, 1), log_w)
        if not edge_weight.requires_grad:
            self._prior_entry = (key, basis)
        return basis

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("_plan_entry", "_prior_entry"):
            state[name] = None  # caches, not state: never pickle or deep-copy them
        return state

    def _transform(self, x_src: Tensor) -> Tensor:
        """``G = [X W_1 | ... | X W_R]`` as ``(|V_s|, R H C)``, through the bases when there are fewer of them."""
        r_count, hc = self.num_relations, self.heads * self.out_channels
        if self.num_bases is not None and self.num_bases < r_count:
            xv = x_src @ self.basis.permute(1, 0, 2).reshape(self.in_channels, -1)  # (N, B HC)
            g = torch.einsum("nbo,rb->nro", xv.view(-1, self.num_bases, hc), self.att)
            return g.reshape(x_src.size(0), r_count * hc)
        w = self.relation_weights()
        return x_src @ w.permute(1, 0, 2).reshape(self.in_channels, r_count * hc)

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        edge_index: Tensor,
        edge_type: Tensor,
        edge_attr: Tensor | None = None,
        return_attention_weights: bool = False,
        *,
        edge_weight: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Apply the layer; see the class docstring for shapes. Returns ``(out, alpha)`` if asked.

        ``edge_attr`` feeds RGATConv's edge-feature term (needs ``edge_dim``); ``edge_weight`` feeds the log prior
        (needs ``edge_prior=True``; ``None`` is the same as every weight 1).
        """
        x_src, x_dst = x if isinstance(x, tuple) else (x, x)
        n_src, n_dst = x_src.size(0), x_dst.size(0)
        if edge_attr is not None and self.lin_edge is None:
            raise ValueError("edge_attr given but the layer was built with edge_dim=None")
        if edge_weight is not None and self.edge_prior is None:
            raise ValueError("edge_weight given but the layer was built with edge_prior=False")
        plan = self._get_plan(edge_index, edge_type, n_src, n_dst)
        g = self._transform(x_src)  # (Ns, R H C)
        qi, kj = self._queries_keys(x_src, x_dst, plan)
        alpha = self._logits(qi, kj, edge_type, edge_attr, edge_weight)
        alpha = _SegmentSoftmax.apply(alpha, plan.group, plan.num_groups)
        att = alpha
        if self.training and self.dropout > 0:
            alpha = F.dropout(alpha, p=self.dropout, training=True)
        out = self._aggregate(alpha, g, plan, n_dst)
        if return_attention_weights:
            return out, att
        return out

    def _queries_keys(self, x_src: Tensor, x_dst: Tensor, plan: _Plan) -> tuple[Tensor, Tensor]:
        """Each edge's query (of its target) and key (of its source) under its relation, both ``(E, H D)``."""
        n_src, n_dst = x_src.size(0), x_dst.size(0)
        r_count, k_ch = self.num_relations, self.heads * self.dim
        # Queries and keys only need G_r Q and G_r K: fold Q and K into W_r first ((R, F, H D), narrow).
        w = self.relation_weights()
        wq, wk = torch.matmul(w, self.q), torch.matmul(w, self.k)
        if x_src is x_dst:  # one product; row (node, relation) holds [q | k], gathered without copies
            wqk = torch.cat([wq, wk], dim=2).permute(1, 0, 2).reshape(self.in_channels, r_count * 2 * k_ch)
            qk = (x_src @ wqk).view(n_src * r_count, 2 * k_ch)
            qi = qk.index_select(0, plan.q_index)[:, :k_ch]  # (E, H D)
            kj = qk.index_select(0, plan.k_index)[:, k_ch:]
        else:
            q_tab = x_dst @ wq.permute(1, 0, 2).reshape(self.in_channels, r_count * k_ch)
            k_tab = x_src @ wk.permute(1, 0, 2).reshape(self.in_channels, r_count * k_ch)
            qi = q_tab.view(n_dst * r_count, k_ch).index_select(0, plan.q_index)
            kj = k_tab.view(n_src * r_count, k_ch).index_select(0, plan.k_index)
        return qi, kj

    def _logits(self, qi: Tensor, kj: Tensor, edge_type: Tensor, edge_attr: Tensor | None,
                edge_weight: Tensor | None) -> Tensor:
        """``(E, H D)`` attention logits: additive (leaky ReLU of the sum) or multiplicative in query, key and the
        edge-feature term, plus the log-weight prior of each edge's relation and head."""
        heads, dim, k_ch = self.heads, self.dim, self.heads * self.dim
        alpha_edge: Tensor | None = None
        if edge_attr is not None:
            assert self.lin_edge is not None and self.e is not None
            if edge_attr.dim() == 1:
                edge_attr = edge_attr.view(-1, 1)
            # (w W_e) E = w (W_e E): fold the (F_e, H C) map into the (H C, H D) one, no (E, H C) tensor.
            alpha_edge = edge_attr @ (self.lin_edge.weight.t() @ self.e)  # (E, H D)

        if self.attention_mode == "additive-self-attention":
            alpha = qi + kj if alpha_edge is None else qi + kj + alpha_edge
            alpha = F.leaky_relu(alpha, self.negative_slope)
        else:
            alpha = qi * kj if alpha_edge is None else (qi * kj) * alpha_edge
        if edge_weight is not None:
            assert self.edge_prior is not None
            coef: Tensor = self.edge_prior
            if self.prior_min is not None:  # a floor that still passes the gradient at the floor (clamp does not)
                coef = torch.where(coef >= self.prior_min, coef, coef.new_tensor(self.prior_min))
            prior = self._log_weight_by_relation(edge_weight, edge_type, alpha.dtype) @ coef  # (E, H)
            alpha = (alpha.view(-1, heads, dim) + prior.unsqueeze(2)).view(-1, k_ch)
        return alpha

    def _aggregate(self, alpha: Tensor, g: Tensor, plan: _Plan, n_dst: int) -> Tensor:
        """Messages ``g`` (the transformed sources, ``(|V_s|, R H C)``) summed per target with the attention
        ``alpha`` ``(E, H D)``: ``(|V_t|, H D C)``, or the heads' mean ``(|V_t|, D C)`` without ``concat``; plus
        the bias."""
        heads, dim, c = self.heads, self.dim, self.out_channels
        values = alpha.reshape(-1).index_select(0, plan.val_index).to(g.dtype)  # one dtype under autocast
        out = _AttentionSpMM.apply(values, g.view(g.size(0) * self.num_relations * heads, c), plan)  # (Nt H D, C)
        out = out.view(n_dst, heads * dim * c) if self.concat else out.view(n_dst, heads, dim * c).mean(dim=1)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, heads={self.heads}, relations={self.num_relations}, "
                f"bases={self.num_bases}, {self.attention_mechanism}, {self.attention_mode}, "
                f"edge_prior={self.edge_prior is not None}")
