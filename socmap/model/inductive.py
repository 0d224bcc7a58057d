"""Predict unseen locations from a trained model and its training graph, at O(layers x k) per new point.

A new point is attached with *in-edges only* (:func:`socmap.graph.relations.attach_edges`): its k nearest
training-graph nodes per relation send messages to it, it sends none. So no training node's embedding changes, and
the per-layer embeddings :math:`h^{(0)} \\dots h^{(L-1)}` of the training-graph nodes can be computed once
(:func:`cache_layers`, in eval mode) and kept with the model. A new point's layer :math:`\\ell` output needs only
its own :math:`h^{(\\ell-1)}` and its neighbours' cached :math:`h^{(\\ell-1)}`:

.. math::
    h^{(\\ell)}_q = \\mathrm{LN}\\big(\\mathrm{Skip}(h^{(\\ell-1)}_q) +
    \\mathrm{RGAT}_\\ell(h^{(\\ell-1)}_q, \\{h^{(\\ell-1)}_j : j \\xrightarrow{r} q\\})\\big)

which is what a full forward pass over the graph with the new node added (same edges) computes for it
(tests/model/test_inductive.py). New points are independent of each other, so any number can be done in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from socmap.config import GraphConfig
from socmap.graph.relations import HeteroGraph, attach_edges
from socmap.model.sptgnn import NodeInputs, SpTGNN, SpTGNNOutput

__all__ = ["LayerCache", "attach_and_predict", "cache_layers", "cached_forward", "local_sources"]


@dataclass
class LayerCache:
    """Per-layer embeddings of the training graph's nodes and what attachment needs to find neighbours.

    ``hidden[l]`` is :math:`h^{(l)}` (|V|, F_l) for l = 0..L-1 (the inputs of each RGAT layer); ``lonlat``
    (|V|, 2) degrees, ``ndvi`` and ``elevation`` (|V|,) or None.
    """

    hidden: list[Tensor]
    lonlat: np.ndarray
    ndvi: np.ndarray | None = None
    elevation: np.ndarray | None = None
    label: Tensor | None = None
    """(|V|,) observed targets offered to new points by the label trick (NaN = hidden); None when off."""
    node_k: np.ndarray | None = None
    """(|V|,) the training graph's spatial k per node (``HeteroGraph.node_k``): new points are attached by the same
    adaptive-k rule (:func:`socmap.graph.relations.attach_spatial_k`); :func:`attach_and_predict` requires it."""

    def state_dict(self) -> dict[str, object]:
        return {"hidden": [h.cpu() for h in self.hidden], "lonlat": self.lonlat, "ndvi": self.ndvi,
                "elevation": self.elevation, "label": None if self.label is None else self.label.cpu(),
                "node_k": self.node_k}

    @classmethod
    def from_state_dict(cls, state: dict[str, object]) -> LayerCache:
        return cls(**state)  # type: ignore[arg-type]


@torch.no_grad()
def cache_layers(model: SpTGNN, inputs: NodeInputs, graph: HeteroGraph, ndvi: np.ndarray | None = None,
                 elevation: np.ndarray | None = None) -> LayerCache:
    """One eval-mode pass over the training graph, keeping the input of every RGAT layer."""
    was_training = model.training
    model.eval()
    try:
        out = model(inputs, graph, return_hidden=True)
    finally:
        model.train(was_training)
    assert out.hidden is not None
    return LayerCache(hidden=out.hidden[:-1], lonlat=inputs.lonlat.detach().cpu().numpy().astype(np.float64),
                      ndvi=ndvi, elevation=elevation, label=None if inputs.label is None else inputs.label.cpu(),
                      node_k=graph.node_k)


def local_sources(attach: HeteroGraph) -> tuple[Tensor, Tensor]:
    """``(used, edge_index)``: the cached nodes that are some new point's neighbour, and the attachment edges with
    sources relabelled ``0..len(used)-1`` (only those nodes' cached embeddings take part). Computed once per
    attachment and shared by every member, so the layers' CSR layout is built once, not once per member."""
    used, src_local = torch.unique(attach.edge_index[0], return_inverse=True)
    return used, torch.stack([src_local, attach.edge_index[1]])


@torch.no_grad()
def cached_forward(model: SpTGNN, cache: LayerCache, new_inputs: NodeInputs, attach: HeteroGraph,
                   local: tuple[Tensor, Tensor] | None = None) -> SpTGNNOutput:
    """Outputs for new nodes from their attachment edges (sources = cached nodes, targets = new nodes).

    Costs one per-node encoding of the new nodes and, per layer, a relation transform of the neighbours' cached
    embeddings and an attention over their k in-edges: O(layers x k) per new point. ``local``:
    :func:`local_sources` of ``attach`` when several members share one attachment.
    """
    model.check_graph(attach)
    if len(model.layers) != len(cache.hidden):
        raise ValueError(f"cache holds {len(cache.hidden)} layers, the model has {len(model.layers)}")
    was_training = model.training
    model.eval()
    try:
        label_feats = None
        if model.label_input:
            if cache.label is None:
                raise ValueError("model.label_input is on but the cache holds no labels")
            if model.cfg.graph.label_k is not None:
                label_feats = model.kernel_label_features(cache.label.float(), attach)
            else:
                ei_s, w_s = attach.relation("spatial")
                src_lonlat = torch.as_tensor(cache.lonlat, dtype=new_inputs.lonlat.dtype, device=ei_s.device)
                label_feats = model.label_features(cache.label.to(ei_s.device).float(), ei_s, w_s, src_lonlat,
                                                   new_inputs.lonlat)
        h, stats = model.encode(new_inputs, label_feats)
        used, ei = local_sources(attach) if local is None else local
        for layer, h_src_all in zip(model.layers, cache.hidden, strict=False):
            h_src = h_src_all.to(h.device)[used.to(h_src_all.device)]
            h = layer((h_src, h), ei, attach.edge_type, attach.edge_weight)
        soc, moran, logvar = model.readout(h)
    finally:
        model.train(was_training)
    return SpTGNNOutput(soc, moran, logvar, stats)


def attach_and_predict(models: Sequence[SpTGNN], caches: Sequence[LayerCache], new_inputs: NodeInputs,
                       cfg: GraphConfig, new_ndvi: np.ndarray | None = None, new_elevation: np.ndarray | None = None,
                       *, new_lonlat: np.ndarray | None = None) -> tuple[list[SpTGNNOutput], HeteroGraph]:
    """Attach new points to the cached training nodes and predict them with every member: THE inductive path
    (``Bundle.predict_new``, hence ``socmap predict``, and the tests use it).

    The attachment is built once for all members (they share the training graph) by
    :func:`socmap.graph.relations.attach_edges` with the training graph's per-node k (``cache.node_k``), the same
    function ``build_graph`` attaches validation and test nodes with. ``cfg`` must be the graph config the training
    graph was built with; ``new_lonlat`` (float64 degrees) defaults to ``new_inputs.lonlat``.
    """
    if len(models) != len(caches) or not models:
        raise ValueError(f"need one cache per model, got {len(models)} models and {len(caches)} caches")
    cache = caches[0]
    if cache.node_k is None:
        raise ValueError("the layer cache has no node_k (the training graph's per-node k): build it with "
                         "cache_layers from a graph made by build_graph")
    if new_lonlat is None:
        new_lonlat = new_inputs.lonlat.detach().cpu().numpy().astype(np.float64)
    attach = attach_edges(new_lonlat, cache.lonlat, cfg, new_ndvi=new_ndvi, train_ndvi=cache.ndvi,
                          new_elevation=new_elevation, train_elevation=cache.elevation, train_k=cache.node_k)
    attach = attach.to(new_inputs.lonlat.device)
    local = local_sources(attach)
    return [cached_forward(m, c, new_inputs, attach, local) for m, c in zip(models, caches, strict=True)], attach
