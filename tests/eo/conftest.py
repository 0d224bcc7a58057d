"""EO fixtures: the small world served over real HTTP (with byte ranges) and searched through ``rustac serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests import has_rustac
from tests.eo.servers import Rustac, ServedFolder, http_items


def samples_frame(world: Path, n: int | None = None) -> pd.DataFrame:
    """A samples table shaped like `socmap prepare`'s, from the world's truth."""
    s = pd.read_csv(world / "truth" / "sites.csv")
    if n is not None:
        s = s.iloc[:n]
    return pd.DataFrame({"sample_id": s["profile_id"].astype(str), "lon": s["lon"], "lat": s["lat"],
                         "year": s["year"].astype(int), "soc_gkg": s["soc_true_gkg"], "source": "demo",
                         "split": "train"})


def write_samples(world: Path, path: Path, n: int | None = None) -> Path:
    samples_frame(world, n).to_parquet(path, index=False)
    return path


def pipeline(*, catalog: str | None = None, api: str | None = None, patch: int = 32, retries: int = 2,
             **stac: Any) -> Any:
    """The demo pipeline pointed at a catalogue or an API, with small patches."""
    from socmap.config import StacConfig, load_pipeline

    cfg = load_pipeline("demo")
    cfg.stac = StacConfig(api=api, catalog=catalog, retries=retries, timeout_s=20, **stac)
    cfg.imagery.patch_size = patch
    return cfg


def pipeline_yaml(path: Path, **kw: Any) -> Path:
    """Write :func:`pipeline`'s config as a YAML file (for CLI tests)."""
    cfg = pipeline(**kw)
    d = cfg.model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(d))
    return path


@pytest.fixture(scope="session")
def served_world(small_world: Path) -> Iterator[ServedFolder]:
    srv = ServedFolder(small_world)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="session")
def stac_api(small_world: Path, served_world: ServedFolder, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Rustac]:
    if not has_rustac:
        pytest.skip("requires the rustac CLI (pip install -e '.[test]')")
    files = http_items(small_world, served_world.url, tmp_path_factory.mktemp("stac-api"))
    api = Rustac(files)
    try:
        yield api
    finally:
        api.close()
