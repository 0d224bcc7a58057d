"""The probabilistic baselines: quantile regression forest and regression kriging (local ordinary kriging)."""

from __future__ import annotations

import numpy as np
import pytest

from socmap.evaluate.baselines import fit_xgboost
from socmap.evaluate.kriging import fit_residual_variogram, local_ordinary_kriging
from socmap.evaluate.probabilistic import QUANTILE_GRID, run_qrf, run_regression_kriging


def test_qrf_intervals_cover_their_level_on_a_known_distribution() -> None:
    # log1p(SOC) = x0 + N(0, 0.5^2), x1 and x2 uninformative inputs: the 5-95 % interval should hold ~90 % of new
    # draws, 2.5-97.5 % ~95 %
    rng = np.random.default_rng(0)
    x, xt = rng.uniform(0, 3, (3000, 3)), rng.uniform(0.2, 2.8, (1000, 3))
    y, yt = np.expm1(x[:, 0] + 0.5 * rng.standard_normal(3000)), np.expm1(xt[:, 0] + 0.5 * rng.standard_normal(1000))
    res = run_qrf(x, y, xt, seed=0, n_jobs=1)
    cov90 = np.mean((res.intervals[0.90][0] <= yt) & (yt <= res.intervals[0.90][1]))
    cov95 = np.mean((res.intervals[0.95][0] <= yt) & (yt <= res.intervals[0.95][1]))
    assert cov90 == pytest.approx(0.90, abs=0.04) and cov95 == pytest.approx(0.95, abs=0.03)
    # median expm1(x); mean of the log-normal exp(x + 0.125) - 1: above the median by exp(0.125) on 1 + SOC
    assert np.median(np.log1p(res.median_gkg) - xt[:, 0]) == pytest.approx(0.0, abs=0.05)
    assert np.median(np.log1p(res.mean_gkg) - np.log1p(res.median_gkg)) == pytest.approx(0.125, abs=0.04)
    assert res.grid_gkg is not None and res.grid_gkg.shape == (1000, len(QUANTILE_GRID))
    assert np.all(np.diff(res.grid_gkg, axis=1) >= 0)
    crps = res.crps_rows(yt)
    assert crps.shape == (1000,) and np.all(crps >= 0)


def _field(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, object]:
    import gstools as gs

    rng = np.random.default_rng(seed)
    lonlat = np.column_stack([rng.uniform(36.0, 36.5, n), rng.uniform(-3.5, -3.0, n)])
    model = gs.Exponential(latlon=True, geo_scale=gs.KM_SCALE, var=1.0, len_scale=15.0)  # km, no nugget
    return lonlat, gs.SRF(model, seed=seed)((lonlat[:, 1], lonlat[:, 0])), model


def test_kriging_is_exact_at_its_data_and_its_variance_grows_away() -> None:
    lonlat, f, model = _field(300, 1)
    mean, var = local_ordinary_kriging(lonlat, f, lonlat, model, neighbours=30)
    np.testing.assert_allclose(mean, f, atol=1e-6)  # exact interpolator with a zero nugget
    assert var.max() < 1e-6
    near = local_ordinary_kriging(lonlat, f, lonlat + np.array([0.01, 0.0]), model)[1]  # ~1.1 km east of each site
    far = local_ordinary_kriging(lonlat, f, np.array([[37.5, -3.2]]), model)[1]  # ~110 km off the data
    assert 0.0 < near.mean() < 0.5 and far[0] > 1.0  # beyond the range: the sill plus the mean's uncertainty
    # a nugget: the data are noisy, so a data site's variance is the nugget (plus a little), no longer 0
    noisy = model.__class__(latlon=True, geo_scale=model.geo_scale, var=1.0, len_scale=15.0, nugget=0.2)
    assert local_ordinary_kriging(lonlat, f, lonlat[:5], noisy)[1].min() > 0.2


def test_residual_variogram_recovers_a_spatial_field() -> None:
    lonlat, f, _ = _field(300, 1)
    _, info = fit_residual_variogram(lonlat, f)
    assert info["model"] in ("Exponential", "Spherical") and info["nugget"] < 0.1
    assert 3.0 < info["len_scale_km"] < 60.0 and info["r2"] > 0.8
    white = np.random.default_rng(2).standard_normal(300)  # no spatial structure: mostly nugget
    _, winfo = fit_residual_variogram(lonlat, white)
    assert winfo["nugget"] > 0.5 * (winfo["nugget"] + winfo["var"]) or winfo["len_scale_km"] < 0.5


def test_regression_kriging_adds_the_spatial_residual() -> None:
    # log1p(SOC) = 2 + 0.5 x + a spatial field: the trend alone misses the field, kriging its residuals finds it
    lonlat, f, _ = _field(400, 3)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (400, 1))
    y = np.expm1(2.0 + 0.5 * x[:, 0] + 0.5 * f)
    tr, te = np.arange(400) < 320, np.arange(400) >= 320
    res = run_regression_kriging(x[tr], y[tr], lonlat[tr], x[te], lonlat[te], seed=0, n_jobs=1, neighbours=30)
    assert res.mu_log is not None and res.sd_log is not None
    trend = fit_xgboost(x[tr], y[tr], seed=0, n_jobs=1).predict(x[te])
    err_rk, err_trend = (np.sqrt(np.mean((p - np.log1p(y[te])) ** 2)) for p in (res.mu_log, trend))
    assert err_rk < 0.9 * err_trend  # (the trend overfits the field as a function of x: that part is a nugget)
    vario = res.params["variogram"]  # the field's spatial structure found in the residuals: more sill than nugget
    assert vario["model"] in ("Exponential", "Spherical") and vario["var"] > vario["nugget"]
    np.testing.assert_allclose(res.mean_gkg, np.expm1(res.mu_log + res.sd_log**2 / 2))
    np.testing.assert_allclose(res.median_gkg, np.expm1(res.mu_log))
    lo, hi = res.intervals[0.95]
    assert np.all(lo < res.median_gkg) and np.all(res.median_gkg < hi)
    assert np.mean((lo <= y[te]) & (y[te] <= hi)) > 0.85
