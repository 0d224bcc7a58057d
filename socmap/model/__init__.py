"""socmap.model: MoE fusion, the fast RGAT layer, MLPs and the SpTGNN model (paper 3.4, 3.6, 3.7)."""

from socmap.model.rgat_conv import FastRGATConv

__all__ = ["FastRGATConv"]
