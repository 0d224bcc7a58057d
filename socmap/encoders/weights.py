"""The exact image-encoder weights behind a set of embeddings: saved by ``embed``, rebuilt by the map job.

A map must embed its cells with the very encoder that embedded the training samples, or the GNN sees image vectors
from another distribution. Three cases, as :func:`socmap.encoders.embed.run` records them in
``embeddings.zarr``'s attributes:

* a fine-tuned encoder (``vit_finetuned.pt``, format ``socmap-vit/1``): it holds every weight; ``checkpoint`` is
  its path;
* no checkpoint at all (random weights; the demo and any run without TerraMind weights): the initialisation is
  drawn with ``torch.manual_seed(ENCODER_INIT_SEED)`` and every weight is written to ``DATA/encoder_weights.pt``
  (:data:`socmap.io.ENCODER_WEIGHTS`, same ``socmap-vit/1`` format); ``checkpoint`` is that file;
* a raw TerraMind checkpoint (``model.encoder.checkpoint``): ``checkpoint`` is its path; the backbone comes from
  it and the CLS-merge transformer from the same seeded draw, so rebuilding with the recorded ``init_seed``
  gives the same weights without copying a large backbone.

``init_seed`` is recorded in the attributes in every case. :func:`load_map_encoder` rebuilds the encoder from a
data folder, a model bundle (its ``encoder.pt``), a weights file or nothing (the seeded random draw).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from socmap.config import EncoderConfig, PipelineConfig
from socmap.encoders.terramind import ImageEncoder, build_image_encoder
from socmap.errors import ModelError
from socmap.io import EMBEDDINGS, ENCODER_WEIGHTS, atomic_path

__all__ = ["BUNDLE_ENCODER", "ENCODER_INIT_SEED", "encoder_state", "export_encoder", "load_map_encoder",
           "resolve_encoder_source", "save_encoder_weights"]

log = logging.getLogger(__name__)

ENCODER_INIT_SEED = 0
"""Seed of the random initialisation of every weight no checkpoint provides (recorded as ``init_seed``)."""
BUNDLE_ENCODER = "encoder.pt"
"""Name of the encoder weights inside a model bundle (the train stage copies the file ``embed`` used there)."""


def encoder_state(encoder: ImageEncoder, cfg: EncoderConfig, img_size: int, init_seed: int | None) -> dict[str, Any]:
    """The ``socmap-vit/1`` dict that :func:`~socmap.encoders.terramind.build_image_encoder` loads back."""
    return {
        "format": "socmap-vit/1",
        "config": {"backbone": cfg.backbone, "modalities": list(encoder.modalities), "merge": cfg.merge,
                   "cls_layers": cfg.cls_layers, "cls_heads": cfg.cls_heads, "cls_ff": cfg.cls_ff},
        "img_size": int(img_size),
        "init_seed": init_seed,
        "encoder": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
    }


def save_encoder_weights(encoder: ImageEncoder, cfg: EncoderConfig, path: str | Path, img_size: int,
                         init_seed: int | None = ENCODER_INIT_SEED) -> Path:
    """Write every weight of ``encoder`` to ``path`` (atomically) in the ``socmap-vit/1`` format; returns it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(encoder_state(encoder, cfg, img_size, init_seed), tmp)
    return path


def _enc_cfg(cfg: PipelineConfig | EncoderConfig) -> EncoderConfig:
    return cfg.model.encoder if isinstance(cfg, PipelineConfig) else cfg


