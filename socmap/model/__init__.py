"""socmap.model: MoE fusion, the fast RGAT layer, MLPs and the SpTGNN model (paper 3.4, 3.6, 3.7)."""

from socmap.model.losses import huber_loss, sptgnn_loss
from socmap.model.mlp import MLP
from socmap.model.moe import ConcatFusion, MoEFusion, MoEStats, build_fusion, moe_aux_losses
from socmap.model.rgat_block import RGATBlock
from socmap.model.rgat_conv import FastRGATConv
from socmap.model.sptgnn import NodeInputs, SpTGNN, SpTGNNOutput, label_features

__all__ = [
    "MLP",
    "ConcatFusion",
    "FastRGATConv",
    "MoEFusion",
    "MoEStats",
    "NodeInputs",
    "RGATBlock",
    "SpTGNN",
    "SpTGNNOutput",
    "build_fusion",
    "huber_loss",
    "label_features",
    "moe_aux_losses",
    "sptgnn_loss",
]
