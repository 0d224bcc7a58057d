"""How the predictive variance grows away from the data, fitted where that growth happens.

A map cell can lie hundreds of kilometres from the nearest training site and in a climate no site samples; the
validation sites of a random split lie a few kilometres from one and inside the sampled climates. A growth of the
variance fitted on them is an extrapolation to most of a map. This module fits the growth on out-of-fold residuals
of spatial block cross-validation inside the training part instead (:mod:`socmap.train.block_residuals`): a fold
model trained without whole blocks of sites predicts them, so its held-out sites lie as far from the remaining
sites, and as far outside their predictor space, as the blocks are large.

The growth multiplies the calibrated variance:

.. math::
    g(d, \\mathrm{DI}) = (1 + d / 1\\,\\mathrm{km})^{p}\\,(1 + \\mathrm{DI} / \\mathrm{DI}_{thr})^{q}

with :math:`d` the distance (km) to the nearest training site, :math:`\\mathrm{DI}` the dissimilarity index
(:mod:`socmap.inference.applicability`) and :math:`\\mathrm{DI}_{thr}` the area of applicability's threshold, so
the second factor is :math:`2^q` at the edge of the AoA. The powers :math:`p, q \\ge 0` maximise the Gaussian
likelihood of the out-of-fold log(1+SOC) residuals under :math:`N(0, s\\,\\sigma^2 g)` (``s`` the level, profiled
out in closed form); each power is kept only where a likelihood-ratio test at 5 % supports it. The level is not
kept: the temperature T, fitted on the validation sites with the growth in place, sets it for the ensemble
(:func:`socmap.inference.calibration.fit_calibration`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from socmap.inference.temperature import DISTANCE_KM

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DISTANCE_POWER_MAX_GROWTH", "DI_POWER_MAX", "BlockResiduals", "VarianceGrowth"]

DISTANCE_POWER_MAX_GROWTH = 1.0
"""Largest distance power :meth:`VarianceGrowth.fit` may fit (the sd then grows as sqrt(1 + d / 1 km))."""
DI_POWER_MAX = 4.0
"""Largest DI power :meth:`VarianceGrowth.fit` may fit (the variance x 16 at the AoA's threshold)."""
MIN_RESIDUALS = 30
"""Fewer out-of-fold residuals than this fit no growth (powers 0)."""
_CHI2_1_95 = 3.841458820694124
"""95 % quantile of chi^2 with 1 degree of freedom (scipy.stats.chi2.ppf(0.95, 1))."""


@dataclass(frozen=True)
class VarianceGrowth:
    """The variance multiplier :math:`g(d, \\mathrm{DI})` of the module docstring: ``distance_power`` p,
    ``di_power`` q, ``di_scale`` the DI that counts as one unit (the AoA threshold), ``n`` the out-of-fold
    residuals it was fitted on."""

    distance_power: float
    di_power: float
    di_scale: float
    n: int = 0

    def __call__(self, dist_km: np.ndarray, di: np.ndarray | None = None) -> np.ndarray:
        """Variance multiplier (>= 1) at distance ``dist_km`` (km) from the nearest training site and dissimilarity
        index ``di``; where the DI is None or NaN (no predictor space) its factor is 1."""
        d = np.maximum(np.asarray(dist_km, np.float64), 0.0)
        g = np.power(1.0 + d / DISTANCE_KM, self.distance_power)
        if di is not None and self.di_power > 0:
            x = np.maximum(np.asarray(di, np.float64), 0.0) / self.di_scale
            g = g * np.where(np.isfinite(x), np.power(1.0 + np.where(np.isfinite(x), x, 0.0), self.di_power), 1.0)
        return g

    @property
    def uses_di(self) -> bool:
        """Whether the multiplier depends on the DI (callers may skip computing it otherwise)."""
        return self.di_power > 0

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> VarianceGrowth:
        return cls(float(d["distance_power"]), float(d["di_power"]), float(d["di_scale"]), int(d.get("n", 0)))

    @classmethod
    def fit(cls, resid: np.ndarray, var: np.ndarray, dist_km: np.ndarray, di: np.ndarray | None,
            di_scale: float) -> VarianceGrowth:
        """The powers maximising the Gaussian likelihood of the residuals ``resid`` (log(1+SOC)) with stated
        variances ``var`` at distance ``dist_km`` and DI ``di`` (None or all NaN: the DI power stays 0).

        Rows with a non-finite value (or a NaN DI while the DI enters) are left out. Each power is tested against
        0 with the other one free (likelihood ratio, chi^2 with 1 degree of freedom, 5 %): a growth the residuals
        do not show is not fitted.
        """
        from scipy import optimize

        r, v, d = (np.asarray(a, np.float64).reshape(-1) for a in (resid, var, dist_km))
        x = np.full(len(r), np.nan) if di is None else np.asarray(di, np.float64).reshape(-1) / float(di_scale)
        ok = np.isfinite(r) & np.isfinite(v) & (v > 0) & np.isfinite(d)
        use_di = bool(np.isfinite(x[ok]).sum() >= MIN_RESIDUALS) and np.isfinite(di_scale) and di_scale > 0
        if use_di:
            ok &= np.isfinite(x)
        n = int(ok.sum())
        if n < MIN_RESIDUALS:
            return cls(0.0, 0.0, float(di_scale) if np.isfinite(di_scale) and di_scale > 0 else 1.0, n)
        r2, v = r[ok] ** 2, v[ok]
        log_d = np.log1p(np.maximum(d[ok], 0.0) / DISTANCE_KM)
        log_x = np.log1p(np.maximum(x[ok], 0.0)) if use_di else np.zeros(n)

        def nll(params: np.ndarray) -> float:
            log_vg = np.log(v) + params[0] * log_d + params[1] * log_x
            s = float(np.mean(r2 * np.exp(-log_vg)))
            return float(0.5 * (np.sum(log_vg) + n * np.log(s) + n))

        bounds = [(0.0, DISTANCE_POWER_MAX_GROWTH), (0.0, DI_POWER_MAX if use_di else 0.0)]

        def best(fix: int | None) -> tuple[np.ndarray, float]:
            b = [(0.0, 0.0) if i == fix else bounds[i] for i in range(2)]
            starts = [np.array([0.1, 0.1]), np.array([0.5, 1.0])]
            fits = [optimize.minimize(nll, np.clip(s0, [lo for lo, _ in b], [hi for _, hi in b]),
                                      method="L-BFGS-B", bounds=b) for s0 in starts]
            top = min(fits, key=lambda f: f.fun)
            return top.x, float(top.fun)

        params, full = best(None)
        only_q, only_p = best(0), best(1)  # the distance power fixed at 0, the DI power fixed at 0
        need_p = 2.0 * (only_q[1] - full) > _CHI2_1_95
        need_q = 2.0 * (only_p[1] - full) > _CHI2_1_95
        if need_p and need_q:
            p, q = float(params[0]), float(params[1])
        elif need_p or need_q:
            p, q = (float(only_p[0][0]), 0.0) if need_p else (0.0, float(only_q[0][1]))
        else:  # neither is needed beside the other (they may stand in for each other): the better one alone
            none = nll(np.zeros(2))
            single = min((only_p, only_q), key=lambda f: f[1])
            p, q = (float(single[0][0]), float(single[0][1])) if 2.0 * (none - single[1]) > _CHI2_1_95 else (0.0, 0.0)
        return cls(round(p, 4), round(q, 4), float(di_scale) if use_di else 1.0, n)


@dataclass(frozen=True)
class BlockResiduals:
    """Out-of-fold residuals of the spatial block cross-validation inside the training part, one row per held-out
    training site and fold (:func:`socmap.train.block_residuals.block_residuals`), all in log(1+SOC) units."""

    resid: np.ndarray
    """(R,) observed minus the fold model's mean."""
    var: np.ndarray
    """(R,) the fold model's stated variance."""
    dist_km: np.ndarray
    """(R,) km to the nearest site the fold model was trained with."""
    di: np.ndarray
    """(R,) dissimilarity index to the fold's training sites (NaN without a predictor space)."""
    block_km: np.ndarray
    """(R,) the block size of the fold that held the site out."""

    COLUMNS: ClassVar[tuple[str, ...]] = ("resid", "var", "dist_km", "di", "block_km")

    def __len__(self) -> int:
        return len(self.resid)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({c: np.asarray(getattr(self, c), np.float64) for c in self.COLUMNS})

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> BlockResiduals:
        return cls(*(df[c].to_numpy(np.float64) for c in cls.COLUMNS))

    @classmethod
    def concat(cls, parts: list[BlockResiduals]) -> BlockResiduals:
        return cls(*(np.concatenate([getattr(p, c) for p in parts]) for c in cls.COLUMNS))

    def fit_growth(self, di_scale: float) -> VarianceGrowth:
        """:meth:`VarianceGrowth.fit` on these residuals."""
        return VarianceGrowth.fit(self.resid, self.var, self.dist_km, self.di, di_scale)
