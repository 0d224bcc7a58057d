"""Epistemic variance that grows away from the training sites.

A deep ensemble's members agree wherever they were trained alike, and nothing makes them disagree over a desert
with no site in 300 km: the ensemble's epistemic variance stays small exactly where a map knows least. This module
adds an explicit distance-aware term, from the training labels' own spatial structure:

.. math::
    v(d) = \\max\\big(0,\\ \\gamma(d) - \\gamma(d_{ref})\\big), \\qquad
    \\gamma(d) = c_0 + c_1 \\big(1 - e^{-d / r}\\big)

:math:`\\gamma` is the exponential semivariogram of :math:`\\log(1 + \\mathrm{SOC})` over the training sites (fitted
with gstools on great-circle lags), :math:`d` the distance (km) from a point to its nearest training site and
:math:`d_{ref}` the 90th percentile of the validation sites' distances. Within :math:`d_{ref}` the term is zero:
there the temperature T, fitted on the validation sites, already calibrates the ensemble. Beyond it the variance
grows as the semivariogram does: a site that far away predicts the point as badly as the variogram says, and where
no site is within the range the term reaches the sill's share, what the labels alone cannot tell. The term is in
:math:`\\log(1 + \\mathrm{SOC})` units squared and is added to the calibrated epistemic variance (not scaled by T).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from socmap.graph.relations import spatial_knn

__all__ = ["DistanceVariance", "nearest_site_km"]


def nearest_site_km(query_lonlat: np.ndarray, site_lonlat: np.ndarray) -> np.ndarray:
    """(Q,) great-circle distance, km, from each query point to its nearest site (degrees in): the graph's k-NN
    (:func:`socmap.graph.relations.spatial_knn`, whose k-d tree of the sites is kept between map tiles)."""
    q = np.asarray(query_lonlat, np.float64).reshape(-1, 2)
    if len(q) == 0:
        return np.zeros(0)
    _, dst, dist = spatial_knn(q, np.asarray(site_lonlat, np.float64), 1, np.inf, exclude_self=False)
    out = np.full(len(q), np.inf)
    out[dst] = dist
    return out


@dataclass(frozen=True)
class DistanceVariance:
    """The fitted term :math:`v(d)` (module docstring). ``nugget``, ``sill`` (partial) in log(1+SOC)^2, ``range_km``
    the exponential model's length scale, ``d_ref_km`` where the term starts."""

    nugget: float
    sill: float
    range_km: float
    d_ref_km: float

    def gamma(self, d_km: np.ndarray) -> np.ndarray:
        """Semivariogram at lag ``d_km`` (km), log(1+SOC)^2."""
        return self.nugget + self.sill * (1.0 - np.exp(-np.asarray(d_km, np.float64) / self.range_km))

    def __call__(self, d_km: np.ndarray) -> np.ndarray:
        """Extra epistemic variance, log(1+SOC)^2, at distance ``d_km`` from the nearest training site."""
        return np.maximum(self.gamma(d_km) - self.gamma(np.asarray(self.d_ref_km)), 0.0)

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> DistanceVariance:
        return cls(**{k: float(d[k]) for k in ("nugget", "sill", "range_km", "d_ref_km")})

    @classmethod
    def fit(cls, train_lonlat: np.ndarray, train_y_log: np.ndarray, val_dist_km: np.ndarray, *,
            max_pairs_sites: int = 1500, seed: int = 0) -> DistanceVariance:
        """Fit the exponential semivariogram of the training targets and take ``d_ref`` from the validation sites'
        nearest-site distances (90th percentile).

        At most ``max_pairs_sites`` sites (a seeded subsample) enter the empirical variogram: its pairs grow as n^2.
        Lags are binned on a log scale from 1 km to the largest pair distance, so that both the short range that
        decides interpolation and the long range that decides the sill are sampled.
        """
        import gstools as gs

        lonlat = np.asarray(train_lonlat, np.float64)
        y = np.asarray(train_y_log, np.float64)
        ok = np.isfinite(y) & np.isfinite(lonlat).all(axis=1)
        lonlat, y = lonlat[ok], y[ok]
        if len(y) > max_pairs_sites:
            pick = np.random.default_rng(seed).choice(len(y), max_pairs_sites, replace=False)
            lonlat, y = lonlat[pick], y[pick]
        d_ref = float(np.quantile(val_dist_km, 0.9)) if len(val_dist_km) else 0.0
        var = float(np.var(y))
        if len(y) < 10 or var <= 0:
            return cls(0.0, var, 1.0, d_ref)
        edges = np.r_[0.0, np.geomspace(1.0, 4000.0, 30)]
        centre, gamma, counts = gs.vario_estimate((lonlat[:, 1], lonlat[:, 0]), y, edges, latlon=True,
                                                  geo_scale=gs.KM_SCALE, return_counts=True)
        use = counts > 0
        model = gs.Exponential(latlon=True, geo_scale=gs.KM_SCALE)
        model.fit_variogram(centre[use], gamma[use], nugget=True, weights=np.sqrt(counts[use]))
        return cls(float(model.nugget), float(model.var), float(model.len_scale), d_ref)
