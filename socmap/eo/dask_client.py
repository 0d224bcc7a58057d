"""The Dask client the stages run on (extract, tune, predict): an existing scheduler, a local in-process scheduler,
or a LocalCluster.

``scheduler`` (from ``--scheduler`` or ``DASK_SCHEDULER_ADDRESS``):

* an address (``tcp://host:8786``): connect to that cluster (its workers must be able to reach the imagery);
* ``"threads"`` or ``"synchronous"``: no distributed cluster, dask's local scheduler in this process (tests,
  tiny runs; no process start-up cost);
* ``None``: a ``distributed.LocalCluster`` (``dask_cuda.LocalCUDACluster`` where torch sees a GPU) with
  ``workers`` processes, closed again on exit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from socmap.errors import EOError

__all__ = ["LOCAL_SCHEDULERS", "clear_gdal_http_cache", "dask_client", "gdal_options", "has_cuda"]

LOCAL_SCHEDULERS = ("threads", "synchronous", "sync")


def gdal_options(timeout_s: float, retries: int) -> dict[str, Any]:
    """GDAL settings for reading COGs over HTTP: retry transient HTTP errors (429/5xx) ``retries`` times with
    backoff, time out a stalled request after ``timeout_s``, do not list remote folders, cache headers."""
    return {
        "GDAL_HTTP_MAX_RETRY": str(int(retries)),
        "GDAL_HTTP_RETRY_DELAY": "0.5",
        "GDAL_HTTP_TIMEOUT": str(int(max(1, round(timeout_s)))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(int(max(1, round(min(timeout_s, 30))))),
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.jp2",
        "GDAL_HTTP_MULTIRANGE": "YES",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "VSI_CACHE": "TRUE",
    }


def clear_gdal_http_cache() -> None:
    """Forget what GDAL's /vsicurl/ cached in this process (headers, blocks and failed requests), so a retry asks
    the server again instead of replaying a cached 503. Best effort: a no-op where libgdal cannot be found."""
    import ctypes
    import glob

    import rasterio

    libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(rasterio.__file__)), "rasterio.libs", "libgdal*"))
    for name in [*libs, "libgdal.so"]:
        try:
            ctypes.CDLL(name).VSICurlClearCache()
            return
        except (OSError, AttributeError):
            continue


def _quiet_warnings() -> None:
    """Silence rasterio's NotGeoreferencedWarning, which odc-stac's DEM reprojection emits harmlessly."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
    warnings.filterwarnings("ignore", message="All-NaN slice", category=RuntimeWarning)  # all-cloudy pixels
    warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)


def has_cuda() -> bool:
    """Whether torch sees a CUDA device (False where torch is not installed)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@contextmanager
def dask_client(scheduler: str | None, *, workers: int | None = None, gdal: dict[str, Any] | None = None,
                threads_per_worker: int = 2) -> Iterator[Any]:
    """Yield a ``distributed.Client`` (or None for a local scheduler) with GDAL options installed everywhere.

    ``threads_per_worker`` applies to the LocalCluster this starts (extraction waits on I/O: 2; mapping runs torch
    in each worker: 1).
    """
    import dask
    import odc.stac

    gdal = gdal or {}
    _quiet_warnings()
    if scheduler in LOCAL_SCHEDULERS:
        odc.stac.configure_rio(cloud_defaults=False, **gdal)
        with dask.config.set(scheduler="sync" if scheduler != "threads" else "threads"):
            yield None
        return

    from distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except Exception as exc:
            raise EOError(f"cannot connect to the Dask scheduler {scheduler}: {type(exc).__name__}: {exc}; "
                          "check --scheduler / DASK_SCHEDULER_ADDRESS") from None
    else:
        n = workers or max(1, (os.cpu_count() or 2) // 2)
        if has_cuda():
            from dask_cuda import LocalCUDACluster

            cluster = LocalCUDACluster(dashboard_address=":0", silence_logs=40)
        else:
            cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                                   dashboard_address=":0", silence_logs=40)
        client = Client(cluster)
    try:
        odc.stac.configure_rio(cloud_defaults=False, client=client, **gdal)
        client.run(_quiet_warnings)
        odc.stac.configure_rio(cloud_defaults=False, **gdal)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
