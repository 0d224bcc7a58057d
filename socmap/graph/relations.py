"""The heterogeneous sample graph of paper section 3.5 / Table 1: spatial, NDVI and elevation relations.

Edges point from a neighbour to the node whose neighbourhood it belongs to (``edge_index[0]`` = source ``j``,
``edge_index[1]`` = target ``i``), so a node aggregates messages from its k nearest neighbours.

=========  ==========================================  ====================================================
relation   neighbourhood                               edge weight
=========  ==========================================  ====================================================
spatial    k-NN on the sphere (great circle), at most  inverse distance, normalised over the target's
           ``max_distance_km`` away                    neighbours: :math:`w_{ij} = d_{ij}^{-1} / \\sum_j d_{ij}^{-1}`
ndvi       k-NN in NDVI (1-D, any distance)            :math:`\\exp(-|\\Delta \\mathrm{NDVI}| / \\tau_v)`
elevation  the spatial edges                           :math:`\\exp(-|\\nabla z| / \\tau_t)`, :math:`|\\nabla z| =
                                                       |z_i - z_j| / d_{ij}` in m/km
=========  ==========================================  ====================================================

Distances are great-circle km on the sphere of :mod:`socmap.geo`, found with a k-d tree over 3-D unit vectors
(the chord is monotone in the great-circle distance, so the k-NN is exact). ``d`` is floored at
``min_distance_km`` (co-located samples).

Interpretation of the paper's "HDBSCAN min cluster size" and "adaptive-k neighbours" (Table 6), which the paper
does not define: with ``spatial_k_mode="adaptive"`` the sample locations are clustered with HDBSCAN (haversine
metric, ``min_cluster_size = hdbscan_min_cluster_size``); a node inside a cluster gets ``k_spatial`` spatial
neighbours, a node HDBSCAN calls noise (an isolated sample) gets ``adaptive_k`` neighbours, so that sparse areas
still pool over a wider neighbourhood. ``spatial_k_mode="fixed"`` uses ``k_spatial`` everywhere. The per-node k
is recorded in ``HeteroGraph.node_k`` (a model bundle keeps it beside the training coordinates).

New points attached inductively (:func:`attach_edges`) follow the same rule, so that their normalised
inverse-distance weights mean what they meant in training (:func:`attach_spatial_k`). HDBSCAN has no out-of-sample
prediction, so a new point is judged *sparse* (``adaptive_k``) when either

1. its nearest training node is a noise node (it lies in an isolated sample's neighbourhood), or
2. its core distance, the great-circle distance to its ``m``-th nearest training node with
   ``m = hdbscan_min_cluster_size`` (HDBSCAN's ``min_samples`` default), exceeds the largest core distance of any
   clustered training node (a training node's own core distance counts itself, as HDBSCAN's does), i.e. it is
   less densely surrounded than any point HDBSCAN put in a cluster (a map cell far from every sample).

Otherwise it gets ``k_spatial``. A new point placed exactly on a training site therefore gets that node's k: on a
clustered node, rule 1 does not fire and its core distance equals the node's, which is at most the threshold.
The rule needs only the training coordinates and per-node k (``node_k``), which a bundle stores. Where HDBSCAN did
not run (``spatial_k_mode="fixed"``, or no more nodes than ``hdbscan_min_cluster_size``) every new point gets
``k_spatial``, as every training node did.

Nodes whose NDVI is NaN get no NDVI edges; elevation edges with a NaN elevation at either end are dropped.
NDVI and elevation come from image-derived covariates or from covariate layers (the real Africa set has no
imagery): :func:`node_covariates` reads them from named columns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from socmap.config import GraphConfig
from socmap.errors import DataError
from socmap.geo import haversine_km, knn_km, unit_tree

__all__ = [
    "RELATIONS",
    "HeteroGraph",
    "attach_edges",
    "attach_spatial_k",
    "build_graph",
    "edge_length_km",
    "graph_label_edges",
    "label_edges",
    "node_covariates",
    "spatial_knn",
    "spatial_knn_next",
]

_T = TypeVar("_T")
RELATIONS: tuple[str, ...] = ("spatial", "ndvi", "elevation")


@dataclass
class HeteroGraph:
    """Typed edges of one graph (or of new nodes attached to a training graph).

    ``edge_index`` (2, E) int64: row 0 source, row 1 target. ``edge_type`` (E,) int64: index into
    ``relations``. ``edge_weight`` (E,) float32 in (0, 1]. ``num_nodes``: number of target nodes (for an
    attachment graph, the number of new nodes; its sources index the training nodes, ``num_sources`` of them).
    """

    edge_index: Tensor
    edge_type: Tensor
    edge_weight: Tensor
    num_nodes: int
    relations: tuple[str, ...] = RELATIONS
    num_sources: int | None = None
    node_k: np.ndarray | None = field(default=None, repr=False)
    """(num_nodes,) spatial neighbours asked for per target node (``k_spatial`` or, for sparse nodes under adaptive
    k, ``adaptive_k``). A training graph's ``node_k`` is what :func:`attach_edges` needs (``train_k``) to attach new
    points by the training rule; fewer edges exist where ``max_distance_km`` drops far pairs."""
    label_edges: tuple[Tensor, Tensor] | None = field(default=None, repr=False)
    """``(edge_index (2, E) int64, dist_km (E,) float32)``: each target's ``label_k`` nearest training sites, the
    neighbourhood of the scale-adaptive label features (``model.graph.label_k``; None when off). Sources index the
    same nodes as :attr:`edge_index`'s."""

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    def relation(self, name: str) -> tuple[Tensor, Tensor]:
        """``(edge_index, edge_weight)`` of one relation."""
        if name not in self.relations:
            raise KeyError(f"relation {name!r} not in this graph; it has {self.relations}")
        mask = self.edge_type == self.relations.index(name)
        return self.edge_index[:, mask], self.edge_weight[mask]

    def to(self, device: torch.device | str) -> HeteroGraph:
        le = None if self.label_edges is None else (self.label_edges[0].to(device), self.label_edges[1].to(device))
        return HeteroGraph(self.edge_index.to(device), self.edge_type.to(device), self.edge_weight.to(device),
                           self.num_nodes, self.relations, self.num_sources, self.node_k, le)


