"""Harmonise soil horizons to one topsoil (0-30 cm) SOC value per site, in g/kg, in WGS 84 (paper 4.1).

Every row that does not reach the output is counted under exactly one rule in a :class:`Ledger`, so the
report can say what happened to every row. The steps, in order:

rows (per input table)
  1. ``exact_duplicate``          identical rows (every column equal): dropped, one copy kept
  2. ``missing_coordinates``      x or y empty / not a number: dropped
  3. ``impossible_coordinates``   outside the CRS's domain after reprojection to WGS 84 (lat outside
                                  [-90, 90], lon outside [-180, 180], non-finite) or exactly (0, 0): dropped
  4. ``incomplete_metadata``      no profile id, no depth, or no year and no default year: dropped
  5. ``invalid_depth``            bottom <= top: dropped
  6. ``organic_layer_above_surface``  bottom <= 0 cm: negative depths are organic layers above the mineral
                                  surface (AfSPDB convention); 0-30 cm is measured from that surface: dropped
  7. ``below_topsoil``            top >= 30 cm (no overlap with the interval): dropped
  8. ``missing_soc``              SOC empty / not a number: dropped
  9. ``implausible_soc``          SOC (g/kg) outside [soc_min_gkg, soc_max_gkg]: dropped
 10. ``replicate_averaged``       replicate samples of one profile at one depth: averaged into one horizon
profiles
 11. ``insufficient_depth_coverage``  horizons cover less than ``min_depth_coverage`` of 0-30 cm: dropped
 12. ``same_site_same_source`` / ``same_site_cross_source``  profiles within ``site_tolerance_m`` of each
                                  other: averaged into one site

Every limit (SOC range, depth interval, coverage, site tolerance, year range) is a field of the pipeline's
``data`` block, :class:`~socmap.config.DataConfig`, which the functions below take as ``settings``.

Depth weighting: a horizon's weight is its overlap (cm) with [top_cm, bottom_cm]; the site value is
sum(w * SOC) / sum(w). Survey covariates (pH, texture) are weighted the same way over the horizons that
have them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from socmap.config import DataConfig
from socmap.data.columns import SurveyMapping
from socmap.errors import DataError
from socmap.geo import EARTH_RADIUS_KM, unit_tree

__all__ = ["RULES", "Ledger", "depth_weight", "harmonise_rows", "merge_sites"]

#: Every rule, its level and what it does to the rows it catches (the report's vocabulary).
RULES: dict[str, tuple[str, str, str]] = {
    "exact_duplicate": ("rows", "dropped",
                        "row identical to an earlier row of the same file in every column"),
    "missing_coordinates": ("rows", "dropped", "x or y empty or not a number"),
    "impossible_coordinates": ("rows", "dropped",
                               "outside the CRS domain / WGS 84 range after reprojection, or exactly (0, 0)"),
    "incomplete_metadata": ("rows", "dropped", "no profile id, no depth, or no year (and no default year)"),
    "invalid_depth": ("rows", "dropped", "bottom depth <= top depth"),
    "organic_layer_above_surface": ("rows", "dropped",
                                    "bottom <= 0 cm: organic layer above the mineral surface "
                                    "(negative depths)"),
    "below_topsoil": ("rows", "dropped", "horizon starts at or below the interval's bottom (30 cm)"),
    "missing_soc": ("rows", "dropped", "SOC empty or not a number"),
    "implausible_soc": ("rows", "dropped", "SOC outside the plausible range [soc_min_gkg, soc_max_gkg] g/kg"),
    "replicate_averaged": ("rows", "merged", "replicate samples of one profile at one depth, averaged"),
    "insufficient_depth_coverage": ("profiles", "dropped",
                                    "horizons cover less than min_depth_coverage of the 0-30 cm interval"),
    "same_site_same_source": ("profiles", "merged",
                              "profiles of one source within site_tolerance_m of each other, averaged"),
    "same_site_cross_source": ("profiles", "merged",
                               "profiles of two or more sources within site_tolerance_m, averaged"),
}


@dataclass
class Ledger:
    """Per-rule counts of dropped and merged rows/profiles, also split by source."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: {k: Counter() for k in RULES})
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, rule: str, sources: pd.Series | list[str] | np.ndarray) -> None:
        """Count the rows/profiles with these ``sources`` under ``rule``."""
        if rule not in RULES:
            raise KeyError(rule)
        self.counts[rule].update(Counter(map(str, sources)))

    def total(self, rule: str) -> int:
        return int(sum(self.counts[rule].values()))

    def to_dict(self) -> dict[str, Any]:
        """``{rule: {level, action, count, by_source, description}}`` in pipeline order."""
        out = {}
        for rule, (level, action, desc) in RULES.items():
            out[rule] = {"level": level, "action": action, "count": self.total(rule),
                         "by_source": dict(sorted((k, int(v)) for k, v in self.counts[rule].items())),
                         "description": desc}
        return out


