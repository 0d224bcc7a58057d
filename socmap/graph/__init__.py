"""socmap.graph: the heterogeneous sample graph, local Moran's I (paper 3.1, 3.5): pure structure, no nn.Module."""

from socmap.graph.moran import local_morans_i, spatial_local_morans_i
from socmap.graph.relations import (
    RELATIONS,
    HeteroGraph,
    attach_edges,
    attach_spatial_k,
    build_graph,
    edge_length_km,
    node_covariates,
    spatial_knn,
)

__all__ = ["RELATIONS", "HeteroGraph", "attach_edges", "attach_spatial_k", "build_graph", "edge_length_km",
           "local_morans_i", "node_covariates", "spatial_knn", "spatial_local_morans_i"]
