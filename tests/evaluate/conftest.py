"""A tiny trained bundle on the train tests' synthetic data folder (prepare's layout, no imagery) to evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest

from socmap.config import PipelineConfig
from tests.train.conftest import make_data_dir, tiny_pipeline


@pytest.fixture(scope="session")
def eval_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, PipelineConfig]:
    """(data folder, 2-member bundle, pipeline); read-only."""
    from socmap.train import stage as train

    cfg = tiny_pipeline()
    data = make_data_dir(tmp_path_factory.mktemp("evaldata") / "data", n=300)
    model = tmp_path_factory.mktemp("evalmodel") / "model"
    train.run(cfg, data, model, progress=False)
    return data, model, cfg
