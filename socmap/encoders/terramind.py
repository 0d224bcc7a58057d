"""TerraMind image encoder (paper 3.3): backbone, input standardisation, modality merge, CLS-merge transformer.

Inputs are patches in TerraMind's units, as ``socmap extract`` writes them to ``patches.zarr``:

=========  ==========================================================  ===========================
modality   bands                                                       unit
=========  ==========================================================  ===========================
S2L2A      B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12 (11 of 12: no B01) DN = reflectance x 10000
S1GRD      VV, VH                                                      dB
DEM        elevation                                                   m
=========  ==========================================================  ===========================

Standardisation uses terratorch's ``terramind_register.v1_pretraining_mean`` / ``_std`` (the 11 S2L2A bands
picked from the 12 by name). NaN pixels (missing data) are filled with the modality's pretraining mean, i.e. 0
after standardisation. The backbone is built through ``terratorch``'s ``BACKBONE_REGISTRY`` with
``pretrained=False`` (no model hub is reachable) and ``bands={"S2L2A": [...11 names...]}``, which selects the
matching patch-embedding weights; a local TerraMind checkpoint is loaded through ``ckpt_path`` before that
selection. TerraMind encodes the modalities' token sequences jointly; its last layer's output (normed, no CLS token)
is split per modality and merged element-wise by ``mean`` or ``max`` (``model.encoder.merge``).

CLS-token patch-merge transformer (Table 6: layers / heads / ff), our reading of the paper's description: a learned
CLS token is prepended to the merged (B, T, D) token sequence, ``cls_layers`` pre-norm transformer encoder layers
(``cls_heads`` heads, feed-forward ``cls_ff``) mix it, and max-pooling over the output sequence (CLS included) gives
one D-vector per sample, :math:`\\mathbf h^{vit}_i`. The fine-tune stage (:mod:`socmap.encoders.finetune`) trains
this transformer (and, after a frozen warm-up, the backbone) with an MLP regression head on log SOC; afterwards both
are frozen and :func:`socmap.encoders.embed.run` caches :math:`\\mathbf h^{vit}_i` once per sample, so the ViT
never runs inside GNN training.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from socmap.config import EncoderConfig
from socmap.errors import ModelError

__all__ = [
    "BACKBONE_DIMS",
    "MODALITY_BANDS",
    "CLSMerge",
    "ImageEncoder",
    "build_backbone",
    "build_image_encoder",
    "import_terratorch",
    "pretraining_stats",
    "standardise",
]

log = logging.getLogger(__name__)

MODALITY_BANDS: dict[str, tuple[str, ...]] = {
    "S2L2A": ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"),
    "S1GRD": ("VV", "VH"),
    "DEM": ("DEM",),
}
"""Bands per modality, in the order of the patches.zarr arrays."""

_S2_TERRAMIND_NAMES = {
    "B01": "COASTAL_AEROSOL", "B02": "BLUE", "B03": "GREEN", "B04": "RED", "B05": "RED_EDGE_1",
    "B06": "RED_EDGE_2", "B07": "RED_EDGE_3", "B08": "NIR_BROAD", "B8A": "NIR_NARROW", "B09": "WATER_VAPOR",
    "B11": "SWIR_1", "B12": "SWIR_2",
}
_REGISTER_KEY = {"S2L2A": "untok_sen2l2a@224", "S1GRD": "untok_sen1grd@224", "DEM": "untok_dem@224"}
BACKBONE_DIMS = {"terramind_v1_tiny": 192, "terramind_v1_small": 384, "terramind_v1_base": 768,
                 "terramind_v1_large": 1024}
"""Token width D per backbone."""


def import_terratorch() -> None:
    """Import terratorch without letting it change torch's global float32 matmul precision.

    terratorch 1.2.11's ``clay_v15`` backbone module calls ``torch.set_float32_matmul_precision("medium")`` when
    terratorch is imported, which on CPU makes every later float32 matmul of the process (the GNN's included) run
    in bfloat16, with errors of ~1e-2. The precision set before the import is restored. Call this before any
    ``terratorch`` import.
    """
    precision = torch.get_float32_matmul_precision()
    try:
        import terratorch.registry  # noqa: F401
    finally:
        torch.set_float32_matmul_precision(precision)


def pretraining_stats(modality: str) -> tuple[Tensor, Tensor]:
    """(mean, std) per band of ``MODALITY_BANDS[modality]`` from TerraMind v1's pretraining statistics."""
    import_terratorch()
    from terratorch.models.backbones.terramind.model.terramind_register import (
        PRETRAINED_BANDS,
        v1_pretraining_mean,
        v1_pretraining_std,
    )

    key = _REGISTER_KEY[modality]
    mean, std = torch.tensor(v1_pretraining_mean[key]), torch.tensor(v1_pretraining_std[key])
    if modality == "S2L2A":
        order = PRETRAINED_BANDS[key]
        idx = [order.index(_S2_TERRAMIND_NAMES[b]) for b in MODALITY_BANDS["S2L2A"]]
        mean, std = mean[idx], std[idx]
    return mean, std


def standardise(x: Tensor, modality: str) -> Tensor:
    """``(x - mean) / std`` per band; NaN (missing pixels) become 0, i.e. are filled with the pretraining mean.

    Shapes: ``(B, C, P, P)`` -> ``(B, C, P, P)`` with ``C = len(MODALITY_BANDS[modality])``.
    """
    mean, std = pretraining_stats(modality)
    if x.size(1) != len(mean):
        raise ModelError(f"{modality} patches have {x.size(1)} bands, expected {len(mean)} "
                         f"({', '.join(MODALITY_BANDS[modality])})")
    z = (x - mean.to(x)[None, :, None, None]) / std.to(x)[None, :, None, None]
    return torch.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def build_backbone(backbone: str, modalities: list[str], merge: str, checkpoint: str | Path | None = None,
                   img_size: int = 224) -> nn.Module:
    """TerraMind ViT from terratorch's BACKBONE_REGISTRY (``pretrained=False``; optional local checkpoint).

    ``img_size`` must be a multiple of 16 (the patch size); 224 in production, smaller in tests.
    """
    import_terratorch()
    from terratorch.registry import BACKBONE_REGISTRY

    if backbone not in BACKBONE_DIMS:
        raise ValueError(f"backbone must be one of {sorted(BACKBONE_DIMS)}, got {backbone!r}")
    if merge not in ("mean", "max"):
        raise ValueError(f"merge must be 'mean' or 'max', got {merge!r}")
    if img_size % 16:
        raise ValueError(f"img_size must be a multiple of 16 (TerraMind's patch size), got {img_size}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ModelError(f"TerraMind checkpoint {checkpoint} not found: give the path of a local TerraMind v1 "
                         "checkpoint (model.encoder.checkpoint), or null for random weights")
    bands = {"S2L2A": [_S2_TERRAMIND_NAMES[b] for b in MODALITY_BANDS["S2L2A"]]} if "S2L2A" in modalities else None
    ckpt = None if checkpoint is None else str(checkpoint)
    return BACKBONE_REGISTRY.build(backbone, pretrained=False, ckpt_path=ckpt,
                                   modalities=list(modalities), merge_method=merge, bands=bands, img_size=img_size)


class CLSMerge(nn.Module):
    r"""CLS-token patch-merge transformer, then max-pooling to one vector.

    .. math::
        \mathbf h^{vit} = \max_{t \in \{cls, 1..T\}} \mathrm{Transformer}([\mathbf c; \mathbf x_1; \dots;
        \mathbf x_T])_t

    Shapes:
        - **input:** :math:`(B, T, D)` merged tokens
        - **output:** :math:`(B, D)`
    """

    def __init__(self, dim: int, layers: int, heads: int, ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"token width {dim} must be a multiple of cls_heads={heads}")
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout=dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.cls, std=0.02)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.LayerNorm)):
                m.reset_parameters()
        for layer in self.encoder.layers:
            layer.self_attn._reset_parameters()

    def forward(self, tokens: Tensor) -> Tensor:
        x = torch.cat([self.cls.expand(tokens.size(0), -1, -1), tokens], dim=1)
        return self.norm(self.encoder(x)).max(dim=1).values


