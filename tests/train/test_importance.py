"""``socmap train`` records the area of applicability: permutation importance weights, mean distance, threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from socmap.inference.format import BUNDLE_JSON


def test_permutation_importance_finds_the_used_column() -> None:
    """y = 3 x0 predicted exactly from column 0: shuffling column 0 costs RMSE, the others cost exactly nothing;
    with column 0 = (0, 0, 0, 1) every shuffle that moves the 1 costs sqrt(2 * 9 / 4) = 2.1213."""
    from socmap.train.importance import permutation_importance

    x = np.c_[[0.0, 0.0, 0.0, 1.0], np.random.default_rng(0).normal(size=(4, 2))]
    imp = permutation_importance(lambda a: 3 * a[:, 0], x, 3 * x[:, 0], repeats=20, seed=0)
    assert imp[1:].tolist() == [0.0, 0.0]
    assert 0 < imp[0] < 2.1214
    moved = imp[0] / np.sqrt(2 * 9 / 4)  # share of the 20 shuffles that moved the 1 (3 in 4 on average)
    assert moved * 20 == pytest.approx(round(moved * 20))


def test_validation_predictor_is_the_training_pass(syn_data: Path) -> None:
    """The map's path at the validation sites gives the member's transductive validation predictions."""
    from socmap.train.importance import member_importance, validation_predictor
    from socmap.train.inputs import load_training_data
    from socmap.train.stage import train_members, training_context
    from tests.train.conftest import tiny_pipeline

    cfg = tiny_pipeline(epochs=2, ensemble_members=1)
    data, _, _ = load_training_data(syn_data, cfg)
    graph, ctx = training_context(data, cfg, torch.device("cpu"))
    _, kept = train_members(ctx, data, cfg, 1, 0, progress=False, epochs=None)
    val = data.mask("val")
    assert data.tabular is not None
    predict = validation_predictor(kept[0].model, kept[0].cache, data, ctx.scaler, cfg, graph.node_k)
    np.testing.assert_allclose(predict(data.tabular[val]), kept[0].node_mean[val], atol=1e-4)
    imp = member_importance(cfg, data, kept[0], ctx.scaler, graph.node_k, 0)
    assert imp is not None and imp.shape == (6,) and np.isfinite(imp).all()


def test_bundle_records_the_area_of_applicability(syn_bundle: Path) -> None:
    from socmap.inference import load_bundle
    from socmap.mapping.aoa import AOAReference

    doc = json.loads((syn_bundle / BUNDLE_JSON).read_text())["applicability"]
    imp, w = np.array(doc["importance"]), np.array(doc["weights"])
    assert imp.shape == w.shape == (6,)
    np.testing.assert_allclose(w, np.clip(imp, 0, None) if (imp > 0).any() else 1.0)
    assert doc["mean_distance"] > 0 and 0 < doc["threshold"] < 2
    area = AOAReference.from_bundle(load_bundle(syn_bundle, load_members=False)).area
    assert area is not None and area.threshold == doc["threshold"] and area.weights.tolist() == w.tolist()
