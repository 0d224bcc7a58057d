"""Encoder fixtures: a tiny data dir from the stored stage outputs, and a small pipeline file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data import copy_stored_data


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The stored prepare + extract outputs (tests/data): 6 samples, P = 32, s003 missing, s001 with NaN pixels."""
    return copy_stored_data(tmp_path / "data", ("samples", "patches"))


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    f = tmp_path / "pipe.yaml"
    f.write_text("name: t\ngrid: africa\nmodel:\n  encoder: {backbone: terramind_v1_tiny, cls_layers: 1, "
                 "cls_heads: 4, cls_ff: 64, batch_size: 4, finetune_epochs: 2, finetune_warmup_epochs: 1}\n")
    return f
