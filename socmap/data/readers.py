"""Read a soil table (CSV, Parquet, GeoPackage) into a DataFrame, with one-line errors that name the file.

The reader checks only that the file is a non-empty table holding the columns its mapping names; the
meaning of the values is :mod:`socmap.data.harmonise`'s job.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from socmap.data.columns import SurveyMapping
from socmap.errors import DataError
from socmap.io import is_local_path

__all__ = ["read_table"]

_CSV = {".csv", ".txt", ".tsv"}
_PARQUET = {".parquet", ".pq"}
_GPKG = {".gpkg"}


def _format(path: str) -> str:
    low = path.lower().split("?")[0]
    for ext in (*_CSV, *_PARQUET, *_GPKG, ".csv.gz"):
        if low.endswith(ext):
            return "gpkg" if ext in _GPKG else "parquet" if ext in _PARQUET else "csv"
    raise DataError(f"{path}: unknown table format; give a .csv, .parquet or .gpkg file")


def read_table(path: str | Path, mapping: SurveyMapping) -> pd.DataFrame:
    """The table at ``path`` with the columns ``mapping`` names, as read (no conversion yet).

    For a GeoPackage with ``x``/``y`` left ``null`` in the mapping, the point geometry becomes columns
    ``__x``/``__y`` and the layer's CRS is used unless the mapping names one (stored in ``df.attrs["crs"]``).

    Raises:
        DataError: missing or empty file, not a table, or a mapped column that is not there.
    """
    spath = str(path)
    if is_local_path(spath):
        _check_file(spath)
    fmt = _format(spath)
    df, crs = _read_format(spath, fmt, mapping)
    if crs is None:
        raise DataError(f"{spath}: no CRS for the coordinates; set 'crs' in the mapping {mapping.label}")
    if len(df) == 0:
        raise DataError(f"{spath}: the table has a header but no rows")
    _check_columns(spath, df, mapping)
    df.attrs["crs"] = crs
    df.attrs["format"] = fmt
    return df


def _check_file(spath: str) -> None:
    """A local table must exist and hold something."""
    p = Path(spath)
    if not p.is_file():
        raise DataError(f"{spath}: file not found")
    if p.stat().st_size == 0:
        raise DataError(f"{spath}: the file is empty")


def _read_format(spath: str, fmt: str, mapping: SurveyMapping) -> tuple[pd.DataFrame, str | None]:
    """The table read as ``fmt`` (csv | parquet | gpkg) and the CRS of its coordinates (the mapping's, else a
    GeoPackage layer's; None when neither names one); any reader failure becomes a one-line :class:`DataError`."""
    try:
        if fmt == "csv":
            return _read_csv(spath, mapping), mapping.crs
        if fmt == "parquet":
            return pd.read_parquet(spath), mapping.crs
        return _read_gpkg(spath, mapping)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{spath}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise DataError(f"{spath}: not a readable {fmt.upper()} table ({msg})") from None
    except Exception as exc:  # pyarrow / pyogrio raise many types for a file that is not their format
        raise DataError(f"{spath}: not a readable {fmt.upper()} table ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]})") from None


def _read_csv(spath: str, mapping: SurveyMapping) -> pd.DataFrame:
    """A CSV table (a local file is first checked for binary content)."""
    if is_local_path(spath):
        with open(spath, "rb") as fh:
            head = fh.read(4096)
        if b"\x00" in head:
            raise DataError(f"{spath}: not a text table (binary content); give a CSV, Parquet or "
                            "GeoPackage")
    return pd.read_csv(spath, sep=mapping.csv_sep, low_memory=False)


def _read_gpkg(spath: str, mapping: SurveyMapping) -> tuple[pd.DataFrame, str | None]:
    """A GeoPackage layer without its geometry column (point geometries become ``__x``/``__y`` when the mapping
    names no x/y columns), and the CRS: the mapping's, else the layer's."""
    import pyogrio

    crs: str | None = mapping.crs
    df = pyogrio.read_dataframe(spath, layer=mapping.layer)
    if mapping.x is not None:
        if crs is None and getattr(df, "crs", None) is not None:
            crs = df.crs.to_string()
        return pd.DataFrame(df.drop(columns="geometry", errors="ignore")), crs
    geom = df.geometry
    if geom.isna().all() or not (geom.geom_type.dropna() == "Point").all():
        raise DataError(f"{spath}: the mapping takes x/y from the geometry, but the layer does "
                        "not hold points; name the x and y columns in the mapping")
    if crs is None:
        if df.crs is None:
            raise DataError(f"{spath}: the layer has no CRS; set 'crs' in the mapping "
                            f"{mapping.label}")
        crs = df.crs.to_string()
    return pd.DataFrame(df.drop(columns="geometry")).assign(__x=geom.x, __y=geom.y), crs


def _check_columns(spath: str, df: pd.DataFrame, mapping: SurveyMapping) -> None:
    """Every column the mapping names must be in the table; the error suggests the closest name of each missing
    one."""
    needed = mapping.required_columns()
    if mapping.x is None:
        needed = [c for c in needed if c not in ("__x", "__y")]
    missing = [c for c in needed if c not in df.columns]
    if not missing:
        return
    import difflib

    hints = []
    for c in missing:
        lower = {str(x).lower(): str(x) for x in df.columns}
        close = difflib.get_close_matches(c.lower(), list(lower), n=1, cutoff=0.5)
        hints.append(f"{c!r}" + (f" (did you mean {lower[close[0]]!r}?)" if close else ""))
    raise DataError(f"{spath}: missing column(s) {', '.join(hints)} named by {mapping.label}; "
                    f"the table has {len(df.columns)} columns: {', '.join(map(str, df.columns[:12]))}"
                    + ("..." if len(df.columns) > 12 else ""))
