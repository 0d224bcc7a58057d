"""Where a region's trained bundles live when no folder is named: ``$SOCMAP_HOME/models/REGION/``.

``socmap train --region R`` (no ``--out``) writes a new version folder ``models/R/VERSION/`` (VERSION is the UTC
time the training started, ``20261207T053012Z``) and, only once that bundle is complete, rewrites
``models/R/latest.json`` to name it. ``socmap predict --region R`` (no ``--model``) maps with the bundle
``latest.json`` names. A training run that fails or is stopped leaves ``latest.json`` on the previous bundle, so a
scheduled refresh never maps with half a model. The layout mirrors the maps' ``REGION/YEAR/latest.json``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from socmap.config import socmap_home
from socmap.errors import ConfigError, ModelError
from socmap.io import MODEL_LATEST, MODELS_DIR, atomic_path, check_path_name

__all__ = ["latest_bundle", "models_root", "new_version", "publish"]


def models_root(region: str, home: Path | None = None) -> Path:
    """``$SOCMAP_HOME/models/REGION`` (the region name checked to be one safe path part)."""
    return (home or socmap_home()) / MODELS_DIR / check_path_name("region", region)


def new_version(region: str, home: Path | None = None) -> Path:
    """A fresh, not yet existing version folder for ``region``, named by the UTC time (to the second)."""
    root = models_root(region, home)
    while True:
        path = root / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        if not path.exists():
            return path
        time.sleep(1.0)  # two trainings of one region started within a second: take the next second's name


def publish(region: str, bundle: Path, home: Path | None = None) -> Path:
    """Name ``bundle`` (a complete version folder under :func:`models_root`) in ``latest.json``, atomically."""
    root = models_root(region, home)
    bundle = Path(bundle)
    if bundle.parent.resolve() != root.resolve():
        raise ModelError(f"{bundle} is not a version folder of {root}")
    with atomic_path(root / MODEL_LATEST) as tmp:
        tmp.write_text(json.dumps({"version": bundle.name,
                                   "published": datetime.now(UTC).isoformat(timespec="seconds")}) + "\n")
    return root / MODEL_LATEST


def latest_bundle(region: str, home: Path | None = None) -> Path:
    """The bundle ``models/REGION/latest.json`` names; a one-line :class:`ModelError` that says the command that
    makes one when the region has none."""
    root = models_root(region, home)
    latest = root / MODEL_LATEST
    if not latest.is_file():
        raise ModelError(f"no trained model for region {region!r} in {root}; train one with "
                         f"`socmap train --region {region} --data DATA` (or pass --model BUNDLE)")
    try:
        version = check_path_name("version", json.loads(latest.read_text())["version"])
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise ModelError(f"{latest} is damaged ({exc}); train again or pass --model BUNDLE") from None
    if not (root / version).is_dir():
        raise ModelError(f"{latest} names version {version!r}, which is not in {root}; train again or pass --model")
    return root / version
