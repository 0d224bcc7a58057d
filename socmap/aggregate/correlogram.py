"""The spatial correlogram of the model's errors, fitted on held-out points with gstools.

Residuals are taken on the model's own scale, log(1 + SOC): ``r = (y - mu) / sd`` for the bundle's validation and
test nodes, with ``mu`` and ``sd`` the calibrated transductive ensemble prediction of each held-out node
(:meth:`socmap.train.Bundle.predict_nodes`, as ``socmap evaluate`` scores them) and ``sd`` its total predictive
standard deviation. The empirical semivariogram of ``r`` (Matheron, distance bins at quantiles of the pair
distances, :data:`BIN_QUANTILES`) is fitted with an exponential model plus a nugget; the correlogram is

    rho(0) = 1,    rho(d) = (1 - nugget_share) * exp(-d / len_scale)    for d > 0   (d in km),

so a pure-nugget fit means independent errors and a zero nugget means errors of nearby cells move together. On a
delta-method scale a correlation is the same in log(1 + SOC) and in g/kg, which is how the zone interval uses it
(:mod:`socmap.aggregate.interval`). Distances are great-circle km for lon/lat points, or km in the map's
projected CRS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from socmap.errors import ModelError

__all__ = ["Correlogram", "distances_km", "fit_correlogram", "heldout_residuals"]

BIN_QUANTILES = (0.0, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
"""Distance-bin edges as quantiles of the pair distances: fine at short range, where the correlation that matters
for a zone lives, up to half the largest-pair quantile (long-range bins hold few independent pairs)."""
MIN_POINTS = 12
"""Fewer held-out points than this cannot support a variogram fit."""


@dataclass
class Correlogram:
    """An exponential correlogram with a nugget (distances in km)."""

    len_scale_km: float
    nugget_share: float
    """Nugget / (nugget + partial sill): the share of the error variance that is independent from cell to cell."""
    n_points: int = 0
    n_pairs: int = 0
    scale: str = "log(1+SOC), standardised by the calibrated total sd"
    model: str = "exponential + nugget"
    bins_km: list[float] | None = None
    gamma: list[float] | None = None

    def rho(self, d_km: np.ndarray) -> np.ndarray:
        """Correlation of the errors of two cells ``d_km`` apart (1 at distance 0)."""
        d = np.asarray(d_km, np.float64)
        r = (1.0 - self.nugget_share) * np.exp(-d / max(self.len_scale_km, 1e-12))
        return np.where(d <= 0.0, 1.0, r)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def distances_km(a: np.ndarray, b: np.ndarray, geographic: bool) -> np.ndarray:
    """Element-wise distance, km, between (N, 2) point arrays: great circle for (lon, lat) degrees (haversine on
    the authalic sphere), else Euclidean on coordinates already in km."""
    from socmap.aggregate.zonal import EARTH_RADIUS_KM

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not geographic:
        return np.asarray(np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1]))
    lon1, lat1, lon2, lat2 = (np.radians(v) for v in (a[..., 0], a[..., 1], b[..., 0], b[..., 1]))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def heldout_residuals(bundle: Any) -> tuple[np.ndarray, np.ndarray]:
    """(lonlat (n, 2) degrees, standardised residuals (n,)) of the bundle's validation and test nodes."""
    from socmap.train.inputs import SPLIT_CODES

    if bundle.node_split is None or bundle.node_label_log is None:
        raise ModelError(f"model bundle {bundle.path} holds no node labels or splits; train it again")
    held = np.isin(bundle.node_split, [SPLIT_CODES["val"], SPLIT_CODES["test"]])
    pred = bundle.predict_nodes(calibrated=True)
    y = np.asarray(bundle.node_label_log, np.float64)
    sd = np.sqrt(np.asarray(pred.total_var, np.float64))
    ok = held & np.isfinite(y) & np.isfinite(pred.mean) & (sd > 0)
    r = (y[ok] - np.asarray(pred.mean)[ok]) / sd[ok]
    return np.asarray(bundle.train_lonlat, np.float64)[ok], r


def fit_correlogram(xy: np.ndarray, r: np.ndarray, *, geographic: bool) -> Correlogram:
    """Fit :class:`Correlogram` to standardised residuals ``r`` at ``xy`` ((lon, lat) degrees when
    ``geographic``, else km). A one-line :class:`ModelError` with fewer than :data:`MIN_POINTS` points."""
    import gstools as gs

    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    r = np.asarray(r, np.float64)
    n = len(r)
    if n < MIN_POINTS:
        raise ModelError(f"only {n} held-out points to fit the error correlogram (at least {MIN_POINTS} needed); "
                         "train with larger validation/test splits")
    iu = np.triu_indices(n, 1)
    d = distances_km(xy[iu[0]], xy[iu[1]], geographic)
    edges = np.unique(np.quantile(d, BIN_QUANTILES))
    edges[0] = 0.0
    pos = (xy[:, 1], xy[:, 0]) if geographic else (xy[:, 0], xy[:, 1])
    centre, gamma, counts = gs.vario_estimate(pos, r, edges, latlon=geographic,
                                              geo_scale=gs.KM_SCALE if geographic else 1.0, return_counts=True)
    ok = counts > 0
    centre, gamma, counts = centre[ok], gamma[ok], counts[ok]
    model = gs.Exponential(dim=2)
    dpos = d[d > 0]
    model.len_scale_bounds = [max(float(dpos.min()) if dpos.size else 1e-3, 1e-6) / 3, float(d.max()) * 3]
    model.var_bounds = [0.0, 10.0 * max(float(np.var(r)), 1e-6)]
    model.nugget_bounds = [0.0, 10.0 * max(float(np.var(r)), 1e-6)]
    model.fit_variogram(centre, gamma, nugget=True, weights=counts)
    total = float(model.var + model.nugget)
    share = float(model.nugget) / total if total > 0 else 1.0
    return Correlogram(len_scale_km=float(model.len_scale), nugget_share=float(np.clip(share, 0.0, 1.0)),
                       n_points=n, n_pairs=len(d), bins_km=[round(float(c), 4) for c in centre],
                       gamma=[round(float(g), 4) for g in gamma])
