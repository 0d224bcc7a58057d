'''Stored stage outputs for tests (torchgeo style): ``tests/data/<stage>/data.py`` writes the files beside itself.

Each script is seeded and prints the sha256 of what it wrote; rerunning one leaves ``git diff`` empty (with the
pinned versions). Run them in order after a format change::

    python tests/data/samples/data.py && python tests/data/patches/data.py && python tests/data/embeddings/data.py

Tests load them with the ``stored_data`` fixture (tests/conftest.py), which copies them into one data folder.

``tests/data/bundle/`` is the next stage on its own world (the mapping tests' world, ``tests/mapping/world.py``):
a 2-member model bundle that the evaluate, predict and aggregate tests load instead of training one, and the
prepared data folder it was trained on. Training stamps the time into the bundle, so its checksums change on
every run; rerun ``python tests/data/bundle/data.py`` after a change to the bundle format or the model.
'''

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

__all__ = ["BUNDLE", "STAGES", "STORED", "checksums", "copy_stored_bundle", "copy_stored_data", "print_checksums"]

STAGES = ("samples", "patches", "embeddings")
"""The stored stages, in pipeline order."""
STORED = Path(__file__).resolve().parent
"""tests/data/: one folder per stage, holding that stage's stored outputs and the data.py that wrote them."""
BUNDLE = STORED / "bundle"
"""The stored bundle's folder: ``model/`` (the bundle) and ``data/`` (samples.parquet, preprocess.json and
preprocess_reference.parquet it was trained on)."""


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


def copy_stored_bundle(dest: Path) -> tuple[Path, Path]:
    """Copy the stored bundle and its training data folder into ``dest`` (created); returns (data, model).

    A copy, so a test may damage or extend it, and a predict run that records the bundle's path records the copy.
    """
    dest.mkdir(parents=True, exist_ok=True)
    data, model = dest / "data", dest / "model"
    shutil.copytree(BUNDLE / "data", data)
    shutil.copytree(BUNDLE / "model", model)
    return data, model


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
