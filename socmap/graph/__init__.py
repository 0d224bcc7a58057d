"""socmap.graph: the heterogeneous sample graph, local Moran's I and inductive attachment (paper 3.1, 3.5)."""

from socmap.graph.inductive import LayerCache, attach_and_predict, cache_layers, cached_forward
from socmap.graph.moran import local_morans_i, spatial_local_morans_i
from socmap.graph.relations import (
    RELATIONS,
    HeteroGraph,
    attach_edges,
    build_graph,
    lonlat_to_unit,
    node_covariates,
    spatial_knn,
)

__all__ = [
    "RELATIONS",
    "HeteroGraph",
    "LayerCache",
    "attach_and_predict",
    "cache_layers",
    "cached_forward",
    "attach_edges",
    "build_graph",
    "local_morans_i",
    "lonlat_to_unit",
    "node_covariates",
    "spatial_knn",
    "spatial_local_morans_i",
]
