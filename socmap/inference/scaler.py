"""The target transform every member is trained and read back in: standardised :math:`\\log(1 + \\mathrm{SOC})`.

Training fits it on the training split (``socmap train``); the bundle stores it (``target_scaler.json``) so that
prediction turns the members' standardised outputs back into log(1+SOC) units, SOC in g/kg.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TargetScaler"]


@dataclass
class TargetScaler:
    """Standardises :math:`\\log(1 + \\mathrm{SOC})`: ``z = (log1p(soc) - mean) / sd`` (mean, sd over training)."""

    mean: float
    sd: float

    @classmethod
    def fit(cls, y_log: np.ndarray) -> TargetScaler:
        y = np.asarray(y_log, np.float64)
        sd = float(np.std(y))
        return cls(float(np.mean(y)), sd if sd > 0 else 1.0)

    def transform(self, y_log: np.ndarray) -> np.ndarray:
        return (np.asarray(y_log, np.float64) - self.mean) / self.sd

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Standardised -> log(1+SOC)."""
        return np.asarray(z, np.float64) * self.sd + self.mean

    def to_dict(self) -> dict[str, object]:
        return {"kind": "log1p-standard", "mean": self.mean, "sd": self.sd}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetScaler:
        return cls(float(d["mean"]), float(d["sd"]))
