"""Does a map look like soil? Two figures no point RMSE catches (``benchmarks/map_realism.py``).

- **Facets** (:func:`facet_ratio`): a model whose inputs jump where a cell's nearest survey site changes draws a
  Voronoi mosaic of the sites. Compare the SOC step between 4-adjacent cells whose nearest training site differs
  with the step between adjacent cells that share it: about 1 for a map that varies continuously (a Voronoi edge
  is then no special place), far above 1 for a mosaic (flat inside each polygon, a jump at its edges).
- **Uncertainty off the data** (:func:`sd_ratio_aoa`): the relative sd (total sd / SOC) should be larger outside
  the area of applicability (covariates unlike the training sites') than inside it; on the log scale
  (:func:`log_scale_sd`), the predictive's own sd of log(1 + SOC).

Both work on map arrays (rows, cols) with NaN where there is no data, so they neither read nor know the map
layout; :func:`nearest_site` gives the nearest training site of each cell (great-circle).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from socmap.graph.relations import spatial_knn

__all__ = ["FacetScore", "SdRatio", "facet_ratio", "facet_ratio_by_distance", "log_scale_sd", "nearest_site",
           "sd_ratio_aoa"]


def nearest_site(cell_lonlat: np.ndarray, site_lonlat: np.ndarray, *,
                 return_km: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """(N,) index into ``site_lonlat`` (M, 2) of each cell's nearest site by great-circle distance
    (``cell_lonlat`` (N, 2) degrees), by the graph's own k-NN (:func:`socmap.graph.relations.spatial_knn`, k = 1);
    with ``return_km`` also the (N,) great-circle distance to it in km."""
    if len(site_lonlat) == 0:
        raise ValueError("no sites: the nearest site of a cell is undefined")
    cells = np.asarray(cell_lonlat, np.float64).reshape(-1, 2)
    idx, km = np.zeros(len(cells), np.int64), np.zeros(len(cells))
    if len(cells):
        src, dst, dist = spatial_knn(cells, np.asarray(site_lonlat, np.float64), 1, np.inf, exclude_self=False)
        idx[dst], km[dst] = src, dist
    return (idx, km) if return_km else idx


@dataclass(frozen=True)
class _Figures:
    """A result of plain numbers, written to JSON as they are (:meth:`to_dict`)."""

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class FacetScore(_Figures):
    """:func:`facet_ratio`'s figures; differences in the map's unit (g/kg for ``soc_mean``)."""

    facet_ratio: float
    """``mean_diff_across / mean_diff_within``: ~1 continuous, >> 1 a Voronoi mosaic; inf if within is 0."""
    mean_diff_across: float
    """Mean |difference| between adjacent cells whose nearest site differs."""
    mean_diff_within: float
    """Mean |difference| between adjacent cells that share their nearest site."""
    pairs_across: int
    pairs_within: int


def _adjacent_pairs(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both members of every 4-adjacent pair of cells (left-right, then up-down), flattened."""
    return (np.concatenate([a[:, :-1].ravel(), a[:-1, :].ravel()]),
            np.concatenate([a[:, 1:].ravel(), a[1:, :].ravel()]))


def facet_ratio(values: np.ndarray, site: np.ndarray) -> FacetScore:
    r"""Step across nearest-site borders over the step within a site's cells, on 4-adjacent pairs of mapped cells.

    .. math::
        \mathrm{facet} = \frac{\operatorname{mean}_{(i,j) \in A,\ n_i \ne n_j} |v_i - v_j|}
                              {\operatorname{mean}_{(i,j) \in A,\ n_i = n_j} |v_i - v_j|}

    with :math:`A` the 4-adjacent pairs where both values are finite and :math:`n_i` a cell's nearest site.

    Args:
        values: (rows, cols) map layer (e.g. ``soc_mean``, g/kg), NaN = no data.
        site: (rows, cols) int, nearest training site of each cell (any id; compared for equality only).
    """
    values, site = np.asarray(values, np.float64), np.asarray(site)
    if values.shape != site.shape or values.ndim != 2:
        raise ValueError(f"values and site must be the same 2-D shape, got {values.shape} and {site.shape}")
    va, vb = _adjacent_pairs(values)
    sa, sb = _adjacent_pairs(site)
    ok = np.isfinite(va) & np.isfinite(vb)
    diff = np.abs(va - vb)
    across, within = ok & (sa != sb), ok & (sa == sb)
    m_across = float(diff[across].mean()) if across.any() else float("nan")
    m_within = float(diff[within].mean()) if within.any() else float("nan")
    if not (np.isfinite(m_across) and np.isfinite(m_within)):
        ratio = float("nan")
    elif m_within == 0.0:
        ratio = float("inf") if m_across > 0 else float("nan")
    else:
        ratio = m_across / m_within
    return FacetScore(ratio, m_across, m_within, int(across.sum()), int(within.sum()))


