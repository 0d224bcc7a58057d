"""Train and predict agree: a held-out site predicted through the map path equals its evaluated prediction.

The bundle's own validation and test sites are fed to the map path as if they were new cells: their covariates
read from the rasters by :func:`socmap.mapping.cells.cell_covariates` (as a tile reads them), preprocessed and
attached by :func:`socmap.mapping.tile_job.cell_inputs` / :func:`~socmap.mapping.tile_job.predict_cells` (the
bundle's node k, covariate sources and fill values; their own labels are never in the bundle's inputs). The
result must equal the transductive predictions that ``socmap evaluate`` scores (``Bundle.predict_nodes``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from socmap.config import load_pipeline
from socmap.data.split import SPLIT_CODES
from socmap.errors import ModelError
from socmap.inference import load_bundle
from socmap.mapping.cells import cell_covariates
from socmap.mapping.tile_job import cell_inputs, load_context, predict_cells


@pytest.fixture(scope="session")
def parity_bundle(map_world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The mapping world's pipeline with what the default pipelines use (adaptive k by HDBSCAN, all three
    relations, label trick), prepared and trained (2 members); returns (pipeline, bundle)."""
    from socmap.data import prepare
    from socmap.train import stage as train

    pipe = yaml.safe_load(map_world["pipeline"].read_text())
    pipe["model"]["graph"] = {"k_spatial": 5, "spatial_k_mode": "adaptive", "hdbscan_min_cluster_size": 5,
                              "adaptive_k": 8, "relations": ["spatial", "ndvi", "elevation"]}
    pipe["model"]["label_input"] = True
    path = map_world["root"] / "pipeline_parity.yaml"
    path.write_text(yaml.safe_dump(pipe, sort_keys=False))
    cfg = load_pipeline(path)
    base = tmp_path_factory.mktemp("paritymodel")
    prepare.run(cfg, None, base / "data", progress=False)
    train.run(cfg, base / "data", base / "model", members=2, device="cpu", seed=0, progress=False)
    return path, base / "model"


@pytest.mark.parametrize("which", ["parity", "map"])
def test_held_out_sites_through_the_map_path_equal_the_evaluated_predictions(
        which: str, parity_bundle: tuple[Path, Path], map_world: dict[str, Path], map_bundle: Path) -> None:
    pipeline, model = parity_bundle if which == "parity" else (map_world["pipeline"], map_bundle)
    cfg = load_pipeline(pipeline)
    bundle = load_bundle(model, cfg)
    held = np.flatnonzero(bundle.node_split != SPLIT_CODES["train"])
    assert len(held) >= 40
    if which == "parity":  # the adaptive rule really varies k here, so node_k is exercised
        assert set(bundle.node_k.tolist()) == {5, 8}
        assert bundle.covariate_sources == {"ndvi": "samples:ndvi", "elevation": "samples:elevation"}
    lonlat, years = bundle.node_lonlat[held], bundle.node_year[held].astype(np.int64)
    raw, mapped = cell_covariates(cfg, lonlat)
    assert mapped.all()
    ctx = load_context(cfg, bundle)
    inputs = cell_inputs(ctx, raw, np.arange(len(held)))
    assert bundle.node_inputs is not None and bundle.node_inputs.tabular is not None
    np.testing.assert_allclose(inputs.features, bundle.node_inputs.tabular[held].numpy(), atol=1e-5)
    pred = predict_cells(ctx, lonlat, years, inputs)
    evaluated = bundle.predict_nodes()
    np.testing.assert_allclose(pred.member_mean, evaluated.member_mean[:, held], rtol=0, atol=1e-5)
    np.testing.assert_allclose(pred.total_var, evaluated.total_var[held], rtol=0, atol=1e-5)
    np.testing.assert_allclose(pred.soc_gkg(), evaluated.soc_gkg()[held], rtol=1e-5)
    # the training split's fill value, not the median over all nodes, fills a gap
    gap = pd.DataFrame(raw.iloc[:1]).assign(ndvi=np.nan)
    filled = cell_inputs(ctx, gap, np.arange(1))
    assert filled.ndvi is not None and np.isnan(filled.ndvi).all()
    train = bundle.node_split == SPLIT_CODES["train"]
    assert bundle.fill_values["ndvi"] == pytest.approx(float(np.median(bundle.node_ndvi[train])))
    assert np.array_equal(bundle.fill_gaps("ndvi", filled.ndvi), [bundle.fill_values["ndvi"]])


def test_a_bundle_without_the_recorded_decisions_is_refused(map_bundle: Path, tmp_path: Path) -> None:
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(map_bundle, old)
    info = json.loads((old / "bundle.json").read_text())
    del info["node_covariate_fill"]
    (old / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match=r"lacks node_covariate_fill .*train it again") as exc:
        load_bundle(old)
    assert "\n" not in str(exc.value)
