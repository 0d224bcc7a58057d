"""Fourier year encoder, paper eq. (2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from socmap.config import TemporalConfig
from socmap.nn import MLP

__all__ = ["TemporalEncoder"]


class TemporalEncoder(nn.Module):
    r"""Encode the sampling year with Fourier features at log-spaced (octave) frequencies, then an MLP.

    .. math::
        \bar t_i = \frac{t_i - t_{min}}{t_{max} - t_{min}}, \qquad
        \mathbf{e}^{time}_i = \mathrm{MLP}\Big(\big[\sin(\bar t_i f_j),\ \cos(\bar t_i f_j)\big]_{j=1}^{J}\Big),
        \qquad f_j = 2\pi \cdot 2^{j-1}

    so the slowest feature spans the whole ``[year_min, year_max]`` range once and each next one is twice as fast.
    Years outside the range are not clipped (the sinusoids extend smoothly). The MLP is
    ``Linear(2J, hidden) -> GELU -> Linear(hidden, out_dim)``.

    Shapes:
        - **input:** :math:`(N,)` year (integer or float)
        - **output:** :math:`(N, \text{out\_dim})`
    """

    def __init__(self, cfg: TemporalConfig) -> None:
        super().__init__()
        if cfg.year_max <= cfg.year_min:
            raise ValueError(f"year_max ({cfg.year_max}) must be > year_min ({cfg.year_min})")
        self.year_min, self.year_max = float(cfg.year_min), float(cfg.year_max)
        self.register_buffer("freqs", 2 * math.pi * 2.0 ** torch.arange(cfg.frequencies, dtype=torch.float32))
        self.mlp = MLP(2 * cfg.frequencies, [cfg.hidden], cfg.out_dim)
        self.out_dim = cfg.out_dim

    def normalise(self, year: Tensor) -> Tensor:
        return (year.float() - self.year_min) / (self.year_max - self.year_min)

    def features(self, year: Tensor) -> Tensor:
        arg = self.normalise(year).unsqueeze(-1) * self.freqs
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, year: Tensor) -> Tensor:
        return self.mlp(self.features(year))
