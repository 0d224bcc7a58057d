"""benchmarks/ablation.py: each variant is the pipeline with its keys set, and trains; the validation scores are the
model card's for the expectation and agree with the calibrated median's by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from socmap.data.split import SPLIT_CODES
from socmap.inference import load_bundle
from socmap.train import stage as train
from tests import load_benchmark
from tests.train.conftest import tiny_pipeline


def test_validation_scores_match_the_card_and_the_median(syn_bundle: Path) -> None:
    scores = load_benchmark("ablation").validation_scores(syn_bundle)
    bundle = load_bundle(syn_bundle)
    assert scores["rmse"] == pytest.approx(bundle.card.validation["rmse"], abs=1e-3)
    assert scores["mae"] == pytest.approx(bundle.card.validation["mae"], abs=1e-3)
    pred = bundle.predict_nodes(calibrated=True)
    val = np.asarray(bundle.node_split) == SPLIT_CODES["val"]
    y_log = np.asarray(bundle.node_label_log, np.float64)[val]
    median_log = np.asarray(pred.mean, np.float64)[val]  # the log-normal's median is expm1 of the log-scale mean
    assert scores["median_rmse_log"] == pytest.approx(np.sqrt(np.mean((median_log - y_log) ** 2)), abs=1e-4)
    assert scores["median_mae"] == pytest.approx(np.mean(np.abs(np.expm1(median_log) - np.expm1(y_log))), abs=1e-4)


@pytest.mark.parametrize("variant", ["no_graph", "no_label_inputs"])
def test_variants_set_their_keys_and_train(variant: str, syn_data: Path, tmp_path: Path) -> None:
    bench = load_benchmark("ablation")
    cfg = tiny_pipeline(epochs=2)
    cfg.model.label_input = True
    cfg.train.loss_fraction = 0.5
    v = bench.variant_pipeline(cfg, bench.VARIANTS[variant])
    if variant == "no_graph":
        assert v.model.rgat.hidden_dims == [] and v.model.label_input
    else:
        assert not v.model.label_input and v.model.rgat.hidden_dims == cfg.model.rgat.hidden_dims
    train.run(v, syn_data, tmp_path / "model", members=1, seed=0, progress=False)
    scores = bench.validation_scores(tmp_path / "model")
    assert all(np.isfinite(x) and x > 0 for x in scores.values())