def resolve_encoder_source(source: Any) -> tuple[Path | None, int | None, dict[str, Any]]:
    """``(checkpoint file or None, img_size or None, embeddings attrs)`` behind ``source``.

    ``source``: a weights file; a model bundle folder (or an object with a ``path`` attribute, such as a loaded
    bundle) holding ``encoder.pt``; a data folder holding ``embeddings.zarr`` (its ``checkpoint`` attribute, which
    may be null for embeddings written before weights were recorded) or ``encoder_weights.pt``; an
    ``embeddings.zarr`` itself; or ``None``.
    """
    if source is None:
        return None, None, {}
    if not isinstance(source, (str, Path)) and hasattr(source, "path"):
        source = source.path
    p = Path(source)
    if p.is_file():
        return p, None, {}
    if not p.is_dir():
        raise ModelError(f"encoder weights {p} not found: give a data folder with embeddings.zarr, a model bundle "
                         "or a weights file")
    if (p / BUNDLE_ENCODER).is_file():
        return p / BUNDLE_ENCODER, None, {}
    emb = p if p.name == EMBEDDINGS else p / EMBEDDINGS
    if emb.is_dir():
        import zarr

        attrs: dict[str, Any] = dict(zarr.open_group(str(emb), mode="r").attrs)
        ckpt = attrs.get("checkpoint")
        size = None if attrs.get("patch_size") is None else int(attrs["patch_size"])
        if ckpt is None:
            if "init_seed" not in attrs:
                raise ModelError(f"{emb} records neither encoder weights nor an init seed (written by an older "
                                 "`socmap embed` with unseeded random weights): its encoder cannot be rebuilt; "
                                 "run `socmap embed` again")
            return None, size, attrs
        cp = Path(str(ckpt))
        if not cp.is_file() and cp.name == ENCODER_WEIGHTS and (emb.parent / ENCODER_WEIGHTS).is_file():
            cp = emb.parent / ENCODER_WEIGHTS  # the data folder was moved since embed ran
        if not cp.is_file():
            raise ModelError(f"{emb} was embedded with encoder weights {ckpt}, which are gone; copy them back or "
                             "run `socmap embed` again")
        return cp, size, attrs
    if (p / ENCODER_WEIGHTS).is_file():
        return p / ENCODER_WEIGHTS, None, {}
    raise ModelError(f"{p} holds no encoder weights ({BUNDLE_ENCODER}, {EMBEDDINGS} or {ENCODER_WEIGHTS}); run "
                     "`socmap embed` first")


def load_map_encoder(cfg: PipelineConfig | EncoderConfig, source: Any = None, *,
                     img_size: int | None = None) -> ImageEncoder:
    """The frozen image encoder (eval mode, no gradients, CPU) that embedded the training samples.

    Args:
        cfg: the pipeline (or its ``model.encoder``); a ``socmap-vit/1`` file overrides its encoder sizes.
        source: where the weights are (see :func:`resolve_encoder_source`): a data folder, a bundle (folder or
            loaded), a weights file, or ``None`` for the seeded random draw (what ``embed`` does without any
            checkpoint).
        img_size: patch edge, pixels, for a raw or random build; default: the ``patch_size`` embed recorded, else
            ``imagery.patch_size`` (224).
    """
    if not isinstance(cfg, (PipelineConfig, EncoderConfig)):
        raise TypeError(f"cfg must be a PipelineConfig or EncoderConfig, got {type(cfg).__name__}")
    ckpt, recorded, attrs = resolve_encoder_source(source)
    seed = attrs.get("init_seed", ENCODER_INIT_SEED)
    size = img_size or recorded or (cfg.imagery.patch_size if isinstance(cfg, PipelineConfig) else 224)
    enc = build_image_encoder(_enc_cfg(cfg), ckpt, img_size=int(size), seed=seed)
    enc.freeze_backbone(True)
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc.eval()


def export_encoder(cfg: PipelineConfig | EncoderConfig, source: Any, dest: str | Path) -> Path:
    """Write the encoder behind ``source`` (e.g. the data folder ``embed`` wrote) with every weight to ``dest``
    (``socmap-vit/1``; e.g. ``<bundle>/encoder.pt``), so the copy no longer depends on a raw TerraMind file or a
    seed. Returns ``dest``."""
    ckpt, recorded, attrs = resolve_encoder_source(source)
    enc = load_map_encoder(cfg, source)
    size = recorded
    if size is None and ckpt is not None:
        obj = torch.load(ckpt, map_location="cpu", weights_only=True)
        size = obj.get("img_size") if isinstance(obj, dict) else None
    size = size or (cfg.imagery.patch_size if isinstance(cfg, PipelineConfig) else 224)
    meta = _enc_cfg(cfg)
    if ckpt is not None:  # a socmap-vit file fixes the sizes; keep them
        obj = torch.load(ckpt, map_location="cpu", weights_only=True)
        if isinstance(obj, dict) and obj.get("format") == "socmap-vit/1":
            meta = EncoderConfig.model_validate({**meta.model_dump(), **obj["config"]})
    return save_encoder_weights(enc, meta, dest, int(size), attrs.get("init_seed", ENCODER_INIT_SEED))
