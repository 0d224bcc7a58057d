"""Map-cell image inputs: encoder weights round trip, exact mode == embed, fast mode vs exact, cells off imagery.

Real pieces throughout: the small demo world's static STAC catalogue and COGs, ``extract`` and ``embed`` on a few of
its sites, TerraMind tiny (random, seeded weights) on 64-px patches so a test takes seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from socmap.encoders import embed, load_embeddings
from socmap.encoders._patches import open_patches
from socmap.errors import ConfigError, ModelError
from socmap.io import EMBEDDINGS, ENCODER_WEIGHTS
from socmap.mapping.imagery import load_map_encoder, tile_composites, tile_image_embeddings, tile_ndvi_elevation
from tests.encoders.conftest import write_data_dir
from tests.eo.conftest import pipeline, samples_frame

P = 64
N_SITES = 6
FAST_MIN_CORR = 0.9
"""Lower bound on the correlation of fast and exact embeddings over a 20 x 20 block of 50 m cells (measured: see
``benchmarks/map_imagery.py``; about 0.97 here at P = 64, 0.96 on the demo world at P = 224)."""


def _cfg(catalog: Path) -> Any:
    cfg = pipeline(catalog=str(catalog), patch=P)
    cfg.model.encoder.cls_ff = 64
    return cfg


@pytest.fixture(scope="module")
def demo_data(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """extract + embed of a few small-world sites (64-px patches), as the training chain makes them."""
    from socmap.eo import extract

    tmp = tmp_path_factory.mktemp("imagery")
    cfg = _cfg(small_world / "stac" / "catalog.json")
    df = samples_frame(small_world, N_SITES)
    df.to_parquet(tmp / "samples.parquet", index=False)
    data = tmp / "data"
    extract(tmp / "samples.parquet", data, cfg, scheduler="threads", progress=False)
    shutil.copy(tmp / "samples.parquet", data / "samples.parquet")
    embed(data, cfg, device="cpu")
    sites = pd.read_csv(small_world / "truth" / "sites.csv").iloc[:N_SITES]
    return {"cfg": cfg, "data": data, "sites": sites, "crs": "EPSG:32737"}


def test_embed_records_weights_and_they_round_trip(tmp_path: Path) -> None:
    from socmap.config import load_pipeline

    f = tmp_path / "pipe.yaml"
    f.write_text("name: t\ngrid: africa\nmodel:\n  encoder: {backbone: terramind_v1_tiny, cls_layers: 1, "
                 "cls_heads: 4, cls_ff: 64, batch_size: 4}\n")
    cfg = load_pipeline(f)
    data = write_data_dir(tmp_path / "data", p=32)
    embed(data, cfg, device="cpu")
    e = load_embeddings(data)
    assert e.attrs["checkpoint"] == str((data / ENCODER_WEIGHTS).resolve()) and e.attrs["init_seed"] == 0
    assert e.attrs["pretrained"] is False
    store = open_patches(data, list(cfg.model.encoder.modalities))
    x = store.read(np.array([0, 1, 2]))
    for enc in (load_map_encoder(cfg, data), load_map_encoder(data / ENCODER_WEIGHTS, cfg)):
        assert not enc.training and not any(p.requires_grad for p in enc.parameters())
        with torch.no_grad():
            got = enc(x).numpy()
        np.testing.assert_allclose(got, e.embedding[:3], atol=1e-5)
    # a bundle holding the file as encoder.pt, and a moved data folder, rebuild the same encoder
    bundle = tmp_path / "model"
    bundle.mkdir()
    shutil.copy(data / ENCODER_WEIGHTS, bundle / "encoder.pt")
    moved = tmp_path / "moved"
    shutil.move(data, moved)
    for src in (bundle, moved):
        with torch.no_grad():
            np.testing.assert_allclose(load_map_encoder(cfg, src)(x).numpy(), e.embedding[:3], atol=1e-5)
    # a second embed run draws the same weights (seeded), so its embeddings do not change
    embed(moved, cfg, device="cpu")
    np.testing.assert_allclose(load_embeddings(moved).embedding[e.ok], e.embedding[e.ok], atol=1e-6)
    (moved / ENCODER_WEIGHTS).unlink()
    with pytest.raises(ModelError, match="gone"):
        load_map_encoder(cfg, moved)
    with pytest.raises(ModelError, match="holds no encoder weights"):
        load_map_encoder(cfg, tmp_path)


def _site_xy(sites: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Sites in UTM 37S projected from lon/lat, as ``extract`` places them (sites.csv's x, y are rounded)."""
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 32737, always_xy=True).transform(sites["lon"].to_numpy(),
                                                                       sites["lat"].to_numpy())
    return np.asarray(x), np.asarray(y)


