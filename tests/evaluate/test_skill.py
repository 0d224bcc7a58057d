"""Methods by metrics, the SpTGNN against the best baseline, and the cluster bootstrap behind their intervals."""

from __future__ import annotations

import numpy as np
import pytest

from socmap.evaluate.clusters import cell_clusters, cluster_counts, resampled_means
from socmap.evaluate.skill import LABEL_KEYS, SkillRows, rmse_trimmed, skill_json, skill_markdown, skill_report


def test_cell_clusters_are_about_10_km_anywhere() -> None:
    # 10 km cells: 0.0899 deg of latitude; of longitude 0.0899 deg on the equator, 0.18 deg at 60 N
    ids = cell_clusters(np.array([0.0, 0.05, 0.1, 0.0, 0.15]), np.array([0.0, 0.05, 0.0, 60.01, 60.01]))
    assert ids[0] == ids[1] and ids[2] != ids[0]  # 5.6 km apart: one cell; 11 km east: the next
    assert ids[3] == ids[4]  # 0.15 deg of longitude at 60 N is 8.3 km: one cell
    assert len(set(ids.tolist())) == 3


def test_resampled_means_weight_clusters_by_their_draws() -> None:
    clusters = np.array([0, 0, 1])
    counts = np.array([[1, 1], [2, 0], [0, 2]])  # both once, the first twice, the second twice
    np.testing.assert_allclose(resampled_means(np.array([1.0, 3.0, 10.0]), clusters, counts), [14 / 3, 2.0, 10.0])
    assert cluster_counts(7, 5, seed=0).sum(axis=1).tolist() == [7] * 5


def test_rmse_trimmed_drops_the_largest_percent() -> None:
    y = np.zeros(100)
    pred = np.r_[np.ones(99), 100.0]  # RMSE sqrt((99 + 10^4) / 100) = 10.05; without the one outlier: 1
    assert float(np.sqrt(np.mean((pred - y) ** 2))) == pytest.approx(10.0494, abs=1e-4)
    assert rmse_trimmed(y, pred) == pytest.approx(1.0)


def _clustered_rows(seed: int = 0, n_clusters: int = 60, per: int = 15) -> SkillRows:
    """Sites in tight groups 0.5 deg apart; the SpTGNN's errors shared within a group, XGBoost's independent."""
    rng = np.random.default_rng(seed)
    centre = np.column_stack([np.arange(n_clusters) % 10 * 0.5, np.arange(n_clusters) // 10 * 0.5])
    g = np.repeat(np.arange(n_clusters), per)
    lon, lat = centre[g, 0] + rng.uniform(0, 0.01, len(g)), centre[g, 1] + rng.uniform(0, 0.01, len(g))
    y = rng.uniform(5.0, 40.0, len(g))
    shared = rng.normal(0.0, 3.0, n_clusters)[g]  # spatially correlated: one error per group
    pred = {"SpTGNN": y + shared + rng.normal(0.0, 0.5, len(g)), "XGBoost": y + rng.normal(0.0, 3.0, len(g))}
    hit = (rng.uniform(size=len(g)) < 0.9).astype(float)
    prob = {"SpTGNN": {"crps": np.abs(pred["SpTGNN"] - y), "cov90": hit, "cov95": hit}}
    return SkillRows(y, lon, lat, rng.uniform(0.0, 80.0, len(g)), pred, prob)


def test_cluster_bootstrap_is_wider_than_the_site_bootstrap_on_correlated_errors() -> None:
    rep = skill_report(_clustered_rows(), n_boot=500, seed=0)
    assert 60 <= rep["n_clusters"] <= 70 and rep["n"] == 900  # a group may straddle a cell edge
    r = rep["ratio_best"]["rmse"]
    assert r["best"] == "XGBoost"
    lo, hi = r["ci95"]
    slo, shi = r["ci95_site"]
    assert lo <= r["value"] <= hi and slo <= r["value"] <= shi
    assert hi - lo > 1.5 * (shi - slo)  # 15 sites per group share one error: ~sqrt(15)-fold fewer draws
    m = rep["methods"]["SpTGNN"]
    assert m["rmse"]["ci95"][0] < m["rmse"]["value"] < m["rmse"]["ci95"][1]
    assert m["cov95"]["value"] == pytest.approx(np.mean(_clustered_rows().prob["SpTGNN"]["cov95"]))


def test_skill_json_and_markdown() -> None:
    rows = _clustered_rows()
    rep = skill_report(rows, n_boot=50, seed=0)
    out = skill_json(rep, "block_")
    assert out["block_sptgnn_rmse"] == pytest.approx(float(np.sqrt(np.mean((rows.point["SpTGNN"] - rows.y_gkg) ** 2))))
    for k in ("rmse", "mae", "rmse_log", "r2"):
        assert f"block_xgb_{k}" in out and f"block_sptgnn_{k}" in out
    assert "block_sptgnn_crps" in out and "block_xgb_crps" not in out
    assert len(out["block_ratio_rmse_best_ci95"]) == 2 and out["block_ratio_mae_best_method"] == "XGBoost"
    assert set(out["block_cov95_by_distance"]) == {"0-2", "2-10", "10-50", ">50"}
    assert set(LABEL_KEYS.values()) >= {"sptgnn", "xgb", "xgb_smeared", "rfsi", "rfsi_smeared", "qrf", "rk"}
    md = "\n".join(skill_markdown(rep))
    assert "Methods by metric" in md and "| rmse | XGBoost |" in md and "| >50 |" in md
    assert skill_json(None) == {} and skill_markdown(None) == []
