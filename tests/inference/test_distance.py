"""The distance-aware epistemic term: zero near the data, growing with the distance to the nearest training site
as the training labels' semivariogram does."""

from __future__ import annotations

import numpy as np
import pytest

from socmap.inference import DistanceVariance, EnsemblePrediction, nearest_site_km


def _field(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth field (sum of sines over ~200 km) plus a nugget, at random sites over 10 x 10 degrees."""
    rng = np.random.default_rng(seed)
    lonlat = np.c_[rng.uniform(20, 30, n), rng.uniform(-5, 5, n)]
    smooth = np.sin(lonlat[:, 0] * 1.5) + np.cos(lonlat[:, 1] * 1.3)
    return lonlat, smooth + rng.normal(scale=0.3, size=n)


def test_nearest_site_km_is_the_great_circle_distance() -> None:
    sites = np.array([[0.0, 0.0], [10.0, 0.0]])
    d = nearest_site_km(np.array([[1.0, 0.0], [9.0, 0.0], [5.0, 0.0]]), sites)
    one_degree = 6371.0088 * np.pi / 180
    assert np.allclose(d, [one_degree, one_degree, 5 * one_degree], rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_term_is_zero_near_the_data_and_grows_away(seed: int) -> None:
    lonlat, y = _field(seed=seed)
    val_d = np.full(50, 5.0)
    dv = DistanceVariance.fit(lonlat, y, val_d, seed=seed)
    assert dv.d_ref_km == pytest.approx(5.0)
    assert 0.5 * np.var(y) < dv.nugget + dv.sill < 2.0 * np.var(y)  # the sill is the labels' variance
    d = np.array([0.0, 5.0, 20.0, 100.0, 300.0, 3000.0])
    v = dv(d)
    assert v[0] == 0 and v[1] == 0
    assert np.all(np.diff(v[1:]) > 0)  # grows with distance beyond d_ref
    assert v[-1] == pytest.approx(dv.sill * (np.exp(-5.0 / dv.range_km) - np.exp(-3000.0 / dv.range_km)))
    assert v[-1] > 0.5 * np.var(y) - dv.nugget  # far from every site: most of the structured variance
    assert DistanceVariance.from_dict(dv.to_dict()) == dv


def test_add_epistemic_adds_after_calibration() -> None:
    mm, mv = np.array([[1.0, 2.0], [1.2, 2.4]]), np.full((2, 2), 0.1)
    pred = EnsemblePrediction.from_members(mm, mv, 2.0)
    more = pred.add_epistemic(np.array([0.0, 0.5]))
    assert np.allclose(more.epistemic_var - pred.epistemic_var, [0.0, 0.5])
    assert np.array_equal(more.aleatoric_var, pred.aleatoric_var) and pred.add_epistemic(None) is pred
