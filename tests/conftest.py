"""Shared fixtures: a small seeded demo world, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from socmap.demo.world import WorldSpec, ensure_world

SMALL_WORLD = WorldSpec(seed=7, size_m=3000.0, s2_doys=(18, 130, 285), s1_doys=(100,), n_sites=150,
                        margin_m=400.0, covariate_res_m=250.0)
"""A 3 x 3 km world (300 x 300 px at 10 m), three S2 dates and one S1 date a year, 150 sites."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's ~/.cache/socmap from tests."""
    monkeypatch.setenv("SOCMAP_HOME", str(tmp_path_factory.getbasetemp() / "socmap-home"))


@pytest.fixture(scope="session")
def small_world_spec() -> WorldSpec:
    return SMALL_WORLD


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a generated small demo world (read-only for tests: copy before modifying)."""
    return ensure_world(tmp_path_factory.mktemp("world") / "demo-world", SMALL_WORLD, progress=False)
