"""Everything ``socmap train`` fits once the members are trained, in one place.

Four pieces, each fitted on held-out sites only (the test split is never seen):

1. the temperature T of eq. (7), with a variance that grows away from the data. With out-of-fold residuals of the
   spatial block cross-validation inside the training part (``train.variance_blocks_km``), the growth is
   :class:`~socmap.inference.growth.VarianceGrowth`, ``(1 + d / 1 km)^p (1 + DI / DI_thr)^q`` with the distance d to
   the nearest training site and the dissimilarity index DI, fitted on those residuals (whose distances span the
   map's), and T is fitted on the validation sites with it in place; the growth is kept only where the validation
   sites do not reject it. Without them (or where they are rejected), T and a power of ``(1 + d / 1 km)`` are
   fitted on the validation sites (:func:`~socmap.inference.temperature.fit_distance_temperature`; power 0 is the
   paper's scalar T);
2. without the block residuals, the distance-aware epistemic term of the training labels' semivariogram
   (:class:`~socmap.inference.distance.DistanceVariance`), added after T;
3. the cap on the variance inside the expectation (:func:`~socmap.inference.mean_cap.fit_mean_var_cap`);
4. the predictive's tail shape (:func:`~socmap.inference.tails.fit_tail_dof`): Student t degrees of freedom.

Each needs only the members' node outputs, the labels, the split and the stored block residuals, so a bundle can
be re-calibrated without retraining (:func:`socmap.inference.recalibrate.run`, ``socmap calibrate``): members take
tens of minutes to hours to train, the fit below seconds, and an improved calibration reaches an existing bundle
(and its maps) without changing a weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from socmap.errors import DataError
from socmap.inference.distance import DistanceVariance, nearest_site_km
from socmap.inference.growth import BlockResiduals, VarianceGrowth
from socmap.inference.mean_cap import fit_mean_var_cap
from socmap.inference.predictive import EnsemblePrediction
from socmap.inference.tails import fit_tail_dof
from socmap.inference.temperature import distance_growth, fit_distance_temperature
from socmap.metrics import gaussian_nll, interval_coverage, regression_metrics

__all__ = ["Calibration", "fit_block_growth", "fit_calibration", "validation_metrics"]


@dataclass(frozen=True)
class Calibration:
    """The fitted calibration of one ensemble: ``temperature`` (T, eq. 7), ``distance_power`` (the calibrated
    variance x ``(1 + d / 1 km) ** distance_power``, 0: none), ``distance_var`` (log(1+SOC)^2 added with the
    distance to the nearest training site; None: none), ``mean_var_cap`` (log(1+SOC)^2 or None), ``tail_dof``
    (Student t degrees of freedom or None for a Gaussian) and ``growth`` (the variance growth with distance and DI
    fitted on block residuals; when set it replaces ``distance_power``)."""

    temperature: float
    distance_var: DistanceVariance | None = None
    mean_var_cap: float | None = None
    tail_dof: float | None = None
    distance_power: float = 0.0
    growth: VarianceGrowth | None = None

    @property
    def uses_di(self) -> bool:
        """Whether :meth:`apply` reads the points' dissimilarity index."""
        return self.growth is not None and self.growth.uses_di

    def growth_text(self) -> str:
        """One phrase for reports and model cards: how the variance grows and what it was fitted on."""
        g = self.growth
        if g is None:
            return f"variance x (1 + d / 1 km)^{self.distance_power:.3f} (fitted on the validation sites)"
        return (f"variance x (1 + d / 1 km)^{g.distance_power:.3f} x (1 + DI / {g.di_scale:.3g})^{g.di_power:.3f} "
                f"(fitted on {g.n} out-of-fold block residuals)")

    def multiplier(self, dist_km: np.ndarray, di: np.ndarray | None = None) -> np.ndarray:
        """The variance growth (>= 1) at distance ``dist_km`` (km) and DI ``di``: :attr:`growth` where fitted,
        else ``(1 + d / 1 km) ** distance_power``."""
        if self.growth is not None:
            return self.growth(dist_km, di)
        return distance_growth(dist_km, self.distance_power)

    def apply(self, raw: EnsemblePrediction, dist_km: np.ndarray | None = None,
              di: np.ndarray | None = None) -> EnsemblePrediction:
        """Calibrate the raw ensemble ``raw`` of points ``dist_km`` (km) from their nearest training site and of
        dissimilarity index ``di``: T; the distance term as extra epistemic variance that widens every member's
        log-normal alike (the expectation includes it); the growth as extra epistemic variance of the intervals and
        sd only (not in the expectation: its full log-normal lift far from the survey overshoots on held-out
        blocks); then the mean cap and the tail shape. ``dist_km`` None: T, cap and tails only (no distance is
        known); ``di`` None: the growth's DI factor is left out."""
        cal = raw.calibrate(self.temperature)
        if dist_km is not None:
            d = np.asarray(dist_km, np.float64)
            growth = (self.multiplier(d, di) - 1.0) * cal.total_var
            if self.distance_var is not None:
                cal = cal.add_epistemic(self.distance_var(d))
            cal = cal.add_epistemic(growth, in_mean=False)
        return cal.with_mean_cap(self.mean_var_cap).with_tail_dof(self.tail_dof)

    def to_info(self) -> dict[str, Any]:
        """The bundle.json (and model card) keys this calibration is stored under."""
        return {"temperature": float(self.temperature), "distance_power": float(self.distance_power),
                "distance_var": None if self.distance_var is None else self.distance_var.to_dict(),
                "mean_var_cap": self.mean_var_cap, "tail_dof": self.tail_dof,
                "growth": None if self.growth is None else self.growth.to_dict()}

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Calibration:
        """Read :meth:`to_info`'s keys; a key a bundle predates is the piece switched off (T alone: eq. 7)."""
        dv, cap, dof = info.get("distance_var"), info.get("mean_var_cap"), info.get("tail_dof")
        growth = info.get("growth")
        return cls(float(info["temperature"]), None if dv is None else DistanceVariance.from_dict(dv),
                   None if cap is None else float(cap), None if dof is None else float(dof),
                   float(info.get("distance_power") or 0.0),
                   None if growth is None else VarianceGrowth.from_dict(growth))


