r"""The interval of a weighted zone sum of SOC, with the spatial correlation of its errors.

A zone figure is a weighted sum ``Z = sum_i a_i S_i`` of the cells' SOC (g/kg): the area-weighted mean
(``a_i = coverage_i * area_i / sum``) or, with the stock factors, a total. Its error has two parts, taken as
independent of each other:

* epistemic (the model could be another member of the ensemble): ``Var_m(sum_i a_i S_im)`` (ddof = 1) over the
  ensemble members' maps ``S_im``, which are coherent in space, so the spread of the members' zone sums carries the
  correlation of this error between cells. Without member maps, the epistemic sd of the cells is taken as fully
  correlated, ``(sum_i a_i s_epi,i)^2`` (an upper bound).
* residual (what no member explains): ``sum_ij a_i a_j sigma_i sigma_j C(d_ij)``, with ``sigma_i`` the cell's
  aleatoric sd (g/kg, its share of the log-normal variance) and ``C = sill * rho`` the fitted covariance of
  standardised held-out residuals (:mod:`socmap.aggregate.correlogram`; ``sill`` = 1 for a calibrated sd). Exact
  over all pairs for zones of up to ``exact_max`` cells; beyond that a Monte Carlo estimate from ``n_pairs`` cell
  pairs drawn with probability ``p_i p_j`` (``p = a sigma / sum``), whose relative error is about
  ``1 / sqrt(n_pairs)`` of the pairs' spread.

The interval is ``Z +- q sqrt(var_epi + var_res)`` on the g/kg scale. ``var_epi`` is estimated from only M members
(M - 1 degrees of freedom), so ``q`` is Student's t quantile at the Welch-Satterthwaite degrees of freedom
``(var_epi + var_res)^2 / (var_epi^2 / (M - 1))`` (the residual part counted as known), which is the Gaussian
quantile when the residual part dominates and widens the interval when a few members carry most of it. The naive
interval treats cells as independent: ``sum_i a_i^2 s_total,i^2``, Gaussian.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtri

from socmap.aggregate.correlogram import Correlogram, distances_km

__all__ = ["EXACT_MAX", "LEVEL", "N_PAIRS", "ZoneSum", "pair_sum", "zone_sum"]

LEVEL = 0.9
"""Default two-sided level of a zone's interval (``socmap aggregate --level``)."""
EXACT_MAX = 3000
"""Cells up to which a zone's residual part is summed over every pair; a larger zone samples :data:`N_PAIRS`."""
N_PAIRS = 200_000
"""Default cell pairs sampled for the residual part of a zone over :data:`EXACT_MAX` cells (``--pairs``)."""


@dataclass
class ZoneSum:
    """A zone figure and its variance parts (units of ``sum a_i S_i``)."""

    value: float
    var_epistemic: float
    var_residual: float
    var_naive: float
    exact: bool
    """True when the residual part was summed over every pair of cells."""
    df_epistemic: float = float("inf")
    """Degrees of freedom of ``var_epistemic``: members - 1 (infinite when it is not estimated from members)."""

    @property
    def df(self) -> float:
        """Welch-Satterthwaite degrees of freedom of the total variance."""
        tot = self.var_epistemic + self.var_residual
        if not np.isfinite(self.df_epistemic) or self.var_epistemic <= 0:
            return float("inf")
        return float(tot**2 / (self.var_epistemic**2 / self.df_epistemic))

    @property
    def sd(self) -> float:
        return float(np.sqrt(self.var_epistemic + self.var_residual))

    @property
    def sd_naive(self) -> float:
        return float(np.sqrt(self.var_naive))

    def interval(self, level: float, naive: bool = False) -> tuple[float, float]:
        """(low, high) at ``level`` (two-sided; Student's t at :attr:`df`, Gaussian for the naive one), low clipped
        at 0 (SOC cannot be negative)."""
        from scipy.stats import t as student_t

        df = self.df
        z = float(ndtri(0.5 + level / 2)) if naive or not np.isfinite(df) else float(student_t.ppf(0.5 + level / 2,
                                                                                                    df))
        s = self.sd_naive if naive else self.sd
        return max(0.0, self.value - z * s), self.value + z * s


def pair_sum(a: np.ndarray, pts: np.ndarray, rho: Any, *, geographic: bool, exact_max: int = EXACT_MAX,
             n_pairs: int = N_PAIRS, rng: np.random.Generator | None = None) -> tuple[float, bool]:
    """``sum_ij a_i a_j rho(d_ij)`` over every ordered pair (i = j included) of points ``pts``
    ((N, 2): (lon, lat) degrees when ``geographic``, else km); returns (value, exact)."""
    a = np.asarray(a, np.float64)
    n = len(a)
    if n == 0:
        return 0.0, True
    pts = np.asarray(pts, np.float64)
    if n <= exact_max:
        total = 0.0
        step = max(1, 2_000_000 // n)
        for s in range(0, n, step):
            blk = slice(s, min(n, s + step))
            d = distances_km(pts[blk, None, :], pts[None, :, :], geographic)
            total += float(a[blk] @ rho(d) @ a)
        return total, True
    rng = rng or np.random.default_rng(0)
    s_abs = float(np.abs(a).sum())
    if s_abs == 0:
        return 0.0, False
    p = np.abs(a) / s_abs
    i = rng.choice(n, size=n_pairs, p=p)
    j = rng.choice(n, size=n_pairs, p=p)
    sign = np.sign(a[i]) * np.sign(a[j])
    return s_abs**2 * float(np.mean(sign * rho(distances_km(pts[i], pts[j], geographic)))), False


def zone_sum(a: np.ndarray, soc: np.ndarray, members: np.ndarray | None, epi_sd: np.ndarray, res_sd: np.ndarray,
             total_sd: np.ndarray, pts: np.ndarray, correlogram: Correlogram, *, geographic: bool,
             exact_max: int = EXACT_MAX, n_pairs: int = N_PAIRS, rng: np.random.Generator | None = None) -> ZoneSum:
    """The figure ``sum a_i soc_i`` and its variance parts (see the module docstring); all per-cell arrays (N,),
    ``members`` (M, N) or None; sd arrays in the units of ``soc``."""
    a = np.asarray(a, np.float64)
    value = float(a @ np.asarray(soc, np.float64))
    df_epi = float("inf")
    if members is not None and len(members) >= 2:
        var_epi = float(np.var(np.asarray(members, np.float64) @ a, ddof=1))
        df_epi = float(len(members) - 1)
    else:
        var_epi = float(a @ np.asarray(epi_sd, np.float64)) ** 2
    res, exact = pair_sum(a * np.asarray(res_sd, np.float64), pts, correlogram.cov, geographic=geographic,
                          exact_max=exact_max, n_pairs=n_pairs, rng=rng)
    var_naive = float((a**2) @ (np.asarray(total_sd, np.float64) ** 2))
    return ZoneSum(value=value, var_epistemic=var_epi, var_residual=max(res, 0.0), var_naive=var_naive, exact=exact,
                   df_epistemic=df_epi)
