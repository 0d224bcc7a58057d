"""Evaluation's metric tables: the paired bootstrap and the nested dictionaries of the report (the metrics
themselves are checked by hand in tests/test_metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from socmap import metrics
from socmap.evaluate import bootstrap as m


def test_bootstrap_is_seeded_paired_and_brackets_the_value() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(10, 2, 200)
    p = y + rng.normal(0, 1, 200)
    lo, hi = m.bootstrap(metrics.rmse, y, p, n_boot=1000, seed=3)
    assert (lo, hi) == m.bootstrap(metrics.rmse, y, p, n_boot=1000, seed=3)
    assert lo < float(metrics.rmse(y, p)) < hi
    # by hand: the same resample indices
    idx = np.random.default_rng(3).integers(0, 200, size=(1000, 200))
    vals = [float(metrics.rmse(y[i], p[i])) for i in idx]
    assert lo == pytest.approx(np.quantile(vals, 0.025))
    assert hi == pytest.approx(np.quantile(vals, 0.975))
    out = m.point_metrics(y, p, n_boot=200, seed=0)
    assert out["n"] == 200 and len(out["r2"]["ci95"]) == 2


def test_rmse_ratio_is_paired() -> None:
    """Two models whose separate RMSE intervals overlap, but one is better on nearly every resample: the paired
    ratio's interval excludes 1; a model against itself is 1 exactly."""
    rng = np.random.default_rng(5)
    y = rng.normal(10, 3, 150)
    shared = rng.normal(0, 2, 150)  # most of both models' error is common to them
    a, b = y + shared, y + shared + rng.normal(0, 1.2, 150)
    r = m.rmse_ratio(y, a, b, n_boot=500, seed=1)
    assert r["value"] == pytest.approx(float(metrics.rmse(y, a) / metrics.rmse(y, b)))
    assert r["ci95"][1] < 1.0
    ra, rb = m.point_metrics(y, a, n_boot=500, seed=1)["rmse"], m.point_metrics(y, b, n_boot=500, seed=1)["rmse"]
    assert ra["ci95"][1] > rb["ci95"][0]  # unpaired intervals overlap
    assert m.rmse_ratio(y, a, a, n_boot=50, seed=0) == {"value": 1.0, "ci95": [1.0, 1.0]}


def test_uncertainty_metrics_bundle_of_numbers() -> None:
    rng = np.random.default_rng(4)
    mu = rng.normal(2.5, 0.5, 300)
    a, e = np.full(300, 0.09), np.full(300, 0.03)
    y = mu + rng.normal(0, np.sqrt(a + e))
    out = m.uncertainty_metrics(y, mu, a, e, n_boot=100, seed=0)
    assert out["epistemic_fraction"]["value"] == pytest.approx(0.25)
    assert 0.9 < out["picp_gaussian"]["value"] <= 1.0
    assert out["picp_vp"]["value"] >= out["picp_gaussian"]["value"]
    assert out["mpiw_vp"] == pytest.approx(2 * metrics.VP_K95 * np.sqrt(0.12))
    assert out["ece"]["value"] < 0.06
    lo, hi = out["nll"]["ci95"]
    assert lo < out["nll"]["value"] < hi
    assert len(out["reliability"]["coverage"]) == 20


def test_uncertainty_metrics_score_the_predictive_tails() -> None:
    """With a fitted tail shape the ECE and the predictive's coverage use Student t intervals, the Gaussian ones
    stay beside them; a per-point dof (pooled folds) of one value gives the scalar dof's numbers."""
    from scipy import stats

    rng = np.random.default_rng(6)
    n, dof = 3000, 4.0
    mu = rng.normal(2.5, 0.5, n)
    a, e = np.full(n, 0.09), np.full(n, 0.03)
    y = mu + np.sqrt(0.12) * stats.t.rvs(dof, scale=np.sqrt((dof - 2) / dof), size=n, random_state=rng)
    g = m.uncertainty_metrics(y, mu, a, e, n_boot=50, seed=0)
    t = m.uncertainty_metrics(y, mu, a, e, n_boot=50, seed=0, dof=dof)
    assert g["tail_dof"] is None and t["tail_dof"] == dof
    assert g["ece"]["value"] == g["ece_gaussian"]["value"] == t["ece_gaussian"]["value"]
    assert t["ece"]["value"] < 0.02 < g["ece"]["value"]
    assert t["picp_predictive"]["value"] == pytest.approx(0.95, abs=0.015)
    assert g["picp_predictive"]["value"] == g["picp_gaussian"]["value"]
    assert t["mpiw_predictive"] == pytest.approx(2 * metrics.interval_k(0.95, "predictive", dof) * np.sqrt(0.12))
    assert t["nll"] == g["nll"] and t["picp_vp"] == g["picp_vp"]  # Gaussian NLL, VP on the same variance
    per = m.uncertainty_metrics(y, mu, a, e, n_boot=50, seed=0, dof=np.full(n, dof))
    for key in ("ece", "picp_predictive"):
        assert per[key]["value"] == pytest.approx(t[key]["value"]), key
        np.testing.assert_allclose(per[key]["ci95"], t[key]["ci95"])
    assert per["mpiw_predictive"] == pytest.approx(t["mpiw_predictive"])
    assert per["tail_dof"] == [dof]
