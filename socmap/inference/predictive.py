"""The ensemble's predictive: eq. (6) over the members and the prediction record every consumer reads.

Everything here is in the target's natural units, :math:`\\log(1 + \\mathrm{SOC})` (not standardised); the g/kg
views (:meth:`EnsemblePrediction.soc_gkg`, :meth:`~EnsemblePrediction.quantile_gkg`,
:meth:`~EnsemblePrediction.var_gkg`) back-transform at the end. Calibration
(:class:`socmap.inference.calibration.Calibration`) turns the raw record into the calibrated one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from socmap.metrics import std_quantile

__all__ = ["EnsemblePrediction", "combine_members"]


def combine_members(member_mean: np.ndarray, member_var: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    extra_var: np.ndarray | None = None
    """(N,) variance added to ``epistemic_var`` after calibration (:meth:`add_epistemic`, the distance-aware
    term), log(1+SOC)^2; None: none. It widens every member's predictive alike."""
    mean_var_cap: float | None = None
    """Cap, log(1+SOC)^2, on the variance that lifts the expectation above the median (:meth:`mean_gkg`), fitted
    on the validation sites (:func:`socmap.inference.mean_cap.fit_mean_var_cap`); None: no cap, the exact
    log-normal mixture mean."""
    tail_dof: float | None = None
    """Degrees of freedom of the predictive's shape on log(1+SOC) (:func:`socmap.inference.tails.fit_tail_dof`):
    quantiles are Student t's scaled to :attr:`total_var`; None: Gaussian (the paper's)."""

    @classmethod
    def from_members(cls, member_mean: np.ndarray, member_var: np.ndarray, temperature: float = 1.0
                     ) -> EnsemblePrediction:
        """Aggregate by eq. (6) and scale both variances by ``temperature**2``."""
        mean, alea, epi = combine_members(member_mean, member_var)
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
        """Point prediction in g/kg: expm1(mean), the median of the log-normal predictive (the map's
        ``soc_median``; the point metrics of ``train`` and ``evaluate`` score this one)."""
        return np.expm1(self.mean)

    def member_centres(self) -> np.ndarray:
        r"""(M, N) each member's calibrated centre in log(1+SOC): :math:`c_m = \mu + T(\mu_m - \mu)`.

        Temperature scaling multiplies the epistemic variance (the members' spread about the ensemble mean
        :math:`\mu`) by :math:`T^2`, so the calibrated members sit T times as far from :math:`\mu` as the raw
        ones; their spread (ddof=1) is :attr:`epistemic_var`.
        """
        mm = np.asarray(self.member_mean, np.float64)
        return self.mean[None, :] + self.temperature * (mm - self.mean[None, :])

    def member_means_gkg(self) -> np.ndarray:
        r"""(M, N) each member's calibrated expectation in g/kg, :math:`\exp(c_m + s_m^2 / 2) - 1`.

        Member m's calibrated predictive of :math:`\log(1 + \mathrm{SOC})` is :math:`N(c_m, s_m^2)`, with
        :math:`c_m` from :meth:`member_centres` and :math:`s_m^2 = T^2 \sigma_m^2` its own (aleatoric) variance
        scaled like :attr:`aleatoric_var` (log(1+SOC) units squared); SOC + 1 is then log-normal with mean
        :math:`\exp(c_m + s_m^2 / 2)` g/kg.
        """
        s2 = self.temperature ** 2 * np.asarray(self.member_var, np.float64)
        if self.extra_var is not None:  # the distance-aware term widens each member alike
            s2 = s2 + self.extra_var[None, :]
        c = self.member_centres()
        if self.mean_var_cap is not None:
            # shrink the mixture about mu so its log-scale variance is at most the cap: each member's spread by
            # sqrt(lam) and its variance by lam; the exact mixture wherever the variance is below the cap
            v = np.mean((c - self.mean[None, :]) ** 2, axis=0) + np.mean(s2, axis=0)
            lam = np.minimum(1.0, self.mean_var_cap / np.maximum(v, 1e-300))
            c = self.mean[None, :] + np.sqrt(lam)[None, :] * (c - self.mean[None, :])
            s2 = s2 * lam[None, :]
        return np.asarray(np.expm1(c + 0.5 * s2))

    def mean_gkg(self) -> np.ndarray:
        r"""The expectation of the calibrated predictive in g/kg (the map's ``soc_mean``; what a zone mean or a
        carbon stock must add up).

        The calibrated ensemble is the equal-weight mixture of the members' log-normals (:meth:`member_means_gkg`),
        so its mean is the members' mean of their means,

        .. math:: E[\mathrm{SOC}] = \frac{1}{M} \sum_m \left[\exp\left(c_m + \tfrac{1}{2} T^2 \sigma_m^2
                  \right) - 1\right] \quad \text{g/kg}.

        It lies above the median :meth:`soc_gkg` = :math:`\exp(\mu) - 1` by Jensen's inequality: by about
        :math:`(1 + \mathrm{median}) (\exp(v / 2) - 1)` with :math:`v` the mixture's log-scale variance, which is
        the aleatoric part plus the members' spread about :math:`\mu` taken with ddof=0 (so
        :math:`(M-1)/M` of :attr:`epistemic_var`). One member (M = 1): :math:`\exp(\mu + s^2/2) - 1`.

        With :attr:`mean_var_cap` (``socmap train`` fits it on the validation sites), where :math:`v` exceeds the
        cap the mixture is shrunk about :math:`\mu` to variance cap before its mean is taken. Why: far from the
        survey the calibrated log-scale variance reaches 1-3, and :math:`\exp(v/2)` lifts the mean 2-4x above
        the median, while the held-out sites there are fitted best by a mean much closer to the median
        (on Africa's 50 km blocks, 5-fold, the uncapped expectation's RMSE was 14.14 g/kg, the median's 13.15 and
        XGBoost's 13.09; the capped expectation's 13.01). Below the cap, which covers nearly all sites near the
        survey, nothing changes.
        """
        return np.asarray(self.member_means_gkg().mean(axis=0))

    def with_mean_cap(self, cap: float | None) -> EnsemblePrediction:
        """A copy whose :meth:`mean_gkg` caps the variance that lifts the mean (None: no cap)."""
        if cap is not None and not cap > 0:
            raise ValueError(f"mean_var_cap must be > 0 or None, got {cap}")
        return dataclasses.replace(self, mean_var_cap=None if cap is None else float(cap))

    def quantile_gkg(self, q: float | np.ndarray) -> np.ndarray:
        """Quantile ``q`` of the predictive in g/kg: expm1(mean + k_q sqrt(total_var)), k_q = Phi^-1(q) or, with
        :attr:`tail_dof`, the unit-variance Student t's quantile (:func:`socmap.metrics.std_quantile`)."""
        return np.expm1(self.mean + std_quantile(q, self.tail_dof) * np.sqrt(self.total_var))

    def with_tail_dof(self, dof: float | None) -> EnsemblePrediction:
        """A copy whose quantiles have Student t tails with ``dof`` > 2 degrees of freedom (None: Gaussian)."""
        if dof is not None and not dof > 2:
            raise ValueError(f"tail_dof must be > 2 or None, got {dof}")
        return dataclasses.replace(self, tail_dof=None if dof is None else float(dof))

    def var_gkg(self, kind: str = "total") -> np.ndarray:
        r"""Variance of SOC in (g/kg)^2 under the calibrated predictive, ``kind`` aleatoric | epistemic | total.

        The predictive of :math:`\log(1 + \mathrm{SOC})` is :math:`N(\mu, v)`, :math:`v` = :attr:`total_var`
        (the Gaussian of that variance, as for the NLL and the expectation, also where :attr:`tail_dof` gives
        the quantiles t tails), so SOC + 1 is log-normal with the exact variance

        .. math:: \mathrm{Var}[\mathrm{SOC}] = e^{2\mu} \, e^{v} (e^{v} - 1) \quad (\mathrm{g/kg})^2,

        which is shared between the aleatoric and epistemic parts in proportion to their log-scale variances
        (so the two add up to the total). Why not the delta method, :math:`e^{2\mu} v`: it is the first-order
        term only, low by :math:`e^{v}(e^{v} - 1) / v` = 1.16x at v = 0.1, 1.7x at 0.35 and 4.7x at 1, and so
        most where the model knows least; on the Africa bundle's validation sites, in quartiles of v, the
        squared error of the expectation averaged 19, 64 and 95 (g/kg)^2 in the lower three against 17, 58
        and 86 exact and 14, 46 and 62 by the delta method. Not capped by :attr:`mean_var_cap`.
        """
        var = {"aleatoric": self.aleatoric_var, "epistemic": self.epistemic_var, "total": self.total_var}
        if kind not in var:
            raise ValueError(f"kind must be aleatoric, epistemic or total, got {kind!r}")
        v = self.total_var
        total = np.exp(2.0 * self.mean + v) * np.expm1(v)
        if kind == "total":
            return np.asarray(total)
        share = np.divide(var[kind], v, out=np.zeros_like(v), where=v > 0)
        return np.asarray(total * share)

    def subset(self, members: list[int]) -> EnsemblePrediction:
        """The prediction of a sub-ensemble (post-hoc ensemble size), with the same temperature, mean cap and
        tail shape."""
        idx = list(members)
        if not idx:
            raise ValueError("subset needs at least one member")
        sub = EnsemblePrediction.from_members(self.member_mean[idx], self.member_var[idx], self.temperature)
        return sub.with_mean_cap(self.mean_var_cap).with_tail_dof(self.tail_dof)

    def add_epistemic(self, extra_var: np.ndarray | None, *, in_mean: bool = True) -> EnsemblePrediction:
        """A copy with ``extra_var`` (N,) log(1+SOC)^2 added to the epistemic variance: the distance-aware term
        of :mod:`socmap.inference.distance`, added after calibration (T does not scale it). None: unchanged.

        ``in_mean``: it also widens every member's log-normal, so the expectation (:meth:`mean_gkg`) rises with
        it; False: it widens the intervals and the sd only (the distance growth of T, whose full log-normal lift
        far from the survey the held-out blocks do not support)."""
        if extra_var is None:
            return self
        extra = np.asarray(extra_var, np.float64)
        if not in_mean:
            return dataclasses.replace(self, epistemic_var=self.epistemic_var + extra)
        total = extra if self.extra_var is None else self.extra_var + extra
        return dataclasses.replace(self, epistemic_var=self.epistemic_var + extra, extra_var=total)

    def calibrate(self, temperature: float) -> EnsemblePrediction:
        """A copy with the variances multiplied by ``temperature**2`` (on top of any T already applied)."""
        t = float(temperature)
        return dataclasses.replace(self, aleatoric_var=self.aleatoric_var * t * t,
                                   epistemic_var=self.epistemic_var * t * t, temperature=self.temperature * t)
