"""Heterogeneous graph relations: k-NN on the sphere, weights, NDVI and elevation edges, attachment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import BallTree

from socmap.config import GraphConfig
from socmap.errors import DataError
from socmap.geo import EARTH_RADIUS_KM
from socmap.graph import RELATIONS
from socmap.graph.relations import (
    attach_edges,
    attach_spatial_k,
    build_graph,
    node_covariates,
    spatial_knn,
)


def _points(n=200, seed=0):
    rng = np.random.default_rng(seed)
    lonlat = np.c_[rng.uniform(20, 30, n), rng.uniform(-5, 5, n)]
    ndvi = rng.uniform(0, 0.8, n)
    elev = rng.uniform(0, 2000, n)
    return lonlat, ndvi, elev


def _clustered(seed=0):
    """Six tight clusters of 30 samples (about 5 km across) and 12 samples scattered over 10 x 10 degrees."""
    rng = np.random.default_rng(seed)
    centres = np.array([[21, -3], [24, 2], [27, -1], [29, 4], [22, 3], [26, -4]])
    clusters = np.concatenate([c + rng.normal(scale=0.05, size=(30, 2)) for c in centres])
    scattered = np.c_[rng.uniform(20, 30, 12), rng.uniform(-5, 5, 12)]
    return np.r_[clusters, scattered]


def _hdbscan_noise(lonlat, min_cluster_size):
    from sklearn.cluster import HDBSCAN

    labels = HDBSCAN(min_cluster_size=min_cluster_size, metric="haversine", copy=True).fit(
        np.radians(lonlat[:, ::-1])).labels_
    return labels < 0


ADAPTIVE = GraphConfig(spatial_k_mode="adaptive", k_spatial=5, adaptive_k=10, hdbscan_min_cluster_size=8,
                       relations=["spatial"])


def test_spatial_knn_matches_haversine_balltree():
    lonlat, _, _ = _points()
    src, dst, d = spatial_knn(lonlat, lonlat, 5, 1e9, exclude_self=True)
    assert len(src) == 5 * len(lonlat)
    tree = BallTree(np.radians(lonlat[:, ::-1]), metric="haversine")
    dist, idx = tree.query(np.radians(lonlat[:, ::-1]), k=6)
    for i in (0, 17, 199):
        mine = sorted(src[dst == i].tolist())
        ref = sorted(idx[i, 1:].tolist())
        assert mine == ref
        assert np.allclose(np.sort(d[dst == i]), dist[i, 1:] * EARTH_RADIUS_KM, rtol=1e-6)


def test_max_distance_drops_far_pairs():
    lonlat, _, _ = _points()
    _, _, d = spatial_knn(lonlat, lonlat, 5, 50.0, exclude_self=True)
    assert d.max() <= 50.0
    assert len(d) < 5 * len(lonlat)


@pytest.mark.parametrize("weighting", ["idw", "continuous"])
@pytest.mark.parametrize("mode", ["fixed", "adaptive"])
def test_build_graph_three_relations(mode, weighting):
    lonlat, ndvi, elev = _points()
    cfg = GraphConfig(spatial_k_mode=mode, k_spatial=5, k_ndvi=3, adaptive_k=10, hdbscan_min_cluster_size=8,
                      weighting=weighting)
    g = build_graph(lonlat, cfg, ndvi=ndvi, elevation=elev)
    assert g.relations == RELATIONS and g.num_nodes == len(lonlat)
    ei, w = g.relation("spatial")
    counts = np.bincount(ei[1].numpy(), minlength=g.num_nodes)
    assert np.array_equal(counts, g.node_k)
    if mode == "fixed":
        assert (counts == 5).all()
    else:  # exactly the nodes HDBSCAN calls noise get adaptive_k
        noise = _hdbscan_noise(lonlat, 8)
        assert np.array_equal(g.node_k, np.where(noise, 10, 5))
    # inverse-distance weights sum to one per target and no self loops
    assert np.allclose(np.bincount(ei[1].numpy(), weights=w.numpy().astype(float)), 1.0, atol=1e-5)
    assert (ei[0] != ei[1]).all()
    # NDVI: k_ndvi in-edges each, weight exp(-|dNDVI|/tau)
    ei_v, w_v = g.relation("ndvi")
    assert (np.bincount(ei_v[1].numpy(), minlength=g.num_nodes) == 3).all()
    dv = np.abs(ndvi[ei_v[0].numpy()] - ndvi[ei_v[1].numpy()])
    # elevation edges are the spatial edges, re-weighted by slope
    ei_e, w_e = g.relation("elevation")
    assert np.array_equal(ei_e.numpy(), ei.numpy())
    src, dst = ei_e.numpy()
    _, _, d = spatial_knn(lonlat, lonlat, g.node_k, cfg.max_distance_km, exclude_self=True)
    grad = np.abs(elev[src] - elev[dst]) / np.maximum(d, cfg.min_distance_km)
    slope = np.exp(-grad / cfg.slope_scale)
    if weighting == "idw":
        assert np.allclose(w_v.numpy(), np.exp(-dv / cfg.tau_ndvi), rtol=1e-5)
        assert np.allclose(w_e.numpy(), slope, rtol=1e-4)
        return
    # continuous: kernel minus its value at the (k+1)-th neighbour (haversine BallTree, independent of the code)
    tree = BallTree(np.radians(lonlat[:, ::-1]), metric="haversine")
    dist, _ = tree.query(np.radians(lonlat[:, ::-1]), k=12)
    d_next = dist[np.arange(len(lonlat)), g.node_k + 1] * EARTH_RADIUS_KM  # column 0 is the node itself
    raw = 1.0 / d - 1.0 / d_next[dst]
    expect = raw / np.bincount(dst, weights=raw)[dst]
    assert np.allclose(w.numpy(), expect, rtol=1e-4, atol=1e-7)
    assert np.allclose(w_e.numpy(), slope * expect, rtol=1e-4, atol=1e-7)
    dv_sorted = np.sort(np.abs(ndvi[:, None] - ndvi[None, :]), axis=1)  # column 0: the node itself
    dv_next = dv_sorted[:, 4]
    expect_v = np.exp(-dv / cfg.tau_ndvi) - np.exp(-dv_next[ei_v[1].numpy()] / cfg.tau_ndvi)
    assert np.allclose(w_v.numpy(), expect_v, rtol=1e-4, atol=1e-6)


def test_adaptive_k_gives_noise_nodes_more_neighbours():
    lonlat = _clustered()
    g = build_graph(lonlat, ADAPTIVE)
    noise = _hdbscan_noise(lonlat, 8)
    assert 0 < noise.sum() < len(lonlat)  # both kinds occur
    assert not noise[:180].any()  # every member of a tight cluster is clustered...
    assert noise[180:].any()  # ...and some scattered samples are noise
    counts = np.bincount(g.edge_index[1].numpy(), minlength=g.num_nodes)
    assert np.array_equal(counts, np.where(noise, 10, 5))
    assert np.array_equal(g.node_k, counts)
    fixed = build_graph(lonlat, ADAPTIVE.model_copy(update={"spatial_k_mode": "fixed"}))
    assert (fixed.node_k == 5).all()


def test_attach_follows_the_training_adaptive_k_rule():
    lonlat = _clustered()
    g = build_graph(lonlat, ADAPTIVE)
    noise = _hdbscan_noise(lonlat, 8)
    isolated, dense = int(np.flatnonzero(noise)[0]), 3  # node 3 sits in the first tight cluster
    far = np.array([35.0, 4.0])  # ~660 km east of a cluster: less dense than any clustered node (rule 2)
    assert not noise[spatial_knn(far[None], lonlat, 1, 1e9, exclude_self=False)[0]].any()  # so not rule 1
    inside = lonlat[:30].mean(0)  # the middle of a cluster, not on a sample
    new = np.stack([lonlat[isolated], lonlat[dense], far, inside])
    a = attach_edges(new, lonlat, ADAPTIVE, train_k=g.node_k)
    assert a.node_k.tolist() == [10, 5, 10, 5]
    counts = np.bincount(a.edge_index[1].numpy(), minlength=4)
    assert counts.tolist() == [10, 5, 10, 5]
    # a new point on a training site: the site itself (distance 0) and the site's k - 1 nearest neighbours
    for q, node in ((0, isolated), (1, dense)):
        src = set(a.edge_index[0][a.edge_index[1] == q].tolist())
        assert node in src and src - {node} < set(g.edge_index[0][g.edge_index[1] == node].tolist())
    # the same rule without train_k (HDBSCAN re-run on the training nodes), and for every training site
    assert np.array_equal(attach_spatial_k(new, lonlat, ADAPTIVE), a.node_k)
    assert np.array_equal(attach_spatial_k(lonlat, lonlat, ADAPTIVE, g.node_k), g.node_k)
    # fixed mode, or a forced k: one k for all
    assert (attach_spatial_k(new, lonlat, ADAPTIVE.model_copy(update={"spatial_k_mode": "fixed"})) == 5).all()
    assert (attach_edges(new, lonlat, ADAPTIVE, k_spatial=7).node_k == 7).all()
    with pytest.raises(DataError, match="train_k"):
        attach_spatial_k(new, lonlat, ADAPTIVE, np.full(len(lonlat), 6))


def test_relations_can_be_switched_off_and_nan_handling():
    lonlat, ndvi, _elev = _points()
    g = build_graph(lonlat, GraphConfig(relations=["spatial"], spatial_k_mode="fixed"))
    assert g.relations == ("spatial",) and (g.edge_type == 0).all()
    ndvi[:10] = np.nan
    g = build_graph(lonlat, GraphConfig(relations=["spatial", "ndvi"], spatial_k_mode="fixed"), ndvi=ndvi)
    ei_v, _ = g.relation("ndvi")
    assert not np.isin(ei_v.numpy(), np.arange(10)).any()
    with pytest.raises(DataError, match="elevation"):
        build_graph(lonlat, GraphConfig(relations=["spatial", "elevation"]))


def test_attach_edges_in_edges_only():
    lonlat, ndvi, elev = _points()
    new, nndvi, nelev = _points(7, seed=5)
    cfg = GraphConfig(spatial_k_mode="fixed")
    g = attach_edges(new, lonlat, cfg, nndvi, ndvi, nelev, elev)
    assert g.num_nodes == 7 and g.num_sources == len(lonlat)
    assert g.edge_index[1].max() < 7 and g.edge_index[0].max() < len(lonlat)
    ei, _ = g.relation("spatial")
    assert (np.bincount(ei[1].numpy(), minlength=7) == cfg.k_spatial).all()


def test_node_covariates_from_columns():
    df = pd.DataFrame({"ndvi": [0.1, 0.2], "elev_m": [10.0, 20.0]})
    ndvi, elev = node_covariates(df, "ndvi", "elev_m")
    assert ndvi.tolist() == [0.1, 0.2] and elev.tolist() == [10.0, 20.0]
    with pytest.raises(DataError, match="elevation"):
        node_covariates(df)


@pytest.mark.parametrize("mode", ["fixed", "adaptive"])
def test_train_mask_attaches_held_out_nodes_as_map_cells(mode):
    """With ``train_mask`` the training nodes form the graph of the training nodes alone and every held-out node
    receives exactly the in-edges (sources, weights, k) that :func:`attach_edges` gives a new point there."""
    lonlat = _clustered()
    rng = np.random.default_rng(1)
    n = len(lonlat)
    ndvi, elev = rng.uniform(0, 0.8, n), rng.uniform(0, 2000, n)
    cfg = ADAPTIVE.model_copy(update={"spatial_k_mode": mode, "relations": ["spatial", "ndvi", "elevation"]})
    train = rng.random(n) < 0.75
    tr, ho = np.flatnonzero(train), np.flatnonzero(~train)
    g = build_graph(lonlat, cfg, ndvi, elev, train_mask=train)
    src, dst = g.edge_index.numpy()
    assert train[src].all()  # no edge leaves a held-out node
    inner = build_graph(lonlat[tr], cfg, ndvi[tr], elev[tr])
    new = attach_edges(lonlat[ho], lonlat[tr], cfg, ndvi[ho], ndvi[tr], elev[ho], elev[tr], train_k=inner.node_k)

    def edges(s, d, t, w):
        return sorted(zip(s.tolist(), d.tolist(), t.tolist(), np.round(w, 6).tolist(), strict=True))

    on_train = train[dst]
    et, w = g.edge_type.numpy(), g.edge_weight.numpy()
    assert edges(src[on_train], dst[on_train], et[on_train], w[on_train]) == edges(
        tr[inner.edge_index[0].numpy()], tr[inner.edge_index[1].numpy()], inner.edge_type.numpy(),
        inner.edge_weight.numpy())
    assert edges(src[~on_train], dst[~on_train], et[~on_train], w[~on_train]) == edges(
        tr[new.edge_index[0].numpy()], ho[new.edge_index[1].numpy()], new.edge_type.numpy(), new.edge_weight.numpy())
    assert np.array_equal(g.node_k[tr], inner.node_k) and np.array_equal(g.node_k[ho], new.node_k)
    if mode == "adaptive":
        assert set(g.node_k.tolist()) == {5, 10}  # the adaptive rule really varies k here
    with pytest.raises(DataError, match="train_mask"):
        build_graph(lonlat, cfg, ndvi, elev, train_mask=np.zeros(n, bool))
