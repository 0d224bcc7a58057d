"""Multi-scale sinusoidal position encoder, paper eq. (1)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from socmap.config import PositionalConfig
from socmap.layers import MLP

__all__ = ["PositionalEncoder"]


class PositionalEncoder(nn.Module):
    r"""Encode (lon, lat) in degrees with sinusoids at K log-spaced scales, then a 2-layer MLP.

    .. math::
        \mathbf{e}^{pos}_i = \mathrm{MLP}\Big(\big[\sin(\mathbf{p}_i / \sigma_k),\ \cos(\mathbf{p}_i / \sigma_k)
        \big]_{k=1}^{K}\Big), \qquad \sigma_k = \sigma_{min} (\sigma_{max} / \sigma_{min})^{(k-1)/(K-1)}

    :math:`\mathbf{p}_i` is in degrees, so with :math:`\sigma \in [0.1, 10]` the wavelengths
    :math:`2\pi\sigma` run from about 0.63 degrees (~70 km) to about 63 degrees (continental).
    The MLP is ``Linear(4K, hidden) -> GELU -> Linear(hidden, out_dim)``.

    Shapes:
        - **input:** :math:`(N, 2)` lon, lat in degrees
        - **output:** :math:`(N, \text{out\_dim})`
    """

    sigmas: Tensor

    def __init__(self, cfg: PositionalConfig) -> None:
        super().__init__()
        if cfg.sigma_max < cfg.sigma_min:
            raise ValueError(f"sigma_max ({cfg.sigma_max}) must be >= sigma_min ({cfg.sigma_min})")
        k = cfg.scales
        sig = (torch.full((1,), cfg.sigma_min) if k == 1 else
               torch.logspace(math.log10(cfg.sigma_min), math.log10(cfg.sigma_max), k))
        self.register_buffer("sigmas", sig)
        self.mlp = MLP(4 * k, [cfg.hidden], cfg.out_dim)
        self.out_dim = cfg.out_dim

    def features(self, lonlat: Tensor) -> Tensor:
        """The raw sinusoids, ``(N, 4K)``: ``[sin(p/sigma_k), cos(p/sigma_k)]`` for lon and lat."""
        arg = lonlat.unsqueeze(-1) / self.sigmas  # (N, 2, K)
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1).flatten(1)

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, lonlat: Tensor) -> Tensor:
        return self.mlp(self.features(lonlat))
