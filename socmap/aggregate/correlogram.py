"""The spatial correlogram of the model's errors, fitted on held-out points with gstools.

Residuals are taken on the model's own scale, log(1 + SOC): ``r = (y - mu) / sd`` for the bundle's validation
nodes (never the test nodes, which stay a once-scored hold-out), with ``mu`` and ``sd`` the calibrated
transductive ensemble prediction of each validation node (:meth:`socmap.inference.Bundle.predict_nodes`, as
``socmap evaluate`` scores them) and ``sd`` its total predictive standard deviation. The empirical semivariogram
of ``r`` (Matheron, distance bins at quantiles of the pair distances, :data:`BIN_QUANTILES`) is fitted with an
exponential model plus a nugget; the correlogram is

    rho(0) = 1,    rho(d) = shared_share + partial_share * exp(-d / len_scale)    for d > 0   (d in km),

with ``partial_share = 1 - nugget_share - shared_share``: a pure-nugget fit means independent errors and a zero
nugget means errors of nearby cells move together. ``shared_share`` is an error common to the whole map (a
map-wide bias of the model), which a variogram cannot see (it is blind to a constant); it is estimated by the
method of moments from the mean held-out residual: ``c0 = max(0, mean(r)^2 - sum_ij C(d_ij) / n^2)``, the squared
mean residual less what the fitted local covariance ``C`` alone would give it. The covariance used for a zone is
``sill * rho(d)``, with ``sill`` the fitted total variance of the standardised residuals (1 for a calibrated sd). The
zone interval (:mod:`socmap.aggregate.interval`) takes this log(1 + SOC) correlation for the g/kg errors: exact to
first order in the log-scale sd, and above the log-normals' own correlation
``(exp(rho s_i s_j) - 1) / sqrt((exp(s_i^2) - 1) (exp(s_j^2) - 1))`` otherwise (for equal sd), so it errs wide.
Distances are great-circle km for lon/lat points, or km in the map's projected CRS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from socmap.errors import ModelError

if TYPE_CHECKING:
    from socmap.inference import Bundle

__all__ = ["Correlogram", "distance_matched_weights", "distances_km", "fit_correlogram", "heldout_residuals"]

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
    """Nugget / total: the share of the error variance that is independent from cell to cell."""
    shared_share: float = 0.0
    """Map-wide error variance / total: the share every pair of cells shares, whatever their distance."""
    mean_residual: float = 0.0
    """Mean standardised held-out residual (> 0: the model under-predicts on average)."""
    sill: float = 1.0
    """Variance of the standardised residuals (nugget + partial sill + shared): 1 when the predictive sd is
    calibrated; above 1 it is too small by ``sqrt(sill)``, and the zone interval scales it up. With distance-matched
    weights it is the weighted moment (the map's cells' distances to the training sites), else as fitted."""
    sill_unweighted: float = 1.0
    """The sill of the held-out points as they lie (no distance matching)."""
    n_points: int = 0
    n_pairs: int = 0
    scale: str = "log(1+SOC), standardised by the calibrated total sd"
    model: str = "exponential + nugget"
    bins_km: list[float] | None = None
    gamma: list[float] | None = None

    def rho(self, d_km: np.ndarray) -> np.ndarray:
        """Correlation of the errors of two cells ``d_km`` apart (1 at distance 0)."""
        d = np.asarray(d_km, np.float64)
        partial = max(0.0, 1.0 - self.nugget_share - self.shared_share)
        r = self.shared_share + partial * np.exp(-d / max(self.len_scale_km, 1e-12))
        return np.where(d <= 0.0, 1.0, r)

    def cov(self, d_km: np.ndarray) -> np.ndarray:
        """Covariance of the standardised errors of two cells ``d_km`` apart: ``sill * rho``."""
        return self.sill * self.rho(d_km)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def distances_km(a: np.ndarray, b: np.ndarray, geographic: bool) -> np.ndarray:
    """Element-wise distance, km, between (N, 2) point arrays: great circle for (lon, lat) degrees (haversine on
    the sphere of :mod:`socmap.geo`), else Euclidean on coordinates already in km."""
    from socmap.geo import haversine_km

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not geographic:
        return np.asarray(np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1]))
    return np.asarray(haversine_km(a[..., 0], a[..., 1], b[..., 0], b[..., 1]))


def heldout_residuals(bundle: Bundle) -> tuple[np.ndarray, np.ndarray]:
    """(lonlat (n, 2) degrees, standardised residuals (n,)) of the bundle's validation nodes.

    The test nodes stay out: they are scored once, by ``socmap evaluate``, and nothing a map or a zone total
    reports may be fitted on them."""
    from socmap.data.split import SPLIT_CODES

    if bundle.node_split is None or bundle.node_label_log is None:
        raise ModelError(f"model bundle {bundle.path} holds no node labels or splits; train it again")
    held = np.asarray(bundle.node_split) == SPLIT_CODES["val"]
    pred = bundle.predict_nodes(calibrated=True)
    y = np.asarray(bundle.node_label_log, np.float64)
    sd = np.sqrt(np.asarray(pred.total_var, np.float64))
    ok = held & np.isfinite(y) & np.isfinite(pred.mean) & (sd > 0)
    r = (y[ok] - np.asarray(pred.mean)[ok]) / sd[ok]
    return np.asarray(bundle.node_lonlat, np.float64)[ok], r


def distance_matched_weights(d_points: np.ndarray, d_cells: np.ndarray, *, bins: int = 5,
                             min_points: int = 5) -> np.ndarray:
    """Weights that make held-out points stand for map cells in their distance to the nearest training site.

    A random validation split puts its points among the training sites, closer to them than the average map cell
    (demo: median 110 m against 177 m), and a model's error grows with that distance faster than its predictive sd
    does, so unweighted held-out residuals understate the map's error (the point behind nearest-neighbour
    distance matching, Mila et al. 2022). Bins are quantiles of the cells' distances (``bins`` of them), merged
    with a neighbour until each holds ``min_points`` points; a point's weight is its bin's share of the cells
    over its share of the points (mean 1). Distances in any one unit."""
    dp = np.asarray(d_points, np.float64)
    dc = np.asarray(d_cells, np.float64)
    edges = list(np.unique(np.quantile(dc, np.linspace(0, 1, bins + 1))))
    edges[0], edges[-1] = -np.inf, np.inf

    def counts(e: list[float]) -> np.ndarray:
        return np.histogram(dp, bins=np.asarray(e))[0]

    while len(edges) > 2:
        c = counts(edges)
        k = int(np.argmin(c))
        if c[k] >= min_points:
            break
        # merge the sparsest bin with its smaller neighbour (drop the edge between them)
        if k == 0:
            drop = 1
        elif k == len(c) - 1:
            drop = k
        else:
            drop = k if c[k - 1] <= c[k + 1] else k + 1
        edges.pop(drop)
    e = np.asarray(edges)
    pb = np.clip(np.searchsorted(e, dp, side="right") - 1, 0, len(e) - 2)
    cell_share = np.histogram(dc, bins=e)[0] / max(len(dc), 1)
    point_share = np.bincount(pb, minlength=len(e) - 1) / max(len(dp), 1)
    w = cell_share[pb] / np.maximum(point_share[pb], 1e-12)
    return w / w.mean()


def _empirical_variogram(xy: np.ndarray, r: np.ndarray, d: np.ndarray,
                         geographic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bin centres km, semivariances, pair counts) of ``r``, bins at :data:`BIN_QUANTILES` of the pair distances
    ``d`` (km); empty bins dropped."""
    import gstools as gs

    edges = np.unique(np.quantile(d, BIN_QUANTILES))
    edges[0] = 0.0
    pos = (xy[:, 1], xy[:, 0]) if geographic else (xy[:, 0], xy[:, 1])
    centre, gamma, counts = gs.vario_estimate(pos, r, edges, latlon=geographic,
                                              geo_scale=gs.KM_SCALE if geographic else 1.0, return_counts=True)
    ok = counts > 0
    return centre[ok], gamma[ok], counts[ok]


