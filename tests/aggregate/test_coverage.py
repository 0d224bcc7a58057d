"""Zone intervals on known truth: correlated-error intervals cover the true zone mean near their level, the naive
independent-cells ones far less often."""

from __future__ import annotations

import numpy as np
import pandas as pd

from socmap.aggregate.check import coverage_check
from socmap.aggregate.correlogram import fit_correlogram
from tests.aggregate.synthetic import heldout_points, synthetic_map


def test_correlogram_recovers_correlated_and_independent_errors() -> None:
    layers, _, resid, sd = synthetic_map(0)
    xy, r = heldout_points(layers, resid, sd, 300, 0)
    c = fit_correlogram(xy, r, geographic=False)
    assert 0.05 < c.len_scale_km < 5.0, c  # fields correlated over ~0.4-0.8 km
    assert c.rho(np.array([0.2]))[0] > 0.4, c
    rng = np.random.default_rng(1)
    white = fit_correlogram(xy, rng.standard_normal(len(r)), geographic=False)
    assert white.rho(np.array([0.3]))[0] < 0.35, white  # independent residuals: little correlation left


def test_interval_coverage_on_known_truth() -> None:
    rows = []
    for seed in (0, 1, 2):
        layers, truth, resid, sd = synthetic_map(seed)
        xy, r = heldout_points(layers, resid, sd, 150, seed)
        corr = fit_correlogram(xy, r, geographic=False)
        chk = coverage_check(layers, truth, corr, seeds=[seed * 10 + k for k in range(2)], n_zones=12,
                             area_km2=(0.25, 6.0), n_pairs=20_000)
        rows.append(chk.table)
    tab = pd.concat(rows)
    y = tab["reference_mean"].to_numpy()
    cov = float(np.mean((tab["soc_lo_gkg"] <= y) & (y <= tab["soc_hi_gkg"])))
    naive = float(np.mean((tab["naive_lo_gkg"] <= y) & (y <= tab["naive_hi_gkg"])))
    assert len(tab) == 72
    assert 0.75 <= cov <= 1.0, (cov, naive)
    assert naive < cov - 0.3, (cov, naive)
