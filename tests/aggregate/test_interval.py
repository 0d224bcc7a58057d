"""The pair sum behind the residual part (exact and sampled agree), the t quantile for few members, and the
map-wide shared error the correlogram estimates from the mean held-out residual."""

from __future__ import annotations

import numpy as np
import pytest

from socmap.aggregate.correlogram import Correlogram, distance_matched_weights, fit_correlogram
from socmap.aggregate.interval import ZoneSum, pair_sum


def test_sampled_pair_sum_matches_exact() -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 3, (1500, 2))  # km
    a = rng.uniform(0.5, 1.5, 1500)
    a /= a.sum()
    c = Correlogram(len_scale_km=0.5, nugget_share=0.2, shared_share=0.1)
    exact, is_exact = pair_sum(a, pts, c.rho, geographic=False)
    approx, is_approx = pair_sum(a, pts, c.rho, geographic=False, exact_max=100, n_pairs=200_000, rng=rng)
    assert is_exact and not is_approx
    assert abs(approx - exact) < 0.02 * exact
    # independent cells: the pair sum is the diagonal alone
    white = Correlogram(len_scale_km=0.5, nugget_share=1.0)
    assert abs(pair_sum(a, pts, white.rho, geographic=False)[0] - float(a @ a)) < 1e-12
    # great-circle distances: the same points 1/100 degree apart near the equator are ~1.11 km apart
    ll = np.array([[30.0, 0.0], [30.01, 0.0]])
    near = pair_sum(np.array([0.5, 0.5]), ll, c.rho, geographic=True)[0]
    assert abs(near - (0.5 + 0.5 * float(c.rho(np.array([1.112]))[0]))) < 1e-3


def test_few_members_widen_the_interval() -> None:
    z = ZoneSum(value=10.0, var_epistemic=1.0, var_residual=0.0, var_naive=0.01, exact=True, df_epistemic=2.0)
    lo, hi = z.interval(0.9)
    assert abs((hi - lo) / 2 - 2.92) < 0.01  # t(0.95, 2 df)
    z_many = ZoneSum(value=10.0, var_epistemic=1.0, var_residual=0.0, var_naive=0.01, exact=True)
    assert abs((z_many.interval(0.9)[1] - 10.0) - 1.645) < 0.01


def test_shared_error_from_the_mean_residual() -> None:
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 10, (200, 2))
    r = rng.standard_normal(200)
    centred = fit_correlogram(xy, r - r.mean(), geographic=False)
    biased = fit_correlogram(xy, r - r.mean() + 0.5, geographic=False)
    assert centred.shared_share == 0.0 and abs(centred.mean_residual) < 1e-12
    assert 0.1 < biased.shared_share < 0.3 and abs(biased.mean_residual - 0.5) < 1e-9
    assert biased.rho(np.array([8.0]))[0] >= biased.shared_share - 1e-12


@pytest.mark.parametrize("bins", [3, 5, 8])
def test_distance_matched_weights_make_points_stand_for_far_cells(bins: int) -> None:
    """Held-out points mostly near the training sites, map cells mostly far: far points weigh more, the weights
    average 1, every bin keeps enough points, and equal distributions give equal weights."""
    rng = np.random.default_rng(bins)
    d_points = np.r_[rng.uniform(0, 1, 80), rng.uniform(1, 3, 20)]
    d_cells = np.r_[rng.uniform(0, 1, 2000), rng.uniform(1, 3, 6000)]
    w = distance_matched_weights(d_points, d_cells, bins=bins, min_points=5)
    assert w.shape == d_points.shape and w.mean() == pytest.approx(1.0)
    assert w[80:].mean() > 2.0 * w[:80].mean()
    # cells 75 % far, points 20 % far: the far points' total weight approaches the cells' far share
    assert 0.5 < w[80:].sum() / w.sum() <= 0.8
    same = distance_matched_weights(d_points, np.tile(d_points, 20), bins=bins)
    assert np.allclose(same, 1.0, atol=0.35)


def test_weighted_sill_follows_the_far_points() -> None:
    """Residuals twice as large far from the training sites: weighting the points like far map cells raises the
    sill above the unweighted one; uniform weights leave it unchanged."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 20, (120, 2))
    far = np.r_[np.zeros(90, bool), np.ones(30, bool)]
    r = rng.standard_normal(120) * np.where(far, 2.0, 1.0)
    plain = fit_correlogram(xy, r, geographic=False)
    same = fit_correlogram(xy, r, geographic=False, weights=np.ones(120))
    assert same.sill == pytest.approx(plain.sill)
    w = np.where(far, 3.0, 1.0 / 3.0)
    weighted = fit_correlogram(xy, r, geographic=False, weights=w)
    assert weighted.sill > 1.5 * plain.sill and weighted.sill_unweighted == pytest.approx(plain.sill)


def test_correlogram_survives_a_start_that_does_not_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Least squares from one starting range can run out of evaluations (scipy's RuntimeError, met on the Africa
    map): the other starts are used; if none converges the error is a one-line ModelError, not a traceback."""
    import gstools as gs

    from socmap.errors import ModelError

    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, size=(300, 2))
    r = np.sin(xy[:, 0] / 15) + 0.3 * rng.normal(size=300)
    ref = fit_correlogram(xy, r, geographic=False)
    real = gs.Exponential.fit_variogram
    calls = {"n": 0}

    def first_fails(self, *a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("Optimal parameters not found: The maximum number of function evaluations is exceeded.")
        return real(self, *a, **k)

    monkeypatch.setattr(gs.Exponential, "fit_variogram", first_fails)
    got = fit_correlogram(xy, r, geographic=False)
    assert calls["n"] == 4 and np.isfinite(got.len_scale_km) and got.len_scale_km > 0
    assert got.n_points == ref.n_points == 300

    def never(self, *a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(gs.Exponential, "fit_variogram", never)
    with pytest.raises(ModelError, match="could not be fitted"):
        fit_correlogram(xy, r, geographic=False)
