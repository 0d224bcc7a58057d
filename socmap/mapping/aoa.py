"""Area of applicability of a map: each cell's dissimilarity index (DI, layer ``di``) and whether it lies outside
the area of applicability (layer ``aoa``, 1 = DI above the threshold).

The DI and its threshold are Meyer and Pebesma's (2021), as :mod:`socmap.inference.applicability` computes them
over the model's tabular predictors (the cell's preprocessed ``feature_columns``). The bundle carries the
predictors' importance weights, the training points' mean distance and the threshold (``bundle.json``
``applicability``); a bundle without them gets equal weights, and the mean distance and the threshold are
computed here from its training nodes with the same cross-validation rule. A bundle without training tabular
inputs (tabular stream off) has no predictor space to measure: its ``di`` and ``aoa`` are no-data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from socmap.inference.applicability import AreaOfApplicability

if TYPE_CHECKING:
    from socmap.inference import Bundle

__all__ = ["AOA_UNKNOWN", "AOAReference"]

AOA_UNKNOWN = 255
"""``aoa`` value of a cell whose DI cannot be computed (the layer's no-data)."""


@dataclass
class AOAReference:
    """What a map cell's DI and flag are computed against (built once per worker from the bundle)."""

    area: AreaOfApplicability | None
    """None: the bundle has no training tabular inputs (DI unknown)."""

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> AOAReference:
        return cls(bundle.applicability)

    def di(self, tabular: np.ndarray | None, n: int) -> np.ndarray:
        """(n,) DI of ``n`` cells from their (n, F) preprocessed predictors; NaN where unknown."""
        if self.area is None or tabular is None:
            return np.full(n, np.nan)
        return self.area.di(tabular)

    def flag(self, di: np.ndarray) -> np.ndarray:
        """(n,) uint8 from the cells' DI: 1 outside the area of applicability (DI above the threshold), 0 inside,
        :data:`AOA_UNKNOWN` where the DI is NaN."""
        d = np.asarray(di, np.float64)
        if self.area is None:
            return np.full(d.shape, AOA_UNKNOWN, np.uint8)
        out = self.area.outside(d).astype(np.uint8)
        out[np.isnan(d)] = AOA_UNKNOWN
        return out
