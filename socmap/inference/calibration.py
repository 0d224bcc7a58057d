"""Everything ``socmap train`` fits on the validation sites once the members are trained, in one place.

Four pieces, each fitted on the validation split only (the test split is never seen):

1. the temperature T of eq. (7), with a variance that may grow as ``(1 + d / 1 km) ** distance_power`` with the
   distance d to the nearest training site (:func:`~socmap.inference.temperature.fit_distance_temperature`; power 0
   is the paper's scalar T);
2. the distance-aware epistemic term (:class:`~socmap.inference.distance.DistanceVariance`, from the training
   labels' semivariogram), added after T;
3. the cap on the variance inside the expectation (:func:`~socmap.inference.mean_cap.fit_mean_var_cap`);
4. the predictive's tail shape (:func:`~socmap.inference.tails.fit_tail_dof`): Student t degrees of freedom.

Each needs only the members' node outputs, the labels and the split, so a bundle can be re-calibrated without
retraining (:func:`socmap.inference.recalibrate.run`, ``socmap calibrate``): members take tens of minutes to hours
to train, the fit below seconds, and an improved calibration reaches an existing bundle (and its maps) without
changing a weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from socmap.errors import DataError
from socmap.inference.distance import DistanceVariance, nearest_site_km
from socmap.inference.mean_cap import fit_mean_var_cap
from socmap.inference.predictive import EnsemblePrediction
from socmap.inference.tails import fit_tail_dof
from socmap.inference.temperature import distance_growth, fit_distance_temperature
from socmap.metrics import gaussian_nll, interval_coverage, regression_metrics

__all__ = ["Calibration", "fit_calibration", "validation_metrics"]


@dataclass(frozen=True)
class Calibration:
    """The fitted calibration of one ensemble: ``temperature`` (T, eq. 7), ``distance_power`` (the calibrated
    variance x ``(1 + d / 1 km) ** distance_power``, 0: none), ``distance_var`` (log(1+SOC)^2 added with the
    distance to the nearest training site; None: none), ``mean_var_cap`` (log(1+SOC)^2 or None) and ``tail_dof``
    (Student t degrees of freedom or None for a Gaussian)."""

    temperature: float
    distance_var: DistanceVariance | None = None
    mean_var_cap: float | None = None
    tail_dof: float | None = None
    distance_power: float = 0.0

    def apply(self, raw: EnsemblePrediction, dist_km: np.ndarray | None = None) -> EnsemblePrediction:
        """Calibrate the raw ensemble ``raw`` of points ``dist_km`` (km) from their nearest training site: T; the
        distance term as extra epistemic variance that widens every member's log-normal alike (the expectation
        includes it); the distance growth of T as extra epistemic variance of the intervals and sd only (not in
        the expectation: its full log-normal lift far from the survey overshoots on held-out blocks); then the mean
        cap and the tail shape. ``dist_km`` None: T, cap and tails only (no distance is known)."""
        cal = raw.calibrate(self.temperature)
        if dist_km is not None:
            d = np.asarray(dist_km, np.float64)
            growth = (distance_growth(d, self.distance_power) - 1.0) * cal.total_var
            if self.distance_var is not None:
                cal = cal.add_epistemic(self.distance_var(d))
            cal = cal.add_epistemic(growth, in_mean=False)
        return cal.with_mean_cap(self.mean_var_cap).with_tail_dof(self.tail_dof)

    def to_info(self) -> dict[str, Any]:
        """The bundle.json (and model card) keys this calibration is stored under."""
        return {"temperature": float(self.temperature), "distance_power": float(self.distance_power),
                "distance_var": None if self.distance_var is None else self.distance_var.to_dict(),
                "mean_var_cap": self.mean_var_cap, "tail_dof": self.tail_dof}

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Calibration:
        """Read :meth:`to_info`'s keys; a key a bundle predates is the piece switched off (T alone: eq. 7)."""
        dv, cap, dof = info.get("distance_var"), info.get("mean_var_cap"), info.get("tail_dof")
        return cls(float(info["temperature"]), None if dv is None else DistanceVariance.from_dict(dv),
                   None if cap is None else float(cap), None if dof is None else float(dof),
                   float(info.get("distance_power") or 0.0))


def fit_calibration(member_mean: np.ndarray, member_var: np.ndarray, soc_gkg: np.ndarray, lonlat: np.ndarray,
                    train_mask: np.ndarray, val_mask: np.ndarray, *, seed: int = 0
                    ) -> tuple[Calibration, EnsemblePrediction]:
    """Fit the four pieces (module docstring) on the validation sites, in order: T and its distance power on the
    raw ensemble, the distance term after T, then the mean cap and the tail shape on the result.

    Args:
        member_mean, member_var: (M, N) each member's log(1+SOC) mean and variance at every node.
        soc_gkg: (N,) observed SOC, g/kg. lonlat: (N, 2) degrees.
        train_mask, val_mask: (N,) the training and validation nodes.
        seed: seed of the variogram's site subsample (train uses member 0's seed).

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
    temperature, power = fit_distance_temperature(raw.mean, raw.total_var, y_log[val], val_dist)
    dist_var = DistanceVariance.fit(train_lonlat, y_log[train], val_dist, seed=seed)
    cal = Calibration(temperature, dist_var, distance_power=power).apply(raw, val_dist)
    cap = fit_mean_var_cap(cal, np.asarray(soc_gkg, np.float64)[val])
    dof = fit_tail_dof(cal.mean, cal.total_var, y_log[val])
    return Calibration(temperature, dist_var, cap, dof, power), cal.with_mean_cap(cap).with_tail_dof(dof)


def validation_metrics(cal: EnsemblePrediction, soc_gkg: np.ndarray) -> dict[str, float]:
    """The model card's validation figures of the calibrated prediction ``cal`` of the sites ``soc_gkg`` (g/kg):
    RMSE, MAE, R2, MAPE of the expectation (as evaluate scores it), the Gaussian NLL on log(1+SOC) and the
    coverage of the predictive's 95 % interval (``picp95``)."""
    y = np.asarray(soc_gkg, np.float64)
    metrics = regression_metrics(y, cal.mean_gkg())
    metrics["nll"] = float(gaussian_nll(np.log1p(y), cal.mean, cal.total_var))
    metrics["picp95"] = float(interval_coverage(y, cal.quantile_gkg(0.025), cal.quantile_gkg(0.975)))
    return metrics
