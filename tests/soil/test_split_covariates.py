"""Splits, raster sampling with the nearest-valid fallback, and the train-only preprocessing."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from socmap.config import SplitConfig
from socmap.data.covariates import sample_raster
from socmap.data.preprocess import Preprocessor
from socmap.data.split import block_folds, block_ids, block_split, stratified_split
from socmap.errors import DataError
from tests.soil.helpers import write_raster


def test_stratified_split_proportions_per_bin_and_determinism() -> None:
    soc = np.random.default_rng(1).lognormal(2.5, 0.8, 2000)
    a = stratified_split(soc, SplitConfig(seed=0))
    assert (a == stratified_split(soc, SplitConfig(seed=0))).all()
    assert (a != stratified_split(soc, SplitConfig(seed=1))).any()
    counts = pd.Series(a).value_counts()
    assert counts["val"] == counts["test"] == 100 and counts["train"] == 1800
    bins = pd.qcut(np.log1p(soc), 10, labels=False)
    per_bin = pd.crosstab(bins, a)
    assert (per_bin["val"] == 10).all() and (per_bin["test"] == 10).all()


def test_block_split_holds_whole_blocks_out() -> None:
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(30, 36, 3000), rng.uniform(-5, 1, 3000)
    a = block_split(lon, lat, SplitConfig(block_km=50, seed=0))
    ids = block_ids(lon, lat, 50)
    per_block = pd.DataFrame({"b": ids, "s": a}).groupby("b")["s"].nunique()
    assert (per_block == 1).all()  # no block is split between parts
    frac = pd.Series(a).value_counts(normalize=True)
    assert 0.03 < frac["val"] < 0.08 and 0.03 < frac["test"] < 0.08
    assert (a == block_split(lon, lat, SplitConfig(block_km=50, seed=0))).all()


@pytest.mark.parametrize("folds", [2, 5])
def test_block_folds_test_every_block_once(folds: int) -> None:
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(30, 36, 3000), rng.uniform(-5, 1, 3000)
    cfg = SplitConfig(block_km=50, seed=0)
    parts = block_folds(lon, lat, cfg, folds)
    assert len(parts) == folds
    test = np.stack([p == "test" for p in parts])
    assert (test.sum(axis=0) == 1).all()  # every sample is tested in exactly one fold
    ids = block_ids(lon, lat, 50)
    biggest = pd.Series(ids).value_counts().max()
    for p in parts:
        assert (pd.DataFrame({"b": ids, "s": p}).groupby("b")["s"].nunique() == 1).all()  # blocks stay whole
        assert abs((p == "test").sum() - 3000 / folds) <= biggest
        assert 0.03 < (p == "val").mean() < 0.08 and (p == "train").any()
    again = block_folds(lon, lat, cfg, folds)
    assert all((a == b).all() for a, b in zip(parts, again, strict=True))
    with pytest.raises(ValueError, match="folds >= 2"):
        block_folds(lon, lat, cfg, 1)


def test_nearest_valid_cell_at_nodata(tmp_path: Path) -> None:
    data = np.arange(100, dtype="float32").reshape(10, 10)
    data[:, :3] = -9999  # "sea" in the three western columns
    tif = write_raster(tmp_path / "r.tif", data)
    # cell centres are at x + 0.5; lon 2.5 is in col 2 (sea), nearest land col 3 -> value row*10 + 3
    lon = np.array([5.5, 2.5, 0.5, 20.0])
    lat = np.array([9.5, 9.5, 9.5, 5.0])  # row 0; last point off the raster
    vals, info = sample_raster(str(tif), lon, lat, search_px=1, min_coverage=0.1)
    assert vals[0] == 5 and vals[1] == 3
    assert np.isnan(vals[2])  # 3 cells from land > search_px=1
    assert np.isnan(vals[3])
    assert (info.n_direct, info.n_nearest, info.n_missing) == (1, 1, 2)
    vals3, _ = sample_raster(str(tif), lon, lat, search_px=3, min_coverage=0.1)
    assert vals3[2] == 3


def test_sampling_projected_raster_scale_offset_and_chunks(tmp_path: Path) -> None:
    from pyproj import Transformer

    data = np.random.default_rng(3).integers(0, 250, (40, 40)).astype("uint8")
    tif = write_raster(tmp_path / "utm.tif", data, crs="EPSG:32737", west=500_000, north=9_300_000, res=100,
                       nodata=255)
    e = 500_000 + 100 * np.array([0.5, 17.5, 39.5])
    n = 9_300_000 - 100 * np.array([0.5, 3.5, 39.5])
    lon, lat = Transformer.from_crs(32737, 4326, always_xy=True).transform(e, n)
    vals, _ = sample_raster(str(tif), lon, lat, scale=0.004, offset=-0.08, chunk_px=16, search_px=3,
                            min_coverage=0.5)
    expected = data[[0, 3, 39], [0, 17, 39]] * 0.004 - 0.08
    np.testing.assert_allclose(vals, expected)


def test_raster_not_covering_points_is_an_error(tmp_path: Path) -> None:
    tif = write_raster(tmp_path / "far.tif", np.ones((5, 5), "float32"), west=100, north=60)
    with pytest.raises(DataError, match=r"far\.tif: the raster does not cover the points"):
        sample_raster(str(tif), np.array([1.0, 2.0]), np.array([1.0, 2.0]), search_px=3, min_coverage=0.5)


def test_preprocessor_fits_on_train_only_and_roundtrips(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"t": rng.normal(20, 2, 40), "lc": rng.choice([10, 20], 40).astype(float)})
    split = np.array(["train"] * 30 + ["test"] * 10)
    df.loc[30:, "t"] = 1000.0  # held-out values must not move the fit
    df.loc[31, "lc"] = 30.0  # class unseen in training -> all-zero one-hot
    df.loc[[2, 35], "t"] = np.nan  # gaps -> KNN from training donors
    df.loc[33, "lc"] = np.nan
    pre = Preprocessor.fit(df[split == "train"], ["t"], ["lc"], k=5)
    train_t = df.loc[:29, "t"]
    assert pre.mean[0] == pytest.approx(train_t.mean())
    assert pre.scale[0] == pytest.approx(train_t.std(ddof=0))
    assert pre.feature_names == ["t", "lc_10", "lc_20"]
    assert pre.reference.shape == (30, 3)
    x = pre.transform(df)
    assert not x.isna().any().any()
    assert (x.loc[31, ["lc_10", "lc_20"]] == 0).all()
    assert x.loc[33, ["lc_10", "lc_20"]].sum() == pytest.approx(1.0)  # soft class from 5 neighbours
    # row 35 (test, t missing, class known): the mean of the standardised t of 5 training donors of its class
    # (distance 0 on the one-hot); a held-out donor (t = 1000) or a donor of the other class would show
    z = ((train_t - pre.mean[0]) / pre.scale[0])[(df.loc[:29, "lc"] == df.loc[35, "lc"]) & train_t.notna()]
    got = x.loc[35, "t"]
    assert z.min() <= got <= z.max()
    assert any(np.isclose(np.mean(c), got) for c in itertools.combinations(z.to_numpy(), 5))
    pre.save(tmp_path)
    again = Preprocessor.load(tmp_path)
    pd.testing.assert_frame_equal(again.transform(df), x)


_SERVER = """
import sys
from werkzeug.serving import make_server
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

root = sys.argv[1]

@Request.application
def app(request):
    name = request.path.strip("/")
    if not name.endswith(".tif"):
        return Response("not found", status=404)
    return send_file(root + "/" + name, request.environ, conditional=True)

srv = make_server("127.0.0.1", 0, app, threaded=True)
print(srv.port, flush=True)
srv.serve_forever()
"""


def test_sampling_a_cog_over_http_range_requests(tmp_path: Path) -> None:
    """A covariate given as an http URL is read through GDAL's /vsicurl/ from a range-capable server.

    The server runs in its own process: GDAL holds the GIL while it fetches, so a server thread would hang.
    """
    import subprocess
    import sys

    data = np.arange(100, dtype="float32").reshape(10, 10)
    write_raster(tmp_path / "cov.tif", data)
    (tmp_path / "server.py").write_text(_SERVER)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "server.py"), str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}/cov.tif"
        vals, info = sample_raster(url, np.array([5.5, 0.5]), np.array([9.5, 0.5]), search_px=3,
                                     min_coverage=0.5)
    finally:
        proc.terminate()
        proc.wait(10)
    assert list(vals) == [5.0, 90.0] and info.path == url
