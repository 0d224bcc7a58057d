"""Area of applicability: which map cells lie outside what the model saw in training.

The paper names the missing out-of-distribution detection as a limitation; the map keeps every prediction and adds
a flag layer (uint8, 1 = outside) that says which cells to trust less. A cell is flagged when

* **distance**: its nearest training node is farther (great circle, km) than the ``q`` quantile (default 0.99) of
  the training nodes' own nearest-neighbour distances, i.e. farther from the data than almost any training node
  is from its closest fellow; the graph then attaches it to neighbours that say little about it; or
* **range**: any tabular model input (the preprocessed ``feature_columns``) lies outside its training
  ``[min, max]`` by more than ``margin`` x (max - min) (default 10 %): the covariates are extrapolated.

Both rules need only the training nodes' positions and feature ranges, which the bundle carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from socmap.geo import chord_to_km, knn_km, lonlat_to_unit

__all__ = ["AOAReference"]


@dataclass
class AOAReference:
    """What the flag compares a cell against (built once per worker from the bundle)."""

    train_unit: np.ndarray
    """(N, 3) unit vectors of the training nodes."""
    distance_km: float
    """Threshold on the distance to the nearest training node, km."""
    low: np.ndarray
    high: np.ndarray
    """(F,) allowed range of each tabular input (training range widened by the margin)."""

    @classmethod
    def from_training(cls, train_lonlat: np.ndarray, tabular_range: np.ndarray | None, *, quantile: float = 0.99,
                      margin: float = 0.1) -> AOAReference:
        """Thresholds from the training nodes' (lon, lat) degrees and their (F, 2) per-feature (min, max)."""
        from scipy.spatial import cKDTree

        unit = lonlat_to_unit(np.asarray(train_lonlat, float))
        if len(unit) >= 2:
            d, _ = cKDTree(unit).query(unit, k=2)
            nn_km = chord_to_km(d[:, 1])
            distance_km = float(np.quantile(nn_km, quantile))
        else:
            distance_km = float("inf")
        if tabular_range is None or len(tabular_range) == 0:
            low = high = np.empty(0)
        else:
            rng = np.asarray(tabular_range, float).reshape(-1, 2)
            width = rng[:, 1] - rng[:, 0]
            low, high = rng[:, 0] - margin * width, rng[:, 1] + margin * width
        return cls(train_unit=unit, distance_km=distance_km, low=low, high=high)

    def nearest_km(self, lonlat: np.ndarray) -> np.ndarray:
        """Distance of each point to its nearest training node, km."""
        from scipy.spatial import cKDTree

        if not hasattr(self, "_tree"):
            self._tree = cKDTree(self.train_unit)
        return knn_km(self._tree, np.asarray(lonlat, float), 1)[0][:, 0]

    def flag(self, lonlat: np.ndarray, tabular: np.ndarray | None) -> np.ndarray:
        """(N,) uint8: 1 where a cell is outside the area of applicability, else 0."""
        out = self.nearest_km(lonlat) > self.distance_km
        if tabular is not None and tabular.size and len(self.low):
            x = np.asarray(tabular, float)
            out |= ((x < self.low) | (x > self.high)).any(axis=1)
        return out.astype(np.uint8)
