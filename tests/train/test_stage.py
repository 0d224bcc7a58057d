"""Training writes a bundle: the same seed gives the same weights, and ``socmap train`` writes one from the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
