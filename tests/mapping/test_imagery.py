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
from socmap.encoders.weights import export_encoder
from socmap.eo.store import open_patches
from socmap.errors import ConfigError, ModelError
from socmap.io import EMBEDDINGS, ENCODER_WEIGHTS
from socmap.mapping.imagery import (
    load_map_encoder,
    tile_composites,
    tile_image_covariates,
    tile_image_embeddings,
    tile_ndvi_elevation,
)
from tests.data import copy_stored_data
from tests.eo.conftest import pipeline, samples_frame

P = 64
N_SITES = 6
FAST_MIN_CORR = 0.5
"""Lower bound on the correlation of fast and exact embeddings over a 20 x 20 block of 50 m cells at P = 64
(measured 0.62-0.63 for every window stride; a random-weight TerraMind is so sensitive to where its patch lies that
moving the exact patch by one pixel already gives 0.70; see ``benchmarks/map_imagery.py`` for P = 224)."""


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
    extract.run(cfg, tmp / "samples.parquet", data, scheduler="threads", progress=False)
    shutil.copy(tmp / "samples.parquet", data / "samples.parquet")
    embed.run(cfg, data, data, device="cpu")
    sites = pd.read_csv(small_world / "truth" / "sites.csv").iloc[:N_SITES]
    return {"cfg": cfg, "data": data, "sites": sites, "crs": "EPSG:32737"}


def test_embed_records_weights_and_they_round_trip(tmp_path: Path) -> None:
    from socmap.config import load_pipeline

    f = tmp_path / "pipe.yaml"
    f.write_text("name: t\ngrid: africa\nmodel:\n  encoder: {backbone: terramind_v1_tiny, cls_layers: 1, "
                 "cls_heads: 4, cls_ff: 64, batch_size: 4}\n")
    cfg = load_pipeline(f)
    data = copy_stored_data(tmp_path / "data", ("samples", "patches"))
    embed.run(cfg, data, data, device="cpu")
    e = load_embeddings(data)
    assert e.attrs["checkpoint"] == str((data / ENCODER_WEIGHTS).resolve()) and e.attrs["init_seed"] == 0
    assert e.attrs["pretrained"] is False
    store = open_patches(data, list(cfg.model.encoder.modalities))
    x = {m: torch.from_numpy(v) for m, v in store.read(np.array([0, 1, 2])).items()}
    for enc in (load_map_encoder(cfg, data), load_map_encoder(cfg, data / ENCODER_WEIGHTS)):
        assert not enc.training and not any(p.requires_grad for p in enc.parameters())
        with torch.no_grad():
            got = enc(x).numpy()
        np.testing.assert_allclose(got, e.embedding[:3], atol=1e-5)
    # a bundle holding the encoder as encoder.pt, and a moved data folder, rebuild the same encoder
    bundle = tmp_path / "model"
    export_encoder(cfg, data, bundle / "encoder.pt")
    moved = tmp_path / "moved"
    shutil.move(data, moved)
    for src in (bundle, moved):
        with torch.no_grad():
            np.testing.assert_allclose(load_map_encoder(cfg, src)(x).numpy(), e.embedding[:3], atol=1e-5)
    # a second embed run draws the same weights (seeded), so its embeddings do not change
    embed.run(cfg, moved, moved, device="cpu")
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
        # and so does every image covariate
        table = tile_image_covariates(cfg, int(year), demo_data["crs"], x[m], y[m], cell_size_m=50.0,
                                      composites=comps)
        ref_cov = cov.loc[ids[m], list(table.columns)]
        assert set(table.columns) <= set(cov.columns) and table.notna().to_numpy().mean() > 0.5
        np.testing.assert_allclose(table.to_numpy(), ref_cov.to_numpy(np.float32), rtol=1e-3, atol=2e-2)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(0), b - b.mean(0)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


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
    corr = _corr(fast, exact)
    assert corr > FAST_MIN_CORR, corr
    # the scale to read it against: exact embeddings of the same cells moved one pixel (10 m) east
    moved, _ = tile_image_embeddings(cfg, year, demo_data["crs"], x[::4] + 10.0, y[::4], enc, mode="exact",
                                     cell_size_m=50.0)
    assert corr > 0.8 * _corr(exact[::4], moved)
    assert not np.allclose(fast, exact, atol=1e-3)  # it is an approximation, not a copy
    # block mode: the whole encoder on the cell's patch snapped to the 16-px lattice, so it is exact wherever the
    # patch already lies on the lattice
    block, ok_b = tile_image_embeddings(cfg, year, demo_data["crs"], x, y, enc, mode="block", cell_size_m=50.0,
                                        composites=comps)
    assert np.array_equal(ok_b, ok_e) and np.isfinite(block).all()
    row, col = comps[0].pixels()
    on = np.flatnonzero(((row - P // 2) % 16 == 0) & ((col - P // 2) % 16 == 0))
    assert len(on) and not np.allclose(block, exact, atol=1e-3)
    np.testing.assert_allclose(block[on], exact[on], atol=1e-5)
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


def test_large_tiles_are_split_into_sub_blocks(demo_data: dict[str, Any]) -> None:
    cfg, data, sites = demo_data["cfg"], demo_data["data"], demo_data["sites"]
    enc = load_map_encoder(cfg, data)
    year = int(sites["year"].iloc[0])
    gx, gy = np.meshgrid(251000.0 + 25.0 + 100.0 * np.arange(10), 9599000.0 - 25.0 - 100.0 * np.arange(10))
    x, y = gx.ravel(), gy.ravel()
    whole = tile_composites(cfg, year, demo_data["crs"], x, y, cell_size_m=100.0)
    split = tile_composites(cfg, year, demo_data["crs"], x, y, cell_size_m=100.0, max_block_px=3 * P)
    assert len(whole) == 1 and len(split) > 1
    assert sorted(np.concatenate([c.cells for c in split]).tolist()) == list(range(100))
    assert max(max(c.shape) for c in split) < max(whole[0].shape)
    # fast mode's windows lie on one lattice per zone: every composite's corner is on the stride lattice
    for c in split:
        assert c.transform[2] % (P // 2 * 10.0) == 0 and c.transform[5] % (P // 2 * 10.0) == 0
    e1, ok1 = tile_image_embeddings(cfg, year, demo_data["crs"], x, y, enc, mode="exact", cell_size_m=100.0,
                                    composites=whole)
    e2, ok2 = tile_image_embeddings(cfg, year, demo_data["crs"], x, y, enc, mode="exact", cell_size_m=100.0,
                                    composites=split)
    assert ok1.all() and np.array_equal(ok1, ok2)
    assert _corr(e1, e2) > 0.999  # equal up to read noise (see the exact test)
