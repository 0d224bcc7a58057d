"""Errors that the CLI turns into a one-line message and exit code 2.

Every error a user can cause with bad input (a wrong key in a YAML, a missing column, an unreachable STAC
endpoint) is a :class:`SocmapError`. Its message names the file, key or value at fault and, where one exists,
the fix. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "EOError", "ModelError", "SocmapError", "short_error"]


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


def short_error(exc: BaseException | None) -> str:
    """An exception as one short line (type and the first 300 characters of its message), for error texts and
    failure records that must stay one line whatever a library raised."""
    if exc is None:
        return "unknown error"
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg[:300]}" if msg else type(exc).__name__
