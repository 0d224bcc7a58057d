"""finetune-vit and embed on a tiny data dir; the CLI commands and their one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from socmap.cli import cli
from socmap.config import load_pipeline
from socmap.encoders import embed, finetune, load_embeddings
from socmap.encoders.terramind import build_image_encoder
from socmap.eo.store import open_patches
from socmap.errors import DataError, ModelError


def test_embed_writes_group(data_dir, pipeline_file, device):
    cfg = load_pipeline(pipeline_file)
    res = embed.run(cfg, data_dir, data_dir, device=device)
    assert res.path == data_dir / "embeddings.zarr" and res.summary() == f"embeddings: {res.path}"
    assert (res.n_embedded, res.width) == (5, 192)
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]  # no temporary left
    e = load_embeddings(data_dir)
    assert e.embedding.shape == (6, 192) and e.embedding.dtype == np.float32
    assert e.ok.tolist() == [True, True, True, False, True, True]
    assert np.isnan(e.embedding[3]).all() and np.isfinite(e.embedding[e.ok]).all()
    assert e.attrs["format"] == "socmap-embeddings/1" and e.attrs["pretrained"] is False
    emb, ok = e.aligned(np.array(["s005", "nope", "s000"]))
    assert ok.tolist() == [True, False, True] and np.array_equal(emb[0], e.embedding[5])
    embed.run(cfg, data_dir, data_dir, device="cpu")  # re-run replaces it
    assert load_embeddings(data_dir).embedding.shape == (6, 192)


def test_finetune_warmup_freezes_backbone_then_embed_uses_it(data_dir, pipeline_file):
    cfg = load_pipeline(pipeline_file)
    res = finetune.run(cfg, data_dir, data_dir, epochs=1, warmup_epochs=1, device="cpu")
    state = torch.load(res.path, weights_only=True)
    assert [h["phase"] for h in res.history] == ["warmup"] and "val_loss" in res.history[0]
    assert state["format"] == "socmap-vit/1"
    res2 = finetune.run(cfg, data_dir, data_dir / "b", epochs=2, warmup_epochs=1, device="cpu")
    assert [h["phase"] for h in res2.history] == ["warmup", "finetune"]
    enc = build_image_encoder(cfg.model.encoder, res2.path)  # a fine-tuned checkpoint loads back
    assert enc.dim == 192
    # embed picks up DATA/vit_finetuned.pt by default and reproduces the checkpoint's encoder
    e = load_embeddings(embed.run(cfg, data_dir, data_dir, device="cpu").path)
    assert e.attrs["checkpoint"].endswith("vit_finetuned.pt") and e.attrs["pretrained"]
    enc1 = build_image_encoder(cfg.model.encoder, res.path).eval()
    store = open_patches(data_dir, list(cfg.model.encoder.modalities))
    with torch.no_grad():
        ref = enc1({m: torch.from_numpy(a) for m, a in store.read(np.array([0, 1])).items()}).numpy()
    assert np.allclose(e.embedding[:2], ref, atol=1e-5)


def test_backbone_frozen_during_warmup_and_trained_after(data_dir, pipeline_file):
    from socmap.encoders.finetune import FinetuneOptions, train_vit_regression
    from socmap.layers import MLP

    cfg = load_pipeline(pipeline_file).model.encoder
    torch.manual_seed(0)
    enc = build_image_encoder(cfg, img_size=32)
    head = MLP(enc.dim, [8], 1)
    store = open_patches(data_dir, list(cfg.modalities))
    rows, y = np.array([0, 1, 2, 4]), np.array([0.1, -0.2, 0.3, 0.0])
    bb0 = {k: v.clone() for k, v in enc.backbone.state_dict().items()}
    cm0 = {k: v.clone() for k, v in enc.cls_merge.state_dict().items()}

    def changed(mod, ref):
        return any(not torch.equal(v, ref[k]) for k, v in mod.state_dict().items())

    opts = FinetuneOptions(epochs=1, warmup_epochs=1, lr=1e-3, backbone_lr_scale=0.1, batch_size=2, loss="mse",
                           seed=0)
    train_vit_regression(enc, head, store, rows, y, np.array([], int), np.array([]), opts, torch.device("cpu"))
    assert not changed(enc.backbone, bb0) and changed(enc.cls_merge, cm0)
    opts = FinetuneOptions(epochs=1, warmup_epochs=0, lr=1e-3, backbone_lr_scale=0.1, batch_size=2, loss="huber",
                           seed=0)
    train_vit_regression(enc, head, store, rows, y, np.array([], int), np.array([]), opts, torch.device("cpu"))
    assert changed(enc.backbone, bb0)
    assert not any(p.requires_grad for p in enc.backbone.parameters())  # frozen at the end


def test_errors(tmp_path, pipeline_file, data_dir):
    cfg = load_pipeline(pipeline_file)
    with pytest.raises(DataError, match=r"patches\.zarr not found"):
        embed.run(cfg, tmp_path / "empty", tmp_path / "empty")
    with pytest.raises(ModelError, match="run `socmap embed"):
        load_embeddings(tmp_path / "empty")
    with pytest.raises(ModelError, match="not found"):
        embed.run(cfg, data_dir, data_dir, checkpoint=tmp_path / "missing.pt")


def test_cli_embed_and_one_line_error(data_dir, pipeline_file, tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["embed", "--data", str(data_dir), "--pipeline", str(pipeline_file), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "embeddings.zarr" in r.output
    r = runner.invoke(cli, ["embed", "--data", str(tmp_path / "nope"), "--pipeline", str(pipeline_file)])
    assert r.exit_code == 2
    err = r.stderr if hasattr(r, "stderr") else r.output
    assert "patches.zarr not found" in err and len(err.strip().splitlines()) == 1
    r = runner.invoke(cli, ["finetune-vit", "--data", str(data_dir), "--pipeline", str(pipeline_file),
                            "--epochs", "1", "--warmup-epochs", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert (data_dir / "vit_finetuned.pt").exists()
