"""Scale-adaptive label features: the neighbours' labels averaged with a kernel whose radius follows the gap.

The label trick's features (:func:`socmap.model.sptgnn.label_features`) average the labels of a node's k spatial
neighbours. A map cell far from every site takes its k nearest, and which k those are changes along lines between
sites: the map steps there (facets), more than a covariate model's map does. Here each target averages its
``label_k`` nearest training sites with a biweight kernel

.. math::
    w_{ij} = \\big(1 - (d_{ij} / R_i)^2\\big)^2 \\text{ for } d_{ij} < R_i, \\qquad
    R_i = \\min\\big(\\max(\\rho\\, d_{i,1},\\ R_{min}),\\ d_{i,max}\\big)

with :math:`d_{i,1}` the distance to the nearest *observed* site (labels hidden in a training step do not
count), :math:`\\rho` ``label_radius``, :math:`R_{min}` ``label_min_radius_km`` and :math:`d_{i,max}` the farthest
of the target's set. Every term is continuous in the target's position, and a site's weight is 0 before it can
leave the set, so the features move continuously as a cell moves. Near a cluster of sites R is a few km and the
features are local; 300 km from the nearest site R spans the whole set and the features average many sites.

The three features keep :func:`~socmap.model.sptgnn.label_features`' meaning under continuous weighting: the
weighted mean of the observed labels, the observed share of the weight, and log(1 + the weighted mean distance,
km, of the observed sites).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["adaptive_label_features"]


def adaptive_label_features(label_src: Tensor, edge_index: Tensor, dist_km: Tensor, num_targets: int, *,
                            radius: float, min_radius_km: float) -> Tensor:
    """(num_targets, 3) features of the module docstring from ``label_src`` (|V_s|,) (NaN: hidden or unknown) over
    ``edge_index`` (2, E) source -> target edges of lengths ``dist_km`` (E,) km. Targets with no observed
    neighbour get zeros."""
    src, dst = edge_index[0], edge_index[1]
    y = label_src[src]
    d = dist_km.to(y.dtype)
    obs = torch.isfinite(y)
    inf = torch.full((num_targets,), float("inf"), dtype=y.dtype, device=y.device)
    nearest = inf.scatter_reduce(0, dst, torch.where(obs, d, torch.full_like(d, float("inf"))), "amin")
    farthest = torch.zeros_like(inf).scatter_reduce(0, dst, d, "amax")
    r = torch.minimum((radius * nearest).clamp_min(min_radius_km), farthest)
    u = d / r[dst].clamp_min(1e-9)
    w = torch.where(u < 1.0, (1.0 - u * u) ** 2, torch.zeros_like(u))
    w_obs = torch.where(obs, w, torch.zeros_like(w))
    z = torch.zeros_like(inf)
    sw = z.index_add(0, dst, w_obs)
    mean = z.index_add(0, dst, torch.where(obs, y, torch.zeros_like(y)) * w_obs) / sw.clamp_min(1e-12)
    share = sw / z.index_add(0, dst, w).clamp_min(1e-12)
    mean_d = z.index_add(0, dst, w_obs * d) / sw.clamp_min(1e-12)
    return torch.stack([mean, share, torch.log1p(mean_d)], dim=1)
