"""TerraMind image encoder: standardisation, modality merge, CLS-merge, shapes (tiny backbone, random weights)."""

from __future__ import annotations

import math

import pytest
import torch

from socmap.config import EncoderConfig
from socmap.encoders.terramind import (
    MODALITY_BANDS,
    CLSMerge,
    build_backbone,
    build_image_encoder,
    pretraining_stats,
    standardise,
)
from socmap.errors import ModelError


def _patches(b=2, p=32):
    g = torch.Generator().manual_seed(0)
    return {"S2L2A": torch.rand(b, 11, p, p, generator=g) * 3000,
            "S1GRD": torch.randn(b, 2, p, p, generator=g) - 15,
            "DEM": torch.rand(b, 1, p, p, generator=g) * 800}


def test_pretraining_stats_pick_the_11_bands():
    mean, _std = pretraining_stats("S2L2A")
    assert len(mean) == len(MODALITY_BANDS["S2L2A"]) == 11
    assert math.isclose(float(mean[0]), 1503.317, rel_tol=1e-6)  # B02 (BLUE), B01 dropped
    assert math.isclose(float(mean[-1]), 1857.648, rel_tol=1e-6)  # B12
    m1, _ = pretraining_stats("S1GRD")
    assert torch.allclose(m1, torch.tensor([-12.599, -20.293]))


def test_standardise_fills_nan_with_mean():
    x = torch.full((1, 11, 4, 4), float("nan"))
    mean, std = pretraining_stats("S2L2A")
    x[0, :, 0, 0] = mean + std
    z = standardise(x, "S2L2A")
    assert torch.allclose(z[0, :, 0, 0], torch.ones(11), atol=1e-5)
    assert (z[0, :, 1:, :] == 0).all()
    with pytest.raises(ModelError, match="11"):
        standardise(torch.zeros(1, 12, 4, 4), "S2L2A")


@pytest.mark.parametrize("merge", ["mean", "max"])
@pytest.mark.parametrize("modalities", [["S2L2A", "S1GRD", "DEM"], ["S2L2A"], ["S1GRD", "DEM"]])
def test_encoder_shapes(merge, modalities):
    cfg = EncoderConfig(backbone="terramind_v1_tiny", modalities=modalities, merge=merge, cls_layers=1,
                        cls_heads=4, cls_ff=64)
    torch.manual_seed(0)
    enc = build_image_encoder(cfg, img_size=32).eval()
    assert all(torch.isfinite(p).all() for p in enc.parameters())
    with torch.no_grad():
        tok = enc.tokens(_patches())
        out = enc(_patches())
    assert tok.shape == (2, 4, 192)  # (32 / 16)^2 tokens
    assert out.shape == (2, 192) and torch.isfinite(out).all()


def test_merge_mean_vs_max_tokens():
    torch.manual_seed(0)
    cfg = dict(backbone="terramind_v1_tiny", cls_layers=1, cls_heads=4, cls_ff=64)
    torch.manual_seed(0)
    a = build_image_encoder(EncoderConfig(merge="mean", **cfg), img_size=32).eval()
    b = build_image_encoder(EncoderConfig(merge="max", **cfg), img_size=32).eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        ta, tb = a.tokens(_patches()), b.tokens(_patches())
    assert (tb >= ta - 1e-5).all() and not torch.allclose(ta, tb)


def test_cls_merge_is_max_over_sequence():
    m = CLSMerge(8, 1, 2, 16).eval()
    x = torch.randn(3, 5, 8)
    with torch.no_grad():
        full = m.norm(m.encoder(torch.cat([m.cls.expand(3, -1, -1), x], 1)))
        assert torch.allclose(m(x), full.max(1).values)


def test_bad_inputs():
    with pytest.raises(ModelError, match="not found"):
        build_image_encoder(EncoderConfig(backbone="terramind_v1_tiny"), "/nonexistent/ckpt.pt")
    with pytest.raises(ValueError, match="multiple of 16"):
        build_backbone("terramind_v1_tiny", ["S2L2A"], "mean", img_size=30)
    enc = build_image_encoder(EncoderConfig(backbone="terramind_v1_tiny", cls_layers=1, cls_ff=64), img_size=32)
    with pytest.raises(ModelError, match="DEM"):
        enc({"S2L2A": torch.zeros(1, 11, 32, 32), "S1GRD": torch.zeros(1, 2, 32, 32)})


def test_importing_terratorch_keeps_float32_matmul_precision() -> None:
    """terratorch sets torch's global matmul precision to "medium" (bf16 matmuls on CPU) when imported; socmap
    imports it through import_terratorch, which restores the precision (fresh process: the import happens once)."""
    import subprocess
    import sys

    code = ("import torch; from socmap.encoders.terramind import import_terratorch; import_terratorch(); "
            "import terratorch; print(torch.get_float32_matmul_precision())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "highest"
