"""The report from synthetic ensemble predictions: numbers, tables, figures that open, atomic folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from socmap.evaluate.baselines import run_baselines
from socmap.evaluate.report import ensemble_size_table, score_predictions, write_report
from socmap.metrics import rmse

EnsemblePrediction = pytest.importorskip("socmap.inference.predictive").EnsemblePrediction


def _world(n: int = 300, members: int = 4, seed: int = 0) -> tuple[pd.DataFrame, object]:
    """Samples with a log-SOC field and a 4-member ensemble whose members scatter around the truth."""
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(36.7, 36.9, n), rng.uniform(-3.4, -3.2, n)
    cov = rng.normal(size=n)
    truth = 2.5 + 0.6 * np.sin(20 * lon) + 0.3 * cov
    y_log = truth + rng.normal(0, 0.3, n)
    split = rng.choice(["train", "val", "test"], size=n, p=[0.7, 0.15, 0.15])
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "lon": lon, "lat": lat, "year": 2018,
                            "soc_gkg": np.expm1(y_log), "split": split, "feat_cov": cov})
    mm = truth + rng.normal(0, 0.15, (members, n))
    mv = np.full((members, n), 0.05)  # too narrow on its own: the ensemble spread and T must make up for it
    return samples, EnsemblePrediction.from_members(mm, mv)


def test_score_predictions_numbers(tmp_path: Path) -> None:
    samples, raw = _world()
    test = (samples.split == "test").to_numpy()
    base = run_baselines(samples, ["feat_cov"], eval_mask=test, k=5, n_jobs=1)
    rep, fig = score_predictions(samples, raw, 1.3, baselines=base, n_boot=200, seed=0)
    y = samples.soc_gkg.to_numpy()[test]
    assert rep["n_eval"] == test.sum()
    # the SpTGNN is scored by its calibrated expectation; its median and the smeared baselines are rows too
    mean = raw.calibrate(1.3).mean_gkg()[test]
    assert rep["point"]["SpTGNN"]["rmse"]["value"] == pytest.approx(float(rmse(y, mean)))
    assert rep["point"]["SpTGNN (median)"]["rmse"]["value"] == pytest.approx(float(rmse(y, np.expm1(raw.mean[test]))))
    assert set(rep["point"]) == {"SpTGNN", "SpTGNN (median)", "XGBoost", "RFSI-like XGBoost", "XGBoost (smeared)",
                                 "RFSI-like XGBoost (smeared)"}
    pre, post = rep["uncertainty"]["pre"], rep["uncertainty"]["post"]
    # calibration scales sigma by T: Gaussian interval widths grow by exactly T, the mean does not move
    assert post["mpiw_gaussian"] == pytest.approx(1.3 * pre["mpiw_gaussian"])
    assert post["picp_vp"]["value"] >= pre["picp_vp"]["value"]
    # z moments scale by 1/T, the Shapiro-Wilk statistic does not
    d = rep["diagnostics"]
    assert d["post"]["var_z"] == pytest.approx(d["pre"]["var_z"] / 1.3**2)
    assert d["post"]["shapiro_w"] == pytest.approx(d["pre"]["shapiro_w"])
    rows = rep["ensemble_size"]
    assert [r["members"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["epistemic_fraction"] == 0.0 and rows[-1]["epistemic_fraction"] > 0.1
    assert rows[-1]["rmse_gkg"] == pytest.approx(rep["point"]["SpTGNN"]["rmse"]["value"])
    assert rep["point_val"]["SpTGNN"]["n"] == (samples.split == "val").sum()

    out = write_report(rep, tmp_path / "report", fig)
    js = json.loads((out / "report.json").read_text())
    assert js["uncertainty"]["temperature"] == 1.3
    md = (out / "report.md").read_text()
    for needle in ("cf. paper Table 10", "cf. Table 7", "cf. Table 8", "cf. Table 9", "cf. Table 12", "M=4",
                   "RFSI-like XGBoost", "log(1 + SOC"):
        assert needle in md
    from PIL import Image

    for name in js["figures"].values():
        with Image.open(out / name) as im:
            assert im.size[0] > 200 and im.size[1] > 200
            im.load()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_ensemble_size_subsets_match_aggregation() -> None:
    samples, raw = _world(members=3)
    mask = (samples.split == "test").to_numpy()
    y_log = np.log1p(samples.soc_gkg.to_numpy())[mask]
    rows = ensemble_size_table(raw, 1.0, y_log, mask)
    two = raw.member_mean[:2, mask]
    assert rows[1]["epistemic_fraction"] == pytest.approx(
        np.mean(two.var(axis=0, ddof=1) / (0.05 + two.var(axis=0, ddof=1))))
    assert rows[0]["rmse_log"] == pytest.approx(float(rmse(y_log, raw.member_mean[0, mask])))


def test_rows_must_match() -> None:
    samples, raw = _world()
    with pytest.raises(ValueError, match="rows"):
        score_predictions(samples.iloc[:-1], raw, 1.0, n_boot=0)


def test_error_by_distance_bins_every_method() -> None:
    """Each bin holds its rows' RMSE and MAE per method; a method exact in one bin scores 0 there; empty bins are
    left out and the open last bin has no upper edge."""
    from socmap.evaluate.report import error_by_distance

    rng = np.random.default_rng(4)
    d = np.r_[rng.uniform(0, 0.5, 40), rng.uniform(2, 10, 30), rng.uniform(50, 500, 10)]
    y = rng.uniform(5, 40, len(d))
    near_exact = np.where(d < 0.5, y, y + 3.0)
    rows = error_by_distance(y, {"A": near_exact, "B": y - 1.0}, d)
    assert [(r["lo_km"], r["hi_km"], r["n"]) for r in rows] == [(0.0, 0.5, 40), (2.0, 10.0, 30), (30.0, None, 10)]
    assert rows[0]["rmse"]["A"] == 0.0 and rows[1]["rmse"]["A"] == pytest.approx(3.0)
    assert all(r["rmse"]["B"] == pytest.approx(1.0) and r["mae"]["B"] == pytest.approx(1.0) for r in rows)


@pytest.mark.parametrize(("outlier", "low", "high"), [(0.0, 0.02, 0.15), (500.0, 0.9, 1.0)])
def test_top_error_share(outlier: float, low: float, high: float) -> None:
    """One wild error among 200 carries nearly all the squared error; without it the largest 1 % (2 rows) carry
    a little more than their share (the largest of 200 squared Gaussian errors)."""
    from socmap.evaluate.report import top_error_share

    rng = np.random.default_rng(5)
    y = rng.uniform(5, 40, 200)
    p = y + rng.normal(0, 1, 200)
    p[7] += outlier
    share = top_error_share(y, {"m": p})["m"]
    assert low < share < high


def test_report_shows_errors_by_distance(tmp_path: Path) -> None:
    samples, raw = _world()
    dist = np.random.default_rng(6).uniform(0, 60, len(samples))
    rep, fig = score_predictions(samples, raw, 1.3, n_boot=50, seed=0, dist_km=dist)
    test = (samples.split == "test").to_numpy()
    assert sum(r["n"] for r in rep["by_distance"]) == test.sum()
    assert set(rep["top_error_share"]) == {"SpTGNN", "SpTGNN (median)"}
    text = (write_report(rep, tmp_path / "rep", fig) / "report.md").read_text()
    assert "By distance to the nearest training site" in text and "| >= 30 |" in text
