"""Sphere geometry: hand-checked distances, chord <-> great circle, haversine in numpy and torch, k-NN on the sphere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from socmap.geo import (
    EARTH_RADIUS_KM,
    chord_to_km,
    haversine_km,
    km_to_chord,
    knn_km,
    lonlat_to_unit,
    sphere_knn,
    unit_tree,
)

QUARTER_KM = np.pi / 2 * EARTH_RADIUS_KM
HALF_KM = np.pi * EARTH_RADIUS_KM
DEGREE_KM = np.pi / 180 * EARTH_RADIUS_KM  # about 111.195 km


def _random_lonlat(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-180, 180, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))]


@pytest.mark.parametrize(
    ("a", "b", "km"),
    [
        ((0.0, 0.0), (0.0, 90.0), QUARTER_KM),  # equator to pole: a quarter meridian
        ((37.0, -3.0), (37.0, 87.0), QUARTER_KM),
        ((0.0, 0.0), (90.0, 0.0), QUARTER_KM),  # a quarter of the equator
        ((0.0, 0.0), (180.0, 0.0), HALF_KM),  # antipodes on the equator
        ((10.0, 30.0), (-170.0, -30.0), HALF_KM),  # antipodes off it
        ((0.0, 0.0), (0.0, 1.0), DEGREE_KM),  # a degree of latitude
        ((36.5, -3.4), (36.5, -2.4), DEGREE_KM),
        ((120.0, 60.0), (121.0, 60.0), None),  # a degree of longitude at 60 N: see below
        ((5.0, 5.0), (5.0, 5.0), 0.0),
    ],
)
def test_haversine_hand_checked(a, b, km) -> None:
    got = float(haversine_km(a[0], a[1], b[0], b[1]))
    if km is None:  # the small circle at 60 N is half the equator's; the great circle is barely shorter
        assert got == pytest.approx(DEGREE_KM * 0.5, rel=1e-4) and got < DEGREE_KM * 0.5
    else:
        assert got == pytest.approx(km, rel=1e-7, abs=1e-9)


def test_radius_is_the_iugg_mean_radius() -> None:
    assert EARTH_RADIUS_KM == 6371.0088
    assert DEGREE_KM == pytest.approx(111.19508, abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unit_vectors_have_unit_length_and_chord_matches_haversine(seed: int) -> None:
    a, b = _random_lonlat(500, seed), _random_lonlat(500, seed + 100)
    ua, ub = lonlat_to_unit(a), lonlat_to_unit(b)
    assert ua.shape == (500, 3)
    assert np.allclose(np.linalg.norm(ua, axis=1), 1.0, atol=1e-12)
    chord = np.linalg.norm(ua - ub, axis=1)
    assert np.allclose(chord_to_km(chord), haversine_km(a[:, 0], a[:, 1], b[:, 0], b[:, 1]), rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("km", [0.0, 0.01, 1.0, DEGREE_KM, 1000.0, QUARTER_KM, 15000.0, HALF_KM])
def test_chord_great_circle_round_trip(km: float) -> None:
    chord = km_to_chord(np.array([km]))
    assert 0.0 <= chord[0] <= 2.0
    assert chord_to_km(chord)[0] == pytest.approx(km, rel=1e-9, abs=1e-6)


def test_chord_of_hand_checked_distances() -> None:
    assert km_to_chord(np.array([QUARTER_KM]))[0] == pytest.approx(np.sqrt(2.0))
    assert km_to_chord(np.array([HALF_KM]))[0] == pytest.approx(2.0)
    assert chord_to_km(np.array([2.0]))[0] == pytest.approx(HALF_KM)


def test_haversine_in_torch_matches_numpy() -> None:
    a, b = _random_lonlat(300, 5), _random_lonlat(300, 6)
    want = haversine_km(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    got = haversine_km(ta[:, 0], ta[:, 1], tb[:, 0], tb[:, 1], xp=torch)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    assert np.allclose(got.numpy(), want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(("n_ref", "n_query", "k", "seed"), [(50, 20, 1, 0), (200, 30, 5, 1), (7, 10, 7, 2)])
def test_knn_agrees_with_brute_force(n_ref: int, n_query: int, k: int, seed: int) -> None:
    ref, qry = _random_lonlat(n_ref, seed), _random_lonlat(n_query, seed + 50)
    dist, idx = sphere_knn(ref, qry, k)
    assert dist.shape == idx.shape == (n_query, k)
    brute = haversine_km(qry[:, None, 0], qry[:, None, 1], ref[None, :, 0], ref[None, :, 1])
    order = np.argsort(brute, axis=1)[:, :k]
    assert (idx == order).all()
    assert np.allclose(dist, np.take_along_axis(brute, order, axis=1), rtol=1e-9, atol=1e-6)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_knn_beyond_the_tree_reports_inf() -> None:
    ref = np.array([[0.0, 0.0], [0.0, 1.0]])
    dist, idx = knn_km(unit_tree(ref), np.array([[0.0, 0.2]]), 3)
    assert idx[0, :2].tolist() == [0, 1] and idx[0, 2] == len(ref)
    assert np.isfinite(dist[0, :2]).all() and dist[0, 2] == np.inf
    assert dist[0, 0] == pytest.approx(0.2 * DEGREE_KM)