def edge_length_km(src_lonlat: Tensor, dst_lonlat: Tensor, edge_index: Tensor) -> Tensor:
    """(E,) great-circle length, km, of each edge ``src_lonlat[edge_index[0]] -> dst_lonlat[edge_index[1]]``
    (lon, lat in degrees; haversine in the tensors' dtype)."""
    a, b = src_lonlat[edge_index[0]].double(), dst_lonlat[edge_index[1]].double()
    return haversine_km(a[:, 0], a[:, 1], b[:, 0], b[:, 1], xp=torch).to(src_lonlat.dtype)


_TREES_MAX = 8
"""Reference point sets whose k-d trees and thresholds :data:`_TREES` keeps (oldest dropped first)."""
_TREES: dict[tuple, object] = {}
"""The last :data:`_TREES_MAX` reference point sets' k-d trees and core-distance thresholds, keyed by a digest of
their bytes: a map attaches every tile to the same training nodes, which need not be indexed again for each tile."""


def _memo(key: tuple, make: Callable[[], _T]) -> _T:
    value = _TREES.get(key)
    if value is None:
        value = make()
        while len(_TREES) >= _TREES_MAX:  # oldest first; another thread may have dropped it already
            _TREES.pop(next(iter(_TREES), key), None)
        _TREES[key] = value
    return value  # type: ignore[return-value]


