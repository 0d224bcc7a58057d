"""socmap.model: MoE fusion, the fast RGAT layer, MLPs and the SpTGNN model (paper 3.4, 3.6, 3.7)."""

from socmap.model.inductive import LayerCache, attach_and_predict, cache_layers, cached_forward
from socmap.model.moe import ConcatFusion, MoEFusion, MoEStats, build_fusion, moe_aux_losses
from socmap.model.positional import PositionalEncoder
from socmap.model.rgat_block import RGATBlock
from socmap.model.rgat_conv import FastRGATConv
from socmap.model.sptgnn import NodeInputs, SpTGNN, SpTGNNOutput, label_features
from socmap.model.temporal import TemporalEncoder

__all__ = [
    "ConcatFusion",
    "FastRGATConv",
    "LayerCache",
    "MoEFusion",
    "MoEStats",
    "NodeInputs",
    "PositionalEncoder",
    "RGATBlock",
    "SpTGNN",
    "SpTGNNOutput",
    "TemporalEncoder",
    "attach_and_predict",
    "build_fusion",
    "cache_layers",
    "cached_forward",
    "label_features",
    "moe_aux_losses",
]
