"""The cached inductive path equals a full forward pass over the graph with the new nodes added (same edges)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from socmap.geo import EARTH_RADIUS_KM
from socmap.graph import HeteroGraph, attach_edges, attach_spatial_k, build_graph
from socmap.graph.relations import graph_label_edges, spatial_knn
from socmap.model import LayerCache, NodeInputs, SpTGNN, attach_and_predict, cache_layers, cached_forward
from tests.conftest import to_inputs


def _cat_inputs(a: NodeInputs, b: NodeInputs) -> NodeInputs:
    return NodeInputs(torch.cat([a.lonlat, b.lonlat]), torch.cat([a.year, b.year]),
                      torch.cat([a.tabular, b.tabular]), torch.cat([a.image, b.image]))


@pytest.mark.parametrize("k_mode", ["fixed", "adaptive"])
@pytest.mark.parametrize("mech", ["within-relation", "across-relation"])
@pytest.mark.parametrize("mode", ["additive-self-attention", "multiplicative-self-attention"])
def test_cached_path_equals_full_forward(small_model_cfg, synthetic_nodes, mech, mode, k_mode):
    cfg = small_model_cfg.model_copy(deep=True)
    cfg.rgat.attention_mechanism, cfg.rgat.attention_mode = mech, mode
    cfg.graph.spatial_k_mode = k_mode
    d = synthetic_nodes
    n_train, q = 170, 30
    tr, new = np.arange(n_train), np.arange(n_train, 200)
    torch.manual_seed(0)
    model = SpTGNN(cfg, tabular_dim=5, image_dim=24).eval()
    g = build_graph(d["lonlat"][tr], cfg.graph, ndvi=d["ndvi"][tr], elevation=d["elevation"][tr])
    inp_tr, inp_new = to_inputs(d, tr), to_inputs(d, new)
    cache = cache_layers(model, inp_tr, g, ndvi=d["ndvi"][tr], elevation=d["elevation"][tr])
    assert cache.node_k is not None and np.array_equal(cache.node_k, g.node_k)
    (out_cached,), attach = attach_and_predict([model], [cache], inp_new, cfg.graph, new_ndvi=d["ndvi"][new],
                                               new_elevation=d["elevation"][new])
    assert attach.edge_index[1].unique().numel() == q  # every new point got in-edges
    # spatial in-edges per new point = the k the training rule gives it; adaptive k really varies here
    ei_s, _ = attach.relation("spatial")
    assert np.array_equal(np.bincount(ei_s[1].numpy(), minlength=q), attach.node_k)
    assert np.array_equal(attach.node_k, attach_spatial_k(d["lonlat"][new], d["lonlat"][tr], cfg.graph, g.node_k))
    expect_ks = {cfg.graph.k_spatial} if k_mode == "fixed" else {cfg.graph.k_spatial, cfg.graph.adaptive_k}
    assert set(attach.node_k.tolist()) == expect_ks
    assert set(g.node_k.tolist()) == expect_ks
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


@pytest.mark.parametrize("weighting", ["idw", "continuous"])
def test_attachment_uses_true_neighbours_and_weights(small_model_cfg, synthetic_nodes, weighting):
    """A new point's in-edges are its true k nearest training nodes per relation, with the training weights."""
    d = synthetic_nodes
    cfg = small_model_cfg.graph.model_copy(update={"weighting": weighting})  # fixed k: k_spatial 5, k_ndvi 3
    tr, q = np.arange(199), 199
    attach = attach_edges(d["lonlat"][q:], d["lonlat"][tr], cfg, d["ndvi"][q:], d["ndvi"][tr],
                          d["elevation"][q:], d["elevation"][tr])
    assert attach.edge_index.shape[1] == cfg.k_spatial * 2 + cfg.k_ndvi
    assert (attach.edge_index[1] == 0).all() and attach.num_sources == 199
    # spatial: the k nearest by great-circle distance (brute force haversine), inverse-distance weights summing to 1
    lon1, lat1 = np.radians(d["lonlat"][q])
    lon2, lat2 = np.radians(d["lonlat"][tr]).T
    hav = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    dist = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(hav))
    nearest = np.argsort(dist)[: cfg.k_spatial]
    ei, w = attach.relation("spatial")
    src = ei[0].numpy()
    assert sorted(src.tolist()) == sorted(nearest.tolist())
    continuous = weighting == "continuous"
    # continuous: each kernel minus its value at the (k+1)-th neighbour
    inv = 1.0 / dist[src] - (1.0 / np.sort(dist)[cfg.k_spatial] if continuous else 0.0)
    assert np.allclose(w.numpy(), inv / inv.sum(), rtol=1e-5)
    # NDVI: the k_ndvi closest NDVI values, weight exp(-|dNDVI| / tau)
    dv = np.abs(d["ndvi"][tr] - d["ndvi"][q])
    ei_v, w_v = attach.relation("ndvi")
    assert sorted(ei_v[0].tolist()) == sorted(np.argsort(dv)[: cfg.k_ndvi].tolist())
    w_ndvi = np.exp(-dv[ei_v[0].numpy()] / cfg.tau_ndvi)
    if continuous:
        w_ndvi = w_ndvi - np.exp(-np.sort(dv)[cfg.k_ndvi] / cfg.tau_ndvi)
    assert np.allclose(w_v.numpy(), w_ndvi, rtol=1e-5, atol=1e-7)
    # elevation: the spatial neighbours, weight exp(-|dz| / d / slope_scale) (continuous: times the spatial weight)
    ei_e, w_e = attach.relation("elevation")
    src_e = ei_e[0].numpy()
    assert np.array_equal(src_e, src)
    slope = np.abs(d["elevation"][src_e] - d["elevation"][q]) / dist[src_e]
    w_slope = np.exp(-slope / cfg.slope_scale) * (w.numpy() if continuous else 1.0)
    assert np.allclose(w_e.numpy(), w_slope, rtol=1e-4)