def _digest(*arrays: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.digest()


def _unit_tree(lonlat: np.ndarray) -> cKDTree:
    """k-d tree of ``lonlat`` (degrees) as 3-D unit vectors (memoised)."""
    return _memo(("tree", _digest(lonlat)), lambda: unit_tree(lonlat))


def spatial_knn(
    query_lonlat: np.ndarray,
    ref_lonlat: np.ndarray,
    k: int | np.ndarray,
    max_distance_km: float,
    exclude_self: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k nearest reference points of every query point on the sphere: ``(src, dst, dist_km)``, the reference
    index, query index and great-circle distance of every pair (arguments as :func:`spatial_knn_next`)."""
    src, dst, dist, _ = spatial_knn_next(query_lonlat, ref_lonlat, k, max_distance_km, exclude_self)
    return src, dst, dist


def spatial_knn_next(
    query_lonlat: np.ndarray,
    ref_lonlat: np.ndarray,
    k: int | np.ndarray,
    max_distance_km: float,
    exclude_self: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """k nearest reference points of every query point on the sphere, and the distance to the (k+1)-th.

    Args:
        query_lonlat: (Q, 2) degrees. ref_lonlat: (M, 2) degrees.
        k: neighbours per query point (an int, or (Q,) ints for adaptive k).
        max_distance_km: neighbours farther than this are dropped.
        exclude_self: the query set is the reference set; a point is not its own neighbour.

    Returns:
        ``(src, dst, dist_km, next_km)``: reference index, query index and great-circle distance of every pair,
        and per query point the distance (km) to its (k+1)-th nearest reference point, capped at
        ``max_distance_km`` (also where fewer than k+1 exist): the distance at which a neighbour leaves the k-set,
        where continuous weights reach zero.
    """
    nq = len(query_lonlat)
    k_arr = np.broadcast_to(np.asarray(k, dtype=np.int64), (nq,))
    kmax = int(k_arr.max(initial=0)) + 1 + (1 if exclude_self else 0)
    kmax = min(kmax, len(ref_lonlat))
    if kmax == 0 or nq == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0), np.full(nq, float(max_distance_km))
    km, idx = knn_km(_unit_tree(np.asarray(ref_lonlat, np.float64)), query_lonlat, kmax)
    q = np.repeat(np.arange(nq), kmax).reshape(-1, kmax)
    valid = np.isfinite(km) & (idx < len(ref_lonlat))
    if exclude_self:
        valid &= idx != q
    rank = np.cumsum(valid, axis=1)  # 1-based rank among valid candidates (self excluded)
    keep = valid & (rank <= k_arr[:, None])
    nxt = valid & (rank == k_arr[:, None] + 1)
    all_km = np.where(valid, km, 0.0)
    next_km = np.where(nxt.any(axis=1), np.where(nxt, all_km, np.inf).min(axis=1), np.inf)
    next_km = np.minimum(next_km, max_distance_km)
    dist = np.where(keep, all_km, 0.0)
    keep &= dist <= max_distance_km
    return idx[keep].astype(np.int64), q[keep].astype(np.int64), dist[keep], next_km


def _idw(dst: np.ndarray, dist_km: np.ndarray, n: int, min_distance_km: float,
         next_km: np.ndarray | None = None) -> np.ndarray:
    """Inverse-distance weights normalised over each target's neighbours; with ``next_km`` (continuous
    weighting) the kernel is :math:`1/d_{ij} - 1/d_{i,(k+1)}`, zero for a neighbour about to leave the k-set
    (a target whose neighbours all sit at that distance falls back to equal weights)."""
    inv = 1.0 / np.maximum(dist_km, min_distance_km)
    if next_km is not None:
        inv = np.maximum(inv - 1.0 / np.maximum(next_km[dst], min_distance_km), 0.0)
    return _normalise(dst, inv, n)


def _normalise(dst: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    """Kernel values ``w`` divided by their sum over each target's edges; equal weights where they sum to 0."""
    total = np.bincount(dst, weights=w, minlength=n)
    count = np.bincount(dst, minlength=n)
    flat = total[dst] <= 0
    return np.where(flat, 1.0 / np.maximum(count[dst], 1), w / np.where(flat, 1.0, total[dst]))


def _biweight(dst: np.ndarray, dist_km: np.ndarray, n: int, next_km: np.ndarray, radius: float,
              min_radius_km: float) -> np.ndarray:
    """Scale-adaptive biweight weights normalised over each target's neighbours: :math:`(1 - (d / R)^2)^2` with
    :math:`R = \\min(\\max(\\rho\\, d_1, R_{min}), d_{(k+1)})`, ``d_1`` the nearest neighbour's distance and
    :math:`d_{(k+1)}` the distance at which a neighbour leaves the k-set (``next_km``): continuous in the target's
    position, and not dominated by the nearest neighbour as ``1 / d`` is (equal weights fall back as in
    :func:`_idw`)."""
    d1 = np.full(n, np.inf)
    np.minimum.at(d1, dst, dist_km)
    r = np.minimum(np.maximum(radius * d1, min_radius_km), next_km)[dst]
    u = dist_km / np.maximum(r, 1e-9)
    return _normalise(dst, np.where(u < 1.0, (1.0 - u * u) ** 2, 0.0), n)


def _ndvi_knn(q_ndvi: np.ndarray, ref_ndvi: np.ndarray, k: int, exclude_self: bool):
    ok_ref = np.flatnonzero(np.isfinite(ref_ndvi))
    ok_q = np.flatnonzero(np.isfinite(q_ndvi))
    kk = min(k + (1 if exclude_self else 0), len(ok_ref))
    if kk == 0 or len(ok_q) == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0), np.full(len(q_ndvi), np.inf)
    kk = min(kk + 1, len(ok_ref))  # one more: the (k+1)-th NDVI distance, where continuous weights reach 0
    tree = _memo(("ndvi", _digest(ref_ndvi)), lambda: cKDTree(ref_ndvi[ok_ref, None]))
    d, j = tree.query(q_ndvi[ok_q, None], k=kk)
    d, j = d.reshape(len(ok_q), kk), j.reshape(len(ok_q), kk)
    src = ok_ref[j]
    dst = np.repeat(ok_q, kk).reshape(-1, kk)
    valid = np.ones_like(src, dtype=bool)
    if exclude_self:
        valid &= src != dst
    rank = np.cumsum(valid, axis=1)
    keep = valid & (rank <= k)
    nxt = valid & (rank == k + 1)
    next_d = np.where(nxt.any(axis=1), np.where(nxt, d, np.inf).min(axis=1), np.inf)
    next_full = np.full(len(q_ndvi), np.inf)
    next_full[ok_q] = next_d
    return src[keep].astype(np.int64), dst[keep].astype(np.int64), d[keep], next_full