_CHI2_2_95 = 5.991464547107979
"""95 % quantile of chi^2 with 2 degrees of freedom (scipy.stats.chi2.ppf(0.95, 2))."""


def _gaussian_nll_sum(r2: np.ndarray, var: np.ndarray) -> float:
    """Summed Gaussian NLL (constant dropped) of squared residuals ``r2`` under variances ``var``."""
    return float(0.5 * np.sum(np.log(var) + r2 / var))


def fit_block_growth(raw: EnsemblePrediction, y_log: np.ndarray, dist_km: np.ndarray, di: np.ndarray | None,
                     residuals: BlockResiduals, di_scale: float) -> tuple[float, VarianceGrowth] | None:
    """The growth fitted on the block residuals and T fitted with it on the held-out sites of ``raw`` (log(1+SOC)
    targets ``y_log`` at ``dist_km`` km and DI ``di``); None where those sites reject it: their NLL with the growth
    is worse than with a scalar T by more than a likelihood-ratio test at 5 % allows (2 degrees of freedom, the two
    powers fitted elsewhere)."""
    growth = residuals.fit_growth(di_scale)
    mean, var, y = (np.asarray(a, np.float64) for a in (raw.mean, raw.total_var, y_log))
    g = growth(dist_km, di)
    ok = np.isfinite(mean) & np.isfinite(var) & (var > 0) & np.isfinite(y) & np.isfinite(g)
    if not ok.any():
        return None
    r2, v, g = (y[ok] - mean[ok]) ** 2, var[ok], g[ok]
    t2_growth, t2_scalar = float(np.mean(r2 / (v * g))), float(np.mean(r2 / v))
    if t2_growth <= 0 or t2_scalar <= 0:
        return None
    worse = _gaussian_nll_sum(r2, t2_growth * v * g) - _gaussian_nll_sum(r2, t2_scalar * v)
    if 2.0 * worse > _CHI2_2_95:
        return None
    return float(np.sqrt(t2_growth)), growth


