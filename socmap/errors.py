"""Errors that the CLI turns into a one-line message and exit code 2.

Every error a user can cause with bad input (a wrong key in a YAML, a missing column, an unreachable STAC
endpoint) is a :class:`SocmapError`. Its message names the file, key or value at fault and, where one exists,
the fix. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "EOError", "ModelError", "SocmapError", "SourceError", "short_error"]


class SocmapError(Exception):
    """Bad input that the user can fix; the CLI prints ``socmap: error: <message>`` and exits 2."""


class ConfigError(SocmapError):
    """A pipeline, grid or mapping YAML that does not validate."""


class DataError(SocmapError):
    """A soil table, raster or intermediate file that cannot be used."""


class EOError(SocmapError):
    """A STAC endpoint, collection or asset that cannot be used."""


class ModelError(SocmapError):
    """A model bundle, checkpoint or embedding file that cannot be used."""


class SourceError(EOError, DataError):
    """A data source that did not answer after its retries: an HTTP error, a time-out, a missing or unreadable
    remote file, a GDAL read error (the closed list is :func:`socmap.io.source_errors`).

    Unlike other bad input it may go away by itself, so ``socmap predict`` records the tile as failed (exit 3,
    run again later) instead of stopping the run. It is an :class:`EOError` (STAC search, imagery) and a
    :class:`DataError` (covariate rasters) so that callers catching either still catch it.
    """


def short_error(exc: BaseException | None) -> str:
    """An exception as one short line (type and the first 300 characters of its message), for error texts and
    failure records that must stay one line whatever a library raised."""
    if exc is None:
        return "unknown error"
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg[:300]}" if msg else type(exc).__name__