def test_exact_cell_reproduces_the_sample_embedding(demo_data: dict[str, Any]) -> None:
    import zarr

    from socmap.eo.patches import cut_patches

    cfg, data, sites = demo_data["cfg"], demo_data["data"], demo_data["sites"]
    x, y = _site_xy(sites)
    ids = sites["profile_id"].astype(str).to_numpy()
    cov = pd.read_parquet(data / "image_covariates.parquet").set_index("sample_id")
    g = zarr.open_group(str(data / "patches.zarr"), mode="r")
    enc = load_map_encoder(cfg, data)
    e = load_embeddings(data)
    assert e.ok.all()
    for year in sorted(sites["year"].unique()):
        m = (sites["year"] == year).to_numpy()
        comps = tile_composites(cfg, int(year), demo_data["crs"], x[m], y[m], cell_size_m=50.0)
        # the cell's patch is extract's patch up to read noise: the tile's box differs from the sample group's, and
        # GDAL's warp rounds differently (<= 1 DN in resampled S2 bands, ~1e-3 m in the DEM warped from EPSG:4326)
        tc = comps[0]
        cut = cut_patches(tc.arrays, tc.transform, tc.x, tc.y, P)
        rows = np.flatnonzero(m)
        for mod, tol in (("S2L2A", 1.0), ("S1GRD", 1e-3), ("DEM", 1e-2)):
            np.testing.assert_allclose(cut[mod], g[mod][rows], atol=tol)
        emb, ok = tile_image_embeddings(cfg, int(year), demo_data["crs"], x[m], y[m], enc, mode="exact",
                                        cell_size_m=50.0, batch_size=4, composites=comps)
        ref = e.aligned(ids[m])[0]
        assert ok.all() and emb.dtype == np.float32
        # the random-weight ViT amplifies that noise to ~1e-2 (identical inputs give identical rows: encoder test)
        np.testing.assert_allclose(emb, ref, atol=3e-2)
        assert np.corrcoef(emb.ravel(), ref.ravel())[0, 1] > 0.9999
        # NDVI and elevation at the cell equal extract's image covariates of the sample
        ndvi, elev = tile_ndvi_elevation(cfg, int(year), demo_data["crs"], x[m], y[m], cell_size_m=50.0,
                                         composites=comps)
        np.testing.assert_allclose(ndvi, cov.loc[ids[m], "ndvi_p50"].to_numpy(), atol=1e-3)
        np.testing.assert_allclose(elev, cov.loc[ids[m], "elevation_m"].to_numpy(), atol=1e-2)


def test_fast_mode_follows_exact(demo_data: dict[str, Any]) -> None:
    cfg, data, sites = demo_data["cfg"], demo_data["data"], demo_data["sites"]
    enc = load_map_encoder(cfg, data)
    year = int(sites["year"].iloc[0])
    # a 20 x 20 tile of 50 m cells (1 km) inside the 3 km world, row-major from the north-west corner
    gx, gy = np.meshgrid(251000.0 + 25.0 + 50.0 * np.arange(20), 9599000.0 - 25.0 - 50.0 * np.arange(20))
    x, y = gx.ravel(), gy.ravel()
    comps = tile_composites(cfg, year, demo_data["crs"], x, y, cell_size_m=50.0)
    fast, ok_f = tile_image_embeddings(cfg, year, demo_data["crs"], x, y, enc, mode="fast", cell_size_m=50.0,
                                       composites=comps)
    exact, ok_e = tile_image_embeddings(cfg, year, demo_data["crs"], x, y, enc, mode="exact", cell_size_m=50.0,
                                        composites=comps)
    assert fast.shape == (400, enc.dim) and fast.dtype == np.float32
    assert ok_f.all() and np.array_equal(ok_f, ok_e) and np.isfinite(fast).all()
    a, b = fast - fast.mean(0), exact - exact.mean(0)
    corr = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
    assert corr > FAST_MIN_CORR, corr
    assert not np.allclose(fast, exact, atol=1e-3)  # it is an approximation, not a copy
    # cells that share a token block share the fast embedding; neighbours a block apart differ
    assert np.array_equal(fast[0], fast[1]) or np.array_equal(fast[1], fast[2])
    assert not np.array_equal(fast[0], fast[19])


def test_cells_off_the_imagery_are_not_ok(demo_data: dict[str, Any]) -> None:
    cfg, data, sites = demo_data["cfg"], demo_data["data"], demo_data["sites"]
    enc = load_map_encoder(cfg, data)
    year = int(sites["year"].iloc[0])
    # inside; patch half off the world's east edge (253000); far outside; inside
    x = np.array([251525.0, 252975.0, 270025.0, 251575.0])
    y = np.array([9598475.0, 9598475.0, 9598475.0, 9598475.0])
    for mode in ("fast", "exact"):
        emb, ok = tile_image_embeddings(cfg, year, demo_data["crs"], x, y, enc, mode=mode, cell_size_m=50.0)
        assert ok.tolist() == [True, False, False, True]
        assert np.isnan(emb[~ok]).all() and np.isfinite(emb[ok]).all()
    # a year without any scene: nothing is ok
    emb, ok = tile_image_embeddings(cfg, 1990, demo_data["crs"], x, y, enc, mode="fast", cell_size_m=50.0)
    assert not ok.any() and np.isnan(emb).all()
    with pytest.raises(ConfigError, match="embedding mode"):
        tile_image_embeddings(cfg, year, demo_data["crs"], x, y, enc, mode="approx", cell_size_m=50.0)


def test_embeddings_name_is_the_stage_name() -> None:
    assert EMBEDDINGS == "embeddings.zarr" and ENCODER_WEIGHTS == "encoder_weights.pt"
