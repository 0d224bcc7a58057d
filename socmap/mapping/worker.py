"""Dask pieces of the mapping job: the per-worker context plugin and the tile task.

Imported only when a distributed cluster runs (it imports ``distributed``). The bundle, the area-of-applicability
reference and, for imagery pipelines, the image encoder are loaded once per worker in
:meth:`ContextPlugin.setup`, not once per task; a task finds them on its worker by the plugin's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

from socmap.config import PipelineConfig
from socmap.mapping.runlog import portable
from socmap.mapping.tile_job import MapContext, TileResult, load_context, predict_tile
from socmap.mapping.tiles import Tile

__all__ = ["PLUGIN_NAME", "ContextPlugin", "worker_tile"]

PLUGIN_NAME = "socmap-map-context"


class ContextPlugin(WorkerPlugin):
    """Loads the bundle once per worker and keeps the :class:`MapContext` for the tile tasks."""

    name = PLUGIN_NAME

    def __init__(self, cfg: PipelineConfig, model: Path | str, threads: int = 1) -> None:
        self.cfg, self.model, self.threads = cfg, str(model), int(threads)
        self.ctx: MapContext | None = None

    def setup(self, worker: Any) -> None:
        import torch

        from socmap.inference import load_bundle

        torch.set_num_threads(self.threads)
        device = "cuda" if torch.cuda.is_available() else "cpu"  # a LocalCUDACluster worker sees its one GPU
        self.ctx = load_context(self.cfg, load_bundle(Path(self.model), self.cfg, device=device), device=device)
        worker.socmap_bundle_loads = getattr(worker, "socmap_bundle_loads", 0) + 1  # once per worker (a test checks)

    def teardown(self, worker: Any) -> None:
        self.ctx = None


def worker_tile(tile: Tile, year: int, root: str, mode: str, tags: dict[str, str]) -> TileResult:
    """A tile task on a Dask worker: predict the tile with the worker's context and write its COGs. An exception
    goes back as :func:`socmap.mapping.runlog.portable` of it (its kind and its traceback survive the trip)."""
    ctx = getattr(get_worker().plugins[PLUGIN_NAME], "ctx", None)
    if ctx is None:  # pragma: no cover - setup failed; distributed reports the setup error itself
        raise RuntimeError("the socmap context plugin did not load on this worker")
    try:
        return predict_tile(ctx, tile, year, Path(root), mode=mode, tags=tags)
    except Exception as exc:
        err = portable(exc)
    raise err  # outside the except block: no chain back to the original
