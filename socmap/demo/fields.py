"""The synthetic landscape behind the demo world: terrain, climate, land cover, vegetation and true SOC.

Everything is a deterministic function of one seed. The true SOC field is built so that each relation of the
SpTGNN graph carries signal:

* spatial: a spatially autocorrelated residual (Gaussian random field, ~800 m correlation length);
* NDVI: vegetation (annual mean NDVI) raises SOC, and land-cover classes, which recur in patches far apart
  ("same land cover far apart"), shift SOC by a class offset and have their own NDVI signature;
* elevation: SOC rises with elevation and falls on steep slopes;
* climate: wetter and cooler cells hold more carbon;
* time: cropland loses about 2 % of its SOC a year (2022 -> 2024).

Units: elevation m, slope m/m, MAT degC, MAP mm/yr, NDVI unitless, SOC g/kg (0-30 cm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LANDCOVER", "Landscape", "gaussian_field", "make_landscape", "seasonal_weight"]

# ESA WorldCover-style codes -> (name, log-SOC offset, NDVI in dry season, NDVI at peak)
LANDCOVER: dict[int, tuple[str, float, float, float]] = {
    10: ("tree cover", 0.45, 0.62, 0.80),
    20: ("shrubland", 0.05, 0.28, 0.48),
    30: ("grassland", 0.15, 0.25, 0.66),
    40: ("cropland", -0.25, 0.14, 0.76),
    60: ("bare / sparse", -0.60, 0.09, 0.16),
}

PEAK_DOY = 110.0
"""Day of year of peak greenness (after the March-May long rains of northern Tanzania)."""


def gaussian_field(rng: np.random.Generator, shape: tuple[int, int], corr_px: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with a Gaussian covariance of scale ``corr_px`` pixels.

    White noise filtered in the Fourier domain; periodic, which is harmless at these sizes.
    """
    noise = rng.standard_normal(shape)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    filt = np.exp(-2.0 * (np.pi * corr_px) ** 2 * (kx**2 + ky**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * filt, s=shape)
    field -= field.mean()
    sd = field.std()
    return (field / sd if sd > 0 else field).astype(np.float64)


def _z(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-12)


def seasonal_weight(doy: float) -> float:
    """0 in the dry season, 1 at peak greenness."""
    return 0.5 * (1.0 + np.cos(2.0 * np.pi * (doy - PEAK_DOY) / 365.0))


@dataclass
class Landscape:
    """The 10 m fields of the demo world (arrays are (rows, cols), row 0 at the north edge)."""

    elevation: np.ndarray
    slope: np.ndarray
    mat: np.ndarray
    map: np.ndarray
    landcover: np.ndarray
    ndvi_dry: np.ndarray
    ndvi_peak: np.ndarray
    year_anomaly: dict[int, float]
    soc_base_log: np.ndarray
    roughness: np.ndarray

    def ndvi(self, year: int, doy: float) -> np.ndarray:
        """NDVI on a date: dry-season value plus the seasonal swing, scaled by the year's rainfall anomaly."""
        w = seasonal_weight(doy) * (1.0 + 0.15 * self.year_anomaly[year])
        return np.clip(self.ndvi_dry + (self.ndvi_peak - self.ndvi_dry) * w, -0.1, 0.95)

    def ndvi_mean(self, year: int) -> np.ndarray:
        """Annual mean NDVI (mean of the seasonal weight over the year is 0.5)."""
        return np.clip(self.ndvi_dry + (self.ndvi_peak - self.ndvi_dry) * 0.5 * (1 + 0.15 * self.year_anomaly[year]),
                       -0.1, 0.95)

    def soc(self, year: int) -> np.ndarray:
        """True topsoil (0-30 cm) SOC in g/kg for ``year``."""
        crop = self.landcover == 40
        trend = np.where(crop, -0.02 * (year - 2022), 0.0)
        return np.exp(self.soc_base_log + 0.7 * (self.ndvi_mean(year) - 0.4) + trend).astype(np.float32)


def make_landscape(rng: np.random.Generator, n: int, res_m: float, years: tuple[int, ...]) -> Landscape:
    """Build every field on an ``n`` x ``n`` grid of ``res_m`` metre cells."""
    px = 1.0 / res_m
    shape = (n, n)
    # terrain: a broad massif, hills, a gentle north-south gradient
    yy, _xx = np.mgrid[0:n, 0:n] / n
    elevation = (1250.0 + 160.0 * gaussian_field(rng, shape, 2500 * px) + 45.0 * gaussian_field(rng, shape, 500 * px)
                 + 120.0 * (0.5 - yy))
    gy, gx = np.gradient(elevation, res_m)
    slope = np.hypot(gx, gy)
    # climate: lapse rate and orographic rain
    mat = 24.0 - 0.0065 * (elevation - 1000.0) + 0.3 * gaussian_field(rng, shape, 4000 * px)
    map_ = 700.0 + 0.45 * (elevation - 1000.0) + 70.0 * gaussian_field(rng, shape, 4000 * px)
    # land cover: one field per class, argmax -> patches of each class recurring across the region
    codes = np.array(sorted(LANDCOVER))
    scores = np.stack([gaussian_field(rng, shape, 600 * px) for _ in codes])
    scores[codes.tolist().index(10)] += 0.9 * _z(map_) - 0.2
    scores[codes.tolist().index(60)] += 0.8 * _z(slope) - 0.6
    scores[codes.tolist().index(40)] += -0.5 * _z(slope) + 0.3
    landcover = codes[np.argmax(scores, axis=0)].astype(np.uint8)
    # vegetation signature per class, plus within-class variation
    dry = np.zeros(shape)
    peak = np.zeros(shape)
    for code, (_, _, d, p) in LANDCOVER.items():
        m = landcover == code
        dry[m], peak[m] = d, p
    veg = 0.06 * gaussian_field(rng, shape, 250 * px)
    ndvi_dry = np.clip(dry + veg, 0.02, 0.9)
    ndvi_peak = np.clip(peak + veg + 0.05 * _z(map_) * 0.5, 0.05, 0.92)
    year_anomaly = {y: float(a) for y, a in zip(years, rng.normal(0.0, 1.0, len(years)), strict=True)}
    offset = np.zeros(shape)
    for code, (_, off, _, _) in LANDCOVER.items():
        offset[landcover == code] = off
    residual = gaussian_field(rng, shape, 800 * px)
    soc_base_log = (np.log(13.0) + 0.22 * _z(elevation) - 0.14 * _z(slope) + 0.12 * _z(map_) - 0.08 * _z(mat)
                    + 0.8 * offset + 0.24 * residual)
    roughness = gaussian_field(rng, shape, 300 * px)
    return Landscape(elevation=elevation, slope=slope, mat=mat, map=map_, landcover=landcover, ndvi_dry=ndvi_dry,
                     ndvi_peak=ndvi_peak, year_anomaly=year_anomaly, soc_base_log=soc_base_log, roughness=roughness)

