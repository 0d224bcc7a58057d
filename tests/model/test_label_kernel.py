"""The scale-adaptive label features: a hand-worked case, hidden labels, continuity where the neighbour set changes,
and a map of a smooth field that does not step at nearest-site borders (it does with the k nearest sites)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from socmap.evaluate.realism import facet_ratio_by_distance, nearest_site
from socmap.graph.relations import graph_label_edges, label_edges, spatial_knn
from socmap.model.label_kernel import adaptive_label_features
from socmap.model.sptgnn import label_features


def _features(labels: np.ndarray, tgt: np.ndarray, src: np.ndarray, k: int, radius: float = 3.0,
              min_radius_km: float = 0.5) -> np.ndarray:
    ei, dist = label_edges(tgt, src, k, exclude_self=False)
    return adaptive_label_features(torch.tensor(labels, dtype=torch.float64), ei, dist.double(), len(tgt),
                                   radius=radius, min_radius_km=min_radius_km).numpy()


def _along_equator(km: list[float]) -> np.ndarray:
    """Points on the equator ``km`` east of 0 degrees."""
    return np.c_[np.asarray(km) / 111.19492664455873, np.zeros(len(km))]


def test_features_by_hand() -> None:
    """Sites 1, 2, 4 and 8 km east of the target, labels 10, 20, 30, 40: R = 3 x 1 km, so weights (1 - 1/9)^2,
    (1 - 4/9)^2 and 0, 0."""
    sites = _along_equator([1.0, 2.0, 4.0, 8.0])
    f = _features(np.array([10.0, 20.0, 30.0, 40.0]), _along_equator([0.0]), sites, k=4)[0]
    w1, w2 = (1 - 1 / 9) ** 2, (1 - 4 / 9) ** 2
    assert f[0] == pytest.approx((10 * w1 + 20 * w2) / (w1 + w2), rel=1e-6)
    assert f[1] == pytest.approx(1.0)  # every site in the kernel is observed
    assert f[2] == pytest.approx(np.log1p((1 * w1 + 2 * w2) / (w1 + w2)), rel=1e-5)
    # the radius is capped at the farthest site of the set: with k = 2 only the nearest one weighs (R = 2 km)
    f2 = _features(np.array([10.0, 20.0, 30.0, 40.0]), _along_equator([0.0]), sites, k=2)[0]
    assert f2[0] == pytest.approx(10.0, rel=1e-6)


def test_hidden_labels_do_not_count_and_widen_the_kernel() -> None:
    """The nearest site hidden (NaN): R is 3 x the nearest observed (2 km -> 6 km), its weight drops out of the
    mean and lowers the observed share; all hidden gives zeros."""
    sites = _along_equator([1.0, 2.0, 4.0, 8.0])
    f = _features(np.array([np.nan, 20.0, 30.0, 40.0]), _along_equator([0.0]), sites, k=4)[0]
    w1, w2, w4 = (1 - 1 / 36) ** 2, (1 - 4 / 36) ** 2, (1 - 16 / 36) ** 2
    assert f[0] == pytest.approx((20 * w2 + 30 * w4) / (w2 + w4), rel=1e-6)
    assert f[1] == pytest.approx((w2 + w4) / (w1 + w2 + w4), rel=1e-6)
    none = _features(np.full(4, np.nan), _along_equator([0.0]), sites, k=4)[0]
    assert np.array_equal(none, np.zeros(3))


def test_graph_label_edges_take_training_sources_and_never_self() -> None:
    rng = np.random.default_rng(0)
    lonlat = np.c_[rng.uniform(30, 31, 60), rng.uniform(-3, -2, 60)]
    train = rng.random(60) < 0.7
    ei, dist = graph_label_edges(lonlat, 5, train)
    src, dst = ei.numpy()
    assert train[src].all() and (src != dst).all()
    assert np.array_equal(np.bincount(dst, minlength=60), np.full(60, 5))
    tr = np.flatnonzero(train)
    for t in (0, 1, 2, 59):  # each target's set is its 5 nearest training nodes
        s, _, _ = spatial_knn(lonlat[t][None], lonlat[tr[tr != t]], 5, np.inf, exclude_self=False)
        assert set(src[dst == t]) == set(tr[tr != t][s])
    assert np.all(dist.numpy() > 0)


def _field_sites(n: int = 150, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Sites over 4 x 4 degrees and a smooth field (one sine over the region) with a little noise."""
    rng = np.random.default_rng(seed)
    sites = np.c_[rng.uniform(30, 34, n), rng.uniform(-2, 2, n)]
    return sites, np.sin(sites[:, 0] * 0.8) + 0.5 * np.cos(sites[:, 1]) + 0.1 * rng.normal(size=n)


