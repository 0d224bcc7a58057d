"""The variance growth with distance and dissimilarity, fitted on out-of-fold residuals: it recovers a growth the
residuals have, fits none they do not have, and the calibration keeps it only where the validation sites agree."""

from __future__ import annotations

import numpy as np
import pytest

from socmap.inference import EnsemblePrediction, nearest_site_km
from socmap.inference.calibration import Calibration, fit_block_growth, fit_calibration
from socmap.inference.growth import BlockResiduals, VarianceGrowth

DI_SCALE = 0.5


def _residuals(p: float, q: float, n: int = 3000, seed: int = 0, level: float = 1.7) -> BlockResiduals:
    """Residuals whose variance is ``level`` x the stated one x (1 + d)^p (1 + DI / 0.5)^q, at distances from 0.1
    to 500 km and DIs of a gamma spread around the threshold."""
    rng = np.random.default_rng(seed)
    var = rng.uniform(0.05, 0.5, n)
    d = np.exp(rng.uniform(np.log(0.1), np.log(500.0), n))
    di = rng.gamma(2.0, 0.2, n)
    r = np.sqrt(var * level * (1 + d) ** p * (1 + di / DI_SCALE) ** q) * rng.normal(size=n)
    return BlockResiduals(r, var, d, di, np.full(n, 50.0))


@pytest.mark.parametrize(("p", "q"), [(0.0, 0.0), (0.3, 0.0), (0.0, 1.5), (0.3, 1.0)])
def test_fit_recovers_the_growth_of_the_residuals(p: float, q: float) -> None:
    res = _residuals(p, q)
    g = res.fit_growth(DI_SCALE)
    assert g.distance_power == pytest.approx(p, abs=0.04)
    assert g.di_power == pytest.approx(q, abs=0.25)
    assert g.n == len(res) and g.di_scale == DI_SCALE
    # without a DI (no predictor space) only the distance can carry it, and its factor is 1
    no_di = VarianceGrowth.fit(res.resid, res.var, res.dist_km, None, DI_SCALE)
    assert no_di.di_power == 0.0
    if q == 0.0:
        assert no_di.distance_power == pytest.approx(p, abs=0.04)


def test_fit_finds_no_growth_in_residuals_that_shrink_or_are_too_few() -> None:
    rng = np.random.default_rng(3)
    res = _residuals(0.0, 0.0, seed=3)
    shrinking = res.resid / (1 + res.dist_km) ** 0.2
    g = VarianceGrowth.fit(shrinking, res.var, res.dist_km, res.di, DI_SCALE)
    assert g.distance_power == 0.0  # the powers never go negative
    few = VarianceGrowth.fit(rng.normal(size=10), np.ones(10), np.arange(10.0), None, DI_SCALE)
    assert (few.distance_power, few.di_power, few.n) == (0.0, 0.0, 10)


def test_multiplier_is_one_at_the_data_and_ignores_a_missing_di() -> None:
    g = VarianceGrowth(0.5, 2.0, DI_SCALE, 100)
    assert g(np.zeros(1), np.zeros(1))[0] == 1.0
    d, di = np.array([0.0, 3.0, 3.0, 3.0]), np.array([0.5, np.nan, 0.0, 0.5])
    assert np.allclose(g(d, di), [4.0, 2.0, 2.0, 8.0])  # (1 + 3)^0.5 = 2, (1 + 0.5 / 0.5)^2 = 4
    assert np.allclose(g(d), [1.0, 2.0, 2.0, 2.0])
    assert VarianceGrowth.from_dict(g.to_dict()) == g
    assert g.uses_di and not VarianceGrowth(0.5, 0.0, 1.0).uses_di


def test_block_residuals_frame_round_trip_and_concat() -> None:
    a, b = _residuals(0.1, 0.0, n=40, seed=1), _residuals(0.1, 0.0, n=60, seed=2)
    both = BlockResiduals.concat([a, b])
    assert len(both) == 100 and np.array_equal(both.resid[40:], b.resid)
    back = BlockResiduals.from_frame(both.to_frame())
    for c in BlockResiduals.COLUMNS:
        assert np.array_equal(getattr(back, c), getattr(both, c))


