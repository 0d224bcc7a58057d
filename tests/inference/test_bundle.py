"""The bundle: round trip, damaged/incompatible bundles, lazy members, and the CLI's one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from socmap.cli import cli
from socmap.errors import ModelError
from socmap.inference import load_bundle
from tests.train.conftest import COVARIATES, tiny_pipeline


def _new_points(data: Path) -> tuple[np.ndarray, ...]:
    df = pd.read_parquet(data / "samples.parquet")
    df = df[df.split != "train"]
    lonlat = df[["lon", "lat"]].to_numpy() + 0.001  # near, not on, the sites
    tab = df[[f"feat_{c}" for c in COVARIATES]].to_numpy(np.float32)
    return lonlat, df.year.to_numpy(), tab, df.ndvi.to_numpy(), df.elevation.to_numpy()

def test_bundle_loads_and_matches_the_contract(syn_bundle: Path, syn_data: Path) -> None:
    b = load_bundle(syn_bundle, tiny_pipeline())
    n = len(pd.read_parquet(syn_data / "samples.parquet"))
    assert len(b.members) == 2 and len(b.caches) == 2 and all(not m.training for m in b.members)
    assert b.feature_columns == list(COVARIATES) and b.node_lonlat.shape == (n, 2)
    assert b.tabular_range.shape == (len(COVARIATES), 2)
    assert np.isfinite(b.node_ndvi).all() and np.isfinite(b.node_elevation).all()
    assert b.temperature > 0 and b.card.members == 2
    for f in ("MODEL_CARD.md", "model_card.json", "pipeline.yaml", "preprocess.json", "members/00/log.csv",
              "members/01/weights.safetensors", "members/01/cache.safetensors", "graph.safetensors"):
        assert (syn_bundle / f).is_file(), f
    log = pd.read_csv(syn_bundle / "members/00/log.csv")
    assert {"epoch", "train_loss", "val_mape", "val_rmse", "lr"} <= set(log.columns)
    p = b.predict_nodes()
    assert p.member_mean.shape == (2, n) and np.isfinite(p.total_var).all() and (p.epistemic_var > 0).all()
    raw = b.predict_nodes(calibrated=False)
    dist = b.site_distance_km(b.node_lonlat)
    train_nodes = (pd.read_parquet(syn_data / "samples.parquet").split == "train").to_numpy()
    assert (dist[train_nodes] == 0).all() and (dist[~train_nodes] > 0).all()
    cal = b.calibration
    assert cal.distance_var is not None and (cal.distance_var(dist) >= 0).all()
    # T^2, grown with the distance to the nearest training site, then the distance term (both 0 at a site)
    growth = (1 + dist) ** cal.distance_power
    np.testing.assert_allclose(p.total_var, raw.total_var * cal.temperature**2 * growth + cal.distance_var(dist))
    np.testing.assert_allclose(p.total_var[train_nodes], raw.total_var[train_nodes] * cal.temperature**2)

def test_mean_var_cap_is_fitted_stored_and_applied(syn_bundle: Path, syn_data: Path, tmp_path: Path) -> None:
    """train fits the cap on the validation sites and writes it; predict_nodes and predict_new (the map) apply the
    stored cap; a bundle without the key (written before it existed) has none."""
    import dataclasses

    from socmap.inference import EnsemblePrediction, fit_mean_var_cap

    b = load_bundle(syn_bundle, tiny_pipeline())
    s = pd.read_parquet(syn_data / "samples.parquet")
    val = (s.split == "val").to_numpy()
    assert "mean_var_cap" in json.loads((syn_bundle / "bundle.json").read_text())
    raw = b.predict_nodes(calibrated=False)
    no_cap = dataclasses.replace(b.calibration, mean_var_cap=None)
    uncapped = no_cap.apply(raw, b.site_distance_km(b.node_lonlat))
    sub = no_cap.apply(EnsemblePrediction.from_members(raw.member_mean[:, val], raw.member_var[:, val]),
                       b.site_distance_km(b.node_lonlat[val]))  # what train scores on its validation sites
    assert b.mean_var_cap == fit_mean_var_cap(sub, s.soc_gkg.to_numpy()[val])
    copy = tmp_path / "bundle"
    shutil.copytree(syn_bundle, copy)
    info = json.loads((copy / "bundle.json").read_text())
    for cap in (0.01, None):
        info["mean_var_cap"] = cap
        (copy / "bundle.json").write_text(json.dumps(info))
        c = load_bundle(copy)
        assert c.mean_var_cap == cap
        np.testing.assert_allclose(c.predict_nodes().mean_gkg(), uncapped.with_mean_cap(cap).mean_gkg())
        args = _new_points(syn_data)
        new = c.predict_new(*args[:3], None, *args[3:])
        assert new.mean_var_cap == cap
    del info["mean_var_cap"]
    (copy / "bundle.json").write_text(json.dumps(info))
    assert load_bundle(copy).mean_var_cap is None

def test_stored_node_outputs_equal_a_forward_of_the_reloaded_members(syn_bundle: Path) -> None:
    b = load_bundle(syn_bundle)
    assert b.node_inputs is not None
    for m, model in enumerate(b.members):
        with torch.no_grad():
            out = model(b.node_inputs, b.graph)
        mean = b.scaler.inverse(out.soc.double().numpy())
        np.testing.assert_allclose(mean, b.node_member_mean[m], rtol=1e-5, atol=1e-5)

def test_predict_new_round_trip_is_identical(syn_bundle: Path, syn_data: Path) -> None:
    args = _new_points(syn_data)
    p1 = load_bundle(syn_bundle).predict_new(*args[:3], None, *args[3:])
    p2 = load_bundle(syn_bundle).predict_new(*args[:3], None, *args[3:])
    np.testing.assert_array_equal(p1.member_mean, p2.member_mean)
    np.testing.assert_array_equal(p1.total_var, p2.total_var)
    p3 = load_bundle(syn_bundle).predict_new(*args[:3], None, *args[3:], batch_size=7)  # chunking: float noise only
    np.testing.assert_allclose(p3.member_mean, p1.member_mean, rtol=1e-6)
    assert np.isfinite(p1.soc_gkg()).all() and (p1.quantile_gkg(0.05) < p1.quantile_gkg(0.95)).all()

@pytest.fixture
def bundle_copy(syn_bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(syn_bundle, out)
    return out

@pytest.mark.parametrize("damage", ["no-json", "format", "weights", "truncated-graph", "missing-folder"])
def test_damaged_bundle_is_one_line_model_error(bundle_copy: Path, damage: str) -> None:
    if damage == "no-json":
        (bundle_copy / "bundle.json").unlink()
    elif damage == "format":
        info = json.loads((bundle_copy / "bundle.json").read_text())
        info["format"] = "socmap-bundle/0"
        (bundle_copy / "bundle.json").write_text(json.dumps(info))
    elif damage == "weights":
        (bundle_copy / "members/01/weights.safetensors").write_bytes(b"not a tensor file")
    elif damage == "truncated-graph":
        g = bundle_copy / "graph.safetensors"
        g.write_bytes(g.read_bytes()[:100])
    else:
        shutil.rmtree(bundle_copy)
    with pytest.raises(ModelError) as exc:
        load_bundle(bundle_copy)
    assert "\n" not in str(exc.value) and str(bundle_copy) in str(exc.value)

def test_covariates_differ_from_pipeline(bundle_copy: Path) -> None:
    cfg = tiny_pipeline()
    cfg.data.covariates = cfg.data.covariates[:1]
    with pytest.raises(ModelError, match=r"covariates differ .*lacks \['b', 'c', 'd', 'e', 'f'\]"):
        load_bundle(bundle_copy, cfg)

def test_cli_damaged_bundle_exit_code_2(bundle_copy: Path, tmp_path: Path) -> None:
    # `socmap train` over a data folder without samples, then loading a damaged bundle through the CLI's wrapper
    res = CliRunner().invoke(cli, ["train", "--region", "demo", "--data", str(tmp_path / "nowhere"),
                                   "--out", str(tmp_path / "m"), "--no-progress"])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "socmap: error:" in res.output
    (bundle_copy / "bundle.json").write_text("{broken")
    from socmap.cli import _one_line_errors

    res = CliRunner().invoke(_cli_loader(_one_line_errors), [str(bundle_copy)])
    assert res.exit_code == 2 and "socmap: error: model bundle" in res.output and res.output.count("\n") == 1

def _cli_loader(wrap):  # type: ignore[no-untyped-def]
    import click

    @click.command()
    @click.argument("path")
    @wrap
    def load(path: str) -> None:
        load_bundle(Path(path))

    return load

def test_members_load_only_when_needed(syn_bundle: Path, tmp_path: Path) -> None:
    """Scoring the stored node outputs never reads the members' weights or layer caches (evaluate, aggregate);
    the first use of ``members`` does, and gives the same predictions as an eager load."""
    copy = tmp_path / "b"
    shutil.copytree(syn_bundle, copy)
    for f in copy.glob("members/*/weights.safetensors"):
        f.write_bytes(b"not a tensor file")  # would fail an eager load
    lazy = load_bundle(copy, load_members=False)
    eager = load_bundle(syn_bundle)
    np.testing.assert_array_equal(lazy.predict_nodes().soc_gkg(), eager.predict_nodes().soc_gkg())
    assert lazy.n_members == 2
    with pytest.raises(ModelError, match="member 00 is damaged"):
        _ = lazy.members
    # the inductive caches hold the training nodes only (a map cell attaches to nothing else)
    train = eager.node_split == 0
    assert all(c.hidden[0].shape[0] == int(train.sum()) for c in eager.caches)
    assert np.array_equal(eager.caches[0].node_k, eager.node_k[train])


@pytest.fixture(scope="module")
def label_kernel_bundle(syn_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-member bundle with the label trick over the scale-adaptive label neighbourhood (``label_k``)."""
    from socmap.train import stage as train

    cfg = tiny_pipeline()
    cfg.model.label_input = True
    cfg.model.graph.label_k = 16
    out = tmp_path_factory.mktemp("label-kernel") / "model"
    train.run(cfg, syn_data, out, progress=False)
    return out


