"""Deep-ensemble aggregation (eq. 6), temperature scaling (eq. 7) and the prediction record others consume.

Everything here is in the target's natural units, :math:`\\log(1 + \\mathrm{SOC})` (not standardised); the g/kg
views (:meth:`EnsemblePrediction.soc_gkg`, :meth:`~EnsemblePrediction.quantile_gkg`,
:meth:`~EnsemblePrediction.var_gkg`) back-transform at the end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

__all__ = ["EnsemblePrediction", "aggregate", "fit_temperature", "gaussian_nll"]


def aggregate(member_mean: np.ndarray, member_var: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eq. (6): ``(mean, aleatoric, epistemic)`` from (M, N) member means and variances.

    mean = average of the member means; aleatoric = average of the member variances; epistemic = the
    Bessel-corrected (ddof=1) variance of the member means, 0 for a single member.
    """
    mm = np.asarray(member_mean, dtype=np.float64)
    mv = np.asarray(member_var, dtype=np.float64)
    if mm.ndim != 2 or mm.shape != mv.shape:
        raise ValueError(f"member_mean and member_var must both be (M, N), got {mm.shape} and {mv.shape}")
    mean = mm.mean(axis=0)
    alea = mv.mean(axis=0)
    epi = mm.var(axis=0, ddof=1) if mm.shape[0] >= 2 else np.zeros_like(mean)
    return mean, alea, epi


def gaussian_nll(mean: np.ndarray, var: np.ndarray, y: np.ndarray) -> float:
    """Mean Gaussian negative log-likelihood (with the 0.5 log 2 pi constant), natural log."""
    var = np.maximum(np.asarray(var, np.float64), 1e-12)
    r2 = (np.asarray(y, np.float64) - np.asarray(mean, np.float64)) ** 2
    return float(np.mean(0.5 * (np.log(2 * np.pi * var) + r2 / var)))


def fit_temperature(mean: np.ndarray, var: np.ndarray, y: np.ndarray) -> float:
    r"""Eq. (7): the scalar :math:`T > 0` minimising the Gaussian NLL of ``y`` under :math:`N(\mu, T^2\sigma^2)`.

    The minimiser has a closed form, :math:`T^2 = \frac{1}{N}\sum_i (y_i - \mu_i)^2 / \sigma_i^2`, so no
    optimiser is needed. Non-finite rows are ignored; with none left T = 1.
    """
    mean, var, y = (np.asarray(a, np.float64) for a in (mean, var, y))
    ok = np.isfinite(mean) & np.isfinite(var) & np.isfinite(y) & (var > 0)
    if not ok.any():
        return 1.0
    t2 = float(np.mean((y[ok] - mean[ok]) ** 2 / var[ok]))
    return float(np.sqrt(t2)) if t2 > 0 else 1.0


@dataclass(frozen=True)
class EnsemblePrediction:
    """Calibrated (or raw) ensemble prediction of N points.

    ``mean`` (N,) in log(1+SOC); ``aleatoric_var``, ``epistemic_var`` (N,) in log(1+SOC) units squared, already
    multiplied by ``temperature**2`` when calibrated; ``member_mean``, ``member_var`` (M, N) the raw members
    (not scaled by T); ``temperature`` the T applied (1.0 = uncalibrated).
    """

    mean: np.ndarray
    aleatoric_var: np.ndarray
    epistemic_var: np.ndarray
    member_mean: np.ndarray
    member_var: np.ndarray
    temperature: float = 1.0

    @classmethod
    def from_members(cls, member_mean: np.ndarray, member_var: np.ndarray, temperature: float = 1.0
                     ) -> EnsemblePrediction:
        """Aggregate by eq. (6) and scale both variances by ``temperature**2``."""
        mean, alea, epi = aggregate(member_mean, member_var)
        t2 = float(temperature) ** 2
        return cls(mean, alea * t2, epi * t2, np.asarray(member_mean, np.float64),
                   np.asarray(member_var, np.float64), float(temperature))

    def __len__(self) -> int:
        return len(self.mean)

    @property
    def total_var(self) -> np.ndarray:
        """Aleatoric + epistemic, log(1+SOC) units squared."""
        return self.aleatoric_var + self.epistemic_var

    def soc_gkg(self) -> np.ndarray:
        """Point prediction in g/kg: expm1(mean), the median of the log-normal predictive."""
        return np.expm1(self.mean)

    def quantile_gkg(self, q: float | np.ndarray) -> np.ndarray:
        """Quantile ``q`` of the predictive in g/kg: expm1(mean + Phi^-1(q) sqrt(total_var))."""
        return np.expm1(self.mean + ndtri(q) * np.sqrt(self.total_var))

    def var_gkg(self, kind: str = "total") -> np.ndarray:
        """Variance in (g/kg)^2 by the delta method: (1 + soc)^2 var, ``kind`` aleatoric | epistemic | total."""
        var = {"aleatoric": self.aleatoric_var, "epistemic": self.epistemic_var, "total": self.total_var}
        if kind not in var:
            raise ValueError(f"kind must be aleatoric, epistemic or total, got {kind!r}")
        return np.exp(self.mean) ** 2 * var[kind]

    def subset(self, members: list[int]) -> EnsemblePrediction:
        """The prediction of a sub-ensemble (post-hoc ensemble size), with the same temperature."""
        idx = list(members)
        if not idx:
            raise ValueError("subset needs at least one member")
        return EnsemblePrediction.from_members(self.member_mean[idx], self.member_var[idx], self.temperature)

    def add_epistemic(self, extra_var: np.ndarray | None) -> EnsemblePrediction:
        """A copy with ``extra_var`` (N,) log(1+SOC)^2 added to the epistemic variance: the distance-aware term
        of :mod:`socmap.train.distance_var`, added after calibration (T does not scale it). None: unchanged."""
        if extra_var is None:
            return self
        return dataclasses.replace(self, epistemic_var=self.epistemic_var + np.asarray(extra_var, np.float64))

    def calibrate(self, temperature: float) -> EnsemblePrediction:
        """A copy with the variances multiplied by ``temperature**2`` (on top of any T already applied)."""
        t = float(temperature)
        return dataclasses.replace(self, aleatoric_var=self.aleatoric_var * t * t,
                                   epistemic_var=self.epistemic_var * t * t, temperature=self.temperature * t)
