"""Positional (eq. 1) and temporal (eq. 2) encoders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from socmap.config import PositionalConfig, TemporalConfig
from socmap.model.positional import PositionalEncoder
from socmap.model.temporal import TemporalEncoder


def test_positional_scales_and_features():
    enc = PositionalEncoder(PositionalConfig(scales=10, sigma_min=0.1, sigma_max=10.0, out_dim=16))
    assert torch.allclose(enc.sigmas[[0, -1]], torch.tensor([0.1, 10.0]))
    ratios = enc.sigmas[1:] / enc.sigmas[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))  # log-spaced
    p = torch.tensor([[30.0, -2.0]])
    f = enc.features(p)
    assert f.shape == (1, 40)
    assert math.isclose(float(f[0, 0]), math.sin(30.0 / 0.1), abs_tol=1e-5)  # lon, first scale, sin
    assert math.isclose(float(f[0, 10]), math.cos(30.0 / 0.1), abs_tol=1e-5)  # lon, first scale, cos
    assert enc(torch.randn(7, 2)).shape == (7, 16)
    assert all(torch.isfinite(q).all() for q in enc.parameters())


def test_temporal_normalisation_and_frequencies():
    enc = TemporalEncoder(TemporalConfig(frequencies=4, out_dim=8, year_min=2013, year_max=2025))
    assert torch.allclose(enc.normalise(torch.tensor([2013, 2025])), torch.tensor([0.0, 1.0]))
    f = enc.features(torch.tensor([2016]))
    t = 0.25
    # the slowest frequency turns through half a cycle over the range: f_j = pi * 2^(j-1)
    expect = [math.sin(t * math.pi * 2**j) for j in range(4)] + [math.cos(t * math.pi * 2**j) for j in range(4)]
    assert torch.allclose(f[0], torch.tensor(expect), atol=1e-5)
    assert torch.allclose(enc.freqs, math.pi * torch.tensor([1.0, 2.0, 4.0, 8.0]))
    assert enc(torch.tensor([2014, 2020, 2024])).shape == (3, 8)


def _distinct_rows(x: torch.Tensor, tol: float = 1e-4) -> int:
    """Number of rows of x that differ from every other row by more than tol (max abs)."""
    d = (x[:, None, :] - x[None, :, :]).abs().amax(-1)
    d.fill_diagonal_(float("inf"))
    return int((d.amin(1) > tol).sum())


@pytest.mark.parametrize("frequencies", [1, 4, 8])
def test_distinct_years_get_distinct_codes(frequencies):
    """The Africa case of issue 8: 75 sampling years 1938-2012 must give 75 different codes (raw and encoded)."""
    years = torch.arange(1938, 2013)
    enc = TemporalEncoder(TemporalConfig(frequencies=frequencies, out_dim=8))
    enc.fit_year_range(years.numpy())
    assert enc.year_range == (1938.0, 2012.0)
    assert _distinct_rows(enc.features(years)) == len(years)
    with torch.no_grad():
        assert _distinct_rows(enc(years), tol=1e-7) == len(years)
    # the end years used to collide (whole cycles over the range): they must differ
    ends = enc.features(torch.tensor([1938, 2012]))
    assert (ends[0] - ends[1]).abs().max() > 0.5


def test_years_outside_the_range_are_clipped():
    enc = TemporalEncoder(TemporalConfig(year_min=1950, year_max=2010))
    with torch.no_grad():
        assert torch.equal(enc(torch.tensor([2024, 2300])), enc(torch.tensor([2010, 2010])))
        assert torch.equal(enc(torch.tensor([1900])), enc(torch.tensor([1950])))
        assert not torch.allclose(enc(torch.tensor([2024])), enc(torch.tensor([1950])))  # no wrap-around


def test_year_range_fitted_and_kept_in_state_dict():
    enc = TemporalEncoder(TemporalConfig())  # null range: fitted on the training years
    assert not enc.fitted
    with pytest.raises(ValueError, match="fit_year_range"):
        enc(torch.tensor([2000]))
    assert enc.fit_year_range(np.array([1999, 1961, np.nan, 2005])) == (1961.0, 2005.0)
    state = enc.state_dict()
    assert float(state["year_min"]) == 1961.0 and float(state["year_max"]) == 2005.0
    fresh = TemporalEncoder(TemporalConfig())
    fresh.load_state_dict(state)
    assert fresh.fitted and fresh.year_range == (1961.0, 2005.0)
    years = torch.tensor([1961, 1980, 2005, 2020])
    with torch.no_grad():
        assert torch.equal(fresh(years), enc(years))
    fresh.reset_parameters()
    assert fresh.year_range == (1961.0, 2005.0)  # the range is data, not a parameter
    one = TemporalEncoder(TemporalConfig())
    assert one.fit_year_range(np.array([2012, 2012])) == (2011.5, 2012.5)


def test_bad_ranges_rejected():
    with pytest.raises(ValueError, match="year_max"):
        TemporalConfig(year_min=2020, year_max=2020)
    with pytest.raises(ValueError, match="neither"):
        TemporalConfig(year_min=2020)
    enc = TemporalEncoder(TemporalConfig())
    with pytest.raises(ValueError, match="year_max"):
        enc.set_year_range(2020, 2019)
    with pytest.raises(ValueError, match="finite"):
        enc.fit_year_range(np.array([np.nan]))
    with pytest.raises(ValueError, match="sigma_max"):
        PositionalEncoder(PositionalConfig(sigma_min=5, sigma_max=1))
