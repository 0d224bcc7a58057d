"""`evaluate` end to end on the stored tiny bundle (tests/data/bundle): the report, its numbers against the bundle's
own predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from socmap.config import PipelineConfig
from socmap.errors import DataError, ModelError
from socmap.evaluate import stage as evaluate
from socmap.evaluate.skill import skill_json
from socmap.metrics import rmse
from tests.evaluate.test_skill_evaluate import METHODS as SKILL_METHODS


def test_evaluate_report_matches_bundle(eval_case: tuple[Path, Path, PipelineConfig], tmp_path: Path) -> None:
    from socmap.inference import load_bundle

    data, model, cfg = eval_case
    res = evaluate.run(cfg, data, model, tmp_path / "report", n_boot=100)
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    s = pd.read_parquet(data / "samples.parquet")
    test = (s.split == "test").to_numpy()
    b = load_bundle(model, cfg)
    pred = b.predict_nodes()
    want = float(rmse(s.soc_gkg.to_numpy()[test], pred.mean_gkg()[test]))  # the expectation, distance term in
    assert rep["point"]["SpTGNN"]["rmse"]["value"] == pytest.approx(want)
    median = float(rmse(s.soc_gkg.to_numpy()[test], pred.soc_gkg()[test]))
    assert rep["point"]["SpTGNN (median)"]["rmse"]["value"] == pytest.approx(median)
    assert rep["uncertainty"]["temperature"] == pytest.approx(b.temperature)
    assert rep["members"] == 2 and len(rep["ensemble_size"]) == 2
    assert set(rep["point"]) == {"SpTGNN", "SpTGNN (median)", "XGBoost", "RFSI-like XGBoost", "XGBoost (smeared)",
                                 "RFSI-like XGBoost (smeared)"}
    assert rep["n_eval"] == test.sum()
    for name in ("XGBoost", "RFSI-like XGBoost (smeared)"):  # the paired ratio is the ratio of the two rows
        r = rep["rmse_ratio"][name]
        assert r["value"] == pytest.approx(want / rep["point"][name]["rmse"]["value"])
        assert r["ci95"][0] <= r["value"] <= r["ci95"][1]
    assert "ablations" in rep["not_run"]
    feats = ["temp", "ndvi", "elevation", "lc_10", "lc_20", "lc_30"]  # the world's covariates, lc one-hot
    assert rep["baselines"]["xgboost"]["params"]["inputs"] == [*(f"feat_{c}" for c in feats), "lon", "lat", "year"]
    for f in rep["figures"].values():
        assert (tmp_path / "report" / f).stat().st_size > 1000
    assert "SpTGNN RMSE" in res.summary()


def test_evaluate_refuses_other_samples(eval_case: tuple[Path, Path, PipelineConfig], tmp_path: Path) -> None:
    data, model, cfg = eval_case
    other = tmp_path / "data"
    other.mkdir()
    s = pd.read_parquet(data / "samples.parquet")
    s.iloc[::-1].to_parquet(other / "samples.parquet", index=False)
    with pytest.raises(ModelError, match="other samples"):
        evaluate.run(cfg, other, model, tmp_path / "report", n_boot=0)
    assert not (tmp_path / "report").exists()


@pytest.mark.slow
def test_evaluate_ablations_and_block(eval_case: tuple[Path, Path, PipelineConfig], tmp_path: Path) -> None:
    data, model, cfg = eval_case
    evaluate.run(cfg, data, model, tmp_path / "report", n_boot=50, ablations=True, protocol="block")
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    # the stored bundle's pipeline has no image stream: that variant is skipped, the other five ran
    assert set(rep["ablations"]["point"]) == {"full", "spatial-only graph", "concat fusion", "no temporal encoder",
                                              "no Moran loss"}
    assert "no imagery" in rep["ablations"]["skipped"]
    blk = rep["block"]
    assert set(blk["point"]) == {"SpTGNN", "SpTGNN (median)", "XGBoost", "RFSI-like XGBoost", "XGBoost (smeared)",
                                 "RFSI-like XGBoost (smeared)"}
    assert 0 <= blk["uncertainty_post"]["picp_vp"]["value"] <= 1
    assert blk["counts"]["test"] > 0 and np.isfinite(blk["point"]["SpTGNN"]["rmse"]["value"])
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Spatial block split" in md and "cf. Table 11" in md


def test_evaluate_block_folds_test_every_site_once(eval_case: tuple[Path, Path, PipelineConfig],
                                                   tmp_path: Path) -> None:
    """Spatial K-fold: one retrain per fold, every site scored once, the pooled RMSE agrees with the folds'."""
    data, model, cfg = eval_case
    evaluate.run(cfg, data, model, tmp_path / "report", n_boot=20, protocol="block", block_folds=2, block_members=1)
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    blk = rep["block"]
    n = len(pd.read_parquet(data / "samples.parquet"))
    assert blk["folds_k"] == 2 and len(blk["folds"]) == 2 and len(blk["temperatures"]) == 2
    assert len(blk["mean_var_caps"]) == 2
    assert all(np.isfinite(v) and v > 0 for v in blk["val_rmse"].values())
    assert sum(f["n"] for f in blk["folds"]) == blk["point"]["SpTGNN"]["n"] == n
    for name in ("SpTGNN", "XGBoost"):  # pooled MSE = the folds' MSEs weighted by their sizes
        pooled = sum(f["n"] * f[name] ** 2 for f in blk["folds"]) / n
        assert blk["point"][name]["rmse"]["value"] == pytest.approx(np.sqrt(pooled))
    assert set(blk["rmse_ratio"]) == {"XGBoost", "RFSI-like XGBoost", "XGBoost (smeared)",
                                      "RFSI-like XGBoost (smeared)"}
    # the methods-by-metric table pools every method over the folds: every site once, QRF and RK fitted per fold
    assert blk["skill"]["n"] == n and len(blk["skill"]["baselines"]) == 2
    for label in ("SpTGNN", "XGBoost (smeared)"):  # the pooled rows are the block point table's
        assert blk["skill"]["methods"][label]["rmse"]["value"] == pytest.approx(blk["point"][label]["rmse"]["value"])
    line = skill_json(blk["skill"], "block_")
    for m in SKILL_METHODS:
        assert all(f"block_{m}_{k}" in line for k in ("rmse", "mae", "rmse_log", "r2"))
    assert all(f"block_{m}_{k}" in line for m in ("sptgnn", "qrf", "rk") for k in ("crps", "cov95"))
    assert len(line["block_ratio_rmse_best_ci95"]) == 2 and "block_cov95_by_distance" in line
    assert "skill" in rep  # the random split's section is there too
    md = (tmp_path / "report" / "report.md").read_text()
    assert "2-fold cross-validation" in md and "Per fold" in md
    with pytest.raises(DataError, match="block_folds"):
        evaluate.run(cfg, data, model, tmp_path / "r2", n_boot=0, protocol="block", block_folds=0)