class ImageEncoder(nn.Module):
    """Standardise -> TerraMind (modalities merged) -> CLS-merge -> max-pool: one vector per sample.

    Shapes:
        - **input:** dict ``{modality: (B, C_m, P, P)}`` in the units of the module docstring
        - **output:** :math:`(B, D)`
    """

    def __init__(self, backbone: nn.Module, modalities: list[str], dim: int, cls_layers: int, cls_heads: int,
                 cls_ff: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.modalities = list(modalities)
        self.cls_merge = CLSMerge(dim, cls_layers, cls_heads, cls_ff)
        self.dim = dim

    def freeze_backbone(self, frozen: bool = True) -> None:
        for p in self.backbone.parameters():
            p.requires_grad_(not frozen)

    def tokens(self, patches: dict[str, Tensor]) -> Tensor:
        """Merged last-layer tokens (B, T, D)."""
        missing = [m for m in self.modalities if m not in patches]
        if missing:
            raise ModelError(f"patches lack modalities {missing}; the encoder was built for {self.modalities}")
        x = {m: standardise(patches[m].float(), m) for m in self.modalities}
        return self.backbone(x)[-1]

    def forward(self, patches: dict[str, Tensor]) -> Tensor:
        return self.cls_merge(self.tokens(patches))


def build_image_encoder(cfg: EncoderConfig, checkpoint: str | Path | None = None, img_size: int = 224,
                        seed: int | None = None) -> ImageEncoder:
    """The image encoder of a pipeline.

    ``checkpoint`` is either a fine-tuned encoder written by :func:`socmap.encoders.finetune.run`
    (a dict with ``format == "socmap-vit/1"``, which also fixes backbone, modalities, merge and CLS-merge sizes;
    :func:`socmap.encoders.embed.run`'s ``encoder_weights.pt`` has the same format)
    or a raw TerraMind v1 state dict (loaded into the backbone; the CLS-merge keeps random weights).
    ``None`` gives random weights everywhere.

    ``seed``: when set, the random initialisation is drawn from ``torch.manual_seed(seed)`` inside a forked RNG
    (the caller's RNG state is untouched), so the same ``(cfg, checkpoint, img_size, seed)`` always gives the same
    weights; ``None`` draws from the global RNG.
    """
    if seed is None:
        return _build_image_encoder(cfg, checkpoint, img_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build_image_encoder(cfg, checkpoint, img_size)


def _build_image_encoder(cfg: EncoderConfig, checkpoint: str | Path | None, img_size: int) -> ImageEncoder:
    state = None
    raw_ckpt: str | Path | None = None
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise ModelError(f"encoder checkpoint {path} not found: run `socmap finetune-vit` or point "
                             "model.encoder.checkpoint at a local TerraMind checkpoint")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"encoder checkpoint {path} cannot be read ({exc}); is it a torch state dict?") from None
        if isinstance(obj, dict) and obj.get("format") == "socmap-vit/1":
            state = obj
        else:
            raw_ckpt = path
    if state is not None:
        meta = state["config"]
        cfg = EncoderConfig.model_validate({**cfg.model_dump(), **meta})
        img_size = int(state.get("img_size", img_size))
    backbone = build_backbone(cfg.backbone, list(cfg.modalities), cfg.merge, raw_ckpt, img_size)
    enc = ImageEncoder(backbone, list(cfg.modalities), BACKBONE_DIMS[cfg.backbone], cfg.cls_layers, cfg.cls_heads,
                       cfg.cls_ff)
    if state is not None:
        enc.load_state_dict(state["encoder"])
    if checkpoint is None:
        log.warning("TerraMind encoder has random weights (no checkpoint): embeddings carry no pretrained signal")
    return enc
