"""A map run's log and what a tile's exception means for the run: a failed tile, or the end of the run.

Only source failures (:func:`socmap.io.is_source_failure`: HTTP errors, time-outs, unreadable or missing remote
files, GDAL read errors, a lost worker) make a failed tile, recorded for a later re-run (exit 3). Anything else
raised inside a tile would fail the same way on every re-run, so it stops the run at once: bad input the user can
fix (a :class:`SocmapError`) keeps its one-line message and exit 2; any other exception is a bug in socmap and ends
with exit 1 (:class:`BugInTileError`). Either way the full traceback goes to the run's log,
``VERSION/logs/predict-<UTC start>.log`` (:data:`socmap.io.MAP_LOG_DIR`), and the one line names that file.
Tiles finished before the stop are kept.

On a Dask cluster the tile task hands back :func:`portable` of its exception: ``distributed`` pickles an exception
with its whole ``__context__`` chain, and where one link does not unpickle (rasterio's GDAL errors do not) it sends
a bare ``Exception(repr)`` instead, which would hide a source failure's type. The portable copy has no chain, keeps
the kind (output-disk ``OSError``, :class:`SourceError`, the same type for anything else) and carries the worker's
full traceback as text (``remote_traceback``) for the log.
"""

from __future__ import annotations

import pickle
import traceback
from pathlib import Path

from socmap.config import redact
from socmap.errors import SocmapError, SourceError, short_error
from socmap.io import DISK_ERRNOS, MAP_LOG_DIR, is_source_failure

__all__ = ["BugInTileError", "RunLog", "portable", "stop_error"]


class BugInTileError(SocmapError):
    """An exception that is neither a source failure nor bad input stopped the run: a bug. The CLI prints the one
    line (which names the log holding the traceback) and exits 1."""

    exit_code = 1


class RunLog:
    """Append-only text log of one run, ``root/logs/predict-<started>.log`` (lines start with a UTC time; every
    line is redacted, :func:`socmap.config.redact`). A log is a record, not a product: it is appended to in place,
    so a killed run's log keeps what happened up to the kill."""

    def __init__(self, root: Path, started: str) -> None:
        stamp = started.replace("-", "").replace(":", "")  # 2026-12-05T12:00:00Z -> 20261205T120000Z
        self.path = Path(root) / MAP_LOG_DIR / f"predict-{stamp}.log"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, text: str) -> None:
        from datetime import UTC, datetime

        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(f"{now} {ln}\n" for ln in redact(text).rstrip("\n").splitlines()))


def stop_error(tile_id: str, exc: BaseException, log: RunLog) -> SocmapError | None:
    """None when ``exc`` (raised while mapping ``tile_id``) is a source failure: the caller records a failed tile.
    Otherwise write its traceback to ``log`` and return the error that ends the run (raise it ``from exc``)."""
    if is_source_failure(exc):
        return None
    tb = getattr(exc, "remote_traceback", None) or "".join(traceback.format_exception(exc))
    log.write(f"tile {tile_id}: the run stopped on {type(exc).__name__} (not a source failure)\n{tb}")
    keep = "tiles finished before it are kept"
    if isinstance(exc, SocmapError):
        msg = " ".join(str(exc).split())
        return SocmapError(f"{msg} (tile {tile_id}; the run stopped, {keep}; traceback in {log.path})")
    return BugInTileError(f"a bug stopped the run at tile {tile_id}: {short_error(exc)}; the full traceback is in "
                          f"{log.path}; {keep}; a re-run fails the same way until it is fixed: report it with the log")


def portable(exc: BaseException) -> BaseException:
    """A copy of ``exc`` that crosses a process boundary intact (no exception chain), of the same kind for
    :func:`stop_error` and the disk check, with the full traceback as text in ``remote_traceback``. Raise it
    outside the ``except`` block, so Python does not chain the original to it again."""
    new: BaseException
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        new = OSError(exc.errno, exc.strerror, exc.filename)
    elif is_source_failure(exc):
        new = SourceError(str(exc) if isinstance(exc, SocmapError) else short_error(exc))
    else:
        try:
            new = type(exc)(*exc.args)
            pickle.loads(pickle.dumps(new))
        except Exception:  # a type that cannot be rebuilt from its args: keep its name in the message
            new = SocmapError(str(exc)) if isinstance(exc, SocmapError) else RuntimeError(short_error(exc))
    new.remote_traceback = "".join(traceback.format_exception(exc))  # type: ignore[attr-defined]
    return new
