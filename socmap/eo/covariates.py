"""Image-derived tabular covariates (the paper's Table 2: spectral statistics, phenology, topography).

All are computed at the sample's pixel (the patch's centre pixel) from the same annual S2 time series, S1 median
and DEM that make the patches. Columns and units (:data:`COVARIATE_UNITS`):

* ``s2_<band>_p10|p50|p90`` for B02 (blue), B03 (green), B04 (red), B08 (NIR), B11 and B12 (SWIR): percentiles of
  the year's clear (SCL-masked) observations, DN = 10000 x reflectance (18 columns).
* ``ndvi_p10|p50|p90``: percentiles of NDVI = (B08 - B04) / (B08 + B04), unitless, -1..1. ``ndvi_p50`` is the
  NDVI the graph builder uses for the vegetation relation (paper Table 1).
* ``evi_max``, ``evi_amplitude`` (max - min of EVI = 2.5 (N - R) / (N + 6 R - 7.5 B + 1), reflectances),
  ``pos_doy`` (day of year of the EVI peak), ``sos_doy`` / ``eos_doy`` (first / last day, around the peak, on which
  linearly interpolated EVI is at or above min + 50 % of the amplitude), ``season_days`` (eos - sos), all days of
  year 1..366; ``n_clear``: clear observations that year. Fewer than 3 clear observations give NaN phenology.
* ``s1_vv_db``, ``s1_vh_db``: annual median backscatter at the sample, dB.
* ``elevation_m``, ``slope_deg`` (>= 0), ``aspect_deg`` (0..360 clockwise from north, NaN on flat ground) and
  ``tpi_m`` (elevation minus the mean elevation of the surrounding (2 x 15 + 1)^2 pixels, i.e. a 310 m window at
  10 m) from the DEM resampled onto the 10 m grid. ``elevation_m`` and ``slope_deg`` feed the elevation relation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["COVARIATE_COLUMNS", "COVARIATE_UNITS", "phenology", "spectral_percentiles", "terrain_at"]

TPI_RADIUS_PX = 15
"""Half-width of the TPI window, pixels (15 px = 150 m at 10 m, a 310 m square)."""
MIN_OBS_PHENOLOGY = 3

_PCTS = (10, 50, 90)
_SPECTRAL = ("B02", "B03", "B04", "B08", "B11", "B12")
COVARIATE_UNITS: dict[str, str] = {
    **{f"s2_{b}_p{p}": "DN (10000 x reflectance)" for b in _SPECTRAL for p in _PCTS},
    **{f"ndvi_p{p}": "1" for p in _PCTS},
    "evi_max": "1", "evi_amplitude": "1", "sos_doy": "day of year", "pos_doy": "day of year",
    "eos_doy": "day of year", "season_days": "days", "n_clear": "count",
    "s1_vv_db": "dB", "s1_vh_db": "dB",
    "elevation_m": "m", "slope_deg": "degree", "aspect_deg": "degree from north", "tpi_m": "m",
}
COVARIATE_COLUMNS: tuple[str, ...] = tuple(COVARIATE_UNITS)


def _nanpct(a: np.ndarray, q: float, axis: int) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(a, q, axis=axis)


def spectral_percentiles(series: np.ndarray, band_names: Sequence[str]) -> dict[str, np.ndarray]:
    """p10/p50/p90 over time of the spectral-statistics bands and of NDVI.

    Args:
        series: (n, T, B) float DN at the samples, NaN where not clear.
        band_names: the B band names of ``series``.
    """
    idx = {b: i for i, b in enumerate(band_names)}
    out: dict[str, np.ndarray] = {}
    for b in _SPECTRAL:
        for p in _PCTS:
            out[f"s2_{b}_p{p}"] = _nanpct(series[:, :, idx[b]], p, axis=1)
    red, nir = series[:, :, idx["B04"]], series[:, :, idx["B08"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (nir - red) / (nir + red)
    for p in _PCTS:
        out[f"ndvi_p{p}"] = _nanpct(ndvi, p, axis=1)
    return out


def phenology(doy: np.ndarray, blue: np.ndarray, red: np.ndarray, nir: np.ndarray) -> dict[str, np.ndarray]:
    """Start, peak and end of season and EVI amplitude from a sparse annual series (see module docstring).

    Args:
        doy: (T,) day of year of each observation.
        blue, red, nir: (n, T) DN (10000 x reflectance), NaN where not clear.
    """
    n = blue.shape[0]
    b, r, nr = blue / 1e4, red / 1e4, nir / 1e4
    with np.errstate(invalid="ignore", divide="ignore"):
        evi = 2.5 * (nr - r) / (nr + 6.0 * r - 7.5 * b + 1.0)
    evi = np.where(np.isfinite(evi), evi, np.nan)
    keys = ("evi_max", "evi_amplitude", "sos_doy", "pos_doy", "eos_doy", "season_days", "n_clear")
    out = {k: np.full(n, np.nan, dtype=np.float64) for k in keys}
    order = np.argsort(doy, kind="stable")
    d = np.asarray(doy, dtype=np.float64)[order]
    days = np.arange(1, 367, dtype=np.float64)
    for k in range(n):
        e = evi[k, order]
        ok = np.isfinite(e)
        out["n_clear"][k] = ok.sum()
        if ok.sum() < MIN_OBS_PHENOLOGY:
            continue
        dd, ee = d[ok], e[ok]
        # average observations on the same day, then interpolate daily between the first and last observation
        ud, inv = np.unique(dd, return_inverse=True)
        ue = np.bincount(inv, weights=ee) / np.bincount(inv)
        span = days[(days >= ud[0]) & (days <= ud[-1])]
        curve = np.interp(span, ud, ue)
        lo, hi = float(curve.min()), float(curve.max())
        amp = hi - lo
        ipk = int(np.argmax(curve))
        thr = lo + 0.5 * amp
        above = curve >= thr
        i0 = ipk
        while i0 > 0 and above[i0 - 1]:
            i0 -= 1
        i1 = ipk
        while i1 < len(curve) - 1 and above[i1 + 1]:
            i1 += 1
        out["evi_max"][k] = hi
        out["evi_amplitude"][k] = amp
        out["pos_doy"][k] = span[ipk]
        out["sos_doy"][k] = span[i0]
        out["eos_doy"][k] = span[i1]
        out["season_days"][k] = span[i1] - span[i0]
    return out


def terrain_at(dem: np.ndarray, slope: np.ndarray, aspect: np.ndarray, row_px: Sequence[int] | np.ndarray,
               col_px: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """Elevation, slope, aspect and TPI at the given pixels of a 10 m DEM grid (NaN outside it)."""
    H, W = dem.shape
    rows = np.asarray(row_px)
    cols = np.asarray(col_px)
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    rr, cc = np.clip(rows, 0, H - 1), np.clip(cols, 0, W - 1)
    out = {"elevation_m": dem[rr, cc].astype(np.float64), "slope_deg": slope[rr, cc].astype(np.float64),
           "aspect_deg": aspect[rr, cc].astype(np.float64)}
    tpi = np.full(len(rows), np.nan)
    R = TPI_RADIUS_PX
    for k in np.flatnonzero(inside):
        r, c = int(rows[k]), int(cols[k])
        win = dem[max(r - R, 0):r + R + 1, max(c - R, 0):c + R + 1]
        if np.isfinite(win).any() and np.isfinite(dem[r, c]):
            tpi[k] = float(dem[r, c]) - float(np.nanmean(win))
    out["tpi_m"] = tpi
    for v in out.values():
        v[~inside] = np.nan
    return out
