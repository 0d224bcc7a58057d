"""Model tests: the shared small config with the temporal encoder's year range set (the synthetic years)."""

from __future__ import annotations

import pytest

from socmap.config import ModelConfig


@pytest.fixture
def small_model_cfg(small_model_cfg: ModelConfig) -> ModelConfig:
    """The shared small config with ``temporal.year_min/year_max`` = 2014/2024, the synthetic nodes' years.

    The default (null) range is fitted by the trainer; tests that build a model directly either set it here or
    call ``fit_year_range`` (tests/model/test_pos_time.py covers that path).
    """
    cfg = small_model_cfg.model_copy(deep=True)
    cfg.temporal = cfg.temporal.model_copy(update={"year_min": 2014, "year_max": 2024})
    return cfg
