"""benchmarks/map_reference.py on the small mapping world: the baselines are mapped through the map path itself
(same cells as the SpTGNN map, the baseline's own values) and scored with map_realism's figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests import load_benchmark


def _zarr(root: Path) -> dict[str, np.ndarray]:
    import xarray as xr

    with xr.open_zarr(root / "soc.zarr", consolidated=False) as ds:
        return {k: np.asarray(ds[k].values, np.float64) for k in ("soc_mean", "soc_median")}


@pytest.fixture(scope="module")
def sptgnn_map(map_world: dict[str, Path], map_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from socmap.config import load_pipeline
    from socmap.mapping import predict

    cfg = load_pipeline(map_world["pipeline"])
    return predict.run(cfg, map_bundle, tmp_path_factory.mktemp("refmaps"), year=2020, scheduler="threads",
                       progress=False).root


def test_baseline_maps_share_the_cells_and_score_as_ratios(map_world: dict[str, Path], map_bundle: Path,
                                                           sptgnn_map: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import rasterio

    from socmap.mapping import tile_job
    from socmap.mapping.score import score_map

    # a "truth" raster that is the SpTGNN map itself: its own score is perfect, the baselines' are not
    truth = tmp_path / "truth.tif"
    with rasterio.open(sptgnn_map / "soc_mean.vrt") as src:
        profile = {**src.profile, "driver": "GTiff"}
        with rasterio.open(truth, "w", **profile) as dst:
            dst.write(src.read())
    original = tile_job.predict_cells
    bench = load_benchmark("map_reference")
    res = bench.main(["--pipeline", str(map_world["pipeline"]), "--model", str(map_bundle), "--data",
                      str(map_bundle.parent / "data"), "--maps", str(sptgnn_map), "--year", "2020", "--out",
                      str(tmp_path / "maps"), "--truth", str(truth)])
    assert tile_job.predict_cells is original  # the map path's model step is put back
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == res
    ours = _zarr(sptgnn_map)
    ok = np.isfinite(ours["soc_mean"])
    maps = {}
    for name in ("xgboost", "rfsi"):
        roots = list((tmp_path / "maps" / name).glob("*/2020/*/soc.zarr"))
        assert len(roots) == 1, name
        theirs = maps[name] = _zarr(roots[0].parent)
        # the same cells mapped, other values; a baseline's map is its point prediction (no variance)
        assert np.array_equal(np.isfinite(theirs["soc_mean"]), ok)
        np.testing.assert_allclose(theirs["soc_mean"][ok], theirs["soc_median"][ok], rtol=1e-6)
        assert np.abs(theirs["soc_mean"][ok] - ours["soc_mean"][ok]).mean() > 0.01
        assert (theirs["soc_mean"][ok] > 0).all()
        for f in ("facet_ratio", "facet_ratio_by_distance", "facet_ratio_by_distance_log"):
            assert res[f"{name}_{f}"] > 0
            assert res[f"{f}_vs_{name}"] == pytest.approx(res[f"sptgnn_{f}"] / res[f"{name}_{f}"], rel=1e-3)
        # the baseline's map opens as a VRT and holds the zarr store's values
        vrt = Path(res[f"{name}_vrt"])
        assert vrt == roots[0].parent / "soc_mean.vrt" and vrt.is_file()
        with rasterio.open(vrt) as ds:
            band = ds.read(1, masked=True)
        np.testing.assert_allclose(band.filled(np.nan)[ok], theirs["soc_mean"][ok], rtol=1e-6)
        scored = score_map(vrt, truth)  # against the truth: as score_map scores the baseline's mosaic, below 1
        assert res[f"{name}_r2_vs_truth"] == pytest.approx(scored["r2"], abs=1e-4) and scored["r2"] < 0.999
        assert res[f"{name}_rmse_vs_truth"] == pytest.approx(scored["rmse"], abs=1e-4) and scored["rmse"] > 0.01
    assert res["sptgnn_r2_vs_truth"] == pytest.approx(1.0) and res["sptgnn_rmse_vs_truth"] == pytest.approx(0.0)
    # the RFSI-like map also sees the nearest training labels: not XGBoost's map
    assert np.abs(maps["rfsi"]["soc_mean"][ok] - maps["xgboost"]["soc_mean"][ok]).mean() > 0.01
