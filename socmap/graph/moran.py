"""Local Moran's I of the training targets over the spatial relation: the target of the auxiliary head (paper 3.6).

Only training nodes take part (validation and test targets are masked, paper 3.1): the spatial edges whose both
ends are training nodes are kept and their weights row-standardised. With :math:`z = y - \\bar y` over the
:math:`n` training nodes,

.. math::
    I_i = (n - 1)\\, \\frac{z_i \\sum_j w_{ij} z_j}{\\sum_k z_k^2}, \\qquad \\sum_j w_{ij} = 1

which is ``esda.Moran_Local(y, w, transformation="r").Is`` (tests/graph/test_moran.py). A training node
without a training neighbour gets :math:`I_i = 0`; non-training nodes get NaN.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from socmap.graph.relations import HeteroGraph

__all__ = ["local_morans_i", "spatial_local_morans_i"]


def local_morans_i(
    values: np.ndarray,
    edge_index: np.ndarray | Tensor,
    edge_weight: np.ndarray | Tensor | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Local Moran's I per node.

    Args:
        values: (N,) the variable (e.g. log SOC).
        edge_index: (2, E) source j, target i (``w_ij`` is the weight of edge j -> i).
        edge_weight: (E,) non-negative weights (default 1).
        mask: (N,) bool, nodes that take part (default all); others get NaN.

    Returns:
        (N,) float64.
    """
    y = np.asarray(values, dtype=np.float64)
    n_all = len(y)
    ei = np.asarray(edge_index.cpu() if isinstance(edge_index, Tensor) else edge_index)
    w = (np.ones(ei.shape[1]) if edge_weight is None else
         np.asarray(edge_weight.cpu() if isinstance(edge_weight, Tensor) else edge_weight, dtype=np.float64))
    m = np.ones(n_all, bool) if mask is None else np.asarray(mask, bool)
    src, dst = ei[0], ei[1]
    keep = m[src] & m[dst] & (src != dst)
    src, dst, w = src[keep], dst[keep], w[keep]
    row = np.bincount(dst, weights=w, minlength=n_all)
    w = np.divide(w, row[dst], out=np.zeros_like(w), where=row[dst] > 0)
    out = np.full(n_all, np.nan)
    n = int(m.sum())
    if n < 2:
        return out
    z = np.where(m, y - y[m].mean(), 0.0)
    lag = np.bincount(dst, weights=w * z[src], minlength=n_all)
    den = float((z[m] ** 2).sum())
    out[m] = (n - 1) * z[m] * lag[m] / den if den > 0 else 0.0
    return out


def spatial_local_morans_i(graph: HeteroGraph, values: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
    """Local Moran's I of ``values`` over the graph's ``spatial`` relation, training nodes only."""
    ei, w = graph.relation("spatial")
    return local_morans_i(values, ei, w, train_mask)