def test_single_point_touches_only_its_neighbours(small_model_cfg, synthetic_nodes):
    """A new point's prediction depends on its attached neighbours' cached embeddings and on nothing else."""
    d = synthetic_nodes
    cfg = small_model_cfg
    torch.manual_seed(0)
    model = SpTGNN(cfg, tabular_dim=5, image_dim=24).eval()
    g = build_graph(d["lonlat"][:199], cfg.graph, ndvi=d["ndvi"][:199], elevation=d["elevation"][:199])
    cache = cache_layers(model, to_inputs(d, np.arange(199)), g, d["ndvi"][:199], d["elevation"][:199])
    one = to_inputs(d, np.array([199]))
    attach = attach_edges(d["lonlat"][199:], cache.lonlat, cfg.graph, d["ndvi"][199:], cache.ndvi,
                          d["elevation"][199:], cache.elevation, train_k=cache.node_k)
    out = cached_forward(model, cache, one, attach)
    assert out.soc.shape == (1,)
    neighbours = attach.edge_index[0].unique()
    others = torch.ones(199, dtype=torch.bool)
    others[neighbours] = False

    def perturbed(mask):
        hidden = [h.clone() for h in cache.hidden]
        for h in hidden:
            h[mask] += 3.0
        return cached_forward(model, LayerCache(hidden, cache.lonlat, cache.ndvi, cache.elevation), one, attach).soc

    assert torch.equal(perturbed(others), out.soc)
    assert not torch.allclose(perturbed(~others), out.soc)


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
    (out_cached,), attach = attach_and_predict([model], [cache], inp_new, cfg.graph, new_ndvi=d["ndvi"][new],
                                               new_elevation=d["elevation"][new])
    ei = torch.cat([g.edge_index, torch.stack([attach.edge_index[0], attach.edge_index[1] + 170])], dim=1)
    full = HeteroGraph(ei, torch.cat([g.edge_type, attach.edge_type]), torch.cat([g.edge_weight, attach.edge_weight]),
                       200, g.relations)
    both = _cat_inputs(inp_tr, inp_new)
    both.label = torch.cat([inp_tr.label, torch.full((30,), float("nan"))])  # new points have no label
    with torch.no_grad():
        out_full = model(both, full)
    assert torch.allclose(out_cached.soc, out_full.soc[170:], atol=1e-5)


def _kset(point: np.ndarray, ref: np.ndarray, k: int) -> frozenset[int]:
    src, _, _ = spatial_knn(point[None], ref, k, 1e9, exclude_self=False)
    return frozenset(src.tolist())


def _across_kset_change(ref: np.ndarray, k: int, a: np.ndarray, b: np.ndarray, hair: float) -> np.ndarray:
    """Two float32-exact points ``hair`` degrees apart on the segment a-b, on either side of a k-set change."""
    lo, hi = 0.0, 1.0
    assert _kset(a, ref, k) != _kset(b, ref, k)
    for _ in range(60):
        mid = (lo + hi) / 2
        if _kset(a + mid * (b - a), ref, k) == _kset(a, ref, k):
            lo = mid
        else:
            hi = mid
    step = hair / np.linalg.norm(b - a)
    pts = np.stack([a + (lo - step / 2) * (b - a), a + (hi + step / 2) * (b - a)]).astype(np.float32)
    assert _kset(pts[0].astype(np.float64), ref, k) != _kset(pts[1].astype(np.float64), ref, k)
    return pts.astype(np.float64)


