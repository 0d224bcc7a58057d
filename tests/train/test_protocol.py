"""An honest protocol: the test sites' labels reach nothing that training, calibration or validation produce, so
the test sites are a clean, once-scored hold-out."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from socmap.aggregate import heldout_residuals
from socmap.inference import load_bundle
from socmap.train import stage as train
from tests.train.conftest import tiny_pipeline


def test_perturbing_only_test_labels_changes_no_trained_or_validation_figure(syn_data: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(syn_data, moved)
    samples = pd.read_parquet(moved / "samples.parquet")
    test = samples["split"] == "test"
    rng = np.random.default_rng(1)
    samples.loc[test, "soc_gkg"] = samples.loc[test, "soc_gkg"] * rng.uniform(0.2, 5.0, int(test.sum()))
    samples.to_parquet(moved / "samples.parquet", index=False)

    cfg = tiny_pipeline(epochs=4)
    a = train.run(cfg, syn_data, tmp_path / "a", members=2, seed=3, progress=False)
    b = train.run(cfg, moved, tmp_path / "b", members=2, seed=3, progress=False)
    assert a.val == b.val and a.temperature == b.temperature and a.baseline_val_rmse == b.baseline_val_rmse
    ba, bb = load_bundle(tmp_path / "a"), load_bundle(tmp_path / "b")
    assert ba.calibration == bb.calibration
    np.testing.assert_array_equal(ba.node_member_mean, bb.node_member_mean)
    np.testing.assert_array_equal(ba.node_member_var, bb.node_member_var)
    assert ba.card.validation == bb.card.validation and ba.card.member_val == bb.card.member_val
    for x, y in zip(heldout_residuals(ba), heldout_residuals(bb), strict=True):  # the error correlogram's points
        np.testing.assert_array_equal(x, y)
    # the perturbation was real: the bundles do record different test labels
    assert not np.array_equal(ba.node_label_log, bb.node_label_log)
