"""The cached inductive path equals a full forward pass over the graph with the new nodes added (same edges)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from socmap.graph import HeteroGraph, attach_edges, build_graph
from socmap.model import NodeInputs, SpTGNN, attach_and_predict, cache_layers, cached_forward
from tests.conftest import to_inputs


def _cat_inputs(a: NodeInputs, b: NodeInputs) -> NodeInputs:
    return NodeInputs(torch.cat([a.lonlat, b.lonlat]), torch.cat([a.year, b.year]),
                      torch.cat([a.tabular, b.tabular]), torch.cat([a.image, b.image]))


@pytest.mark.parametrize("mech", ["within-relation", "across-relation"])
@pytest.mark.parametrize("mode", ["additive-self-attention", "multiplicative-self-attention"])
def test_cached_path_equals_full_forward(small_model_cfg, synthetic_nodes, mech, mode):
    cfg = small_model_cfg.model_copy(deep=True)
    cfg.rgat.attention_mechanism, cfg.rgat.attention_mode = mech, mode
    d = synthetic_nodes
    n_train, q = 170, 30
    tr, new = np.arange(n_train), np.arange(n_train, 200)
    torch.manual_seed(0)
    model = SpTGNN(cfg, tabular_dim=5, image_dim=24).eval()
    g = build_graph(d["lonlat"][tr], cfg.graph, ndvi=d["ndvi"][tr], elevation=d["elevation"][tr])
    inp_tr, inp_new = to_inputs(d, tr), to_inputs(d, new)
    cache = cache_layers(model, inp_tr, g, ndvi=d["ndvi"][tr], elevation=d["elevation"][tr])
    out_cached, attach = attach_and_predict(model, cache, inp_new, cfg.graph, new_ndvi=d["ndvi"][new],
                                            new_elevation=d["elevation"][new])
    assert attach.edge_index[1].unique().numel() == q  # every new point got in-edges
    # full graph: training edges + attachment edges with targets shifted to n_train..
    ei = torch.cat([g.edge_index, torch.stack([attach.edge_index[0], attach.edge_index[1] + n_train])], dim=1)
    full = HeteroGraph(ei, torch.cat([g.edge_type, attach.edge_type]), torch.cat([g.edge_weight, attach.edge_weight]),
                       200, g.relations)
    with torch.no_grad():
        out_full = model(_cat_inputs(inp_tr, inp_new), full)
        out_train_only = model(inp_tr, g)
    for name in ("soc", "moran", "logvar"):
        assert torch.allclose(getattr(out_cached, name), getattr(out_full, name)[n_train:], atol=1e-5)
        # in-edges only: the training nodes' outputs do not change when new nodes are added
        assert torch.allclose(getattr(out_train_only, name), getattr(out_full, name)[:n_train], atol=1e-5)


def test_single_point_touches_only_its_neighbours(small_model_cfg, synthetic_nodes):
    d = synthetic_nodes
    cfg = small_model_cfg
    model = SpTGNN(cfg, tabular_dim=5, image_dim=24).eval()
    g = build_graph(d["lonlat"][:199], cfg.graph, ndvi=d["ndvi"][:199], elevation=d["elevation"][:199])
    cache = cache_layers(model, to_inputs(d, np.arange(199)), g, d["ndvi"][:199], d["elevation"][:199])
    one = to_inputs(d, np.array([199]))
    attach = attach_edges(d["lonlat"][199:], cache.lonlat, cfg.graph, d["ndvi"][199:], cache.ndvi,
                          d["elevation"][199:], cache.elevation)
    k_total = cfg.graph.k_spatial * 2 + cfg.graph.k_ndvi
    assert attach.edge_index.shape[1] == k_total
    out = cached_forward(model, cache, one, attach)
    assert out.soc.shape == (1,)


def test_cached_path_with_label_trick(small_model_cfg, synthetic_nodes):
    cfg = small_model_cfg.model_copy(deep=True)
    cfg.label_input = True
    d = synthetic_nodes
    tr, new = np.arange(170), np.arange(170, 200)
    model = SpTGNN(cfg, tabular_dim=5, image_dim=24).eval()
    g = build_graph(d["lonlat"][tr], cfg.graph, ndvi=d["ndvi"][tr], elevation=d["elevation"][tr])
    inp_tr, inp_new = to_inputs(d, tr), to_inputs(d, new)
    inp_tr.label = torch.tensor(d["y"][tr])
    inp_tr.label[::3] = float("nan")
    cache = cache_layers(model, inp_tr, g, ndvi=d["ndvi"][tr], elevation=d["elevation"][tr])
    out_cached, attach = attach_and_predict(model, cache, inp_new, cfg.graph, new_ndvi=d["ndvi"][new],
                                            new_elevation=d["elevation"][new])
    ei = torch.cat([g.edge_index, torch.stack([attach.edge_index[0], attach.edge_index[1] + 170])], dim=1)
    full = HeteroGraph(ei, torch.cat([g.edge_type, attach.edge_type]), torch.cat([g.edge_weight, attach.edge_weight]),
                       200, g.relations)
    both = _cat_inputs(inp_tr, inp_new)
    both.label = torch.cat([inp_tr.label, torch.full((30,), float("nan"))])  # new points have no label
    with torch.no_grad():
        out_full = model(both, full)
    assert torch.allclose(out_cached.soc, out_full.soc[170:], atol=1e-5)
