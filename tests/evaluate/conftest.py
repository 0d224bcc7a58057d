"""The stored 2-member bundle (tests/data/bundle: the mapping tests' world, trained by the real ``socmap.train``)
and the prepared data folder it was trained on, to evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest

from socmap.config import PipelineConfig
from tests.data import copy_stored_bundle


@pytest.fixture(scope="session")
def eval_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, PipelineConfig]:
    """(data folder, 2-member bundle, the pipeline it was trained with); a session copy, read-only."""
    from socmap.inference import load_bundle

    data, model = copy_stored_bundle(tmp_path_factory.mktemp("evalcase"))
    return data, model, load_bundle(model, load_members=False).pipeline