def test_label_kernel_bundle_reloads_and_maps_its_held_out_sites_as_evaluated(label_kernel_bundle: Path,
                                                                              syn_data: Path) -> None:
    """The reloaded graph rebuilds the label neighbourhood (a forward reproduces the stored node outputs), and the
    map's path at the validation and test sites gives their stored transductive outputs."""
    b = load_bundle(label_kernel_bundle)
    assert b.graph.label_edges is not None and b.pipeline.model.graph.label_k == 16
    assert b.node_inputs is not None
    for m, model in enumerate(b.members):
        with torch.no_grad():
            out = model(b.node_inputs, b.graph)
        np.testing.assert_allclose(b.scaler.inverse(out.soc.double().numpy()), b.node_member_mean[m], rtol=1e-5,
                                   atol=1e-5)
    df = pd.read_parquet(syn_data / "samples.parquet")
    held = (df.split != "train").to_numpy()
    new = b.predict_new(df[["lon", "lat"]].to_numpy()[held], df.year.to_numpy()[held],
                        df[[f"feat_{c}" for c in COVARIATES]].to_numpy(np.float32)[held], None,
                        df.ndvi.to_numpy()[held], df.elevation.to_numpy()[held], calibrated=False)
    np.testing.assert_allclose(new.member_mean, b.node_member_mean[:, held], rtol=1e-4, atol=1e-4)
