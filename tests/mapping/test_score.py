"""Scoring a map against a known truth (socmap.mapping.score) on small seeded rasters: the point layer's R2 / RMSE /
bias, and whether the uncertainty layers describe the map's own errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin

from socmap.mapping.score import score_map, score_uncertainty

N, RES = 60, 50.0
CRS = "EPSG:32737"


def _write(path: Path, a: np.ndarray, res: float = RES) -> Path:
    import rasterio

    profile = {"driver": "GTiff", "height": a.shape[0], "width": a.shape[1], "count": 1, "dtype": "float32",
               "crs": CRS, "transform": from_origin(250_000.0, 9_600_000.0, res, res), "nodata": np.nan}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(a.astype(np.float32), 1)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A truth at 25 m (2 x 2 sub-cells a map cell) and a 50 m map whose error in each cell is drawn from the
    Gaussian its sd layer states."""
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("score")
    fine = 10 + 3 * rng.standard_normal((2 * N, 2 * N))
    truth = fine.reshape(N, 2, N, 2).mean(axis=(1, 3))  # what the map grid sees of it
    sd = rng.uniform(0.5, 2.0, (N, N))
    mean = truth - sd * rng.standard_normal((N, N))
    mean[:5, :5] = np.nan  # a no-data corner
    return {"dir": d, "truth": _write(d / "truth.tif", fine, RES / 2), "truth_grid": truth, "mean": mean, "sd": sd}


def test_score_map_averages_the_truth_onto_the_map_grid(world: dict) -> None:
    got = score_map(_write(world["dir"] / "mean.tif", world["mean"]), world["truth"])
    ok = np.isfinite(world["mean"])
    err = world["mean"][ok] - world["truth_grid"][ok]
    assert got["n"] == ok.sum() and got["coverage"] == pytest.approx(ok.mean())
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-5)
    assert got["bias"] == pytest.approx(err.mean(), abs=1e-5)


@pytest.mark.parametrize(("scale", "z2", "cover"), [(1.0, 1.0, 0.9), (0.5, 4.0, 0.59), (2.0, 0.25, 1.0)])
def test_score_uncertainty_tells_calibrated_from_narrow_and_wide(world: dict, scale: float, z2: float,
                                                                 cover: float) -> None:
    """An sd layer ``scale`` times the errors' own sd: mean z^2 is 1 / scale^2, and the 90 % interval of that
    sd covers 2 Phi(1.645 scale) - 1 of the cells (0.90, 0.59, 1.00)."""
    d, m, sd = world["dir"], world["mean"], world["sd"] * scale
    paths = [_write(d / f"{name}_{scale}.tif", a) for name, a in
             (("mean", m), ("sd", sd), ("lo", m - 1.6449 * sd), ("hi", m + 1.6449 * sd))]
    got = score_uncertainty(*paths, world["truth"], 0.9)
    assert got["n"] == np.isfinite(m).sum() and got["level"] == 0.9
    assert got["z2"] == pytest.approx(z2, rel=0.08)
    assert got["rms_error_over_sd"] == pytest.approx(np.sqrt(z2), rel=0.08)
    assert got["coverage"] == pytest.approx(cover, abs=0.025)
