"""Baselines: leave-one-out neighbour sets, great-circle distances, and that the spatial lag helps a spatial field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from socmap.evaluate.baselines import haversine_knn, run_baselines, spatial_lag_features


def test_haversine_knn_distances_and_leave_one_out() -> None:
    ref = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    idx, dist = haversine_knn(ref, ref, 2, exclude_self=True)
    assert not np.any(idx == np.arange(4)[:, None])  # a row never sees itself
    one_deg_km = 2 * np.pi * 6371.0088 / 360
    assert dist[0, 0] == pytest.approx(one_deg_km, rel=1e-6)
    assert set(idx[0]) == {1, 2}
    idx2, _ = haversine_knn(ref, np.array([[0.9, 0.0]]), 1)
    assert idx2[0, 0] == 1


def test_co_located_site_is_kept_but_own_row_is_not() -> None:
    ref = np.array([[10.0, 5.0], [10.0, 5.0], [11.0, 5.0]])
    idx, dist = haversine_knn(ref, ref, 1, exclude_self=True)
    assert list(idx[:, 0]) == [1, 0, 0] or list(idx[:, 0]) == [1, 0, 1]
    assert dist[0, 0] == pytest.approx(0.0)


def test_spatial_lag_features_idw() -> None:
    ref = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    vals = np.array([1.0, 2.0, 4.0])
    f = spatial_lag_features(ref, vals, np.array([[0.0, 0.5]]), k=2)
    assert f.shape == (1, 5)
    # neighbours 0 and 1 at equal distance -> IDW mean 1.5
    assert sorted(f[0, :2]) == [1.0, 2.0]
    assert f[0, 4] == pytest.approx(1.5)


def _field(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(30, 32, n), rng.uniform(-2, 0, n)
    # a smooth spatial field the covariate does not explain, plus a covariate effect
    cov = rng.normal(size=n)
    log_soc = 2.0 + 0.8 * np.sin(3 * lon) * np.cos(4 * lat) + 0.3 * cov + rng.normal(0, 0.05, n)
    split = np.where(rng.uniform(size=n) < 0.8, "train", "test")
    return pd.DataFrame({"lon": lon, "lat": lat, "year": 2015, "soc_gkg": np.expm1(log_soc), "split": split,
                         "feat_cov": cov, "feat_noise": rng.normal(size=n)})


def test_run_baselines_same_rows_and_spatial_lag_helps() -> None:
    df = _field(400, 0)
    test = (df.split == "test").to_numpy()
    res = run_baselines(df, ["feat_cov", "feat_noise"], eval_mask=test, k=5, n_jobs=1)
    assert set(res) == {"xgboost", "rfsi"}
    y = df.soc_gkg.to_numpy()[test]
    for r in res.values():
        assert r.pred_gkg.shape == (test.sum(),) and np.all(r.pred_gkg > 0)
    err = {k: np.sqrt(np.mean((r.pred_gkg - y) ** 2)) for k, r in res.items()}
    assert err["rfsi"] < err["xgboost"]
    assert np.sqrt(np.mean((np.median(y) - y) ** 2)) > err["xgboost"]


def test_bundle_feature_names_map_to_feat_columns() -> None:
    from socmap.evaluate.baselines import baseline_inputs

    df = _field(20, 1)
    df["cov"] = 1000.0  # a raw, unscaled column of the same name must not be picked up
    x, cols = baseline_inputs(df, ["cov", "feat_noise"])
    assert cols == ["feat_cov", "feat_noise", "lon", "lat", "year"]
    np.testing.assert_array_equal(x[:, 0], df["feat_cov"].to_numpy())


def test_smearing_turns_the_median_into_the_mean() -> None:
    """With log-normal noise (sd 0.6 on the log scale) expm1 of a log prediction is the median, about
    exp(-0.18) = 0.84 of the mean; Duan's factor from out-of-fold residuals lifts it to the mean."""
    rng = np.random.default_rng(3)
    n = 600
    cov = rng.normal(size=n)
    log_soc = 2.5 + 0.5 * cov + rng.normal(0, 0.6, n)
    df = pd.DataFrame({"lon": rng.uniform(30, 32, n), "lat": rng.uniform(-2, 0, n), "year": 2015,
                       "soc_gkg": np.expm1(log_soc), "split": np.where(np.arange(n) < 450, "train", "test"),
                       "feat_cov": cov})
    test = (df.split == "test").to_numpy()
    res = run_baselines(df, ["feat_cov"], eval_mask=test, k=5, n_jobs=1)
    y = df.soc_gkg.to_numpy()[test]
    for r in res.values():
        assert r.smeared_gkg is not None and r.params["smear_factor"] > 1.1
        assert abs(np.mean(r.smeared_gkg) - np.mean(y)) < abs(np.mean(r.pred_gkg) - np.mean(y))
    plain = run_baselines(df, ["feat_cov"], eval_mask=test, k=5, n_jobs=1, smear=False)
    assert plain["xgboost"].smeared_gkg is None
