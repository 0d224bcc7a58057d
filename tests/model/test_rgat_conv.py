"""FastRGATConv computes the same function as torch_geometric's RGATConv, at a fraction of the memory; its
log-weight edge prior orders attention by edge weight; reset_parameters() initialises every parameter."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import RGATConv

from socmap.config import RGATConfig
from socmap.model.rgat_block import RGATBlock
from socmap.model.rgat_conv import FastRGATConv, _AttentionSpMM, _build_plan, _csr

MECHS = ["within-relation", "across-relation"]
MODES = ["additive-self-attention", "multiplicative-self-attention"]


def _graph(n: int = 60, e: int = 400, r: int = 3, f: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, f, generator=g)
    edge_index = torch.randint(0, n, (2, e), generator=g)
    edge_type = torch.randint(0, r, (e,), generator=g)
    edge_w = torch.rand(e, generator=g)
    return x, edge_index, edge_type, edge_w


def _pair(mech, mode, bases, heads, dim=1, concat=True, edge_dim=None, f=16, c=8, r=3):
    torch.manual_seed(0)
    ref = RGATConv(f, c, r, num_bases=bases, attention_mechanism=mech, attention_mode=mode, heads=heads,
                   dim=dim, concat=concat, edge_dim=edge_dim)
    ours = FastRGATConv(f, c, r, num_bases=bases, attention_mechanism=mech, attention_mode=mode, heads=heads,
                        dim=dim, concat=concat, edge_dim=edge_dim)
    state = {k: v for k, v in ref.state_dict().items() if k not in {"w", "l1", "b1", "l2", "b2"}}
    ours.load_state_dict(state, strict=True)
    with torch.no_grad():  # a non-zero bias so that it is checked too
        ref.bias.normal_()
        ours.bias.copy_(ref.bias)
    return ref, ours


@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bases", [None, 2])
@pytest.mark.parametrize("heads", [1, 4])
@pytest.mark.parametrize("edge_attr", [False, True])
def test_equivalence_with_rgatconv(mech, mode, bases, heads, edge_attr):
    x, ei, et, ew = _graph()
    ref, ours = _pair(mech, mode, bases, heads, edge_dim=1 if edge_attr else None)
    ea = ew.view(-1, 1) if edge_attr else None
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    out_ref, (_, a_ref) = ref(x1, ei, et, edge_attr=ea, return_attention_weights=True)
    out, a = ours(x2, ei, et, edge_attr=ea, return_attention_weights=True)
    assert out.shape == out_ref.shape == (x.size(0), heads * 8)
    assert torch.allclose(out, out_ref, atol=1e-5, rtol=1e-5), (out - out_ref).abs().max()
    assert torch.allclose(a, a_ref, atol=1e-5)
    # gradients agree too, for the input and for every parameter
    out_ref.square().sum().backward()
    out.square().sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-4, rtol=1e-4)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        assert torch.allclose(p.grad, ref_params[name].grad, atol=1e-4, rtol=1e-4), name


@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("dim", [1, 2])
def test_equivalence_multiplicative_dim_concat(concat, dim):
    x, ei, et, _ = _graph(seed=1)
    ref, ours = _pair("within-relation", "multiplicative-self-attention", 2, 3, dim=dim, concat=concat)
    out_ref, out = ref(x, ei, et), ours(x, ei, et)
    width = (3 if concat else 1) * dim * 8
    assert out.shape == (x.size(0), width)
    assert torch.allclose(out, out_ref, atol=1e-5, rtol=1e-5)


def test_bipartite_equals_full_graph_rows():
    x, ei, et, ew = _graph(seed=2)
    _, ours = _pair("within-relation", "additive-self-attention", 2, 2, edge_dim=1)
    ours.eval()
    full = ours(x, ei, et, ew)
    # targets: nodes 0..9 only; sources: all nodes
    keep = ei[1] < 10
    part = ours((x, x[:10]), ei[:, keep], et[keep], ew[keep])
    assert torch.allclose(part, full[:10], atol=1e-6)


def _poison_then_reset(m: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(float("nan"))
    m.reset_parameters()
    for name, p in m.named_parameters():
        assert torch.isfinite(p).all(), name


@pytest.mark.parametrize("bases", [None, 3])
@pytest.mark.parametrize("edge", ["none", "rgatconv", "log-prior"])
def test_reset_initialises_every_parameter(bases, edge):
    m = FastRGATConv(8, 4, 3, num_bases=bases, heads=2, edge_dim=1 if edge == "rgatconv" else None,
                     edge_prior=edge == "log-prior")
    _poison_then_reset(m)
    if edge == "log-prior":
        assert torch.equal(m.edge_prior, torch.ones(3, 2))


@pytest.mark.parametrize("edge_weights", [False, True])
@pytest.mark.parametrize("mode", ["log-prior", "rgatconv"])
def test_block_reset_initialises_every_parameter(edge_weights, mode):
    cfg = RGATConfig(heads=2, bases=2, edge_weights=edge_weights, edge_weight_mode=mode)
    block = RGATBlock(8, 6, 3, cfg)
    _poison_then_reset(block)
    names = {n for n, _ in block.named_parameters()}
    assert ("conv.edge_prior" in names) == (edge_weights and mode == "log-prior")
    assert ("conv.lin_edge.weight" in names) == (edge_weights and mode == "rgatconv")


def _star_graph(n_targets: int = 4, per_relation: int = 5, r: int = 3, seed: int = 0):
    """Every target gets ``per_relation`` in-edges of every relation from distinct sources, distinct weights."""
    g = torch.Generator().manual_seed(seed)
    n_src = n_targets + per_relation * r
    dst = torch.arange(n_targets).repeat_interleave(per_relation * r)
    src = n_targets + torch.arange(per_relation * r).repeat(n_targets)
    et = torch.arange(r).repeat_interleave(per_relation).repeat(n_targets)
    w = torch.rand(dst.numel(), generator=g) * 0.95 + 0.05
    return torch.stack([src, dst]), et, w, n_src


@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("mode", MODES)
def test_log_prior_orders_attention_by_edge_weight(mech, mode):
    ei, et, w, n = _star_graph()
    m = FastRGATConv(16, 8, 3, num_bases=2, attention_mechanism=mech, attention_mode=mode, heads=2,
                     edge_prior=True)
    with torch.no_grad():  # a prior coefficient per relation that is not 1 must still rank by weight
        m.edge_prior.copy_(torch.tensor([[1.0, 0.5], [2.0, 1.0], [0.3, 3.0]]))
    x = torch.randn(1, 16).expand(n, 16).contiguous()  # identical nodes: only the edge weight tells edges apart
    _, att = m(x, ei, et, edge_weight=w, return_attention_weights=True)
    for i in range(int(ei[1].max()) + 1):
        for r in range(3):
            sel = (ei[1] == i) & (et == r)
            order = torch.argsort(w[sel])
            for h in range(2):
                a = att[sel, h][order]
                assert (a.diff() > 0).all(), (i, r, h, a)  # nearer (larger w) -> more attention
                # a_ij is proportional to w_ij ** c[r, h] within a (target, relation) group
                expect = w[sel][order] ** m.edge_prior[r, h].item()
                assert torch.allclose(a / a.sum(), expect / expect.sum(), atol=1e-5)


@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("mode", MODES)
def test_log_prior_unit_weights_equal_no_weights(mech, mode):
    x, ei, et, _ = _graph(seed=3)
    m = FastRGATConv(16, 8, 3, num_bases=2, attention_mechanism=mech, attention_mode=mode, heads=2,
                     edge_prior=True)
    assert torch.allclose(m(x, ei, et, edge_weight=torch.ones(ei.size(1))), m(x, ei, et), atol=1e-6)
    # and the weights do matter otherwise, and the coefficients learn
    ew = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(0))
    out = m(x, ei, et, edge_weight=ew)
    assert not torch.allclose(out, m(x, ei, et), atol=1e-3)
    out.square().sum().backward()
    assert m.edge_prior.grad is not None and (m.edge_prior.grad != 0).all()


def test_block_log_prior_is_default_and_uses_weights():
    cfg = RGATConfig(heads=2, bases=2, dropout=0.0)
    assert cfg.edge_weight_mode == "log-prior"
    x, ei, et, ew = _graph(seed=4)
    block = RGATBlock(16, 8, 3, cfg).eval()
    assert block.conv.edge_prior is not None and block.conv.lin_edge is None
    assert not torch.allclose(block(x, ei, et, ew), block(x, ei, et, None), atol=1e-4)
    assert torch.allclose(block(x, ei, et, torch.ones_like(ew)), block(x, ei, et, None), atol=1e-6)


def test_sparse_product_gradcheck():
    ei, et, _, n = _star_graph(n_targets=3, per_relation=2, r=2)
    heads, dim, c = 2, 2, 3
    plan = _build_plan(ei, et, n, n, 2, heads, dim, within=True)
    g = torch.Generator().manual_seed(0)
    values = torch.rand(plan.col.numel(), dtype=torch.float64, generator=g, requires_grad=True)
    dense = torch.randn(plan.cols, c, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, d: _AttentionSpMM.apply(v, d, plan), (values, dense))


def test_plan_follows_in_place_graph_changes_and_empty_graph(monkeypatch):
    import socmap.model.rgat_conv as rc

    built = []
    monkeypatch.setattr(rc, "_build_plan", lambda *a, **k: built.append(1) or _build_plan(*a, **k))
    x, ei, et, _ = _graph(n=300, e=2000, seed=5)
    m = FastRGATConv(16, 8, 3, num_bases=2, heads=2).eval()
    m(x, ei, et)
    m(x, ei, et)
    assert len(built) == 1  # the same graph tensors reuse the CSR layout
    FastRGATConv(16, 8, 3, heads=2)(m(x, ei, et), ei, et)  # another layer of a stack: shared
    assert len(built) == 1
    FastRGATConv(16, 8, 3, heads=4)(m(x, ei, et), ei, et)  # another channel count: its own layout
    assert len(built) == 2
    m(x, ei, et)
    assert len(built) == 2
    ei[0] = ei[0].flip(0)  # in place: the cached layout must not be reused
    fresh = FastRGATConv(16, 8, 3, num_bases=2, heads=2).eval()
    fresh.load_state_dict(m.state_dict())
    assert torch.allclose(m(x, ei, et), fresh(x, ei.clone(), et.clone()), atol=1e-6)
    empty = m(x, ei[:, :0], et[:0])
    assert torch.allclose(empty, m.bias.expand_as(empty))


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="within-relation"):
        FastRGATConv(8, 4, 3, attention_mechanism="bogus")
    with pytest.raises(ValueError, match="multiplicative"):
        FastRGATConv(8, 4, 3, attention_mode="additive-self-attention", dim=2)
    with pytest.raises(ValueError, match="edge_dim"):
        m = FastRGATConv(8, 4, 3)
        x, ei, et, ew = _graph(f=8)
        m(x, ei, et, ew)


def test_rejects_out_of_range_indices():
    x, ei, et, _ = _graph(f=8)
    m = FastRGATConv(8, 4, 3)
    with pytest.raises(ValueError, match="source node"):
        m(x[:10], ei, et)
    with pytest.raises(ValueError, match="edge type"):
        m(x, ei, et + 1)


def test_dropout_only_in_training():
    x, ei, et, _ = _graph()
    m = FastRGATConv(16, 8, 3, heads=2, dropout=0.5)
    m.eval()
    assert torch.equal(m(x, ei, et), m(x, ei, et))
    m.train()
    torch.manual_seed(0)
    a = m(x, ei, et)
    torch.manual_seed(1)
    b = m(x, ei, et)
    assert not torch.allclose(a, b)


def test_sparse_product_ignores_uninitialised_output():
    # _spmm relies on addmm(out=C, beta=0) never reading C (the MKL path writes into torch.empty)
    ei, et, _, n = _star_graph(n_targets=3, per_relation=2, r=2)
    plan = _build_plan(ei, et, n, n, 2, 2, 1, within=True)
    values = torch.rand(plan.col.numel())
    dense = torch.randn(plan.cols, 3)
    a = _csr(plan.crow, plan.col, values, (plan.rows, plan.cols))
    out = torch.full((plan.rows, 3), float("nan"))
    torch.addmm(out, a, dense, beta=0.0, out=out)
    assert torch.allclose(out, a.to_dense() @ dense, atol=1e-6)


def test_log_prior_follows_in_place_weight_changes():
    x, ei, et, _ = _graph(seed=6)
    m = FastRGATConv(16, 8, 3, num_bases=2, heads=2, edge_prior=True).eval()
    ew = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(1))
    m(x, ei, et, edge_weight=ew)
    ew.fill_(1.0)  # in place: the cached log-weights must be recomputed
    assert torch.allclose(m(x, ei, et, edge_weight=ew), m(x, ei, et), atol=1e-6)


@pytest.mark.parametrize(("heads", "dim"), [(1, 1), (3, 2)])
def test_plan_transpose_is_the_transpose(heads, dim):
    _, ei, et, _ = _graph(n=40, e=300, seed=7)
    plan = _build_plan(ei[:, :290], et[:290], 40, 40, 3, heads, dim, within=False)
    values = torch.rand(plan.col.numel(), generator=torch.Generator().manual_seed(0))
    a = _csr(plan.crow, plan.col, values, (plan.rows, plan.cols)).to_dense()
    at = _csr(plan.crow_t, plan.col_t, values[plan.perm_t], (plan.cols, plan.rows)).to_dense()
    assert torch.equal(at, a.t())
    # every (edge, channel) value lands once, in the row of its target and channel
    flat = torch.zeros(290 * heads * dim)
    flat[plan.val_index] = 1
    assert flat.sum() == flat.numel()


def test_rgatconv_edge_term_can_rank_nearer_neighbours_lower():
    # Fault 3, kept by edge_weight_mode="rgatconv": the weight multiplies the logit, so wherever the content term is
    # negative a nearer neighbour (larger w) gets *less* attention. The log prior above never does this.
    ei, et, w, n = _star_graph()
    torch.manual_seed(0)
    m = FastRGATConv(16, 8, 3, num_bases=2, attention_mechanism="within-relation",
                     attention_mode="multiplicative-self-attention", heads=4, edge_dim=1)
    x = torch.randn(1, 16, generator=torch.Generator().manual_seed(0)).expand(n, 16).contiguous()
    _, att = m(x, ei, et, w, return_attention_weights=True)
    sel = (ei[1] == 0) & (et == 0)
    order = torch.argsort(w[sel])
    slopes = [torch.sign(att[sel, h][order].diff()).sum().item() for h in range(4)]
    assert min(slopes) < 0 < max(slopes), slopes  # some heads rank by weight, others against it
