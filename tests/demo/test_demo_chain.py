"""The demo world through the landed stages: what each stage gives back matches the world's truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from socmap.config import load_pipeline
from socmap.data import prepare


@pytest.fixture(scope="module")
def prepared(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``prepare`` with the shipped demo pipeline, pointed at the small world."""
    cfg = load_pipeline("demo")
    cfg.data.sources[0].path = str(small_world / "survey" / "soil_survey.csv")
    for layer in cfg.data.covariates:
        layer.path = str(small_world / "covariates" / Path(layer.path).name)
    out = tmp_path_factory.mktemp("demo-data")
    prepare(out_dir=out, pipeline=cfg, progress=False)
    return out


def test_prepare_recovers_every_site_and_its_truth(prepared: Path, small_world: Path) -> None:
    samples = pd.read_parquet(prepared / "samples.parquet")
    sites = pd.read_csv(small_world / "truth" / "sites.csv")
    assert len(samples) == len(sites)  # every planted fault dropped, no valid site lost
    assert samples.sample_id.is_unique
    merged = samples.assign(profile_id=samples.sample_id.str.removeprefix("demo:")).merge(sites, on="profile_id")
    assert len(merged) == len(sites)
    assert (merged.year_x == merged.year_y).all()
    np.testing.assert_allclose(merged.lon_x, merged.lon_y, atol=1e-5)
    # 0-30 cm harmonisation: exact for profiles sampled over 0-30 cm, biased low for 0-20/20-50 profiles
    ratio = np.log(merged.soc_gkg / merged.soc_true_gkg)
    assert abs(np.median(ratio)) < 0.05 and np.percentile(np.abs(ratio), 90) < 0.2
    assert set(samples.split) == {"train", "val", "test"}


def test_prepare_samples_demo_covariates(prepared: Path) -> None:
    samples = pd.read_parquet(prepared / "samples.parquet")
    assert samples["mat"].between(10, 35).all() and samples["map"].between(300, 2500).all()
    assert set(samples["landcover"].dropna().astype(int)) <= {10, 20, 30, 40, 60}
    feats = [c for c in samples if c.startswith("feat_")]
    assert feats and np.isfinite(samples[feats].to_numpy()).all()
