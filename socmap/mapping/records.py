"""What a map run remembers between runs: finished and failed tile records, checksums, and secret redaction.

A finished tile's record (``tiles_done/TILE.json``, written atomically after every file of the tile is in place)
holds the run key and the sha256 of every file the tile wrote (its COGs and its zarr chunks). A re-run trusts a
record only when the key matches and every listed file still has that checksum, so a file lost or damaged after
the record was written (a killed copy, a full disk, a hand edit) makes the tile run again. A tile that failed is
recorded in ``tiles_failed/TILE.json`` with its one-line reason; the record goes when the tile is mapped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from socmap.config import redact
from socmap.io import MAP_DONE_DIR, MAP_FAILED_DIR, atomic_path
from socmap.mapping.layout import check_path_name

__all__ = ["bundle_sha256", "clear_failed", "done_ok", "not_done", "sha256_file", "write_done", "write_failed"]

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (read 1 MiB at a time)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def bundle_sha256(model: Path) -> str:
    """One sha256 over a bundle folder: every file's relative path and sha256, in path order. It changes when any
    file of the bundle changes and not when the folder moves, so it names the model in provenance and run keys."""
    model = Path(model)
    h = hashlib.sha256()
    for p in sorted(q for q in model.rglob("*") if q.is_file() and not q.name.startswith(".")):
        h.update(f"{p.relative_to(model).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def write_done(root: Path, tile_id: str, key: str, files: Iterable[Path], stats: dict[str, Any]) -> None:
    """Record ``tile_id`` as finished: the run key, ``{relative path: sha256}`` of ``files`` and small stats."""
    tile_id = check_path_name("tile", tile_id)
    sums = {f.relative_to(root).as_posix(): sha256_file(f) for f in sorted(map(Path, files))}
    with atomic_path(root / MAP_DONE_DIR / f"{tile_id}.json") as tmp:
        tmp.write_text(json.dumps({"run_key": key, "files": sums, **stats}, default=str, sort_keys=True))
    clear_failed(root, tile_id)


def done_ok(root: Path, tile_id: str, key: str) -> bool:
    """True when ``tile_id`` has a record of this run key and every file it lists still has its checksum."""
    try:
        rec = json.loads((root / MAP_DONE_DIR / f"{tile_id}.json").read_text())
        if rec.get("run_key") != key or not isinstance(rec.get("files"), dict):
            return False
        return all(sha256_file(root / rel) == digest for rel, digest in rec["files"].items())
    except (OSError, ValueError, AttributeError):
        return False


def not_done(root: Path, tile_ids: Iterable[str], key: str) -> list[str]:
    """The tiles of ``tile_ids`` with no finished record of run key ``key`` in ``root`` (what decides whether
    ``latest.json`` may point at the folder). The records are read, not the files' checksums: the run calling this
    has just checked (or written) the tiles it was given, and hashing every file of a continental map to move a
    pointer would cost more than the run; a damaged tile is still found and redone by the next run over it."""
    out = []
    for t in tile_ids:
        try:
            ok = json.loads((root / MAP_DONE_DIR / f"{t}.json").read_text()).get("run_key") == key
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            out.append(t)
    return out


def write_failed(root: Path, tile_id: str, key: str, reason: str) -> None:
    """Record that ``tile_id`` failed, with its (redacted, one-line) reason."""
    with atomic_path(root / MAP_FAILED_DIR / f"{check_path_name('tile', tile_id)}.json") as tmp:
        tmp.write_text(json.dumps({"run_key": key, "tile": tile_id, "reason": redact(reason)}))


def clear_failed(root: Path, tile_id: str) -> None:
    (root / MAP_FAILED_DIR / f"{tile_id}.json").unlink(missing_ok=True)