def _assemble(parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], relations: tuple[str, ...],
              num_nodes: int, num_sources: int | None, node_k: np.ndarray | None) -> HeteroGraph:
    src = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    dst = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
    w = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0)
    et = np.concatenate([np.full(len(p[1]), p[0], np.int64) for p in parts]) if parts else np.zeros(0, np.int64)
    return HeteroGraph(
        edge_index=torch.from_numpy(np.stack([src, dst])).long(),
        edge_type=torch.from_numpy(et).long(),
        edge_weight=torch.from_numpy(w.astype(np.float32)),
        num_nodes=num_nodes, relations=relations, num_sources=num_sources, node_k=node_k,
    )


def _check(lonlat: np.ndarray, ndvi: np.ndarray | None, elevation: np.ndarray | None, relations) -> None:
    if lonlat.ndim != 2 or lonlat.shape[1] != 2:
        raise DataError(f"lonlat must be (N, 2) degrees, got shape {lonlat.shape}")
    if not np.isfinite(lonlat).all():
        raise DataError("lonlat holds NaN or infinite coordinates: drop or fix those samples first")
    if "ndvi" in relations and ndvi is None:
        raise DataError("the 'ndvi' relation needs an NDVI value per node (an image covariate or a covariate "
                        "column such as 'ndvi'); pass ndvi= or drop 'ndvi' from model.graph.relations")
    if "elevation" in relations and elevation is None:
        raise DataError("the 'elevation' relation needs an elevation (m) per node (the DEM patch or a covariate "
                        "column such as 'elevation'); pass elevation= or drop 'elevation' from model.graph.relations")


def _spatial_k(lonlat: np.ndarray, cfg: GraphConfig) -> np.ndarray:
    n = len(lonlat)
    k = np.full(n, cfg.k_spatial, dtype=np.int64)
    if cfg.spatial_k_mode == "adaptive" and n > cfg.hdbscan_min_cluster_size:
        from sklearn.cluster import HDBSCAN

        xy = np.radians(lonlat[:, ::-1])  # haversine metric wants (lat, lon) radians
        labels = HDBSCAN(min_cluster_size=cfg.hdbscan_min_cluster_size, metric="haversine", copy=True).fit(xy).labels_
        k[labels < 0] = cfg.adaptive_k
    return k


def label_edges(tgt_lonlat: np.ndarray, src_lonlat: np.ndarray, k: int, *, exclude_self: bool
                ) -> tuple[Tensor, Tensor]:
    """``(edge_index, dist_km)`` from each target's ``k`` nearest sources (degrees in; great-circle km), no
    distance cut: the neighbourhood of the scale-adaptive label features (``model.graph.label_k``)."""
    src, dst, dist = spatial_knn(np.asarray(tgt_lonlat, np.float64), np.asarray(src_lonlat, np.float64), k, np.inf,
                                 exclude_self)
    return (torch.from_numpy(np.stack([src, dst]).astype(np.int64)), torch.from_numpy(dist.astype(np.float32)))