def _numeric(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def _years(df: pd.DataFrame, m: SurveyMapping, sources: pd.Series,
           settings: DataConfig) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(year, is_placeholder, filled_default) per row; year NaN where none could be found."""
    year = pd.Series(np.nan, index=df.index)
    placeholder = pd.Series(False, index=df.index)
    if m.date is not None:
        raw = df[m.date]
        if pd.api.types.is_datetime64_any_dtype(raw):
            dt = raw
        else:
            dt = pd.to_datetime(raw.astype("string"), errors="coerce", format="mixed")
        year = dt.dt.year.astype(float)
        if m.placeholder_dates:
            txt = dt.dt.strftime("%Y-%m-%d")
            for src, d in m.placeholder_dates.items():
                placeholder |= (sources == src) & (txt == str(d))
    if m.year is not None:
        y2 = _numeric(df[m.year])
        year = year.fillna(y2.round())
    lo, hi = settings.year_range
    year = year.where((year >= lo) & (year <= hi))
    filled = pd.Series(False, index=df.index)
    if m.default_year is not None:
        if isinstance(m.default_year, int):
            default = pd.Series(float(m.default_year), index=df.index)
        else:
            default = sources.map({k: float(v) for k, v in m.default_year.items()}).astype(float)
        filled = year.isna() & default.notna()
        year = year.fillna(default)
        placeholder |= filled
    return year, placeholder, filled


def _source_labels(df: pd.DataFrame, m: SurveyMapping, path: str) -> pd.Series:
    """The ``source`` of every row: the mapping's source column, else its source name, else the file stem."""
    default = m.source_name or _stem(path) or m.name
    if m.source is not None:
        src = df[m.source].astype("string").fillna(default)
    else:
        src = pd.Series(default, index=df.index, dtype="string")
    return src.astype(str)


def _to_wgs84(x: pd.Series, y: pd.Series, keep: pd.Series, crs: Any, label: str) -> tuple[pd.Series, pd.Series]:
    """lon/lat (WGS 84 degrees) of the kept rows (NaN elsewhere; +inf where geographic input is out of range)."""
    from pyproj import CRS, Transformer

    src_crs = CRS.from_user_input(crs)
    wgs = CRS.from_epsg(4326)
    xv, yv = x[keep].to_numpy(float), y[keep].to_numpy(float)
    if src_crs.equals(wgs) or src_crs.to_epsg() == 4326:
        lon, lat = xv, yv
    else:
        if src_crs.is_geographic is False and src_crs.is_projected is False:
            raise DataError(f"{label}: CRS {crs!r} is neither geographic nor projected; "
                            "cannot place the points")
        tr = Transformer.from_crs(src_crs, wgs, always_xy=True)
        with np.errstate(all="ignore"):
            lon, lat = tr.transform(xv, yv, errcheck=False)
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        if src_crs.is_geographic:  # pyproj does not range-check degrees
            bad_in = (np.abs(xv) > 180) | (np.abs(yv) > 90)
            lon = np.where(bad_in, np.inf, lon)
    lon_s = pd.Series(np.nan, index=x.index)
    lat_s = pd.Series(np.nan, index=x.index)
    lon_s[keep] = lon
    lat_s[keep] = lat
    return lon_s, lat_s


def _depths(df: pd.DataFrame, m: SurveyMapping) -> tuple[pd.Series, pd.Series]:
    """Top and bottom of every row, cm (the mapping's fixed depth, or its columns times ``depth_factor``)."""
    if m.fixed_depth_cm is not None:
        return (pd.Series(m.fixed_depth_cm[0], index=df.index, dtype=float),
                pd.Series(m.fixed_depth_cm[1], index=df.index, dtype=float))
    return _numeric(df[m.top]) * m.depth_factor, _numeric(df[m.bottom]) * m.depth_factor


def _average_replicates(out: pd.DataFrame, covariates: list[str], ledger: Ledger) -> pd.DataFrame:
    """Rule 10: rows of one profile and one depth interval are replicates; keep their mean (counted)."""
    grp = out.groupby(["key", "top_cm", "bottom_cm"], sort=False)
    n = grp.size()
    reps = n[n > 1]
    if len(reps):
        first = out.drop_duplicates(["key", "top_cm", "bottom_cm"]).set_index(["key", "top_cm", "bottom_cm"])
        rep_sources = first.loc[reps.index, "source"].to_numpy()
        ledger.add("replicate_averaged", np.repeat(rep_sources, reps.to_numpy() - 1))
    agg = {"source": "first", "profile_id": "first", "lon": "mean", "lat": "mean", "year": "max",
           "year_is_placeholder": "any", "soc_gkg": "mean", **{c: "mean" for c in covariates}}
    h = grp.agg(agg).reset_index()
    h["n_rows"] = n.to_numpy()
    h["year"] = h["year"].astype(int)
    return h


def harmonise_rows(df: pd.DataFrame, m: SurveyMapping, settings: DataConfig, ledger: Ledger, *,
                   input_index: int = 0, path: str = "") -> pd.DataFrame:
    """One row per topsoil horizon of one table, in standard units; the rest counted in ``ledger``.

    Returns columns: ``key`` (unique profile key), ``source``, ``profile_id``, ``lon``, ``lat`` (WGS 84 deg),
    ``year`` (int), ``year_is_placeholder``, ``top_cm``, ``bottom_cm``, ``soc_gkg``, then the mapping's
    survey covariates (by covariate name), and ``n_rows`` (input rows averaged into the horizon).
    """
    src = _source_labels(df, m, path)
    keep = pd.Series(True, index=df.index)

    def drop(rule: str, mask: pd.Series) -> None:
        """Count the kept rows ``mask`` selects under ``rule`` and drop them."""
        nonlocal keep
        hit = keep & mask
        ledger.add(rule, src[hit])
        keep &= ~hit

    # 1. exact duplicates (every column of the table, as read)
    drop("exact_duplicate", df.duplicated(keep="first"))
    # 2. missing coordinates
    xcol, ycol = (m.x, m.y) if m.x is not None else ("__x", "__y")
    x, y = _numeric(df[xcol]), _numeric(df[ycol])
    drop("missing_coordinates", x.isna() | y.isna() | ~np.isfinite(x.fillna(0)) | ~np.isfinite(y.fillna(0)))
    # 3. reprojection to WGS 84 and impossible coordinates
    lon, lat = _to_wgs84(x, y, keep, df.attrs.get("crs", m.crs), path or m.label)
    drop("impossible_coordinates", ~(np.isfinite(lon) & np.isfinite(lat) & (lat.abs() <= 90) & (lon.abs() <= 180)
                                     & ~((lon == 0) & (lat == 0))))
    # 4. incomplete metadata: profile id, depth, year
    pid = df[m.profile_id].astype("string").str.strip()
    top, bottom = _depths(df, m)
    year, placeholder, filled = _years(df, m, src, settings)
    drop("incomplete_metadata", pid.isna() | (pid == "") | top.isna() | bottom.isna() | year.isna())
    ledger.notes.setdefault("year_filled_default_rows", 0)
    ledger.notes["year_filled_default_rows"] += int((keep & filled).sum())
    # 5-7. depths
    drop("invalid_depth", bottom <= top)
    drop("organic_layer_above_surface", bottom <= settings.top_cm)
    drop("below_topsoil", top >= settings.bottom_cm)
    # 8-9. SOC
    soc = _numeric(df[m.soc]) * m.soc_factor
    drop("missing_soc", soc.isna() | ~np.isfinite(soc.fillna(0)))
    drop("implausible_soc", (soc < settings.soc_min_gkg) | (soc > settings.soc_max_gkg))

    out = pd.DataFrame({
        "key": (f"{input_index}|" + src + "|" + pid.fillna("")),
        "source": src, "profile_id": pid.astype(str), "lon": lon, "lat": lat,
        "year": year, "year_is_placeholder": placeholder, "top_cm": top, "bottom_cm": bottom, "soc_gkg": soc,
    })
    for name, col in m.covariates.items():
        out[name] = _numeric(df[col])
    # 10. replicates: one profile, one depth -> mean
    return _average_replicates(out[keep.to_numpy()], list(m.covariates), ledger)


def _stem(path: str) -> str:
    from pathlib import PurePath

    return PurePath(path.split("?")[0]).stem if path else ""


def _weighted(values: pd.Series, w: pd.Series, key: pd.Series) -> pd.Series:
    """sum(w*v)/sum(w) per key over the rows where v is known (NaN where none is)."""
    ok = values.notna()
    num = (values.fillna(0) * w).groupby(key).sum()
    den = (w * ok).groupby(key).sum()
    return (num / den.replace(0, np.nan)).astype(float)


def depth_weight(h: pd.DataFrame, settings: DataConfig, ledger: Ledger,
                 covariates: list[str]) -> pd.DataFrame:
    """One row per profile: depth-weighted SOC (g/kg) and covariates over [top_cm, bottom_cm].

    A horizon weighs its overlap (cm) with the interval. ``depth_coverage`` is the fraction of the interval
    covered by the union of the profile's horizons; profiles below ``settings.min_depth_coverage`` are dropped.
    """
    t0, t1 = settings.top_cm, settings.bottom_cm
    h = h.sort_values(["key", "top_cm", "bottom_cm"]).reset_index(drop=True)
    t = h["top_cm"].clip(t0, t1)
    b = h["bottom_cm"].clip(t0, t1)
    w = (b - t).clip(lower=0)
    # coverage: length of the union of [t, b] per profile
    cummax = b.groupby(h["key"]).cummax()
    prev = cummax.groupby(h["key"]).shift().fillna(-np.inf)
    covered = (b - np.maximum(t, prev)).clip(lower=0).groupby(h["key"]).sum()
    key = h["key"]
    p = h.groupby("key", sort=True).agg(
        source=("source", "first"), profile_id=("profile_id", "first"), lon=("lon", "mean"),
        lat=("lat", "mean"), year=("year", "max"), year_is_placeholder=("year_is_placeholder", "any"),
        n_horizons=("n_rows", "size"), n_rows=("n_rows", "sum"))
    p["soc_gkg"] = _weighted(h["soc_gkg"], w, key)
    for c in covariates:
        p[c] = _weighted(h[c], w, key)
    p["depth_coverage"] = (covered / (t1 - t0)).reindex(p.index)
    low = p["depth_coverage"] < settings.min_depth_coverage - 1e-9
    ledger.add("insufficient_depth_coverage", p.loc[low, "source"])
    return p[~low].reset_index()


def merge_sites(p: pd.DataFrame, settings: DataConfig, ledger: Ledger,
                covariates: list[str]) -> pd.DataFrame:
    """One row per site: profiles within ``site_tolerance_m`` (chained) are averaged.

    SOC and covariates are the mean of the profiles; the year is the latest real (non-placeholder) year, or
    the latest placeholder one if all are placeholders; ``source`` joins the sorted sources with ``+``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(p) == 0:
        return p.assign(sample_id=pd.Series(dtype=str), n_profiles=pd.Series(dtype=int))
    r = settings.site_tolerance_m / (1000.0 * EARTH_RADIUS_KM)  # the tolerance as an angle, radians
    pairs = unit_tree(np.c_[p["lon"].to_numpy(), p["lat"].to_numpy()]).query_pairs(r, output_type="ndarray")
    n = len(p)
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)) if len(pairs) else \
        coo_matrix((n, n))
    _, comp = connected_components(g, directed=False)
    p = p.assign(site=comp)
    sizes = p.groupby("site")["key"].transform("size")
    nsrc = p.groupby("site")["source"].transform("nunique")
    multi = p[sizes > 1]
    # the first profile (by key) of each site stays; the others are merged into it
    first = ~multi.sort_values("key").duplicated("site", keep="first")
    merged = multi.sort_values("key")[~first]
    cross = nsrc.loc[merged.index] > 1
    ledger.add("same_site_same_source", merged.loc[~cross, "source"])
    ledger.add("same_site_cross_source", merged.loc[cross, "source"])

    p = p.sort_values("key")
    real_year = p["year"].where(~p["year_is_placeholder"])
    p = p.assign(_real_year=real_year)
    agg: dict[str, Any] = {
        "key": "first", "profile_id": "first", "lon": "mean", "lat": "mean", "year": "max",
        "_real_year": "max",
        "year_is_placeholder": "all", "soc_gkg": "mean", "n_horizons": "sum", "n_rows": "sum",
        "depth_coverage": "mean", **{c: "mean" for c in covariates},
    }
    s = p.groupby("site", sort=False).agg(agg)
    s["source"] = p.groupby("site", sort=False)["source"].agg(lambda v: "+".join(sorted(set(v))))
    s["first_source"] = p.groupby("site", sort=False)["source"].first()
    s["n_profiles"] = p.groupby("site", sort=False).size()
    s["year"] = s["_real_year"].fillna(s["year"]).astype(int)
    s = s.drop(columns="_real_year")
    sid = s["first_source"] + ":" + s["profile_id"]
    dup = sid.duplicated(keep=False)
    if dup.any():  # same source and id in two input files: make the id unique with the input index
        sid[dup] = sid[dup] + "@" + s.loc[dup, "key"].str.split("|").str[0]
    s["sample_id"] = sid
    s = s.drop(columns=["first_source"]).sort_values("sample_id").reset_index(drop=True)
    return s
