'''Stored stage outputs for tests (torchgeo style): ``tests/data/<stage>/data.py`` writes the files beside itself.

Each script is seeded and prints the sha256 of what it wrote; rerunning one leaves ``git diff`` empty (with the
pinned versions). Run them in order after a format change::

    python tests/data/samples/data.py && python tests/data/patches/data.py && python tests/data/embeddings/data.py

Tests load them with the ``stored_data`` fixture (tests/conftest.py), which copies them into one data folder.
'''

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

__all__ = ["STAGES", "STORED", "checksums", "copy_stored_data", "print_checksums"]

STAGES = ("samples", "patches", "embeddings")
"""The stored stages, in pipeline order."""
STORED = Path(__file__).resolve().parent
"""tests/data/: one folder per stage, holding that stage's stored outputs and the data.py that wrote them."""


def copy_stored_data(dest: Path, stages: tuple[str, ...] = STAGES) -> Path:
    """Copy the stored outputs of ``stages`` into one data folder ``dest`` (created); returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        for p in sorted((STORED / stage).iterdir()):
            if p.suffix == ".py" or p.name.startswith((".", "_")):
                continue
            if p.is_dir():
                shutil.copytree(p, dest / p.name)
            else:
                shutil.copyfile(p, dest / p.name)
    return dest


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` except the scripts, by relative path."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts:
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def print_checksums(folder: Path) -> None:
    for name, digest in checksums(folder).items():
        print(f"{digest}  {name}")
