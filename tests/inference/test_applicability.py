"""The dissimilarity index and its cross-validated threshold (Meyer and Pebesma 2021, CAST's rules), on cases
worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from socmap.config import SplitConfig
from socmap.inference import applicability
from socmap.inference.applicability import (
    AreaOfApplicability,
    importance_weights,
    mean_pairwise_distance,
    nearest_other_fold,
    spatial_folds,
    upper_whisker,
)


def test_di_of_a_hand_worked_case() -> None:
    """Three training points whose columns already have mean 0 and sd 1, weights (2, 1): weighted points
    (-2, 0), (0, 1), (2, -1); pair distances sqrt(5), sqrt(17), sqrt(8), mean 3.06253; the point (0.5, 0.5) is
    (1, 0.5) weighted, sqrt(1.25) = 1.11803 from (0, 1), its nearest: DI 0.365068."""
    train = np.array([[-1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    a = AreaOfApplicability.fit(train, np.array([0, 1, 2]), np.array([2.0, 1.0]))
    np.testing.assert_allclose(a.center, 0.0, atol=1e-12)
    np.testing.assert_allclose(a.scale, 1.0)
    assert a.mean_distance == pytest.approx(3.06253, abs=1e-5)
    assert a.di(np.array([[0.5, 0.5]]))[0] == pytest.approx(0.365068, abs=1e-6)
    assert a.di(train).tolist() == [0.0, 0.0, 0.0]
    # importance scale does not matter, negative importance counts as 0
    b = AreaOfApplicability.fit(train, np.array([0, 1, 2]), np.array([20.0, 10.0]))
    assert b.di(np.array([[0.5, 0.5]]))[0] == pytest.approx(0.365068, abs=1e-6)
    c = AreaOfApplicability.fit(train, np.array([0, 1, 2]), np.array([1.0, -3.0]))
    assert c.weights.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("block", [5, 1 << 22], ids=["many-blocks", "one-block"])
@pytest.mark.parametrize("n_features", [1, 20])
def test_nearest_distance_is_the_brute_force_one(monkeypatch: pytest.MonkeyPatch, block: int,
                                                 n_features: int) -> None:
    """The blocked single-precision search gives the double-precision brute-force nearest distance, for points
    inside, on and far outside the reference cloud, however the queries are split into blocks."""
    from scipy.spatial.distance import cdist

    monkeypatch.setattr(applicability, "BLOCK_ELEMENTS", block)
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((300, n_features))
    x = np.vstack([rng.standard_normal((200, n_features)), ref[:20], 8.0 + rng.standard_normal((30, n_features))])
    got = applicability._NearestIndex(ref).distance(x)
    np.testing.assert_allclose(got, cdist(x, ref).min(axis=1), rtol=1e-5, atol=1e-9)
    assert got[200:220].tolist() == [0.0] * 20


def test_importance_weights_fall_back_to_equal() -> None:
    assert importance_weights(None, 3).tolist() == [1.0, 1.0, 1.0]
    assert importance_weights(np.array([-1.0, 0.0, np.nan]), 3).tolist() == [1.0, 1.0, 1.0]
    assert importance_weights(np.array([-1.0, 0.5, 2.0]), 3).tolist() == [0.0, 0.5, 2.0]


def test_upper_whisker_is_rs_boxplot_stats() -> None:
    """R: boxplot.stats(c(1:7, 20))$stats[5] is 7 (hinges 2.5 and 6.5, fence 12.5);
    boxplot.stats(c(1:10, 30))$stats[5] is 10 (hinges 3.5 and 8.5, fence 16); no outlier: the maximum."""
    assert upper_whisker(np.r_[np.arange(1, 8), 20.0]) == 7.0
    assert upper_whisker(np.r_[np.arange(1, 11), 30.0]) == 10.0
    assert upper_whisker(np.array([3.0, 1.0, 2.0, np.nan])) == 3.0


def test_threshold_follows_the_cv_rule() -> None:
    """1-D training points 0 1 3 4 6 7 9 10 40 in folds of two (40 alone): nearest point of another fold
    3 2 2 2 2 2 2 3 30; hinges 2 and 3, fence 4.5, upper whisker 3; the mean of the 36 pair distances is
    404 / 36, so the threshold is 3 / (404 / 36) = 0.267327 (DI is a ratio: the standardisation cancels)."""
    x = np.array([0, 1, 3, 4, 6, 7, 9, 10, 40], float)[:, None]
    folds = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4])
    assert nearest_other_fold(x, folds).tolist() == [3, 2, 2, 2, 2, 2, 2, 3, 30]
    assert mean_pairwise_distance(x) == pytest.approx(404 / 36)
    a = AreaOfApplicability.fit(x, folds)
    assert a.threshold == pytest.approx(3 / (404 / 36))
    assert a.outside(a.di(np.array([[5.0], [25.0]]))).tolist() == [False, True]


def test_inside_the_cloud_is_inside_and_far_is_outside() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 3))
    a = AreaOfApplicability.fit(train, rng.integers(0, 5, 300), np.array([1.0, 2.0, 0.5]))
    di = a.di(np.array([[0.1, -0.1, 0.0], [8.0, 8.0, 8.0]]))
    assert di[0] < a.threshold < di[1]
    assert a.outside(di).tolist() == [False, True]


def test_stored_and_refitted_agree() -> None:
    rng = np.random.default_rng(1)
    train, folds = rng.normal(size=(50, 4)), rng.integers(0, 4, 50)
    a = AreaOfApplicability.fit(train, folds, np.array([1.0, 0.0, 2.0, 1.0]))
    b = AreaOfApplicability.from_info(train, a.to_info())
    x = rng.normal(size=(20, 4)) * 2
    np.testing.assert_allclose(a.di(x), b.di(x))
    assert b.threshold == a.threshold


def test_mean_distance_subsample_is_seeded_and_close() -> None:
    x = np.random.default_rng(2).normal(size=(3000, 2))
    sub = mean_pairwise_distance(x, max_points=2000, seed=3)
    assert sub == mean_pairwise_distance(x, max_points=2000, seed=3)
    assert sub == pytest.approx(np.sqrt(np.pi), rel=0.03)  # E|X - Y| of 2-D standard normals is sqrt(pi)


def test_spatial_folds_follow_the_blocks() -> None:
    rng = np.random.default_rng(0)
    ll = np.c_[rng.uniform(30.0, 31.0, 200), rng.uniform(-3.0, -2.0, 200)]
    folds = spatial_folds(ll, SplitConfig(block_km=20.0), folds=5)
    assert sorted(np.unique(folds).tolist()) == [0, 1, 2, 3, 4]
    from socmap.data.split import block_ids

    ids = block_ids(ll[:, 0], ll[:, 1], 20.0)
    for b in np.unique(ids):
        assert len(np.unique(folds[ids == b])) == 1  # a block is never split between folds
    one = spatial_folds(ll[:3] * 0 + ll[:1], SplitConfig(block_km=20.0))
    assert one.tolist() == [0, 1, 2]  # one block: leave one out
