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
