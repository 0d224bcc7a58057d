"""Fourier year encoder, paper eq. (2), over a year range fitted on the training years and kept with the model."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from socmap.config import TemporalConfig
from socmap.layers import MLP

__all__ = ["TemporalEncoder", "fit_year_range"]


class TemporalEncoder(nn.Module):
    r"""Encode the sampling year with Fourier features at log-spaced (octave) frequencies, then an MLP.

    .. math::
        \bar t_i = \operatorname{clip}\Big(\frac{t_i - t_{min}}{t_{max} - t_{min}}, 0, 1\Big), \qquad
        \mathbf{e}^{time}_i = \mathrm{MLP}\Big(\big[\sin(\bar t_i f_j),\ \cos(\bar t_i f_j)\big]_{j=1}^{J}\Big),
        \qquad f_j = \pi \cdot 2^{j-1}

    The slowest pair turns through half a cycle over ``[t_min, t_max]``, so its angle :math:`\pi \bar t` is
    one-to-one on the range: every year in the range, the two end years included, gets its own code. (Whole cycles,
    :math:`f_1 = 2\pi`, gave both end years the same code.) Each next frequency is twice as fast. Years outside the
    range are clipped to the nearer end year, so an unseen year is treated as the closest year the model was
    trained on instead of wrapping around to an unrelated one.

    ``t_min, t_max`` (calendar years) are the registered buffers ``year_min`` and ``year_max``: they are saved in
    the state dict and travel with the model. They come from ``model.temporal.year_min/year_max`` when both are
    set; otherwise they are NaN until :meth:`fit_year_range` is called on the training years (the trainer does),
    and encoding an unfitted range is an error. The MLP is ``Linear(2J, hidden) -> GELU -> Linear(hidden, out)``.

    Shapes:
        - **input:** :math:`(N,)` year (integer or float)
        - **output:** :math:`(N, \text{out\_dim})`
    """

    year_min: Tensor
    year_max: Tensor
    freqs: Tensor

    def __init__(self, cfg: TemporalConfig) -> None:
        super().__init__()
        if (cfg.year_min is None) != (cfg.year_max is None):
            raise ValueError("set both model.temporal.year_min and year_max, or neither (null: fitted on the "
                             f"training years); got year_min={cfg.year_min}, year_max={cfg.year_max}")
        self.register_buffer("year_min", torch.tensor(math.nan, dtype=torch.float32))
        self.register_buffer("year_max", torch.tensor(math.nan, dtype=torch.float32))
        if cfg.year_min is not None and cfg.year_max is not None:
            self.set_year_range(cfg.year_min, cfg.year_max)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(cfg.frequencies, dtype=torch.float32))
        self.mlp = MLP(2 * cfg.frequencies, [cfg.hidden], cfg.out_dim)
        self.out_dim = cfg.out_dim

    # -------------------------------------------------------------------------------------------- range
    @property
    def fitted(self) -> bool:
        """Whether the year range is known (from the config, :meth:`fit_year_range` or a loaded state dict)."""
        return bool(torch.isfinite(self.year_min)) and bool(torch.isfinite(self.year_max))

    @property
    def year_range(self) -> tuple[float, float]:
        """``(t_min, t_max)`` in calendar years (NaN while unfitted)."""
        return float(self.year_min), float(self.year_max)

    def set_year_range(self, year_min: float, year_max: float) -> None:
        """Set ``t_min, t_max`` (calendar years, ``year_max > year_min``)."""
        if not (math.isfinite(year_min) and math.isfinite(year_max)) or year_max <= year_min:
            raise ValueError(f"year_max ({year_max}) must be > year_min ({year_min}), both finite")
        self.year_min.fill_(float(year_min))
        self.year_max.fill_(float(year_max))

    def fit_year_range(self, years: np.ndarray | Tensor) -> tuple[float, float]:
        """Fit ``t_min, t_max`` to the training years: their minimum and maximum.

        A single distinct training year ``y`` gives the range ``[y - 0.5, y + 0.5]`` (every year then encodes as
        ``y``'s clipped neighbour: the stream carries no information, as it should). NaN years are ignored.
        Returns the range.
        """
        y = torch.as_tensor(years, dtype=torch.float64).flatten()
        y = y[torch.isfinite(y)]
        if y.numel() == 0:
            raise ValueError("fit_year_range needs at least one finite training year")
        lo, hi = float(y.min()), float(y.max())
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        self.set_year_range(lo, hi)
        return lo, hi

    # -------------------------------------------------------------------------------------------- encoding
    def normalise(self, year: Tensor) -> Tensor:
        """:math:`\\bar t` in [0, 1]: years outside the range are clipped to its ends."""
        if not self.fitted:
            raise ValueError("the temporal encoder's year range is not set: call model.fit_year_range(train_years) "
                             "(or set model.temporal.year_min and year_max) before encoding years")
        t = (year.to(self.year_min.dtype) - self.year_min) / (self.year_max - self.year_min)
        return t.clamp(0.0, 1.0)

    def features(self, year: Tensor) -> Tensor:
        """The raw sinusoids, ``(N, 2J)``: ``[sin(t f_j), cos(t f_j)]``."""
        arg = self.normalise(year).unsqueeze(-1) * self.freqs
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)

    def reset_parameters(self) -> None:
        """Re-initialise the MLP; the year range is data, not a parameter, and is kept."""
        self.mlp.reset_parameters()

    def forward(self, year: Tensor) -> Tensor:
        return self.mlp(self.features(year))


def fit_year_range(model: nn.Module, years: np.ndarray) -> bool:
    """Fit the year range of ``model``'s temporal encoder to the training ``years`` (passed on as float32): the
    model's own ``fit_year_range`` (SpTGNN's keeps a range the config fixes), else that of its ``time_encoder``
    or of ``model`` itself when it is a :class:`TemporalEncoder`. Training calls it on a fresh member, loading a
    bundle on each rebuilt one (from ``bundle.json``'s ``train_year_range``). False when there is none to fit."""
    yrs = torch.as_tensor(np.asarray(years, np.float64), dtype=torch.float32)
    for obj in (model, getattr(model, "time_encoder", None)):
        fit = getattr(obj, "fit_year_range", None)
        if obj is not None and callable(fit):
            fit(yrs)
            return True
    return False
