"""Spatial clusters of sites and the cluster bootstrap over them.

Soil survey sites come in clusters (a transect, a farm, one profile sampled in several years), and so do the
errors of any map at them: neighbouring sites share the same missed covariate or the same local bias. A bootstrap
that resamples single sites treats every site as an independent draw and so gives intervals that are too narrow;
resampling whole clusters (here: the ~10 km cells of a grid, :func:`cell_clusters`) keeps each cluster's shared
error together, and the interval reflects the number of independent places, not of sites.

A resample is a vector of counts (how often each cluster was drawn, :func:`cluster_counts`), so a metric that is a
mean of per-site losses (squared error, absolute error, CRPS, interval hits) is, on a resample, a count-weighted
mean of per-cluster sums (:func:`resampled_means`): one matrix product for all resamples, whatever the cluster
sizes. The counts depend only on (number of clusters, n_boot, seed), so every method scored with the same counts
is scored on the same resamples (paired).
"""

from __future__ import annotations

import numpy as np

from socmap.geo import EARTH_RADIUS_KM

__all__ = ["KM_PER_DEGREE", "cell_clusters", "cluster_counts", "percentile_interval", "resampled_means"]

KM_PER_DEGREE = float(np.pi * EARTH_RADIUS_KM / 180.0)
"""Length of one degree of latitude (and of longitude on the equator), km (~111.2)."""


def cell_clusters(lon: np.ndarray, lat: np.ndarray, cell_km: float = 10.0) -> np.ndarray:
    """Cluster id (0..G-1) of each site: the cell of a ``cell_km`` x ``cell_km`` grid it falls in.

    Rows of the grid are ``cell_km`` of latitude high; within a row, cells are ``cell_km`` wide at the row's
    central latitude (longitude bins widen towards the poles), so every cell is about ``cell_km`` on a side
    anywhere on the globe. ``lon``, ``lat`` in degrees; ids are numbered in order of (row, column).
    """
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    row = np.floor(lat * KM_PER_DEGREE / cell_km)
    lat_c = np.radians((row + 0.5) * cell_km / KM_PER_DEGREE)
    width_deg = cell_km / (KM_PER_DEGREE * np.maximum(np.cos(lat_c), 1e-6))
    col = np.floor(lon / width_deg)
    _, ids = np.unique(np.column_stack([row, col]), axis=0, return_inverse=True)
    return np.asarray(ids, np.int64).ravel()


def cluster_counts(n_clusters: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n_clusters) counts: how often each cluster is drawn when ``n_clusters`` clusters are drawn with
    replacement, uniformly, in each of ``n_boot`` seeded resamples."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot)


def resampled_means(values: np.ndarray, clusters: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of per-site ``values`` (N,) on each resample: sum over drawn clusters of their sums over sum of their
    sizes, (n_boot,). ``clusters`` (N,) are ids 0..G-1 (:func:`cell_clusters`), ``counts`` (n_boot, G)."""
    g = counts.shape[1]
    sums = np.bincount(clusters, weights=np.asarray(values, np.float64), minlength=g)
    sizes = np.bincount(clusters, minlength=g).astype(np.float64)
    return (counts @ sums) / (counts @ sizes)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    """Central percentile interval ``[lo, hi]`` of resampled ``values`` at ``level`` (NaN resamples ignored)."""
    lo, hi = np.nanquantile(np.asarray(values, np.float64), [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]
