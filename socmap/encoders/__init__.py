"""socmap.encoders: TerraMind image encoder, fine-tuning and embedding cache (``socmap embed``:
:func:`socmap.encoders.embed.run`)."""

from socmap.encoders.embed import Embeddings, load_embeddings
from socmap.encoders.finetune import FinetuneOptions, FinetuneResult
from socmap.encoders.terramind import (
    MODALITY_BANDS,
    CLSMerge,
    ImageEncoder,
    build_backbone,
    build_image_encoder,
    pretraining_stats,
    standardise,
)
from socmap.encoders.weights import ENCODER_INIT_SEED, load_map_encoder, save_encoder_weights

__all__ = [
    "ENCODER_INIT_SEED",
    "MODALITY_BANDS",
    "CLSMerge",
    "Embeddings",
    "FinetuneOptions",
    "FinetuneResult",
    "ImageEncoder",
    "build_backbone",
    "build_image_encoder",
    "load_embeddings",
    "load_map_encoder",
    "pretraining_stats",
    "save_encoder_weights",
    "standardise",
]