def fit_calibration(member_mean: np.ndarray, member_var: np.ndarray, soc_gkg: np.ndarray, lonlat: np.ndarray,
                    train_mask: np.ndarray, val_mask: np.ndarray, *, seed: int = 0,
                    residuals: BlockResiduals | None = None, di: np.ndarray | None = None,
                    di_scale: float = float("nan")) -> tuple[Calibration, EnsemblePrediction]:
    """Fit the four pieces (module docstring) on the held-out sites, in order: T and the growth on the raw
    ensemble, the distance term after T (without block residuals), then the mean cap and the tail shape on the
    result.

    Args:
        member_mean, member_var: (M, N) each member's log(1+SOC) mean and variance at every node.
        soc_gkg: (N,) observed SOC, g/kg. lonlat: (N, 2) degrees.
        train_mask, val_mask: (N,) the training and validation nodes.
        seed: seed of the variogram's site subsample (train uses member 0's seed).
        residuals: out-of-fold block residuals (None: the growth is fitted on the validation sites).
        di: (N,) each node's dissimilarity index to the training sites (None: unknown).
        di_scale: the DI of one growth unit (the AoA threshold).

    Returns the calibration and the calibrated prediction of the validation nodes (for the model card's metrics).
    """
    val = np.asarray(val_mask, bool)
    train = np.asarray(train_mask, bool)
    if not val.any():
        raise DataError("calibration needs validation sites: the split has none")
    y_log = np.log1p(np.asarray(soc_gkg, np.float64))
    raw = EnsemblePrediction.from_members(np.asarray(member_mean)[:, val], np.asarray(member_var)[:, val])
    train_lonlat = np.asarray(lonlat, np.float64)[train]
    val_dist = nearest_site_km(np.asarray(lonlat, np.float64)[val], train_lonlat)
    val_di = None if di is None else np.asarray(di, np.float64)[val]
    block = None if residuals is None or not len(residuals) else fit_block_growth(
        raw, y_log[val], val_dist, val_di, residuals, di_scale)
    if block is not None:
        temperature, growth = block
        base = Calibration(temperature, None, growth=growth)
    else:
        temperature, power = fit_distance_temperature(raw.mean, raw.total_var, y_log[val], val_dist)
        base = Calibration(temperature, DistanceVariance.fit(train_lonlat, y_log[train], val_dist, seed=seed),
                           distance_power=power)
    cal = base.apply(raw, val_dist, val_di)
    cap = fit_mean_var_cap(cal, np.asarray(soc_gkg, np.float64)[val])
    dof = fit_tail_dof(cal.mean, cal.total_var, y_log[val])
    final = Calibration(base.temperature, base.distance_var, cap, dof, base.distance_power, base.growth)
    return final, cal.with_mean_cap(cap).with_tail_dof(dof)


def validation_metrics(cal: EnsemblePrediction, soc_gkg: np.ndarray) -> dict[str, float]:
    """The model card's validation figures of the calibrated prediction ``cal`` of the sites ``soc_gkg`` (g/kg):
    RMSE, MAE, R2, MAPE of the expectation (as evaluate scores it), the Gaussian NLL on log(1+SOC) and the
    coverage of the predictive's 95 % interval (``picp95``)."""
    y = np.asarray(soc_gkg, np.float64)
    metrics = regression_metrics(y, cal.mean_gkg())
    metrics["nll"] = float(gaussian_nll(np.log1p(y), cal.mean, cal.total_var))
    metrics["picp95"] = float(interval_coverage(y, cal.quantile_gkg(0.025), cal.quantile_gkg(0.975)))
    return metrics