def test_features_continuous_where_the_neighbour_set_changes() -> None:
    """Two cells a hair (1e-7 degrees) apart on either side of a change of their 8-site label set have the same
    features to 1e-4; the k nearest sites' inverse-distance mean jumps there."""
    sites, y = _field_sites()
    a, b = sites[0] + 0.05, sites[1] - 0.05
    kset = lambda p: frozenset(spatial_knn(p[None], sites, 8, np.inf, exclude_self=False)[0].tolist())  # noqa: E731
    assert kset(a) != kset(b)
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kset(a + mid * (b - a)) == kset(a) else (lo, mid)
    pts = np.stack([a + lo * (b - a), a + hi * (b - a)])
    assert kset(pts[0]) != kset(pts[1])
    f = _features(y, pts, sites, k=8, radius=50.0)  # a wide kernel: every site of the set weighs
    assert np.abs(f[0] - f[1]).max() < 1e-4
    ei, dist = label_edges(pts, sites, 8, exclude_self=False)
    idw = label_features(torch.tensor(y), ei, 1.0 / dist.double(), 2).numpy()
    assert np.abs(idw[0, 0] - idw[1, 0]) > 1e-3


def test_map_of_a_smooth_field_has_no_steps_at_nearest_site_borders() -> None:
    """The label mean of a smooth field mapped on a grid of cells through the attachment (``label_edges``, as a
    map cell gets them): at equal distance from the sites it steps across nearest-site borders no more than within
    them; the k nearest sites' inverse-distance mean does (the check can fail)."""
    sites, y = _field_sites()
    lon, lat = np.meshgrid(np.linspace(29.5, 34.5, 120), np.linspace(-2.5, 2.5, 120))
    cells = np.c_[lon.ravel(), lat.ravel()]
    site, km = nearest_site(cells, sites, return_km=True)
    adaptive = _features(y, cells, sites, k=32, min_radius_km=1.0)[:, 0]
    ei, dist = label_edges(cells, sites, 10, exclude_self=False)
    idw = label_features(torch.tensor(y), ei, 1.0 / dist.double().clamp_min(0.01), len(cells))[:, 0].numpy()
    shape = lon.shape
    smooth = facet_ratio_by_distance(adaptive.reshape(shape), site.reshape(shape), km.reshape(shape))
    mosaic = facet_ratio_by_distance(idw.reshape(shape), site.reshape(shape), km.reshape(shape))
    assert smooth <= 1.0
    assert mosaic > smooth + 0.2


def test_adaptive_spatial_weights_by_hand() -> None:
    """``weighting: adaptive``: the spatial relation's weights are the biweight at 3 x the nearest neighbour's
    distance, capped at the (k+1)-th neighbour's, normalised per target."""
    from socmap.config import GraphConfig
    from socmap.graph.relations import attach_edges

    sites = _along_equator([1.0, 2.0, 4.0, 8.0])
    cfg = GraphConfig(relations=["spatial"], k_spatial=3, weighting="adaptive", spatial_k_mode="fixed",
                      label_min_radius_km=0.5)
    g = attach_edges(_along_equator([0.0]), sites, cfg, k_spatial=3)
    w = dict(zip(g.edge_index[0].tolist(), g.edge_weight.tolist(), strict=True))
    w1, w2 = (1 - 1 / 9) ** 2, (1 - 4 / 9) ** 2  # R = min(3 x 1 km, 8 km); the site at 4 km is beyond R
    assert w == pytest.approx({0: w1 / (w1 + w2), 1: w2 / (w1 + w2), 2: 0.0}, rel=1e-5)
    capped = attach_edges(_along_equator([0.0]), sites, cfg.model_copy(update={"k_spatial": 1}), k_spatial=1)
    assert capped.edge_weight.tolist() == [1.0]  # R = the 2nd neighbour's 2 km: one neighbour, all the weight
