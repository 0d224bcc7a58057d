"""Where a map run's files live: ``OUT/REGION/YEAR/VERSION/``, and how a user-given maps folder is resolved.

A region's maps are laid out by year and version so that an annual refresh never overwrites an earlier year and
a new model never overwrites the maps an older one made. ``OUT/REGION/YEAR/latest.json`` names the newest
finished version. Commands that read maps (``socmap aggregate``) accept any of the three levels: the version
folder itself (it holds ``soc.zarr``), or a year folder (its ``latest.json`` is followed). Names that become path
parts (region, year, version, tile ids) are checked first, so a pipeline or a flag cannot write outside ``OUT``.
"""

from __future__ import annotations

import json
from pathlib import Path

from socmap.errors import DataError
from socmap.io import MAP_LATEST, MAP_SUMMARY, MAP_ZARR, check_path_name

__all__ = ["check_path_name", "map_root", "resolve_maps"]

def map_root(out: Path | str, region: str, year: int, version: str) -> Path:
    """``OUT/REGION/YEAR/VERSION``, every part checked with :func:`check_path_name`."""
    return (Path(out) / check_path_name("region", region) / check_path_name("year", str(int(year)))
            / check_path_name("version", version))


def resolve_maps(path: Path | str) -> Path:
    """The version folder of a maps path: ``path`` itself when it holds ``soc.zarr`` or a run summary, else the
    version named by ``path/latest.json``. A one-line :class:`DataError` when neither is there."""
    p = Path(path)
    if (p / MAP_ZARR).exists() or (p / MAP_SUMMARY).is_file():
        return p
    latest = p / MAP_LATEST
    if latest.is_file():
        try:
            version = check_path_name("version", json.loads(latest.read_text())["version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{latest} is damaged ({exc}); pass the version folder itself") from None
        if (p / version).is_dir():
            return p / version
        raise DataError(f"{latest} names version {version!r}, which is not in {p}")
    raise DataError(f"no maps in {p}: expected {MAP_ZARR} there, or {MAP_LATEST} naming a version folder "
                    "(socmap predict writes OUT/REGION/YEAR/VERSION)")