def graph_label_edges(lonlat: np.ndarray, k: int, train_mask: np.ndarray | None) -> tuple[Tensor, Tensor]:
    """:func:`label_edges` of a whole graph: every node's ``k`` nearest training nodes (all nodes without
    ``train_mask``), never itself; indices are the graph's node indices."""
    lonlat = np.asarray(lonlat, np.float64)
    if train_mask is None:
        return label_edges(lonlat, lonlat, k, exclude_self=True)
    tr, ho = np.flatnonzero(train_mask), np.flatnonzero(~np.asarray(train_mask, bool))
    (ei_tr, d_tr), (ei_ho, d_ho) = (label_edges(lonlat[tr], lonlat[tr], k, exclude_self=True),
                                    label_edges(lonlat[ho], lonlat[tr], k, exclude_self=False))
    tr_t, ho_t = torch.from_numpy(tr), torch.from_numpy(ho)
    ei = torch.cat([torch.stack([tr_t[ei_tr[0]], tr_t[ei_tr[1]]]), torch.stack([tr_t[ei_ho[0]], ho_t[ei_ho[1]]])], 1)
    return ei, torch.cat([d_tr, d_ho])


def build_graph(
    lonlat: np.ndarray,
    cfg: GraphConfig,
    ndvi: np.ndarray | None = None,
    elevation: np.ndarray | None = None,
    train_mask: np.ndarray | None = None,
) -> HeteroGraph:
    """Build the heterogeneous graph over all samples (train, val and test share one node set, paper 3.1).

    With ``train_mask`` (what ``socmap train`` passes) the training nodes are linked among themselves (adaptive k
    from HDBSCAN over the training nodes only) and every other node is *attached* to them exactly as a map cell is
    (:func:`attach_edges`: in-edges from its k nearest training nodes, the attachment k rule, no out-edges). So a
    held-out node's transductive prediction is the map path's prediction of that location, and the training nodes'
    embeddings do not depend on the held-out nodes. Without it every node is linked to every other (k-NN over all).

    Args:
        lonlat: (N, 2) longitude, latitude in degrees (WGS84).
        cfg: relations, k, tau, distances (``model.graph``).
        ndvi: (N,) NDVI (unitless, about -0.2..1); needed for the ``ndvi`` relation.
        elevation: (N,) metres; needed for the ``elevation`` relation.
        train_mask: (N,) bool, the nodes that may send edges (the training split); None: all nodes.

    Returns:
        The graph; its ``node_k`` holds each node's spatial k (training nodes: HDBSCAN rule; held-out nodes: the
        attachment rule of :func:`attach_spatial_k`).
    """
    lonlat = np.asarray(lonlat, dtype=np.float64)
    relations = tuple(cfg.relations)
    _check(lonlat, ndvi, elevation, relations)
    n = len(lonlat)
    labels = None if cfg.label_k is None else graph_label_edges(lonlat, cfg.label_k, train_mask)
    if train_mask is None:
        k = _spatial_k(lonlat, cfg)
        parts = _relation_parts(lonlat, lonlat, ndvi, ndvi, elevation, elevation, k, cfg, exclude_self=True)
        return replace(_assemble(parts, relations, n, None, k), label_edges=labels)
    train_mask = np.asarray(train_mask, bool)
    if train_mask.shape != (n,) or not train_mask.any():
        raise DataError(f"train_mask must be ({n},) bool with at least one training node, got shape "
                        f"{train_mask.shape} with {int(train_mask.sum())} training nodes")
    tr, ho = np.flatnonzero(train_mask), np.flatnonzero(~train_mask)

    def sub(v: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
        return None if v is None else np.asarray(v, np.float64)[idx]

    k_tr = _spatial_k(lonlat[tr], cfg)
    inner = _relation_parts(lonlat[tr], lonlat[tr], sub(ndvi, tr), sub(ndvi, tr), sub(elevation, tr),
                            sub(elevation, tr), k_tr, cfg, exclude_self=True)
    held = attach_edges(lonlat[ho], lonlat[tr], cfg, sub(ndvi, ho), sub(ndvi, tr), sub(elevation, ho),
                        sub(elevation, tr), train_k=k_tr)
    parts = [(r, tr[s], tr[d], w) for r, s, d, w in inner]
    ei, et, ew = held.edge_index.numpy(), held.edge_type.numpy(), held.edge_weight.numpy().astype(np.float64)
    parts += [(r, tr[ei[0, et == r]], ho[ei[1, et == r]], ew[et == r]) for r in range(len(relations))]
    k = np.empty(n, np.int64)
    k[tr], k[ho] = k_tr, held.node_k
    return replace(_assemble(parts, relations, n, None, k), label_edges=labels)


def _relation_parts(tgt_lonlat, src_lonlat, tgt_ndvi, src_ndvi, tgt_z, src_z, k, cfg: GraphConfig, *,
                    exclude_self: bool) -> list:
    """``(relation index, src, dst, weight)`` per relation, edges from ``src_*`` nodes to ``tgt_*`` nodes."""
    s_src, s_dst, s_d, s_next = spatial_knn_next(tgt_lonlat, src_lonlat, k, cfg.max_distance_km,
                                                 exclude_self=exclude_self)
    continuous = cfg.weighting in ("continuous", "adaptive")
    if cfg.weighting == "adaptive":
        w_spatial = _biweight(s_dst, s_d, len(tgt_lonlat), s_next, cfg.label_radius, cfg.label_min_radius_km)
    else:
        w_spatial = _idw(s_dst, s_d, len(tgt_lonlat), cfg.min_distance_km, s_next if continuous else None)
    parts = []
    for r, name in enumerate(cfg.relations):
        if name == "spatial":
            parts.append((r, s_src, s_dst, w_spatial))
        elif name == "ndvi":
            src, dst, dv, dv_next = _ndvi_knn(np.asarray(tgt_ndvi, np.float64), np.asarray(src_ndvi, np.float64),
                                              cfg.k_ndvi, exclude_self=exclude_self)
            w = np.exp(-dv / cfg.tau_ndvi)
            if continuous:
                w = np.maximum(w - np.exp(-dv_next[dst] / cfg.tau_ndvi), 0.0)
            parts.append((r, src, dst, w))
        elif name == "elevation":
            parts.append((r, *_elevation_edges(s_src, s_dst, s_d, np.asarray(src_z, np.float64),
                                               np.asarray(tgt_z, np.float64), cfg,
                                               w_spatial if continuous else None)))
    return parts


def _elevation_edges(src, dst, dist_km, z_src, z_dst, cfg: GraphConfig, w_spatial: np.ndarray | None = None):
    """Slope-similarity weights on the spatial edges; with ``w_spatial`` (continuous weighting) times the spatial
    weight, so an elevation edge fades out with its spatial edge."""
    dz = np.abs(z_dst[dst] - z_src[src])
    keep = np.isfinite(dz)
    grad = dz[keep] / np.maximum(dist_km[keep], cfg.min_distance_km)  # m/km
    w = np.exp(-grad / cfg.slope_scale)
    if w_spatial is not None:
        w = w * w_spatial[keep]
    return src[keep], dst[keep], w


def _core_distance_km(query_lonlat: np.ndarray, tree: cKDTree, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Distance (km) to the ``m``-th nearest tree point, and the index of the nearest, per query point."""
    km, idx = knn_km(tree, query_lonlat, m)
    return km[:, -1], idx[:, 0]


def attach_spatial_k(
    new_lonlat: np.ndarray,
    train_lonlat: np.ndarray,
    cfg: GraphConfig,
    train_k: np.ndarray | None = None,
) -> np.ndarray:
    """Spatial neighbours of each new point by the training graph's adaptive-k rule (module docstring).

    Args:
        new_lonlat: (Q, 2) degrees.
        train_lonlat: (N, 2) degrees, the training graph's nodes (in ``build_graph`` order).
        cfg: the graph config the training graph was built with.
        train_k: (N,) the training graph's ``node_k``. ``None`` re-runs HDBSCAN on ``train_lonlat`` (the same
            labels as :func:`build_graph`, at the cost of a clustering per call: pass it when attaching often).

    Returns:
        (Q,) int64: ``k_spatial`` or ``adaptive_k`` per new point.
    """
    new_lonlat = np.asarray(new_lonlat, dtype=np.float64)
    train_lonlat = np.asarray(train_lonlat, dtype=np.float64)
    n, m = len(train_lonlat), cfg.hdbscan_min_cluster_size
    out = np.full(len(new_lonlat), cfg.k_spatial, dtype=np.int64)
    if cfg.spatial_k_mode != "adaptive" or cfg.adaptive_k == cfg.k_spatial or n <= m or len(new_lonlat) == 0:
        return out
    train_k = _spatial_k(train_lonlat, cfg) if train_k is None else np.asarray(train_k, dtype=np.int64)
    if train_k.shape != (n,) or not np.isin(train_k, (cfg.k_spatial, cfg.adaptive_k)).all():
        raise DataError(f"train_k must hold {n} values, each k_spatial ({cfg.k_spatial}) or adaptive_k "
                        f"({cfg.adaptive_k}): pass the training graph's node_k built with this graph config")
    noise = train_k == cfg.adaptive_k
    tree = _unit_tree(train_lonlat)

    def largest_clustered_core() -> float:
        core_train, _ = _core_distance_km(train_lonlat, tree, m)  # counts the node itself, as HDBSCAN does
        return float(core_train[~noise].max(initial=-np.inf))

    threshold = _memo(("core", _digest(train_lonlat, train_k), m), largest_clustered_core)
    core_new, nearest = _core_distance_km(new_lonlat, tree, m)
    out[noise[nearest] | (core_new > threshold)] = cfg.adaptive_k
    return out


def attach_edges(
    new_lonlat: np.ndarray,
    train_lonlat: np.ndarray,
    cfg: GraphConfig,
    new_ndvi: np.ndarray | None = None,
    train_ndvi: np.ndarray | None = None,
    new_elevation: np.ndarray | None = None,
    train_elevation: np.ndarray | None = None,
    k_spatial: int | None = None,
    *,
    train_k: np.ndarray | None = None,
) -> HeteroGraph:
    """In-edges from the training graph's nodes to new points, by the same rules as :func:`build_graph`.

    Sources index the training nodes, targets index the new points; no edge leaves a new point, so the training
    nodes' embeddings do not change (paper 3.1: a local subgraph of the target point's nearest neighbours).
    Each new point's spatial k follows the training graph's adaptive-k rule (:func:`attach_spatial_k`, from
    ``train_k`` = the training graph's ``node_k``; ``None`` re-derives it by HDBSCAN) unless ``k_spatial`` forces
    one k for all. The result's ``node_k`` holds the k used per new point.
    """
    new_lonlat = np.asarray(new_lonlat, dtype=np.float64)
    train_lonlat = np.asarray(train_lonlat, dtype=np.float64)
    relations = tuple(cfg.relations)
    _check(new_lonlat, new_ndvi, new_elevation, relations)
    _check(train_lonlat, train_ndvi, train_elevation, relations)
    if k_spatial is None:
        k = attach_spatial_k(new_lonlat, train_lonlat, cfg, train_k)
    else:
        k = np.full(len(new_lonlat), k_spatial, dtype=np.int64)
    parts = _relation_parts(new_lonlat, train_lonlat, new_ndvi, train_ndvi, new_elevation, train_elevation, k, cfg,
                            exclude_self=False)
    labels = None if cfg.label_k is None else label_edges(new_lonlat, train_lonlat, cfg.label_k, exclude_self=False)
    return replace(_assemble(parts, relations, len(new_lonlat), len(train_lonlat), k), label_edges=labels)


def node_covariates(
    samples: object,
    ndvi_column: str | None = "ndvi",
    elevation_column: str | None = "elevation",
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """NDVI and elevation per node from a samples table (``socmap prepare``'s covariate columns).

    Args:
        samples: a pandas DataFrame.
        ndvi_column: column with NDVI (unitless); ``None`` skips it.
        elevation_column: column with elevation in metres; ``None`` skips it.
    """
    cols: Sequence[str] = list(samples.columns)  # type: ignore[attr-defined]
    out: list[np.ndarray | None] = []
    for col in (ndvi_column, elevation_column):
        if col is None:
            out.append(None)
            continue
        if col not in cols:
            raise DataError(f"samples table has no column {col!r} (columns: {', '.join(cols)}); add that "
                            "covariate layer to the pipeline or name another column")
        out.append(samples[col].to_numpy(dtype=np.float64))  # type: ignore[index]
    return out[0], out[1]
