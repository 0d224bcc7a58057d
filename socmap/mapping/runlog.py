"""A map run's log and what a tile's exception means for the run: a failed tile, or the end of the run.

Only source failures (:func:`socmap.io.is_source_failure`: HTTP errors, time-outs, unreadable or missing remote
files, GDAL read errors, a lost worker) make a failed tile, recorded for a later re-run (exit 3). Anything else
raised inside a tile would fail the same way on every re-run, so it stops the run at once: bad input the user can
fix (a :class:`SocmapError`) keeps its one-line message and exit 2; any other exception is a bug in socmap and ends
with exit 1 (:class:`BugInTileError`). Either way the full traceback goes to the run's log,
``VERSION/logs/predict-<UTC start>.log`` (:data:`socmap.io.MAP_LOG_DIR`), and the one line names that file.
Tiles finished before the stop are kept.

On a Dask cluster the exception comes back from the worker with its remote traceback (``distributed`` ships it
with tblib), so the log shows the frames inside the tile either way.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from socmap.config import redact
from socmap.errors import SocmapError, short_error
from socmap.io import MAP_LOG_DIR, is_source_failure

__all__ = ["BugInTileError", "RunLog", "stop_error"]


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
    tb = "".join(traceback.format_exception(exc))
    log.write(f"tile {tile_id}: the run stopped on {type(exc).__name__} (not a source failure)\n{tb}")
    keep = "tiles finished before it are kept"
    if isinstance(exc, SocmapError):
        msg = " ".join(str(exc).split())
        return SocmapError(f"{msg} (tile {tile_id}; the run stopped, {keep}; traceback in {log.path})")
    return BugInTileError(f"a bug stopped the run at tile {tile_id}: {short_error(exc)}; the full traceback is in "
                          f"{log.path}; {keep}; a re-run fails the same way until it is fixed: report it with the log")
