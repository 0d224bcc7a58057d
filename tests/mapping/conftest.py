"""A small mappable world for the mapping tests (tests/mapping/world.py: seeded covariate rasters in EPSG:4326
with a sea corner, a survey table, pipelines + grids) and the stored 2-member bundle trained on it
(tests/data/bundle, written by the real ``socmap.train``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data import copy_stored_bundle
from tests.mapping.world import write_map_world


@pytest.fixture(scope="session")
def map_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Rasters, survey, grids (1 tile and 4 tiles) and three pipelines; returns their paths."""
    return write_map_world(tmp_path_factory.mktemp("mapworld"))


@pytest.fixture(scope="session")
def map_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stored 2-member bundle trained on this world (tests/data/bundle, by the real ``socmap.train``); a
    session copy, so predict records the copy's path and no test can change the stored one."""
    return copy_stored_bundle(tmp_path_factory.mktemp("mapmodel"))[1]
