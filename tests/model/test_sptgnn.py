"""SpTGNN end to end on a small synthetic graph: shapes, heads, every ablation switch, losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from socmap.config import TemporalConfig, TrainConfig
from socmap.graph import build_graph, spatial_local_morans_i
from socmap.model import SpTGNN
from socmap.train.losses import total_loss
from tests.conftest import to_inputs


def _graph(d, cfg):
    return build_graph(d["lonlat"], cfg.graph, ndvi=d["ndvi"], elevation=d["elevation"])


def _model(cfg, **updates):
    cfg = cfg.model_copy(deep=True)
    for path, value in updates.items():
        obj = cfg
        *head, last = path.split(".")
        for h in head:
            obj = getattr(obj, h)
        setattr(obj, last, value)
    return cfg


@pytest.mark.parametrize("mech", ["within-relation", "across-relation"])
@pytest.mark.parametrize("mode", ["additive-self-attention", "multiplicative-self-attention"])
@pytest.mark.parametrize("bases", [None, 2])
def test_forward_shapes_and_bounds(small_model_cfg, synthetic_nodes, mech, mode, bases):
    cfg = _model(small_model_cfg, **{"rgat.attention_mechanism": mech, "rgat.attention_mode": mode,
                                     "rgat.bases": bases, "logvar_min": -3.0, "logvar_max": 2.0})
    torch.manual_seed(0)
    m = SpTGNN(cfg, tabular_dim=5, image_dim=24)
    assert all(torch.isfinite(p).all() for p in m.parameters())
    out = m(to_inputs(synthetic_nodes), _graph(synthetic_nodes, cfg), return_hidden=True)
    n = len(synthetic_nodes["y"])
    assert out.soc.shape == out.moran.shape == out.logvar.shape == (n,)
    assert (out.logvar >= -3.0).all() and (out.logvar <= 2.0).all()
    assert [h.shape[1] for h in out.hidden] == [32, 32, 16]
    assert torch.isfinite(out.moe_loss)


@pytest.mark.parametrize("off", ["image", "tabular", "position", "time"])
@pytest.mark.parametrize("fusion", ["moe", "concat"])
def test_each_stream_off(small_model_cfg, synthetic_nodes, off, fusion):
    streams = [s for s in ["image", "tabular", "position", "time"] if s != off]
    cfg = _model(small_model_cfg, streams=streams, **{"moe.fusion": fusion})
    m = SpTGNN(cfg, tabular_dim=5, image_dim=24)
    inputs = to_inputs(synthetic_nodes)
    if off == "image":
        inputs.image = None  # the real Africa set: no patches at all
    out = m(inputs, _graph(synthetic_nodes, cfg))
    assert out.soc.shape == (200,) and torch.isfinite(out.soc).all()
    assert ("image" in m.stream_dims) == (off != "image")


@pytest.mark.parametrize("relations", [["spatial"], ["spatial", "ndvi"], ["spatial", "ndvi", "elevation"]])
@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("expert_type", ["cross-gated", "concat", "additive"])
def test_relations_and_moe_options(small_model_cfg, synthetic_nodes, relations, top_k, expert_type):
    cfg = _model(small_model_cfg, **{"graph.relations": relations, "moe.top_k": top_k,
                                     "moe.expert_type": expert_type})
    m = SpTGNN(cfg, tabular_dim=5, image_dim=24)
    g = _graph(synthetic_nodes, cfg)
    assert g.num_relations == len(relations)
    out = m(to_inputs(synthetic_nodes), g)
    assert torch.isfinite(out.soc).all()


def test_missing_images_use_learned_vector(small_model_cfg, synthetic_nodes):
    m = SpTGNN(small_model_cfg, tabular_dim=5, image_dim=24).eval()
    g = _graph(synthetic_nodes, small_model_cfg)
    inp = to_inputs(synthetic_nodes)
    inp.image[:10] = float("nan")
    out = m(inp, g)
    assert torch.isfinite(out.soc).all()
    s = m.stream_inputs(inp)["image"]
    assert torch.equal(s[:10], m.no_image.expand(10, -1))


NO_GRAD_FROM_EQ3 = {"head_logvar.weight", "head_logvar.bias"}
"""Parameters the loss of eq. (3) does not reach: the log-variance head is trained by the trainer's Gaussian
NLL term (paper 3.8), not by eq. (3) with its Huber main term."""


@pytest.mark.parametrize("expert_type", ["cross-gated", "concat", "additive"])
def test_loss_masks_non_training_nodes_and_backprops(small_model_cfg, synthetic_nodes, expert_type):
    cfg = _model(small_model_cfg, **{"moe.expert_type": expert_type})
    torch.manual_seed(0)
    m = SpTGNN(cfg, tabular_dim=5, image_dim=24)
    g = _graph(synthetic_nodes, cfg)
    y = torch.tensor(synthetic_nodes["y"])
    train = torch.zeros(200, dtype=torch.bool)
    train[:150] = True
    moran = torch.tensor(spatial_local_morans_i(g, synthetic_nodes["y"], train.numpy()), dtype=torch.float32)
    inp = to_inputs(synthetic_nodes)
    inp.image[:5] = float("nan")  # a few samples without a patch, so the learned "no image" vector is used
    out = m(inp, g)
    eq3 = TrainConfig(loss="huber", aux_weight=5.3e-5)
    parts = total_loss(out, y, moran, train, epoch=0, cfg=eq3)
    assert torch.isfinite(parts["loss"])
    # a held-out target does not change the loss
    y2 = y.clone()
    y2[180] += 100.0
    assert torch.equal(total_loss(out, y2, moran, train, epoch=0, cfg=eq3)["main"], parts["main"])
    parts["loss"].backward()
    params = dict(m.named_parameters())
    assert NO_GRAD_FROM_EQ3 <= set(params)
    no_grad = sorted(n for n, p in params.items() if p.grad is None)
    assert no_grad == sorted(NO_GRAD_FROM_EQ3), "parameters without a gradient changed"
    bad = [n for n, p in params.items()
           if n not in NO_GRAD_FROM_EQ3 and not (torch.isfinite(p.grad).all() and (p.grad != 0).any())]
    assert not bad, f"parameters whose gradient is zero or not finite: {bad}"
    # the log-variance head trains through a Gaussian NLL on the same output
    m.zero_grad()
    out = m(inp, g)
    nll = 0.5 * (out.logvar + (out.soc - y) ** 2 / out.logvar.exp())[train].mean()
    nll.backward()
    for n in NO_GRAD_FROM_EQ3:
        assert torch.isfinite(params[n].grad).all() and (params[n].grad != 0).any(), n


def test_year_range_fitted_on_training_years_travels_with_the_model(small_model_cfg, synthetic_nodes):
    cfg = _model(small_model_cfg, **{"temporal": TemporalConfig()})  # null range: fitted on the training years
    m = SpTGNN(cfg, tabular_dim=5, image_dim=24).eval()
    g = _graph(synthetic_nodes, cfg)
    with pytest.raises(ValueError, match="fit_year_range"):
        m(to_inputs(synthetic_nodes), g)
    years = synthetic_nodes["year"]
    assert m.fit_year_range(years[:150]) == (float(years[:150].min()), float(years[:150].max()))
    with torch.no_grad():
        out = m(to_inputs(synthetic_nodes), g)
    loaded = SpTGNN(cfg, tabular_dim=5, image_dim=24).eval()
    loaded.load_state_dict(m.state_dict())
    assert loaded.time_encoder is not None and loaded.time_encoder.year_range == m.time_encoder.year_range
    with torch.no_grad():
        assert torch.equal(loaded(to_inputs(synthetic_nodes), g).soc, out.soc)
    given = SpTGNN(cfg, tabular_dim=5, image_dim=24, year_range=(1938, 2012))
    assert given.time_encoder is not None and given.time_encoder.year_range == (1938.0, 2012.0)
    fixed = SpTGNN(small_model_cfg, tabular_dim=5, image_dim=24)  # the config fixes 2014-2024: kept
    assert fixed.fit_year_range(np.array([1990, 2000])) == (2014.0, 2024.0)
    no_time = SpTGNN(_model(cfg, streams=["image", "tabular", "position"]), tabular_dim=5, image_dim=24)
    assert no_time.fit_year_range(years) is None


def test_bad_options_rejected(small_model_cfg):
    with pytest.raises(ValueError, match="image_dim"):
        SpTGNN(small_model_cfg, tabular_dim=5, image_dim=0)
    with pytest.raises(ValueError, match="multiple of heads"):
        SpTGNN(_model(small_model_cfg, **{"rgat.hidden_dims": [30]}), tabular_dim=5, image_dim=24)
    with pytest.raises(ValueError, match="logvar_max"):
        SpTGNN(_model(small_model_cfg, logvar_min=1.0, logvar_max=0.0), tabular_dim=5, image_dim=24)


def test_graph_relations_must_match(small_model_cfg, synthetic_nodes):
    m = SpTGNN(small_model_cfg, tabular_dim=5, image_dim=24)
    cfg2 = _model(small_model_cfg, **{"graph.relations": ["spatial"]})
    with pytest.raises(ValueError, match="relations"):
        m(to_inputs(synthetic_nodes), _graph(synthetic_nodes, cfg2))


def test_label_features_by_hand():
    from socmap.model import label_features

    # targets 0 and 1; sources 0..3; node 2's label hidden
    label = torch.tensor([1.0, 3.0, float("nan"), 5.0])
    ei = torch.tensor([[1, 2, 3, 0, 2], [0, 0, 0, 1, 1]])
    w = torch.tensor([0.5, 0.25, 0.25, 0.6, 0.4])
    f = label_features(label, ei, w, 2)
    assert torch.allclose(f[0], torch.tensor([(0.5 * 3 + 0.25 * 5) / 0.75, 0.75, 2 / 3]))
    assert torch.allclose(f[1], torch.tensor([1.0, 0.6, 0.5]))


def test_label_trick_never_uses_own_label(small_model_cfg, synthetic_nodes):
    cfg = _model(small_model_cfg, label_input=True)
    m = SpTGNN(cfg, tabular_dim=5, image_dim=24).eval()
    g = _graph(synthetic_nodes, cfg)
    inp = to_inputs(synthetic_nodes)
    inp.label = torch.tensor(synthetic_nodes["y"])
    h0, _ = m.encode(inp, m.graph_label_features(inp, g))
    inp2 = to_inputs(synthetic_nodes)
    inp2.label = inp.label.clone()
    inp2.label[7] += 50.0  # node 7's own label must not change node 7's input embedding
    h0b, _ = m.encode(inp2, m.graph_label_features(inp2, g))
    assert torch.allclose(h0[7], h0b[7])
    assert not torch.allclose(h0, h0b)  # but its neighbours see it
    with pytest.raises(ValueError, match="label"):
        m(to_inputs(synthetic_nodes), g)
