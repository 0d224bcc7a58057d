"""FastRGATConv computes the same function as torch_geometric's RGATConv, at a fraction of the memory."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import RGATConv

from socmap.model.rgat_conv import FastRGATConv

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
    # gradients agree too
    out_ref.square().sum().backward()
    out.square().sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-4, rtol=1e-4)


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


def test_parameters_finite_after_reset():
    for bases in (None, 3):
        m = FastRGATConv(8, 4, 3, num_bases=bases, heads=2, edge_dim=1)
        m.reset_parameters()
        assert all(torch.isfinite(p).all() for p in m.parameters())


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="within-relation"):
        FastRGATConv(8, 4, 3, attention_mechanism="bogus")
    with pytest.raises(ValueError, match="multiplicative"):
        FastRGATConv(8, 4, 3, attention_mode="additive-self-attention", dim=2)
    with pytest.raises(ValueError, match="edge_dim"):
        m = FastRGATConv(8, 4, 3)
        x, ei, et, ew = _graph(f=8)
        m(x, ei, et, ew)


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
