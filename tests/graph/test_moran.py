"""Local Moran's I against esda.Moran_Local and a hand-computed example."""

from __future__ import annotations

import numpy as np
from esda.moran import Moran_Local
from libpysal.weights import W

from socmap.config import GraphConfig
from socmap.graph import build_graph, local_morans_i, spatial_local_morans_i


def test_hand_computed_chain():
    # path 0-1-2-3, binary symmetric weights, y = [1, 2, 3, 6]; mean 3, z = [-2, -1, 0, 3], sum z^2 = 14
    ei = np.array([[1, 0, 2, 1, 3, 2], [0, 1, 1, 2, 2, 3]])
    y = np.array([1.0, 2.0, 3.0, 6.0])
    got = local_morans_i(y, ei)
    # row-standardised lags: [-1, -1, 1, 0]; I = 3 * z * lag / 14
    expected = 3 * np.array([-2, -1, 0, 3]) * np.array([-1, -1, 1, 0]) / 14
    assert np.allclose(got, expected)


def test_matches_esda_on_spatial_relation_with_mask():
    rng = np.random.default_rng(0)
    n = 150
    lonlat = np.c_[rng.uniform(0, 5, n), rng.uniform(0, 5, n)]
    y = np.sin(lonlat[:, 0]) + 0.3 * rng.normal(size=n)
    train = rng.random(n) < 0.8
    g = build_graph(lonlat, GraphConfig(relations=["spatial"], spatial_k_mode="fixed", k_spatial=6))
    got = spatial_local_morans_i(g, y, train)
    assert np.isnan(got[~train]).all()
    # the same weights as a libpysal W over the training nodes
    ei, w = g.relation("spatial")
    src, dst, w = ei[0].numpy(), ei[1].numpy(), w.numpy().astype(float)
    idx = np.flatnonzero(train)
    pos = {int(i): p for p, i in enumerate(idx)}
    neighbors = {p: [] for p in range(len(idx))}
    weights = {p: [] for p in range(len(idx))}
    for s, d, ww in zip(src, dst, w, strict=False):
        if train[s] and train[d]:
            neighbors[pos[int(d)]].append(pos[int(s)])
            weights[pos[int(d)]].append(ww)
    wobj = W(neighbors, weights, silence_warnings=True)
    ref = Moran_Local(y[train], wobj, transformation="r", permutations=0)
    isl = np.array([len(neighbors[p]) == 0 for p in range(len(idx))])
    assert np.allclose(got[train][~isl], ref.Is[~isl], atol=1e-10)
    assert np.allclose(got[train][isl], 0.0)