def _validation(growth: VarianceGrowth, t: float, n: int = 600, seed: int = 5, shrink: bool = False
                ) -> tuple[EnsemblePrediction, np.ndarray, np.ndarray, np.ndarray]:
    """Validation sites of a one-member ensemble whose errors follow ``T^2 sigma^2 g(d, DI)`` (``shrink``: errors
    that fall with the distance instead)."""
    rng = np.random.default_rng(seed)
    mean, var = rng.normal(2.5, 0.5, n), rng.uniform(0.05, 0.5, n)
    d, di = np.exp(rng.uniform(np.log(0.1), np.log(50.0), n)), rng.gamma(2.0, 0.2, n)
    scale = 1.0 / (1 + d) ** 0.8 if shrink else growth(d, di)
    y = mean + t * np.sqrt(var * scale) * rng.normal(size=n)
    return EnsemblePrediction.from_members(mean[None], var[None]), y, d, di


def test_block_growth_is_kept_with_t_from_validation_and_dropped_when_validation_rejects_it() -> None:
    res = _residuals(0.3, 1.0)
    grown = res.fit_growth(DI_SCALE)
    raw, y, d, di = _validation(grown, 1.3)
    kept = fit_block_growth(raw, y, d, di, res, DI_SCALE)
    assert kept is not None and kept[1] == grown and kept[0] == pytest.approx(1.3, rel=0.08)
    raw, y, d, di = _validation(grown, 1.3, shrink=True)
    assert fit_block_growth(raw, y, d, di, res, DI_SCALE) is None


def test_fit_calibration_with_block_residuals_replaces_the_validation_growth() -> None:
    """With residuals the growth is theirs and no label-variogram term is added; without, the validation fit and
    the semivariogram term as before. apply() widens by the growth at each point's distance and DI."""
    rng = np.random.default_rng(9)
    n_train, n_val = 300, 200
    res = _residuals(0.3, 1.0)
    growth = res.fit_growth(DI_SCALE)
    lonlat = np.r_[np.c_[rng.uniform(30, 31, n_train), rng.uniform(-3, -2, n_train)],
                   np.c_[rng.uniform(30, 33, n_val), rng.uniform(-3, -2, n_val)]]  # some far east of the sites
    train = np.r_[np.ones(n_train, bool), np.zeros(n_val, bool)]
    d_val = nearest_site_km(lonlat[~train], lonlat[train])
    di = np.r_[np.zeros(n_train), rng.gamma(2.0, 0.2, n_val)]
    mm, mv = rng.normal(2.5, 0.5, (1, n_train + n_val)), np.full((1, n_train + n_val), 0.2)
    y_val = mm[0, ~train] + np.sqrt(0.2 * growth(d_val, di[~train])) * rng.normal(size=n_val)
    soc = np.expm1(np.r_[mm[0, train] + 0.3 * rng.normal(size=n_train), y_val])
    cal, _ = fit_calibration(mm, mv, soc, lonlat, train, ~train, residuals=res, di=di, di_scale=DI_SCALE)
    assert cal.growth == growth and cal.distance_var is None and cal.distance_power == 0.0 and cal.uses_di
    assert Calibration.from_info(cal.to_info()) == cal
    plain, _ = fit_calibration(mm, mv, soc, lonlat, train, ~train)
    assert plain.growth is None and plain.distance_var is not None
    # the growth widens the sd at a far, dissimilar point and leaves the expectation alone
    one = EnsemblePrediction.from_members(np.full((1, 2), 2.0), np.full((1, 2), 0.2))
    out = Calibration(1.0, growth=growth).apply(one, np.array([0.0, 100.0]), np.array([0.0, 1.0]))
    assert np.allclose(out.total_var, 0.2 * growth(np.array([0.0, 100.0]), np.array([0.0, 1.0])))
    assert np.allclose(out.mean_gkg(), Calibration(1.0).apply(one, np.array([0.0, 100.0])).mean_gkg())
