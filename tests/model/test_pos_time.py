"""Positional (eq. 1) and temporal (eq. 2) encoders."""

from __future__ import annotations

import math

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
    f = enc.features(torch.tensor([2019]))
    t = 0.5
    expect = [math.sin(t * 2 * math.pi * 2**j) for j in range(4)] + [math.cos(t * 2 * math.pi * 2**j) for j in range(4)]
    assert torch.allclose(f[0], torch.tensor(expect), atol=1e-5)
    assert enc(torch.tensor([2014, 2020, 2024])).shape == (3, 8)


def test_bad_ranges_rejected():
    with pytest.raises(ValueError, match="year_max"):
        TemporalEncoder(TemporalConfig(year_min=2020, year_max=2020))
    with pytest.raises(ValueError, match="sigma_max"):
        PositionalEncoder(PositionalConfig(sigma_min=5, sigma_max=1))
