"""Training writes a bundle: the same seed gives the same weights, and ``socmap train`` writes one from the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from socmap.cli import cli
from socmap.inference import load_bundle
from socmap.train import stage as train
from tests.train.conftest import tiny_pipeline


def test_same_seed_same_weights(syn_data: Path, tmp_path: Path) -> None:
    cfg = tiny_pipeline(epochs=3)
    for name in ("a", "b"):
        train.run(cfg, syn_data, tmp_path / name, members=1, seed=5, progress=False)
    a, b = load_bundle(tmp_path / "a"), load_bundle(tmp_path / "b")
    for (ka, va), (kb, vb) in zip(a.members[0].state_dict().items(), b.members[0].state_dict().items(),
                                  strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    np.testing.assert_array_equal(a.node_member_mean, b.node_member_mean)
    train.run(cfg, syn_data, tmp_path / "c", members=1, seed=6, progress=False)
    assert not np.array_equal(load_bundle(tmp_path / "c").node_member_mean, a.node_member_mean)


def test_cli_train_writes_a_bundle(syn_data: Path, tmp_path: Path) -> None:
    import yaml

    from socmap.inference.format import resolved_pipeline_dict

    cfg = tiny_pipeline(epochs=2)
    pf = tmp_path / "p.yaml"
    pf.write_text(yaml.safe_dump(resolved_pipeline_dict(cfg)))
    res = CliRunner().invoke(cli, ["train", "--pipeline", str(pf), "--data", str(syn_data), "--out",
                                   str(tmp_path / "m"), "--members", "1", "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "val RMSE" in res.output and load_bundle(tmp_path / "m").card.members == 1


@pytest.mark.parametrize(("train_opts", "stopped"), [
    ({"epochs": 4, "early_stop_patience": 50}, "epoch bound"),
    ({"epochs": 40, "early_stop_patience": 1}, "early stopping"),
    ({"epochs": 40, "early_stop_patience": 50, "max_minutes": 1e-6}, "time budget"),
])
def test_each_member_says_why_it_stopped(syn_data: Path, tmp_path: Path, train_opts: dict[str, float],
                                         stopped: str) -> None:
    res = train.run(tiny_pipeline(**train_opts), syn_data, tmp_path / "m", members=1, progress=False)
    card = load_bundle(tmp_path / "m").card
    assert res.stopped_by == card.stopped_by == [stopped]
    budget_warning = "stopped at train.max_minutes" in res.summary()
    assert budget_warning == (stopped == "time budget")
    assert ("time budget" in (tmp_path / "m" / "MODEL_CARD.md").read_text()) == (stopped == "time budget")
    if stopped == "epoch bound":
        assert res.epochs == [4]


@pytest.mark.parametrize(("r2", "warned"), [(0.02, True), (0.5, False)])
def test_summary_warns_when_the_ensemble_barely_beats_the_mean(tmp_path: Path, r2: float, warned: bool) -> None:
    val = {"rmse": 13.96, "r2": r2, "mape": 40.0, "picp95": 0.95}
    res = train.TrainResult(path=tmp_path, members=3, temperature=1.0, val=val, baseline_val_rmse=14.32,
                            seconds=1.0, epochs=[5], mode="full", device="cpu", stopped_by=["early stopping"])
    assert ("barely beats the training mean" in res.summary()) is warned