def _fit_exponential(centre: np.ndarray, gamma: np.ndarray, counts: np.ndarray, d: np.ndarray, r: np.ndarray) -> Any:
    """The exponential + nugget gstools model of least count-weighted squared error, from several starting ranges
    (least squares has local optima: a pure nugget at the shortest range is one)."""
    import gstools as gs

    v = max(float(np.var(r)), 1e-6)
    dpos = d[d > 0]
    lo = max(float(dpos.min()) if dpos.size else 1e-3, 1e-6) / 3
    best, best_sse = None, np.inf
    for len0 in np.quantile(centre, [0.1, 0.3, 0.6, 0.9]):
        model = gs.Exponential(dim=2)
        model.len_scale_bounds = [lo, float(d.max()) * 3]
        model.var_bounds = [0.0, 10.0 * v]
        model.nugget_bounds = [0.0, 10.0 * v]
        try:
            model.fit_variogram(centre, gamma, nugget=True, weights=counts,
                                init_guess={"len_scale": float(len0), "var": 0.7 * v, "nugget": 0.3 * v,
                                            "default": "default"})
        except RuntimeError:  # scipy's curve_fit ran out of evaluations from this start: try the others
            continue
        sse = float(np.sum(counts * (model.variogram(centre) - gamma) ** 2))
        if sse < best_sse:
            best, best_sse = model, sse
    if best is None:
        raise ModelError(f"the error correlogram of {len(r)} held-out residuals could not be fitted from any "
                         "starting range (least squares did not converge)")
    return best


