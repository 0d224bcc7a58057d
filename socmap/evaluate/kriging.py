r"""Ordinary kriging on the sphere from local neighbourhoods, and the residual variogram it uses.

The variogram is estimated and fitted by gstools (``vario_estimate`` with ``latlon=True`` bins great-circle
distances in km; an exponential and a spherical model are fitted, with a nugget, and the better fit is kept). A
gstools model with ``latlon=True`` is the Yadrenko model: the Euclidean covariance taken at the chordal distance
between the points' positions on a sphere of radius ``geo_scale`` (km), positive definite on the sphere.

The kriging itself is local: each target is kriged from its ``neighbours`` (default 50) nearest data sites, the
ordinary-kriging system of all targets solved at once as a batch of small dense systems
(:func:`numpy.linalg.solve`). gstools' own kriging solves one global system, an N x N matrix (2.6 GB for 18,000
training sites), and has no moving neighbourhood; pykrige's moving neighbourhood solves one target at a time in
Python. The batch of 51 x 51 systems krige ~1,000 targets in well under a second.

With a nugget, the data are observations of the process plus independent noise: the nugget sits on the data
covariance's diagonal, and the kriging variance is that of a new observation at the target (process error plus
the nugget), the variance a held-out site's measured SOC has around the prediction. With a zero nugget kriging is
an exact interpolator: at a data site it returns the datum with variance 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from socmap.geo import haversine_km, lonlat_to_unit, sphere_knn

__all__ = ["fit_residual_variogram", "local_ordinary_kriging", "variogram_bins_km"]

_JITTER = 1e-10
"""Added to the data covariance's diagonal, relative to the sill, so co-located sites with a zero nugget (a
singular system) still solve; it moves an exact interpolation by about that fraction."""


def variogram_bins_km(lonlat: np.ndarray, *, max_km: float = 300.0, n_bins: int = 15) -> np.ndarray:
    """Bin edges, km, for the empirical variogram: 0 then ``n_bins`` log-spaced edges up to the smaller of
    ``max_km`` and half the data's extent (the great-circle diagonal of their bounding box), so short lags, where
    the kriging weights are decided, get fine bins."""
    lon, lat = lonlat[:, 0], lonlat[:, 1]
    extent = float(haversine_km(lon.min(), lat.min(), lon.max(), lat.max()))
    d_max = max(min(max_km, extent / 2.0), 1e-3)
    return np.concatenate([[0.0], np.geomspace(d_max / 200.0, d_max, n_bins)])


def fit_residual_variogram(lonlat: np.ndarray, values: np.ndarray, *, seed: int = 0, sampling_size: int = 4000,
                           max_km: float = 300.0, min_pairs: int = 10) -> tuple[Any, dict[str, Any]]:
    """Fit a variogram to ``values`` (e.g. log-scale residuals) at ``lonlat`` ((N, 2) degrees): gstools'
    empirical variogram over great-circle bins (:func:`variogram_bins_km`; at most ``sampling_size`` sites, a
    seeded subset, so 18,000 sites cost 8 M pairs, not 162 M), then exponential and spherical fits with a
    nugget to the bins of at least ``min_pairs`` pairs, each bin weighted alike (the log-spaced bins give the
    short lags, which decide the kriging weights, most of the say; weighting by pair counts would hand it to the
    long lags); the one with the higher R2 is returned with a summary dict. Where neither fits (fewer than 3
    such bins, or no convergence), a pure nugget model (variance of ``values``).
    """
    import gstools as gs

    v = np.asarray(values, np.float64)
    pos = (lonlat[:, 1], lonlat[:, 0])  # gstools takes (lat, lon)
    edges = variogram_bins_km(lonlat, max_km=max_km)
    centers, gamma, counts = gs.vario_estimate(pos, v, edges, latlon=True, geo_scale=gs.KM_SCALE,
                                               sampling_size=min(len(v), sampling_size), sampling_seed=seed,
                                               return_counts=True)
    keep = counts >= min_pairs
    best: tuple[Any, float] | None = None
    if keep.sum() >= 3:
        for cls in (gs.Exponential, gs.Spherical):
            model = cls(latlon=True, geo_scale=gs.KM_SCALE)
            try:  # (a flat empirical variogram makes gstools' R2 divide by zero: NaN, never kept)
                with np.errstate(divide="ignore", invalid="ignore"):
                    _, _, r2 = model.fit_variogram(centers[keep], gamma[keep], nugget=True, return_r2=True)
            except (RuntimeError, ValueError):
                continue
            if np.isfinite(r2) and (best is None or r2 > best[1]):
                best = (model, float(r2))
    if best is None:
        best = (gs.Exponential(latlon=True, geo_scale=gs.KM_SCALE, var=0.0, nugget=float(np.var(v))), float("nan"))
    model, r2 = best
    info = {"model": type(model).__name__, "var": float(model.var), "len_scale_km": float(model.len_scale),
            "nugget": float(model.nugget), "r2": r2, "bin_centres_km": np.asarray(centers).tolist(),
            "gamma": np.asarray(gamma).tolist(), "pairs": np.asarray(counts).tolist()}
    return model, info


def _solve_ok(nb_unit: np.ndarray, q_unit: np.ndarray, nb_values: np.ndarray, model: Any
              ) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary kriging of a batch: neighbours' unit vectors (Q, k, 3), targets' (Q, 3), neighbours' values
    (Q, k) -> (mean, variance), both (Q,). Chordal distances in the model's ``geo_scale`` units (km)."""
    q, k = nb_values.shape
    scale = float(model.geo_scale)
    d_nn = np.linalg.norm(nb_unit[:, :, None, :] - nb_unit[:, None, :, :], axis=-1) * scale
    c0 = np.asarray(model.covariance(np.linalg.norm(nb_unit - q_unit[:, None, :], axis=-1) * scale))
    a = np.ones((q, k + 1, k + 1))
    jitter = _JITTER * model.sill if model.sill > 0 else _JITTER  # a constant field: sill 0
    a[:, :k, :k] = np.asarray(model.covariance(d_nn)) + (model.nugget + jitter) * np.eye(k)
    a[:, k, k] = 0.0
    b = np.ones((q, k + 1))
    b[:, :k] = c0
    sol = np.linalg.solve(a, b[..., None])[..., 0]
    lam, lagrange = sol[:, :k], sol[:, k]
    mean = np.sum(lam * nb_values, axis=1)
    var = model.sill - np.sum(lam * c0, axis=1) - lagrange
    return mean, np.maximum(var, 0.0)


def local_ordinary_kriging(data_lonlat: np.ndarray, values: np.ndarray, query_lonlat: np.ndarray, model: Any, *,
                           neighbours: int = 50, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary kriging mean and variance of ``values`` at each query point from its ``neighbours`` nearest data
    points (great-circle k-NN), with the gstools latlon ``model`` (:func:`fit_residual_variogram`).

    ``data_lonlat`` (N, 2) and ``query_lonlat`` (Q, 2) in degrees; returns (Q,) means in the units of ``values``
    and (Q,) variances in those units squared (the variance of a new observation: nugget included).
    """
    data_lonlat, query_lonlat = np.asarray(data_lonlat, np.float64), np.asarray(query_lonlat, np.float64)
    v = np.asarray(values, np.float64)
    k = min(neighbours, len(v))
    _, idx = sphere_knn(data_lonlat, query_lonlat, k)
    du, qu = lonlat_to_unit(data_lonlat), lonlat_to_unit(query_lonlat)
    mean, var = np.empty(len(qu)), np.empty(len(qu))
    for s in range(0, len(qu), chunk):
        sl = slice(s, s + chunk)
        mean[sl], var[sl] = _solve_ok(du[idx[sl]], qu[sl], v[idx[sl]], model)
    return mean, var
