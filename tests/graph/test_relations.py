"""Heterogeneous graph relations: k-NN on the sphere, weights, NDVI and elevation edges, attachment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import BallTree

from socmap.config import GraphConfig
from socmap.errors import DataError
from socmap.graph import RELATIONS
from socmap.graph.relations import EARTH_RADIUS_KM, attach_edges, build_graph, node_covariates, spatial_knn


def _points(n=200, seed=0):
    rng = np.random.default_rng(seed)
    lonlat = np.c_[rng.uniform(20, 30, n), rng.uniform(-5, 5, n)]
    ndvi = rng.uniform(0, 0.8, n)
    elev = rng.uniform(0, 2000, n)
    return lonlat, ndvi, elev


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


@pytest.mark.parametrize("mode", ["fixed", "adaptive"])
def test_build_graph_three_relations(mode):
    lonlat, ndvi, elev = _points()
    cfg = GraphConfig(spatial_k_mode=mode, k_spatial=5, k_ndvi=3, adaptive_k=10, hdbscan_min_cluster_size=8)
    g = build_graph(lonlat, cfg, ndvi=ndvi, elevation=elev)
    assert g.relations == RELATIONS and g.num_nodes == len(lonlat)
    ei, w = g.relation("spatial")
    counts = np.bincount(ei[1].numpy(), minlength=g.num_nodes)
    assert np.array_equal(counts, g.node_k)
    if mode == "fixed":
        assert (counts == 5).all()
    assert set(np.unique(counts)) <= {5, 10}
    # inverse-distance weights sum to one per target and no self loops
    assert np.allclose(np.bincount(ei[1].numpy(), weights=w.numpy().astype(float)), 1.0, atol=1e-5)
    assert (ei[0] != ei[1]).all()
    # NDVI: k_ndvi in-edges each, weight exp(-|dNDVI|/tau)
    ei_v, w_v = g.relation("ndvi")
    assert (np.bincount(ei_v[1].numpy(), minlength=g.num_nodes) == 3).all()
    dv = np.abs(ndvi[ei_v[0].numpy()] - ndvi[ei_v[1].numpy()])
    assert np.allclose(w_v.numpy(), np.exp(-dv / cfg.tau_ndvi), rtol=1e-5)
    # elevation edges are the spatial edges, re-weighted by slope
    ei_e, w_e = g.relation("elevation")
    assert np.array_equal(ei_e.numpy(), ei.numpy())
    src, dst = ei_e.numpy()
    _, _, d = spatial_knn(lonlat, lonlat, g.node_k, cfg.max_distance_km, exclude_self=True)
    grad = np.abs(elev[src] - elev[dst]) / np.maximum(d, cfg.min_distance_km)
    assert np.allclose(w_e.numpy(), np.exp(-grad / cfg.slope_scale), rtol=1e-4)


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
