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
    prepare.run(cfg, None, out, progress=False)
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


@pytest.fixture(scope="module")
def extracted(prepared: Path, small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """``extract`` on the prepared samples with the demo pipeline (32 px patches to stay fast)."""
    from socmap.eo import extract

    cfg = load_pipeline("demo")
    cfg.stac.catalog = str(small_world / "stac" / "catalog.json")
    cfg.imagery.patch_size = 32
    cfg.model.encoder.batch_size = 64
    out = tmp_path_factory.mktemp("demo-extract")
    for name in ("samples.parquet", "preprocess.json", "preprocess_reference.parquet"):
        (out / name).write_bytes((prepared / name).read_bytes())
    extract.run(cfg, out, out, scheduler="synchronous", progress=False)
    return out, cfg


def test_extract_then_embed_agree_on_the_patch_contract(extracted: tuple[Path, object]) -> None:
    """What ``extract`` writes is what ``embed`` reads: one finite embedding per sample, in sample order."""
    import zarr

    from socmap.encoders import embed, load_embeddings

    out, cfg = extracted
    samples = pd.read_parquet(out / "samples.parquet")
    store = zarr.open_group(str(out / "patches.zarr"), mode="r")
    assert store["S2L2A"].shape == (len(samples), 11, 32, 32)
    assert store["S1GRD"].shape[1:] == (2, 32, 32) and store["DEM"].shape[1:] == (1, 32, 32)
    assert bool(np.all(store["ok"][:]))
    s2 = store["S2L2A"][:]
    # DN = 10000 x reflectance with the baseline offset removed: vegetation/soil reflectance 0.02-0.6
    assert 200 < np.nanmedian(s2) < 6000
    cov = pd.read_parquet(out / "image_covariates.parquet")
    assert set(cov.sample_id) == set(samples.sample_id)
    assert cov.ndvi_p50.between(-0.2, 1.0).all() and (cov.slope_deg >= 0).all()

    emb = load_embeddings(embed.run(cfg, out, out).path)
    vecs, ok = emb.aligned(samples.sample_id.to_numpy())
    assert ok.all() and np.isfinite(vecs).all() and vecs.shape == (len(samples), 192)
    assert np.unique(vecs.round(4), axis=0).shape[0] == len(samples)  # distinct patches, distinct vectors


def test_image_ndvi_tracks_the_world_vegetation(extracted: tuple[Path, object], small_world: Path) -> None:
    """Extracted NDVI separates the land-cover classes the world planted (the NDVI relation's signal)."""
    out, _ = extracted
    cov = pd.read_parquet(out / "image_covariates.parquet")
    samples = pd.read_parquet(out / "samples.parquet")[["sample_id", "landcover"]]
    by_class = cov.merge(samples, on="sample_id").groupby("landcover").ndvi_p50.median()
    assert {10, 60} <= set(by_class.index)  # the seeded small world has trees (10) and bare land (60)
    assert by_class[10] > by_class[60] + 0.2
    assert by_class.max() - by_class.min() > 0.2


def _forward_backward(cfg, samples: pd.DataFrame, tabular: np.ndarray, image: np.ndarray | None,
                      ndvi: np.ndarray, elevation: np.ndarray) -> dict:
    """Build the heterogeneous graph and run SpTGNN forward + backward once, as the trainer will."""
    import torch

    from socmap.graph import build_graph, spatial_local_morans_i
    from socmap.model import NodeInputs, SpTGNN
    from socmap.train.losses import total_loss

    torch.manual_seed(0)
    lonlat = samples[["lon", "lat"]].to_numpy()
    graph = build_graph(lonlat, cfg.model.graph, ndvi=ndvi, elevation=elevation)
    y = np.log(samples.soc_gkg.to_numpy())
    train = (samples.split == "train").to_numpy()
    moran = spatial_local_morans_i(graph, y, train)
    model = SpTGNN(cfg.model, tabular_dim=tabular.shape[1], image_dim=0 if image is None else image.shape[1])
    model.fit_year_range(samples.year.to_numpy()[train])  # the temporal encoder's range: the training years
    inputs = NodeInputs(lonlat=torch.tensor(lonlat, dtype=torch.float32),
                        year=torch.tensor(samples.year.to_numpy()),
                        tabular=torch.tensor(tabular, dtype=torch.float32),
                        image=None if image is None else torch.tensor(image, dtype=torch.float32))
    if cfg.model.label_input:  # the label trick: half the training labels visible, the loss nodes' hidden
        shown = train & (np.random.default_rng(1).random(len(y)) < 0.5)
        inputs.label = torch.tensor(np.where(shown, y, np.nan), dtype=torch.float32)
    out = model(inputs, graph)
    losses = total_loss(out, torch.tensor(y, dtype=torch.float32), torch.tensor(moran, dtype=torch.float32),
                        torch.tensor(train), epoch=0, cfg=cfg.train.model_copy(update={"loss": "huber"}))
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    return {"out": out, "losses": losses, "grads": grads, "graph": graph, "moran": moran, "train": train}


def test_demo_pipeline_model_runs_on_the_demo_data(extracted: tuple[Path, object]) -> None:
    """The demo pipeline's SpTGNN takes the prepared, extracted and embedded demo data end to end."""
    from socmap.encoders import embed, load_embeddings

    out, cfg = extracted
    samples = pd.read_parquet(out / "samples.parquet")
    cov = pd.read_parquet(out / "image_covariates.parquet").set_index("sample_id").loc[samples.sample_id]
    emb_path = out / "embeddings.zarr"
    emb = load_embeddings(emb_path if emb_path.exists() else embed.run(cfg, out, out).path)
    image, ok = emb.aligned(samples.sample_id.to_numpy())
    assert ok.all()
    tabular = samples[[c for c in samples if c.startswith("feat_")]].to_numpy()
    r = _forward_backward(cfg, samples, tabular, image, cov.ndvi_p50.to_numpy(), cov.elevation_m.to_numpy())
    n = len(samples)
    assert set(r["graph"].relations) == {"spatial", "ndvi", "elevation"}
    assert r["out"].soc.shape == r["out"].moran.shape == r["out"].logvar.shape == (n,)
    lo, hi = cfg.model.logvar_min, cfg.model.logvar_max
    assert bool(((r["out"].logvar >= lo) & (r["out"].logvar <= hi)).all())
    assert np.isfinite(r["moran"][r["train"]]).all() and np.isnan(r["moran"][~r["train"]]).all()
    assert all(bool(g.isfinite().all()) for g in r["grads"]) and len(r["grads"]) > 10


def test_africa_pipeline_model_runs_without_imagery() -> None:
    """Table 6 Africa widths, image stream off (the real point set has no patches): NDVI and elevation for the
    graph come from covariate columns, as ``socmap prepare`` writes them for the Africa layers."""
    cfg = load_pipeline("africa")
    cfg.model.streams = ["tabular", "position", "time"]
    rng = np.random.default_rng(0)
    n = 300
    samples = pd.DataFrame({"lon": rng.uniform(30, 40, n), "lat": rng.uniform(-10, 0, n),
                            "year": rng.integers(1980, 2013, n), "soc_gkg": np.exp(rng.normal(2.3, 0.6, n)),
                            "split": rng.choice(["train", "val", "test"], n, p=[0.9, 0.05, 0.05]),
                            "ndvi": rng.uniform(0.1, 0.8, n), "elevation": rng.uniform(0, 2500, n)})
    from socmap.graph import node_covariates

    ndvi, elevation = node_covariates(samples)
    r = _forward_backward(cfg, samples, rng.normal(size=(n, 35)), None, ndvi, elevation)
    assert r["out"].soc.shape == (n,) and bool(r["out"].soc.isfinite().all())
    assert r["losses"]["moe"].item() >= 0 and len(r["grads"]) > 10
