"""Wall-to-wall maps: grid tiles, the per-tile pipeline, the Dask job and the writers (``socmap predict``:
:func:`socmap.mapping.predict.run`)."""

from socmap.mapping.aoa import AOAReference
from socmap.mapping.catalog import write_collection
from socmap.mapping.predict import PredictResult, TilesFailedError, check_year
from socmap.mapping.tile_job import MapContext, TileResult, load_context, predict_tile, tabular_features
from socmap.mapping.tiles import Tile, cell_centres, cell_lonlat, grid_tiles, select_tiles
from socmap.mapping.writers import LAYERS, LayerSpec

__all__ = [
    "LAYERS",
    "AOAReference",
    "LayerSpec",
    "MapContext",
    "PredictResult",
    "Tile",
    "TileResult",
    "TilesFailedError",
    "cell_centres",
    "cell_lonlat",
    "check_year",
    "grid_tiles",
    "load_context",
    "predict_tile",
    "select_tiles",
    "tabular_features",
    "write_collection",
]
