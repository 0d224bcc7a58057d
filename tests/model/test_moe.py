"""MoE fusion: shapes, routing, auxiliary losses, expert types, top-k vs dense, the concat ablation."""

from __future__ import annotations

import math

import pytest
import torch

from socmap.config import MoEConfig
from socmap.model.moe import ConcatFusion, MoEFusion, build_fusion, moe_aux_losses

DIMS = {"image": 12, "tabular": 5, "position": 8, "time": 4}


def _streams(n=50, dims=DIMS):
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(n, d, generator=g) * (10 if k == "image" else 1) for k, d in dims.items()}


@pytest.mark.parametrize("expert_type", ["cross-gated", "concat", "additive"])
@pytest.mark.parametrize("top_k", [None, 1, 2])
def test_moe_shapes_and_routing(expert_type, top_k):
    cfg = MoEConfig(experts=4, expert_type=expert_type, fusion_dim=16, top_k=top_k)
    m = MoEFusion(DIMS, cfg)
    assert all(torch.isfinite(p).all() for p in m.parameters())
    s = _streams()
    out, stats = m(s)
    assert out.shape == (50, 16) and torch.isfinite(out).all()
    gates = m.route(torch.cat([n(s[k]) for n, k in zip(m.norms, m.streams, strict=False)], -1))
    assert torch.allclose(gates.sum(-1), torch.ones(50), atol=1e-6)
    assert ((gates > 0).sum(-1) == (4 if top_k is None else top_k)).all()
    assert stats.usage.shape == (4,) and torch.isfinite(stats.loss)
    out.sum().backward()
    assert m.gate.weight.grad is not None


def test_topk_equals_weighted_sum_of_selected_experts():
    cfg = MoEConfig(experts=4, expert_type="additive", fusion_dim=8, top_k=2)
    m = MoEFusion(DIMS, cfg)
    s = _streams(10)
    out, _ = m(s)
    parts = [n(s[k]) for n, k in zip(m.norms, m.streams, strict=False)]
    z = torch.cat(parts, -1)
    g = m.route(z)
    ref = sum(g[:, e, None] * m.experts[e](parts, z) for e in range(4))
    assert torch.allclose(out, ref, atol=1e-5)


def test_aux_losses_by_hand():
    uniform = torch.full((6, 4), 0.25)
    st = moe_aux_losses(uniform, 0.5)
    assert abs(float(st.load_balance)) < 1e-9 and abs(float(st.entropy)) < 1e-6
    collapsed = torch.zeros(6, 4)
    collapsed[:, 0] = 1
    st = moe_aux_losses(collapsed, 0.5)
    lb = ((1 - 0.25) ** 2 + 3 * 0.25**2) / 4
    assert math.isclose(float(st.load_balance), lb, rel_tol=1e-6)
    assert math.isclose(float(st.entropy), math.log(4), rel_tol=1e-6)
    assert math.isclose(float(st.loss), 0.5 * lb + math.log(4), rel_tol=1e-6)


@pytest.mark.parametrize("off", list(DIMS))
def test_any_stream_can_be_off(off):
    dims = {k: v for k, v in DIMS.items() if k != off}
    for fusion in ("moe", "concat"):
        m = build_fusion(dims, MoEConfig(experts=3, fusion_dim=8, fusion=fusion))
        out, _ = m(_streams(dims=dims))
        assert out.shape == (50, 8)


def test_concat_ablation_has_zero_aux_loss():
    m = ConcatFusion(DIMS, MoEConfig(fusion="concat", fusion_dim=8))
    out, st = m(_streams())
    assert out.shape == (50, 8) and float(st.loss) == 0.0


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="top_k"):
        MoEFusion(DIMS, MoEConfig(experts=2, top_k=3))
    with pytest.raises(ValueError, match="at least one"):
        MoEFusion({}, MoEConfig())
    with pytest.raises(ValueError, match="missing input streams"):
        MoEFusion(DIMS, MoEConfig(experts=2, fusion_dim=4))({"image": torch.zeros(2, 12)})


def _mixed_difference(expert, parts, a, b):
    """f(a1, b1) - f(a1, b2) - f(a2, b1) + f(a2, b2) over streams a and b (others fixed): zero iff no a-b term.

    ``parts[a]`` and ``parts[b]`` hold two values each (leading axis), the other streams one."""
    def f(i, j):
        p = list(parts)
        p[a], p[b] = parts[a][i], parts[b][j]
        return expert(p, torch.cat(p, -1))

    with torch.no_grad():
        return f(0, 0) - f(0, 1) - f(1, 0) + f(1, 1)


@pytest.mark.parametrize("expert_type", ["cross-gated", "concat", "additive"])
def test_additive_expert_has_no_cross_stream_term_and_is_nonlinear(expert_type):
    """The additive expert is a sum of per-stream nonlinear functions: unlike concat (one hidden layer over all
    streams) and cross-gated it cannot represent a cross-stream interaction, and it is not linear in its input."""
    torch.manual_seed(0)
    dims = list(DIMS.values())
    expert = MoEFusion(DIMS, MoEConfig(experts=1, expert_type=expert_type, fusion_dim=16)).experts[0]
    g = torch.Generator().manual_seed(1)
    parts = [torch.randn(2, 20, d, generator=g) for d in dims]  # two values (index 0/1) per stream, 20 rows
    base = [p[0] for p in parts]
    for a, b in ((0, 1), (1, 3), (2, 3)):
        two = list(base)
        two[a], two[b] = parts[a], parts[b]
        mixed = _mixed_difference(expert, two, a, b)
        if expert_type == "additive":
            assert mixed.abs().max() < 1e-5
        else:
            assert mixed.abs().max() > 1e-3
    # nonlinear in each stream: f(x + y) != f(x) + f(y) - f(0) for one stream, the others fixed
    with torch.no_grad():
        def f1(x):
            p = [x, *base[1:]]
            return expert(p, torch.cat(p, -1))

        x, y = parts[0][0], parts[0][1]
        gap = f1(x + y) - f1(x) - f1(y) + f1(torch.zeros_like(x))
    assert gap.abs().max() > 1e-3


def test_expert_types_differ_in_structure():
    sizes = {}
    for t in ("cross-gated", "concat", "additive"):
        m = MoEFusion(DIMS, MoEConfig(experts=2, expert_type=t, fusion_dim=16))
        sizes[t] = sorted(tuple(p.shape) for p in m.experts[0].parameters())
    # additive: one projection per stream (no full-width input layer); concat: one layer over all streams
    total = sum(DIMS.values())
    assert (16, total) in sizes["concat"] and (16, total) not in sizes["additive"]
    assert all((16, d) in sizes["additive"] for d in DIMS.values())
    assert sizes["additive"] != sizes["cross-gated"]
