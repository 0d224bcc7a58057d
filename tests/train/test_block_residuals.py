"""The block cross-validation inside the training part: fold models predict held-out training sites as map cells,
their residuals are stored in the bundle, fit its variance growth, and ``socmap calibrate`` refits the same."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from socmap.inference import load_bundle
from socmap.inference.format import RESIDUALS_FILE
from socmap.train import load_training_data
from socmap.train.block_residuals import block_residuals
from socmap.train.importance import training_applicability
from tests.train.conftest import tiny_pipeline

BLOCKS_KM = [5.0, 20.0]


@pytest.fixture(scope="module")
def block_bundle(syn_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-member bundle trained with two block sizes of variance folds."""
    from socmap.train import stage as train

    out = tmp_path_factory.mktemp("block") / "model"
    train.run(tiny_pipeline(variance_blocks_km=BLOCKS_KM), syn_data, out, progress=False)
    return out


def test_fold_models_predict_held_out_training_sites_as_map_cells(syn_data: Path) -> None:
    cfg = tiny_pipeline(variance_blocks_km=BLOCKS_KM, variance_block_fraction=0.3)
    data, _, _ = load_training_data(syn_data, cfg)
    area = training_applicability(cfg, data, None)
    res = block_residuals(data, cfg, torch.device("cpu"), area, seed=0, progress=False)
    assert res is not None
    train = data.mask("train")
    n_train = int(train.sum())
    for km in BLOCKS_KM:
        rows = res.block_km == km
        assert 0.1 * n_train < rows.sum() < 0.6 * n_train  # about the held-out share of the blocks
    assert np.isfinite(res.resid).all() and (res.var > 0).all() and np.isfinite(res.di).all()
    # held out means away from the fold's own training sites, and larger blocks hold sites out farther
    assert (res.dist_km > 0).all()
    assert np.median(res.dist_km[res.block_km == 20.0]) > np.median(res.dist_km[res.block_km == 5.0])
    # same seed, same draws and models
    again = block_residuals(data, cfg, torch.device("cpu"), area, seed=0, progress=False)
    assert again is not None and np.array_equal(again.resid, res.resid)


def test_no_block_sizes_or_a_size_that_holds_the_whole_region_gives_none(syn_data: Path) -> None:
    cfg = tiny_pipeline()
    data, _, _ = load_training_data(syn_data, cfg)
    assert block_residuals(data, cfg, torch.device("cpu"), None, seed=0, progress=False) is None
    huge = tiny_pipeline(variance_blocks_km=[20000.0])
    assert block_residuals(data, huge, torch.device("cpu"), None, seed=0, progress=False) is None


def test_bundle_stores_the_residuals_and_its_growth_comes_from_them(block_bundle: Path) -> None:
    bundle = load_bundle(block_bundle, load_members=False)
    res = bundle.block_residuals
    assert res is not None and (block_bundle / RESIDUALS_FILE).is_file()
    assert set(np.unique(res.block_km)) <= set(BLOCKS_KM)
    cal = bundle.calibration
    if cal.growth is not None:  # kept: fitted on exactly these rows, and no label-variogram term beside it
        assert cal.growth == res.fit_growth(bundle.applicability.threshold)
        assert cal.distance_var is None
    else:  # the validation sites rejected it: the validation fit stands
        assert cal.distance_var is not None


def test_calibrate_refits_the_same_growth_from_the_stored_residuals(block_bundle: Path, syn_data: Path,
                                                                    tmp_path: Path) -> None:
    from socmap.inference import recalibrate

    copy = tmp_path / "model"
    shutil.copytree(block_bundle, copy)
    before = load_bundle(copy, load_members=False).calibration
    result = recalibrate.run(load_bundle(copy, load_members=False).pipeline, syn_data, copy, progress=False)
    assert result.calibration == before
    assert load_bundle(copy, load_members=False).calibration == before