def facet_ratio_by_distance(values: np.ndarray, site: np.ndarray, dist_km: np.ndarray, *,
                            n_bins: int = 10) -> float:
    r""":func:`facet_ratio` compared at equal distance from the data: the geometric mean, weighted by the
    across-border pairs, of the ratio within each distance bin.

    Why: a map varies most near its sites (where local values differ) and least far from them, and nearest-site
    borders are dense where sites are dense, so even a map that is smooth everywhere scores the plain ratio
    well above 1 (a Gaussian-kernel smoother of the Africa training labels, 50 km, scores 1.22; one that
    relaxes to the mean away from the sites, 2.0). Binning the pairs by their distance to the nearest site
    (the larger of the two cells', deciles of the across-border pairs) compares like with like: a smooth map
    scores about 1 in every bin, a mosaic far above 1 in every bin.

    Args:
        values, site: as :func:`facet_ratio`.
        dist_km: (rows, cols) distance of each cell to its nearest site, km (NaN = no data).
        n_bins: distance bins (quantiles of the across-border pairs' distances).

    Returns:
        The stratified ratio; inf when a bin is flat within and steps across; NaN when no bin has both kinds of
        pairs.
    """
    values, site, dist_km = np.asarray(values, np.float64), np.asarray(site), np.asarray(dist_km, np.float64)
    if not (values.shape == site.shape == dist_km.shape) or values.ndim != 2:
        raise ValueError(f"values, site and dist_km must be one 2-D shape, got {values.shape}, {site.shape}, "
                         f"{dist_km.shape}")
    va, vb = _adjacent_pairs(values)
    sa, sb = _adjacent_pairs(site)
    da, db = _adjacent_pairs(dist_km)
    ok = np.isfinite(va) & np.isfinite(vb) & np.isfinite(da) & np.isfinite(db)
    diff, dist = np.abs(va - vb), np.maximum(da, db)
    across, within = ok & (sa != sb), ok & (sa == sb)
    if not across.any() or not within.any():
        return float("nan")
    edges = np.quantile(dist[across], np.linspace(0.0, 1.0, n_bins + 1))
    which = np.clip(np.searchsorted(edges, dist, side="right") - 1, 0, n_bins - 1)
    logs, weights = [], []
    for b in range(n_bins):
        a, w = across & (which == b), within & (which == b)
        if not (a.any() and w.any()) or diff[a].mean() == 0:
            continue
        if diff[w].mean() == 0:
            return float("inf")  # flat inside, a step at the border: a pure mosaic
        logs.append(np.log(diff[a].mean() / diff[w].mean()))
        weights.append(a.sum())
    return float(np.exp(np.average(logs, weights=weights))) if logs else float("nan")


@dataclass(frozen=True)
class SdRatio(_Figures):
    """:func:`sd_ratio_aoa`'s figures; relative sd is unitless (sd / mean)."""

    sd_ratio_aoa: float
    """``median_rel_sd_outside / median_rel_sd_inside``: > 1 when uncertainty grows off the data."""
    median_rel_sd_inside: float
    median_rel_sd_outside: float
    cells_inside: int
    cells_outside: int


def sd_ratio_aoa(mean: np.ndarray, sd: np.ndarray, aoa: np.ndarray) -> SdRatio:
    """Median relative sd (``sd / mean``) of the cells outside the area of applicability over that of the cells
    inside it.

    Args:
        mean: map of the estimate (``soc_mean``, g/kg), NaN = no data; cells with mean <= 0 are left out.
        sd: map of its sd (``total_sd``, same unit), NaN = no data.
        aoa: the AOA flag: 1 = outside, 0 = inside; anything else (NaN, 255) = no data.
    """
    mean, sd, aoa = (np.asarray(a, np.float64) for a in (mean, sd, aoa))
    if not (mean.shape == sd.shape == aoa.shape):
        raise ValueError(f"mean, sd and aoa must have one shape, got {mean.shape}, {sd.shape}, {aoa.shape}")
    ok = np.isfinite(mean) & np.isfinite(sd) & (mean > 0)
    rel = np.where(ok, sd / np.where(ok, mean, 1.0), np.nan)
    inside, outside = ok & (aoa == 0), ok & (aoa == 1)
    med_in = float(np.median(rel[inside])) if inside.any() else float("nan")
    med_out = float(np.median(rel[outside])) if outside.any() else float("nan")
    ratio = med_out / med_in if med_in > 0 else float("nan")
    return SdRatio(ratio, med_in, med_out, int(inside.sum()), int(outside.sum()))


def log_scale_sd(total_sd: np.ndarray, q05: np.ndarray, q95: np.ndarray) -> np.ndarray:
    r"""The predictive's sd of log(1 + SOC), exactly, from the map layers ``total_sd``, ``q05`` and ``q95`` (g/kg).

    The map's predictive of log(1 + SOC) has centre :math:`\mu` and variance :math:`v`
    (:meth:`socmap.inference.EnsemblePrediction.var_gkg`): ``total_sd`` :math:`^2 = e^{2\mu} e^{v} (e^{v} - 1)`,
    and the bounds sit symmetrically about :math:`\mu` on the log scale (Gaussian or Student t tails alike), so
    :math:`e^{\mu} = \sqrt{(1 + q_{05})(1 + q_{95})}`. With :math:`r = \mathrm{total\_sd}^2 / e^{2\mu}`,
    :math:`e^{v} = (1 + \sqrt{1 + 4r}) / 2`. Unlike ``(log1p(q95) - log1p(q05)) / (2 * 1.6449)``, this holds
    with t tails too. NaN where a layer is. Unit: log(1 + SOC g/kg).
    """
    sd, lo, hi = (np.asarray(a, np.float64) for a in (total_sd, q05, q95))
    with np.errstate(invalid="ignore"):
        r = sd**2 / ((1.0 + lo) * (1.0 + hi))
        return np.sqrt(np.log((1.0 + np.sqrt(1.0 + 4.0 * r)) / 2.0))
