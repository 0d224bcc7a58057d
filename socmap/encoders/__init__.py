"""socmap.encoders: TerraMind image encoder, fine-tuning and embedding cache."""

from socmap.encoders.embed import Embeddings, embed, load_embeddings
from socmap.encoders.finetune import FinetuneOptions, FinetuneResult, finetune_vit
from socmap.encoders.terramind import (
    MODALITY_BANDS,
    CLSMerge,
    ImageEncoder,
    build_backbone,
    build_image_encoder,
    pretraining_stats,
    standardise,
)

__all__ = [
    "MODALITY_BANDS",
    "CLSMerge",
    "Embeddings",
    "FinetuneOptions",
    "FinetuneResult",
    "ImageEncoder",
    "build_backbone",
    "build_image_encoder",
    "embed",
    "finetune_vit",
    "load_embeddings",
    "pretraining_stats",
    "standardise",
]