@dataclass
class _Moments:
    """The fitted variogram's parts as (weighted) moments of the residuals."""

    total: float
    """Sill: scaled local variance plus the map-wide part."""
    total_plain: float
    """The sill of the points as they lie (unweighted)."""
    nugget_share: float
    shared_share: float
    mean_residual: float


def _moments(xy: np.ndarray, r: np.ndarray, w: np.ndarray, *, var: float, nug: float, len_scale: float,
             geographic: bool) -> _Moments:
    """Map-wide shared error by the method of moments on the (weighted) mean residual (see the module docstring):
    the squared mean less what the local covariance alone gives it, ``sum_ij w_i w_j C(d_ij)``; the local variance
    (nugget + partial sill) scaled by the weighted over the plain centred second moment."""
    n = len(r)
    cov_sum = cov_sum_plain = 0.0
    for s in range(0, n, 500):
        dd = distances_km(xy[s:s + 500, None, :], xy[None, :, :], geographic)
        cc = var * np.exp(-dd / max(len_scale, 1e-12)) + nug * (dd <= 0)
        cov_sum += float(w[s:s + 500] @ cc @ w)
        cov_sum_plain += float(np.sum(cc)) / n**2
    mean_plain = float(np.mean(r))
    total_plain = var + nug + max(0.0, mean_plain**2 - cov_sum_plain)
    mean_r = float(w @ r)
    c0 = max(0.0, mean_r**2 - cov_sum)
    scale = float((w @ (r - mean_r) ** 2) / max(float(np.mean((r - mean_plain) ** 2)), 1e-12))
    total = scale * (var + nug) + c0
    share = scale * nug / total if total > 0 else 1.0
    return _Moments(total=total, total_plain=total_plain, nugget_share=float(np.clip(share, 0.0, 1.0)),
                    shared_share=float(c0 / total) if total > 0 else 0.0, mean_residual=mean_r)


def fit_correlogram(xy: np.ndarray, r: np.ndarray, *, geographic: bool,
                    weights: np.ndarray | None = None) -> Correlogram:
    """Fit :class:`Correlogram` to standardised residuals ``r`` at ``xy`` ((lon, lat) degrees when
    ``geographic``, else km). A one-line :class:`ModelError` with fewer than :data:`MIN_POINTS` points.

    ``weights`` (one per point, e.g. :func:`distance_matched_weights`) make the points stand for the cells of a
    map: the mean residual (hence the map-wide share) and the local variance become weighted moments (the
    variogram's range and nugget-to-partial ratio are fitted unweighted), so residuals of points as far from the
    training sites as the map's cells count as much as those cells do."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    r = np.asarray(r, np.float64)
    n = len(r)
    if n < MIN_POINTS:
        raise ModelError(f"only {n} held-out points to fit the error correlogram (at least {MIN_POINTS} needed); "
                         "train with larger validation/test splits")
    iu = np.triu_indices(n, 1)
    d = distances_km(xy[iu[0]], xy[iu[1]], geographic)
    centre, gamma, counts = _empirical_variogram(xy, r, d, geographic)
    model = _fit_exponential(centre, gamma, counts, d, r)
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    m = _moments(xy, r, w, var=float(model.var), nug=float(model.nugget), len_scale=float(model.len_scale),
                 geographic=geographic)
    return Correlogram(len_scale_km=float(model.len_scale), nugget_share=m.nugget_share,
                       shared_share=m.shared_share, mean_residual=m.mean_residual,
                       sill=m.total, sill_unweighted=m.total_plain,
                       n_points=n, n_pairs=len(d), bins_km=[round(float(c), 4) for c in centre],
                       gamma=[round(float(g), 4) for g in gamma])