def _jumps(cfg, d, weighting: str) -> tuple[float, float]:
    """|prediction difference| and max |label-feature difference| of two cells a hair apart across a k-set
    change, under ``weighting``."""
    cfg = cfg.model_copy(deep=True)
    cfg.label_input = True
    cfg.graph.weighting = weighting
    torch.manual_seed(0)
    model = SpTGNN(cfg, tabular_dim=5, image_dim=24).eval()
    g = build_graph(d["lonlat"], cfg.graph, ndvi=d["ndvi"], elevation=d["elevation"])
    inp = to_inputs(d)
    inp.label = torch.tensor(np.random.default_rng(1).normal(size=len(d["y"])), dtype=torch.float32)  # rough
    cache = cache_layers(model, inp, g, ndvi=d["ndvi"], elevation=d["elevation"])
    a, b = d["lonlat"][0] + 0.01, d["lonlat"][1] - 0.01  # a segment between two sites: the k-set changes on it
    pts = _across_kset_change(d["lonlat"], cfg.graph.k_spatial, a, b, hair=1e-5)
    new = NodeInputs(torch.tensor(pts, dtype=torch.float32), torch.full((2,), 2020),
                     torch.zeros(2, 5), torch.zeros(2, 24))
    (out,), attach = attach_and_predict([model], [cache], new, cfg.graph, new_ndvi=np.full(2, 0.4),
                                        new_elevation=np.full(2, 1000.0))
    ei, w = attach.relation("spatial")
    feats = model.label_features(cache.label, ei, w, torch.tensor(d["lonlat"], dtype=torch.float32), new.lonlat)
    return float((out.soc[0] - out.soc[1]).abs()), float((feats[0] - feats[1]).abs().max())


@pytest.mark.parametrize("weighting", ["continuous", "adaptive"])
def test_predictions_continuous_across_a_kset_change(small_model_cfg, synthetic_nodes, weighting):
    """Two cells a hair apart (1e-5 degrees, about 1 m) on either side of a change of their spatial k-set get the
    same inputs and prediction under continuous (or scale-adaptive) weights; under the paper's inverse-distance
    weights the label features jump there (a Voronoi facet), so the check can fail."""
    jump, feat_jump = _jumps(small_model_cfg, synthetic_nodes, weighting)
    jump_idw, feat_jump_idw = _jumps(small_model_cfg, synthetic_nodes, "idw")
    assert jump < 1e-3 and feat_jump < 1e-3
    assert feat_jump_idw > 1e-2 and jump < jump_idw / 10


@pytest.mark.parametrize(("k_mode", "label_k"), [("fixed", None), ("adaptive", None), ("adaptive", 12)])
def test_held_out_nodes_of_a_train_mask_graph_equal_the_inductive_path(small_model_cfg, synthetic_nodes, k_mode,
                                                                       label_k):
    """The transductive outputs of validation/test nodes (graph built with ``train_mask``, label trick on, with
    the spatial relation's or the scale-adaptive label neighbourhood) equal :func:`attach_and_predict` of the same
    points from the training nodes' cache: evaluation scores the map."""
    cfg = small_model_cfg.model_copy(deep=True)
    cfg.label_input = True
    cfg.graph.spatial_k_mode = k_mode
    cfg.graph.label_k = label_k
    d = synthetic_nodes
    train = np.random.default_rng(3).random(200) < 0.8
    tr, ho = np.flatnonzero(train), np.flatnonzero(~train)
    torch.manual_seed(0)
    model = SpTGNN(cfg, tabular_dim=5, image_dim=24).eval()
    g = build_graph(d["lonlat"], cfg.graph, ndvi=d["ndvi"], elevation=d["elevation"], train_mask=train)
    both = to_inputs(d)
    both.label = torch.tensor(np.where(train, d["y"], np.nan), dtype=torch.float32)
    with torch.no_grad():
        out_full = model(both, g)
    sub = HeteroGraph(*_train_subgraph(g, tr), len(tr), g.relations, node_k=g.node_k[tr],
                      label_edges=None if label_k is None else graph_label_edges(d["lonlat"][tr], label_k, None))
    inp_tr = to_inputs(d, tr)
    inp_tr.label = both.label[tr]
    cache = cache_layers(model, inp_tr, sub, ndvi=d["ndvi"][tr], elevation=d["elevation"][tr])
    (out,), attach = attach_and_predict([model], [cache], to_inputs(d, ho), cfg.graph, new_ndvi=d["ndvi"][ho],
                                        new_elevation=d["elevation"][ho], new_lonlat=d["lonlat"][ho])
    assert np.array_equal(attach.node_k, g.node_k[ho])
    for name in ("soc", "logvar"):
        assert torch.allclose(getattr(out, name), getattr(out_full, name)[ho], atol=1e-5)


def _train_subgraph(g: HeteroGraph, tr: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    relabel = torch.full((g.num_nodes,), -1, dtype=torch.long)
    relabel[torch.from_numpy(tr)] = torch.arange(len(tr))
    keep = (relabel[g.edge_index[1]] >= 0)
    return relabel[g.edge_index[:, keep]], g.edge_type[keep], g.edge_weight[keep]
