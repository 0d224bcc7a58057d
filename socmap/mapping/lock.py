"""One writer per map version folder: the lock ``socmap predict`` holds on ``OUT/REGION/YEAR/VERSION/``.

A cron refresh that overlaps a manual re-run would otherwise write the same tiles, zarr store and records from two
processes. The lock is a small JSON file, :data:`socmap.io.MAP_LOCK` in the version folder, naming its holder
(host, pid, UTC start time, boot id and the process's kernel start tick). It is created atomically: the JSON is
written to a private temporary file, then hard-linked to the lock name (``os.link`` fails if the name exists, and a
reader never sees a half-written lock); where the file system has no hard links, ``O_CREAT | O_EXCL``.

A lock left by a process that died (SIGKILL, a lost node) is *stale*. On the holder's own host that is decided
for sure: the pid is gone, the machine rebooted since (another boot id), or the pid now belongs to a process
started at another tick (pid reuse). A stale lock is taken over: renamed aside (one rename wins), checked to still be
the stale holder's, then deleted, and the lock is taken again. A lock held from another host cannot be checked
from here, so it is reported; the message says to delete the file once no run is active there.

Why not a library: filelock (4.3.2 here, installed with torch, not a declared dependency of socmap) has
``FileLock`` (``fcntl.flock``: no holder to name, and unreliable across hosts on network file systems) and
``SoftFileLock`` (``O_EXCL``, no stale detection). Its ``MarkerSoftFileLock`` does record pid, host and an opaque
process-start token and recovers stale markers of the same host, which is close; but its marker has a fixed format
with no wall-clock start time, so the one line an operator reads could not say since when the other run holds the
folder, and its recovery protocol is a private detail of one release. This module is about 150 lines, with the
same rules (pid alive, boot id, process start tick) and a JSON record a person can read.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from socmap.errors import SocmapError
from socmap.io import MAP_LOCK

__all__ = ["Holder", "LockHeldError", "acquire", "holder_of", "is_stale", "release", "version_lock"]


class LockHeldError(SocmapError):
    """Another run holds the version folder; this one ends at once (exit 2) having written nothing."""

    exit_code = 2


@dataclass(frozen=True)
class Holder:
    """Who holds a lock."""

    host: str
    pid: int
    started: str
    """UTC, ``YYYY-MM-DDTHH:MM:SSZ``."""
    boot_id: str | None = None
    """The kernel's boot id (Linux), so a lock from before a reboot is stale even if its pid was reused."""
    proc_start: int | None = None
    """The process's start time in clock ticks since boot (Linux ``/proc/PID/stat`` field 22), against pid reuse."""

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, started {self.started}"


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _proc_start(pid: int) -> int | None:
    """Start tick of ``pid`` (None where /proc is missing or the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])  # fields after "pid (comm) ": state is field 3
    except (OSError, ValueError, IndexError):
        return None


def me() -> Holder:
    """This process as a lock holder."""
    from datetime import UTC, datetime

    pid = os.getpid()
    return Holder(host=socket.gethostname(), pid=pid, started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  boot_id=_boot_id(), proc_start=_proc_start(pid))


def holder_of(lock: Path) -> Holder | None:
    """The holder a lock file names; None if there is no such file or it does not parse."""
    try:
        d = json.loads(Path(lock).read_text())
        return Holder(host=str(d["host"]), pid=int(d["pid"]), started=str(d["started"]), boot_id=d.get("boot_id"),
                      proc_start=d.get("proc_start"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def is_stale(h: Holder) -> bool:
    """True when ``h`` is a process of this host that no longer runs (gone, from before a reboot, or its pid
    reused by a later process); a holder on another host is never judged stale from here."""
    if h.host != socket.gethostname():
        return False
    boot = _boot_id()
    if h.boot_id and boot and h.boot_id != boot:
        return True
    if not _pid_alive(h.pid):
        return True
    now = _proc_start(h.pid)
    return h.proc_start is not None and now is not None and now != h.proc_start


def _create(lock: Path, h: Holder) -> bool:
    """Create ``lock`` naming ``h`` atomically; False if it exists."""
    data = json.dumps(asdict(h), sort_keys=True) + "\n"
    tmp = lock.parent / f".{lock.name}.new-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "x") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, lock)
            return True
        except FileExistsError:
            return False
        except OSError as exc:  # no hard links on this file system
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(data)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(lock: Path, stale: Holder) -> None:
    """Remove ``lock`` if it still names ``stale``. Renamed aside first, so of two runs taking over at once only one
    moves it; a lock that turns out to be a fresh holder's (taken between our read and our rename) is put back."""
    aside = lock.parent / f".{lock.name}.stale-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return  # another run took it over first
    try:
        if holder_of(aside) != stale:
            with contextlib.suppress(FileExistsError):
                os.link(aside, lock)
    finally:
        aside.unlink(missing_ok=True)


def acquire(root: Path) -> Holder:
    """Take the lock of the version folder ``root`` (created if needed) for this process.

    Raises:
        LockHeldError: a live run (or one on another host, or an unreadable lock file) holds it; the message names
            the holder and the file to delete if no such run is active.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lock = root / MAP_LOCK
    mine = me()
    for _ in range(5):
        # look before creating: a run that finds a live holder leaves the folder untouched (not even a temporary)
        if not lock.exists() and _create(lock, mine):
            return mine
        h = holder_of(lock)
        if h is None:
            if not lock.exists():
                continue  # released between our two looks
            raise LockHeldError(f"{root} is locked by {lock}, which cannot be read; if no socmap predict run is "
                                f"writing this folder, delete {lock} and run again")
        if is_stale(h):
            _take_over(lock, h)
            continue
        where = "this host" if h.host == mine.host else f"host {h.host} (cannot be checked from {mine.host})"
        raise LockHeldError(f"{root} is being written by another socmap predict run ({h.describe()}); wait for it "
                            f"to end, or if no such run is alive on {where}, delete {lock} and run again")
    raise LockHeldError(f"could not take the lock {lock} (other runs keep taking it); run again")


def release(root: Path, h: Holder) -> None:
    """Delete the lock of ``root`` if it still names ``h`` (never a lock another run took over)."""
    lock = Path(root) / MAP_LOCK
    if holder_of(lock) == h:
        lock.unlink(missing_ok=True)


@contextlib.contextmanager
def version_lock(root: Path) -> Iterator[Holder]:
    """``with version_lock(root):`` hold ``root``'s lock for the block; released on any exit, error included."""
    h = acquire(root)
    try:
        yield h
    finally:
        release(root, h)
