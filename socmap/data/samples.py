"""``samples.parquet``: the one typed loader every stage reads the prepared samples with.

``socmap prepare`` writes it (one row per site); ``extract`` needs position and year, ``embed`` /
``finetune-vit`` the target and split, ``train`` all of them. Each caller names the columns it needs, and a
table lacking one is refused with a :class:`~socmap.errors.DataError` naming the missing columns and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap.errors import DataError, short_error
from socmap.io import SAMPLES

__all__ = ["LOCATED", "SAMPLE_COLUMNS", "TARGET", "read_samples"]

#: Columns every samples.parquet starts with.
SAMPLE_COLUMNS = ["sample_id", "lon", "lat", "year", "soc_gkg", "source", "split", "year_is_placeholder",
                  "n_profiles", "n_horizons", "n_rows", "depth_coverage"]
LOCATED = ("sample_id", "lon", "lat", "year")
"""What extraction needs: an id, WGS84 lon/lat (degrees) and the sampling year."""
TARGET = ("sample_id", "soc_gkg", "split")
"""What a supervised stage needs: an id, SOC (g/kg) and the train/val/test split."""


def read_samples(source: str | Path | pd.DataFrame, *, required: Sequence[str] = LOCATED) -> pd.DataFrame:
    """The sample table with at least the ``required`` columns, checked, index 0..N-1.

    Args:
        source: a data folder (its ``samples.parquet``), a parquet or CSV file, or a DataFrame (copied).
        required: columns that must be present. ``sample_id`` is always checked for duplicates and made str;
            ``lon``/``lat`` (when required) must be finite WGS84 degrees; ``year`` (when required) becomes int.

    Raises:
        DataError: a missing or unreadable file, missing columns (named, with the fix), duplicate ids or
            impossible coordinates.
    """
    if isinstance(source, pd.DataFrame):
        df, where = source.copy(), "samples table"
    else:
        p = Path(source)
        if p.is_dir() or p.suffix == "":
            p = p / SAMPLES
        where = str(p)
        if not p.exists():
            raise DataError(f"{p} not found: run `socmap prepare --out {p.parent}` first")
        try:
            df = pd.read_csv(p) if p.suffix.lower() == ".csv" else pd.read_parquet(p)
        except Exception as exc:
            raise DataError(f"cannot read samples file {p}: {short_error(exc)}") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{where} lacks column(s) {', '.join(missing)} (needs {', '.join(required)}); write it "
                        "with `socmap prepare --out DIR`")
    if "sample_id" in df.columns:
        df["sample_id"] = df["sample_id"].astype(str)
        dup = df["sample_id"][df["sample_id"].duplicated()].unique()
        if len(dup):
            raise DataError(f"{where} has duplicate sample_id values, e.g. {', '.join(dup[:3])}")
    if "lon" in required and "lat" in required:
        _check_lonlat(df, where)
    if "year" in required:
        df["year"] = df["year"].astype(int)
    return df.reset_index(drop=True)


def _check_lonlat(df: pd.DataFrame, where: str) -> None:
    lon, lat = df["lon"].to_numpy(dtype=float), df["lat"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad: Any = ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90))
    if bad.any():
        ids = df["sample_id"][bad][:3] if "sample_id" in df.columns else df.index[bad][:3]
        raise DataError(f"{where}: samples {', '.join(map(str, ids))} have no valid lon/lat (WGS84 degrees)")
