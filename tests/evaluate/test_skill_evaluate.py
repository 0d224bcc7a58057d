"""`socmap evaluate` with the probabilistic baselines: the methods-by-metrics section and its benchmark keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from socmap.config import PipelineConfig
from socmap.evaluate import stage as evaluate
from socmap.evaluate.skill import skill_json

METHODS = ("sptgnn", "xgb", "xgb_smeared", "rfsi", "rfsi_smeared", "qrf", "rk")


def test_evaluate_reports_every_method_by_every_metric(eval_case: tuple[Path, Path, PipelineConfig],
                                                       tmp_path: Path) -> None:
    data, model, cfg = eval_case
    evaluate.run(cfg, data, model, tmp_path / "report", n_boot=50)
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    skill = rep["skill"]
    s = pd.read_parquet(data / "samples.parquet")
    assert skill["n"] == rep["n_eval"] == int((s.split == "test").sum())
    # the SpTGNN's and the XGBoost rows are the point table's, to the last digit
    for label in ("SpTGNN", "XGBoost", "RFSI-like XGBoost (smeared)"):
        assert skill["methods"][label]["rmse"]["value"] == pytest.approx(rep["point"][label]["rmse"]["value"])
        assert skill["methods"][label]["r2"]["value"] == pytest.approx(rep["point"][label]["r2"]["value"])
    line = skill_json(skill)
    for m in METHODS:
        for k in ("rmse", "mae", "rmse_log", "r2"):
            assert np.isfinite(line[f"{m}_{k}"]), f"{m}_{k}"
    for m in ("sptgnn", "qrf", "rk"):
        assert line[f"{m}_crps"] > 0 and 0 <= line[f"{m}_cov95"] <= 1
    for k in ("rmse", "mae", "rmse_log"):
        lo, hi = line[f"ratio_{k}_best_ci95"]
        assert lo <= line[f"ratio_{k}_best"] <= hi
    assert set(line["cov95_by_distance"]) == {"0-2", "2-10", "10-50", ">50"}
    assert rep["skill"]["baselines"][0]["rk"]["params"]["variogram"]["model"] in ("Exponential", "Spherical")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Methods by metric" in md and "| QRF (mean) |" in md and "| RK (median) |" in md

