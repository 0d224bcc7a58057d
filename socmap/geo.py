"""Geometry on the sphere: the one earth radius, unit vectors, chord and great-circle distances, k-NN.

Every distance between (lon, lat) points in socmap is a great-circle distance on a sphere of radius
:data:`EARTH_RADIUS_KM`, and every cell area on a geographic grid a band area on the same sphere. Nearest neighbours
are found with :class:`scipy.spatial.cKDTree` over 3-D unit vectors: the straight-line (chord) distance between two
unit vectors grows monotonically with their great-circle distance, so the k-NN by chord is the exact k-NN on the
sphere, and :func:`chord_to_km` converts its distances to km.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

__all__ = [
    "EARTH_RADIUS_KM",
    "chord_to_km",
    "haversine_km",
    "km_to_chord",
    "knn_km",
    "lonlat_to_unit",
    "sphere_knn",
    "unit_tree",
]

EARTH_RADIUS_KM = 6371.0088
"""Earth radius, km: the IUGG mean radius of the WGS 84 ellipsoid, ``(2a + b) / 3``, the usual radius of a sphere
that stands for the Earth in distances (its great-circle distances stay within about 0.5 % of the ellipsoid's
geodesics). The stored model bundles' graph edge weights were computed with it. Band areas use it too: the
authalic (equal-area) radius, 6371.0072 km, would change an area by 5e-7 of itself, far below any other error of a
mapped area."""


def lonlat_to_unit(lonlat: np.ndarray) -> np.ndarray:
    """(N, 2) lon, lat in degrees -> (N, 3) unit vectors (x towards lon 0 on the equator, z towards the north pole)."""
    lon, lat = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


def chord_to_km(chord: np.ndarray) -> np.ndarray:
    """Great-circle distance, km, between two points whose unit vectors lie ``chord`` apart (unitless, 0..2)."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def km_to_chord(km: np.ndarray) -> np.ndarray:
    """Chord (unitless, 0..2) between the unit vectors of two points ``km`` apart on the great circle, the inverse of
    :func:`chord_to_km` (a great-circle radius as a k-d tree radius over unit vectors)."""
    return 2.0 * np.sin(np.clip(np.asarray(km, np.float64) / (2.0 * EARTH_RADIUS_KM), 0.0, np.pi / 2))


def haversine_km(lon1: Any, lat1: Any, lon2: Any, lat2: Any, xp: ModuleType = np) -> Any:
    """Element-wise great-circle distance, km, between points (lon1, lat1) and (lon2, lat2) in degrees (haversine).

    ``xp`` is the array namespace the inputs belong to: ``numpy`` for arrays, ``torch`` for tensors (the result
    stays a tensor in the inputs' dtype; pass float64 for km-level precision).
    """
    lon1, lat1, lon2, lat2 = (xp.deg2rad(v) for v in (lon1, lat1, lon2, lat2))
    h = xp.sin((lat2 - lat1) / 2) ** 2 + xp.cos(lat1) * xp.cos(lat2) * xp.sin((lon2 - lon1) / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * xp.arcsin(xp.sqrt(xp.clip(h, 0.0, 1.0)))


def unit_tree(lonlat: np.ndarray) -> cKDTree:
    """k-d tree over the unit vectors of ``lonlat`` ((N, 2) degrees), for :func:`knn_km`."""
    from scipy.spatial import cKDTree

    return cKDTree(lonlat_to_unit(lonlat))


def knn_km(tree: cKDTree, query_lonlat: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest tree points of each query point ((Q, 2) degrees), nearest first.

    Returns ``(dist_km, idx)``, both (Q, k): great-circle distances in km and indices into the points the tree was
    built on (:func:`unit_tree`). Where the tree holds fewer than ``k`` points the missing neighbours have distance
    ``inf`` and index ``tree.n``, as :meth:`scipy.spatial.cKDTree.query` reports them.
    """
    q = len(query_lonlat)
    chord, idx = tree.query(lonlat_to_unit(query_lonlat), k=k)
    chord, idx = np.asarray(chord).reshape(q, k), np.asarray(idx).reshape(q, k)
    finite = np.isfinite(chord)
    return np.where(finite, chord_to_km(np.where(finite, chord, 0.0)), np.inf), idx


def sphere_knn(ref_lonlat: np.ndarray, query_lonlat: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest reference points ((N, 2) degrees) of each query point ((Q, 2) degrees):
    ``(dist_km, idx)``, both (Q, k), as :func:`knn_km`."""
    return knn_km(unit_tree(ref_lonlat), query_lonlat, k)
