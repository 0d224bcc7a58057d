"""The embedded demo world: a seeded, offline stand-in for Sentinel-2, Sentinel-1, a DEM and a soil survey.

``ensure_world(path, spec)`` writes (or reuses) a folder laid out like this::

    world.json                       spec, bounds, CRS and the sha256 of every file
    stac/catalog.json                self-contained STAC catalogue (pystac; proj, eo, raster, sar, sat extensions)
    stac/sentinel-2-l2a/<id>/...     12-band L2A scenes as per-band COGs at native resolution (10/20/60 m) + SCL
    stac/sentinel-1-rtc/<id>/...     VV and VH gamma0 (linear power, float32) at 10 m, map-projected like RTC
    stac/cop-dem-glo-30/<id>/...     elevation (m, float32) on a 1 arc-second EPSG:4326 grid, like GLO-30
    stac/demo-covariates/<id>/...    item pointing at the covariate rasters below
    covariates/mat_degC.tif          mean annual temperature (degC), 250 m
    covariates/map_mm.tif            mean annual precipitation (mm/yr), 250 m
    covariates/landcover.tif         ESA WorldCover-style class codes (uint8, nodata 0), 10 m
    truth/soc_true_<year>.tif        the true 0-30 cm SOC (g/kg), 10 m, over the region, to score maps wall to wall
    survey/soil_survey.csv           one row per horizon, shaped like a real survey (see ``write_survey``)

Sentinel-2 follows the real L2A conventions the extractor must handle: DN = 10000 x reflectance, plus 1000
(``BOA_ADD_OFFSET``) from processing baseline 04.00 on (``s2:processing_baseline``; one January 2022 scene keeps
the old baseline 03.01 without the offset), nodata 0, clouds (SCL 8/9) and their shadows (SCL 3), scene cloud
cover in ``eo:cloud_cover`` (some scenes above 25 %). Asset keys are Planetary Computer's (B01..B12, B8A, SCL;
vv, vh; data).

The scenes, the DEM and the covariate rasters cover the region plus ``scene_margin_m`` on every side (a real
archive has imagery beyond any region's edge), so a 224-px patch fits around every cell of the region and the
demo map is wall to wall; the landscape is generated over that whole extent, the survey sites and the truth raster
lie in the region.

Everything is a function of :class:`WorldSpec`; the same spec gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import Affine

from socmap.config import socmap_home
from socmap.demo.fields import LANDCOVER, Landscape, gaussian_field, make_landscape, seasonal_weight
from socmap.eo.bands import S2_BANDS, Band
from socmap.io import atomic_path

__all__ = ["WORLD_S2_BANDS", "WorldSpec", "default_world_dir", "ensure_world", "generate_world"]

WORLD_FORMAT = 4
"""Bump when the generator changes what it writes, so cached worlds are regenerated."""

# band -> (common name, vegetation reflectance, soil reflectance); resolutions and wavelengths from socmap.eo.bands
_REFLECTANCE: dict[str, tuple[str, float, float]] = {
    "B01": ("coastal", 0.030, 0.080), "B02": ("blue", 0.040, 0.100), "B03": ("green", 0.080, 0.140),
    "B04": ("red", 0.040, 0.190), "B05": ("rededge", 0.100, 0.210), "B06": ("rededge", 0.250, 0.230),
    "B07": ("rededge", 0.320, 0.250), "B08": ("nir", 0.350, 0.260), "B8A": ("nir08", 0.360, 0.270),
    "B09": ("nir09", 0.300, 0.270), "B11": ("swir16", 0.170, 0.330), "B12": ("swir22", 0.080, 0.300),
}
WORLD_S2_BANDS: tuple[Band, ...] = (Band("B01", "B01", "DN", 0.443, 60), *S2_BANDS)
"""The bands the world's S2 items carry: socmap's eleven (:data:`socmap.eo.bands.S2_BANDS`) plus B01, which a
real L2A item has too and extraction must ignore."""
S2_TILE = "37MBS"


@dataclass(frozen=True)
class WorldSpec:
    """What to generate. The defaults make the 10 x 10 km world of ``socmap demo``."""

    seed: int = 0
    size_m: float = 10_000.0
    """Edge of the square region, m."""
    resolution_m: float = 10.0
    """Base grid (S2 10 m bands, S1, land cover, truth), m."""
    years: tuple[int, ...] = (2022, 2023, 2024)
    s2_doys: tuple[int, ...] = (18, 75, 130, 200, 285)
    """Acquisition days of year of the Sentinel-2 scenes, each year (a few days' jitter is added)."""
    s1_doys: tuple[int, ...] = (60, 160, 300)
    n_sites: int = 600
    """Survey sites with a valid 0-30 cm sample (planted faulty rows come on top)."""
    margin_m: float = 50.0
    """Sites stay this far inside the region's edge, m (the rasters reach ``scene_margin_m`` beyond it, so a
    224-px patch fits around a site anywhere in the region, and the survey covers the whole region)."""
    scene_margin_m: float = 1500.0
    """The rasters (scenes, DEM, covariates) reach this far beyond the region on every side, m: at least half a
    224-px patch at 10 m (1120 m), so every cell of the region gets a whole patch. 1500 m keeps the 20, 60 and
    250 m grids aligned with the region's edge."""
    origin: tuple[float, float] = (250_000.0, 9_600_000.0)
    """Upper-left corner (x, y) in the CRS, m."""
    epsg: int = 32737
    covariate_res_m: float = 250.0

    @property
    def n(self) -> int:
        return round(self.size_m / self.resolution_m)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """The region (xmin, ymin, xmax, ymax), m."""
        x0, y0 = self.origin
        return (x0, y0 - self.size_m, x0 + self.size_m, y0)

    @property
    def n_margin(self) -> int:
        """Pixels of the base grid between the rasters' edge and the region's."""
        return round(self.scene_margin_m / self.resolution_m)

    @property
    def n_raster(self) -> int:
        """Edge of the rasters' base grid (region plus margin on both sides), pixels."""
        return self.n + 2 * self.n_margin

    @property
    def raster_bounds(self) -> tuple[float, float, float, float]:
        """What the rasters cover: the region plus ``scene_margin_m`` on every side, m."""
        xmin, ymin, xmax, ymax = self.bounds
        m = self.n_margin * self.resolution_m
        return (xmin - m, ymin - m, xmax + m, ymax + m)

    def token(self) -> str:
        """Digest of the spec and generator version; a cached world is reused only if it matches."""
        blob = json.dumps({"format": WORLD_FORMAT, **asdict(self)}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def from_origin(x: float, y: float, xres: float, yres: float) -> Affine:
    """North-up transform with the upper-left corner at (x, y) (rasterio's, without its deprecated ``*``)."""
    return Affine(xres, 0.0, x, 0.0, -yres, y)


def default_world_dir() -> Path:
    """``$SOCMAP_HOME/demo-world`` (SOCMAP_HOME defaults to ~/.cache/socmap)."""
    return socmap_home() / "demo-world"


# ------------------------------------------------------------------------------------------ raster IO
def _write_cog(path: Path, data: np.ndarray, transform: Affine, crs: str, nodata: float | None,
               *, categorical: bool = False, description: str | None = None) -> None:
    """Write one band as a Cloud-Optimized GeoTIFF (deflate, 256 px blocks, internal overviews)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG", "height": data.shape[0], "width": data.shape[1], "count": 1, "dtype": data.dtype.name,
        "crs": crs, "transform": transform, "nodata": nodata, "compress": "deflate", "blocksize": 256,
        "overview_resampling": "nearest" if categorical else "average",
    }
    if data.dtype.kind == "f":
        profile["predictor"] = 3
    elif data.dtype.kind in "ui" and data.dtype.itemsize > 1:
        profile["predictor"] = 2
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        if description:
            dst.set_band_description(1, description)


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    n0, n1 = a.shape[0] // f, a.shape[1] // f
    return a[: n0 * f, : n1 * f].reshape(n0, f, n1, f).mean(axis=(1, 3))


def _block_pick(a: np.ndarray, f: int) -> np.ndarray:
    """Nearest-neighbour downsampling for class rasters (centre pixel of each block)."""
    return a[f // 2 :: f, f // 2 :: f][: a.shape[0] // f, : a.shape[1] // f]


# ------------------------------------------------------------------------------------------ sensors
def _s2_scene(rng: np.random.Generator, land: Landscape, year: int, doy: int, n: int, res: float,
              cloud_frac: float) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
    """Reflectance (0-1) per band at 10 m, SCL at 10 m, and the scene cloud cover (%)."""
    ndvi = land.ndvi(year, doy)
    fv = np.clip((ndvi - 0.10) / (0.80 - 0.10), 0.0, 1.0)
    soc = land.soc(year)
    brightness = np.clip(1.0 - 0.35 * (np.log(soc) - np.log(14.0)), 0.45, 1.6)  # darker soils hold more carbon
    shape = (n, n)
    cloud_score = gaussian_field(rng, shape, 45.0)
    if cloud_frac > 0:
        thr = np.quantile(cloud_score, 1.0 - cloud_frac)
        cloud = cloud_score >= thr
        core = cloud_score >= np.quantile(cloud_score, 1.0 - 0.6 * cloud_frac)
        shadow = np.roll(cloud, (25, -30), axis=(0, 1)) & ~cloud
    else:
        cloud = core = shadow = np.zeros(shape, bool)
    refl = {}
    for b in WORLD_S2_BANDS:
        band, (_, veg, bare) = b.name, _REFLECTANCE[b.name]
        r = fv * veg + (1.0 - fv) * bare * brightness + rng.normal(0.0, 0.004, shape)
        r = np.where(shadow, r * 0.45, r)
        cloud_r = (0.55 if b.wavelength_um < 1.0 else 0.35) + 0.05 * cloud_score
        r = np.where(cloud, cloud_r, r)
        refl[band] = np.clip(r, 0.0005, 1.2)
    scl = np.where(ndvi > 0.3, 4, 5).astype(np.uint8)
    scl[shadow] = 3
    scl[cloud] = 8
    scl[core] = 9
    return refl, scl, float(100.0 * cloud.mean())


def _s1_scene(rng: np.random.Generator, land: Landscape, year: int, doy: int) -> tuple[np.ndarray, np.ndarray]:
    """VV and VH gamma0 (linear power) with 4-look speckle."""
    ndvi = land.ndvi(year, doy)
    moist = seasonal_weight(doy) * (land.map - 700.0) / 400.0
    vv_db = -15.0 + 5.0 * ndvi + 2.0 * moist + 1.5 * land.roughness + 8.0 * np.clip(land.slope, 0, 0.5)
    vh_db = -23.0 + 9.0 * ndvi + 1.5 * moist + 1.0 * land.roughness
    looks = 4.0
    vv = 10.0 ** (vv_db / 10.0) * rng.gamma(looks, 1.0 / looks, vv_db.shape)
    vh = 10.0 ** (vh_db / 10.0) * rng.gamma(looks, 1.0 / looks, vh_db.shape)
    return vv.astype(np.float32), vh.astype(np.float32)


def _dem_geographic(land: Landscape, spec: WorldSpec) -> tuple[np.ndarray, Affine]:
    """Elevation resampled (bilinear) onto a 1 arc-second EPSG:4326 grid covering the rasters' extent, like
    GLO-30."""
    from pyproj import Transformer
    from scipy.ndimage import map_coordinates

    xmin, ymin, xmax, ymax = spec.raster_bounds
    to_geo = Transformer.from_crs(spec.epsg, 4326, always_xy=True)
    lons, lats = to_geo.transform([xmin, xmin, xmax, xmax], [ymin, ymax, ymin, ymax])
    step = 1.0 / 3600.0
    lon0 = np.floor(min(lons) / step) * step
    lat0 = np.ceil(max(lats) / step) * step
    ncol = int(np.ceil((max(lons) - lon0) / step)) + 1
    nrow = int(np.ceil((lat0 - min(lats)) / step)) + 1
    lon = lon0 + (np.arange(ncol) + 0.5) * step
    lat = lat0 - (np.arange(nrow) + 0.5) * step
    glon, glat = np.meshgrid(lon, lat)
    to_utm = Transformer.from_crs(4326, spec.epsg, always_xy=True)
    x, y = to_utm.transform(glon, glat)
    col = (x - xmin) / spec.resolution_m - 0.5
    row = (ymax - y) / spec.resolution_m - 0.5
    dem = map_coordinates(land.elevation, [row, col], order=1, mode="nearest").astype(np.float32)
    outside = (col < -0.5) | (col > spec.n_raster - 0.5) | (row < -0.5) | (row > spec.n_raster - 0.5)
    dem[outside] = -32767.0
    return dem, from_origin(lon0, lat0, step, step)


# ---------------------------------------------------------------------------------------------- STAC
def _bbox_geom(bounds: tuple[float, float, float, float], epsg: int) -> tuple[list[float], dict]:
    from pyproj import Transformer

    xmin, ymin, xmax, ymax = bounds
    t = Transformer.from_crs(epsg, 4326, always_xy=True)
    xs = [xmin, xmax, xmax, xmin, xmin]
    ys = [ymin, ymin, ymax, ymax, ymin]
    lon, lat = t.transform(xs, ys)
    ring = [[round(a, 7), round(b, 7)] for a, b in zip(lon, lat, strict=True)]
    bbox = [round(min(lon), 7), round(min(lat), 7), round(max(lon), 7), round(max(lat), 7)]
    return bbox, {"type": "Polygon", "coordinates": [ring]}


def _raster_asset(href: str, title: str, roles: list[str], epsg: int, shape: tuple[int, int], transform: Affine,
                  *, dtype: str, nodata: float | None, unit: str | None = None, scale: float | None = None,
                  offset: float | None = None, resolution: float | None = None) -> Any:
    import pystac
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension

    asset = pystac.Asset(href=href, media_type=pystac.MediaType.COG, title=title, roles=roles)
    proj = ProjectionExtension.ext(asset)
    proj.epsg = epsg
    proj.shape = list(shape)
    proj.transform = [transform.a, transform.b, transform.c, transform.d, transform.e, transform.f]
    band = RasterBand.create(nodata=nodata, data_type=DataType(dtype), unit=unit, scale=scale, offset=offset,
                             spatial_resolution=resolution)
    RasterExtension.ext(asset).apply([band])
    return asset


def _new_item(item_id: str, when: dt.datetime, bbox: list[float], geom: dict[str, Any], props: dict[str, Any]) -> Any:
    import pystac
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterExtension

    item = pystac.Item(id=item_id, geometry=geom, bbox=bbox, datetime=when, properties=dict(props))
    ProjectionExtension.add_to(item)
    RasterExtension.add_to(item)
    return item


# ---------------------------------------------------------------------------------------------- survey
HORIZON_SCHEMES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 10), (10, 30)),
    ((0, 15), (15, 30), (30, 60)),
    ((0, 20), (20, 50)),
)
MIN_SITE_SPACING_M = 30.0
"""Survey sites are at least this far apart, m."""
DEPTH_DECAY_CM = 40.0
"""SOC falls off with depth as exp(-z / 40 cm) within a profile."""


def _mean_exp(a: float, b: float) -> float:
    """Mean of exp(-z/d) over [a, b] cm."""
    d = DEPTH_DECAY_CM
    return d * (np.exp(-a / d) - np.exp(-b / d)) / (b - a)


def write_survey(path: Path, rng: np.random.Generator, land: Landscape, spec: WorldSpec) -> pd.DataFrame:
    """A survey CSV, one row per horizon, with the quirks of real ones planted in.

    Columns: profile_id, lab_sample_id, longitude, latitude (WGS84 deg), sampling_date (YYYY-MM-DD),
    upper_depth_cm, lower_depth_cm, org_carbon_pct (% by mass = g/kg / 10), ph_h2o, clay_pct.
    Each profile's horizons are consistent with the true 0-30 cm SOC: the depth-weighted 0-30 cm mean of a
    profile whose horizons cover exactly 0-30 cm equals the truth times ~5 % lab noise.
    Planted quirks: exact duplicate rows, replicate samples (same profile and depth, another lab id), rows with
    empty or impossible coordinates, and implausible SOC values; none replace a valid site.
    Returns the site table (profile_id, x, y, lon, lat, year, soc_true_gkg).
    """
    from pyproj import Transformer

    n, res = spec.n, spec.resolution_m
    xmin, _, _, ymax = spec.bounds
    xy = _site_positions(rng, spec)
    col = np.clip(((xy[:, 0] - xmin) / res).astype(int), 0, n - 1) + spec.n_margin  # on the rasters' grid
    row = np.clip(((ymax - xy[:, 1]) / res).astype(int), 0, n - 1) + spec.n_margin
    years = rng.choice(np.array(spec.years), spec.n_sites)
    soc_by_year = {int(y): land.soc(int(y)) for y in spec.years}
    truth = np.array([soc_by_year[int(y)][r, c] for y, r, c in zip(years, row, col, strict=True)], dtype=np.float64)
    lon, lat = Transformer.from_crs(spec.epsg, 4326, always_xy=True).transform(xy[:, 0], xy[:, 1])
    shape = land.slope.shape
    clay_field = np.clip(22.0 + 9.0 * gaussian_field(rng, shape, 60.0) + 4.0 * (land.slope > 0.1), 3, 70)
    ph_field = np.clip(6.4 - 0.6 * (land.map - 800.0) / 200.0 + 0.3 * gaussian_field(rng, shape, 80.0), 4.2, 8.8)
    df = _horizon_rows(rng, years, truth, lon, lat, clay_field[row, col], ph_field[row, col])
    out = _with_quirks(rng, df)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return pd.DataFrame({"profile_id": [f"TZ-DEMO-{i + 1:04d}" for i in range(spec.n_sites)], "x": xy[:, 0],
                         "y": xy[:, 1], "lon": lon, "lat": lat, "year": years, "soc_true_gkg": truth})


def _site_positions(rng: np.random.Generator, spec: WorldSpec) -> np.ndarray:
    """(n_sites, 2) survey site positions (x, y in the world's CRS, m, to 0.1 m), at least
    :data:`MIN_SITE_SPACING_M` apart and ``margin_m`` inside the region."""
    xmin, ymin, xmax, ymax = spec.bounds
    m = spec.margin_m
    # half the sites in survey clusters (like AfSIS sentinel sites), half spread uniformly
    # candidates twice over, then keep sites at least MIN_SITE_SPACING_M apart so each is one site after
    # harmonisation (which merges profiles a few metres apart)
    n_cand = 2 * spec.n_sites
    centres = rng.uniform([xmin + m + 500, ymin + m + 500], [xmax - m - 500, ymax - m - 500], (8, 2))
    cl = centres[rng.integers(0, len(centres), n_cand // 2)] + rng.normal(0.0, 350.0, (n_cand // 2, 2))
    un = rng.uniform([xmin + m, ymin + m], [xmax - m, ymax - m], (n_cand - n_cand // 2, 2))
    cand = np.round(np.clip(np.vstack([cl, un]), [xmin + m, ymin + m], [xmax - m, ymax - m]), 1)
    cand = cand[np.argsort(np.r_[np.arange(0, n_cand, 2), np.arange(1, n_cand, 2)], kind="stable")]  # interleave
    keep: list[int] = []
    for i, p in enumerate(cand):
        if not keep or np.hypot(*(cand[keep] - p).T).min() >= MIN_SITE_SPACING_M:
            keep.append(i)
            if len(keep) == spec.n_sites:
                break
    if len(keep) < spec.n_sites:
        raise ValueError(f"cannot place {spec.n_sites} sites {MIN_SITE_SPACING_M} m apart; enlarge size_m")
    return cand[keep]


def _horizon_rows(rng: np.random.Generator, years: np.ndarray, truth: np.ndarray, lon: np.ndarray,
                  lat: np.ndarray, clay: np.ndarray, ph: np.ndarray) -> pd.DataFrame:
    """The valid horizons of every site: a sampling date in its year, a horizon scheme, and per horizon the
    depth-decayed true SOC with ~5 % lab noise; pH and clay (per-site field values ``ph``, ``clay``) with noise."""
    rows = []
    for i in range(len(truth)):
        pid = f"TZ-DEMO-{i + 1:04d}"
        doy = int(rng.integers(1, 365))
        date = dt.date(int(years[i]), 1, 1) + dt.timedelta(days=doy - 1)
        scheme = HORIZON_SCHEMES[int(rng.integers(0, len(HORIZON_SCHEMES)))]
        base = truth[i] / _mean_exp(0.0, 30.0)
        for h, (a, b) in enumerate(scheme):
            val = base * _mean_exp(a, b) * float(np.exp(rng.normal(0.0, 0.05)))
            rows.append({
                "profile_id": pid, "lab_sample_id": f"LAB{i + 1:04d}-{h + 1}",
                "longitude": round(float(lon[i]), 6), "latitude": round(float(lat[i]), 6),
                "sampling_date": date.isoformat(), "upper_depth_cm": a, "lower_depth_cm": b,
                "org_carbon_pct": round(val / 10.0, 3),
                "ph_h2o": round(float(ph[i] + rng.normal(0, 0.1)), 2),
                "clay_pct": round(float(clay[i] + rng.normal(0, 1.5)), 1),
            })
    return pd.DataFrame(rows)


def _with_quirks(rng: np.random.Generator, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the planted quirks of a real survey, rows shuffled: exact duplicate rows, replicate samples and
    faulty extra profiles (empty coordinates, impossible latitude, implausible SOC)."""
    quirks = []
    # exact duplicate rows (a table merged twice)
    quirks.append(df.iloc[rng.choice(len(df), 4, replace=False)])
    # replicate samples: same profile and depth, another lab id, a slightly different value
    rep = df.iloc[rng.choice(len(df), 3, replace=False)].copy()
    rep["lab_sample_id"] = rep["lab_sample_id"] + "-R"
    rep["org_carbon_pct"] = (rep["org_carbon_pct"] * np.exp(rng.normal(0, 0.04, len(rep)))).round(3)
    quirks.append(rep)
    # faulty extra profiles: empty coordinates, impossible latitude, implausible SOC
    bad = df.iloc[rng.choice(len(df), 7, replace=False)].copy().reset_index(drop=True)
    bad["profile_id"] = [f"TZ-DEMO-X{k + 1:02d}" for k in range(len(bad))]
    bad["lab_sample_id"] = [f"LABX{k + 1:02d}" for k in range(len(bad))]
    bad.loc[0:2, ["longitude", "latitude"]] = np.nan
    bad.loc[3:4, "latitude"] = 999.0
    bad.loc[5, "org_carbon_pct"] = -1.0
    bad.loc[6, "org_carbon_pct"] = 75.0
    quirks.append(bad)
    out = pd.concat([df, *quirks], ignore_index=True)
    return out.iloc[rng.permutation(len(out))].reset_index(drop=True)


# ------------------------------------------------------------------------------------------- generate
@dataclass
class _Gen:
    """What the writers of one world share (the generator state is consumed in a fixed order)."""

    spec: WorldSpec
    rng: np.random.Generator
    land: Landscape
    stac_dir: Path
    bbox: list[float]
    geom: dict[str, Any]

    @property
    def n(self) -> int:
        """Edge of the rasters' base grid, pixels (region plus margins)."""
        return self.spec.n_raster

    @property
    def res(self) -> float:
        return self.spec.resolution_m

    @property
    def crs(self) -> str:
        return f"EPSG:{self.spec.epsg}"

    @property
    def t10(self) -> Affine:
        """The rasters' 10 m grid (over the region plus margins)."""
        return from_origin(self.spec.raster_bounds[0], self.spec.raster_bounds[3], self.res, self.res)


def _write_s2(w: _Gen, s2c: Any, bar: Any) -> None:
    """Sentinel-2 L2A items: every band as a COG at its native resolution, plus SCL at 20 m."""
    from pystac.extensions.eo import Band as EOBand
    from pystac.extensions.eo import EOExtension

    spec, rng, land, n, res, crs, stac_dir, bbox, geom = (w.spec, w.rng, w.land, w.n, w.res, w.crs, w.stac_dir,
                                                          w.bbox, w.geom)
    xmin, ymax = spec.raster_bounds[0], spec.raster_bounds[3]
    for year in spec.years:
        for k, doy0 in enumerate(spec.s2_doys):
            doy = int(doy0 + rng.integers(-4, 5))
            when = dt.datetime(year, 1, 1, 7, 40, 9, tzinfo=dt.UTC) + dt.timedelta(days=doy - 1)
            cloud_frac = float(rng.choice([0.0, 0.03, 0.08, 0.15, 0.35, 0.45], p=[.2, .25, .2, .15, .1, .1]))
            refl, scl, cc = _s2_scene(rng, land, year, doy, n, res, cloud_frac)
            old_baseline = when < dt.datetime(2022, 1, 25, tzinfo=dt.UTC)
            baseline = "03.01" if old_baseline else "05.09"
            add = 0 if old_baseline else 1000
            sat = "sentinel-2a" if (k + year) % 2 == 0 else "sentinel-2b"
            item_id = f"S2{sat[-1].upper()}_MSIL2A_{when:%Y%m%dT%H%M%S}_R092_T{S2_TILE}"
            item = _new_item(item_id, when, bbox, geom, {
                "platform": sat, "constellation": "sentinel-2", "instruments": ["msi"],
                "s2:processing_baseline": baseline, "s2:mgrs_tile": S2_TILE, "eo:cloud_cover": round(cc, 2)})
            EOExtension.add_to(item)
            d = stac_dir / "sentinel-2-l2a" / item_id
            for b in WORLD_S2_BANDS:
                band, bres, wl, common = b.name, int(b.native_res_m), b.wavelength_um, _REFLECTANCE[b.name][0]
                f = int(bres // res)
                arr = _block_mean(refl[band], f) if f > 1 else refl[band]
                dn = np.clip(np.round(arr * 10000.0) + add, 1, 65535).astype(np.uint16)
                tb = from_origin(xmin, ymax, bres, bres)
                _write_cog(d / f"{band}.tif", dn, tb, crs, 0, description=band)
                asset = _raster_asset(f"./{band}.tif", f"Band {band} - {common} ({bres} m)", ["data", "reflectance"],
                                      spec.epsg, dn.shape, tb, dtype="uint16", nodata=0, scale=0.0001,
                                      offset=-0.1 if add else 0.0, resolution=float(bres))
                EOExtension.ext(asset).apply(bands=[EOBand.create(name=band, common_name=common,
                                                                center_wavelength=wl)])
                item.add_asset(band, asset)
            scl20 = _block_pick(scl, 2)
            t20 = from_origin(xmin, ymax, 20.0, 20.0)
            _write_cog(d / "SCL.tif", scl20, t20, crs, 0, categorical=True, description="SCL")
            item.add_asset("SCL", _raster_asset("./SCL.tif", "Scene classification map (20 m)", ["data"],
                                                spec.epsg, scl20.shape, t20, dtype="uint8", nodata=0,
                                                resolution=20.0))
            s2c.add_item(item)
            bar.update()


def _write_s1(w: _Gen, s1c: Any, bar: Any) -> None:
    """Sentinel-1 RTC items: VV and VH gamma0 (linear) COGs on the 10 m grid."""
    from pystac.extensions.sar import FrequencyBand, Polarization, SarExtension
    from pystac.extensions.sat import OrbitState, SatExtension

    spec, rng, land, res, crs, t10, stac_dir, bbox, geom = (w.spec, w.rng, w.land, w.res, w.crs, w.t10,
                                                            w.stac_dir, w.bbox, w.geom)
    for year in spec.years:
        for k, doy0 in enumerate(spec.s1_doys):
            doy = int(doy0 + rng.integers(-5, 6))
            when = dt.datetime(year, 1, 1, 15, 44, 2, tzinfo=dt.UTC) + dt.timedelta(days=doy - 1)
            vv, vh = _s1_scene(rng, land, year, doy)
            item_id = f"S1A_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_rtc"
            item = _new_item(item_id, when, bbox, geom, {
                "platform": "sentinel-1a", "constellation": "sentinel-1", "instruments": ["c-sar"]})
            sar = SarExtension.ext(item, add_if_missing=True)
            sar.apply(instrument_mode="IW", frequency_band=FrequencyBand.C,
                      polarizations=[Polarization.VV, Polarization.VH], product_type="GRD")
            SatExtension.ext(item, add_if_missing=True).apply(orbit_state=OrbitState.DESCENDING if k % 2
                                                              else OrbitState.ASCENDING)
            d = stac_dir / "sentinel-1-rtc" / item_id
            for key, arr in (("vv", vv), ("vh", vh)):
                _write_cog(d / f"{key}.tif", arr, t10, crs, -32768.0, description=key.upper())
                item.add_asset(key, _raster_asset(f"./{key}.tif", f"{key.upper()}: gamma0 terrain corrected",
                                                  ["data"], spec.epsg, arr.shape, t10, dtype="float32",
                                                  nodata=-32768.0, unit="linear power", resolution=res))
            s1c.add_item(item)
            bar.update()


def _write_dem(w: _Gen, demc: Any, bar: Any) -> None:
    """The GLO-30-like DEM item (EPSG:4326, 1 arc-second)."""
    spec, land, stac_dir, bbox, geom = w.spec, w.land, w.stac_dir, w.bbox, w.geom
    dem, tdem = _dem_geographic(land, spec)
    dem_id = "Copernicus_DSM_COG_10_DEMO_00"
    item = _new_item(dem_id, dt.datetime(2021, 4, 22, tzinfo=dt.UTC), bbox, geom,
                     {"platform": "TanDEM-X", "gsd": 30})
    _write_cog(stac_dir / "cop-dem-glo-30" / dem_id / "data.tif", dem, tdem, "EPSG:4326", -32767.0,
               description="elevation")
    item.add_asset("data", _raster_asset("./data.tif", "Elevation (m)", ["data"], 4326, dem.shape, tdem,
                                         dtype="float32", nodata=-32767.0, unit="metre"))
    demc.add_item(item)
    bar.update()


def _write_covariates(w: _Gen, root: Path, covc: Any, bar: Any) -> None:
    """Climate and land-cover covariate COGs (and their item), and the true SOC of every year."""
    spec, land, res, crs, t10, bbox, geom = w.spec, w.land, w.res, w.crs, w.t10, w.bbox, w.geom
    xmin, ymax = spec.raster_bounds[0], spec.raster_bounds[3]
    f = round(spec.covariate_res_m / res)
    tcov = from_origin(xmin, ymax, spec.covariate_res_m, spec.covariate_res_m)
    cov_dir = root / "covariates"
    mat = _block_mean(land.mat, f).astype(np.float32)
    map_ = _block_mean(land.map, f).astype(np.float32)
    _write_cog(cov_dir / "mat_degC.tif", mat, tcov, crs, -9999.0, description="mean annual temperature (degC)")
    _write_cog(cov_dir / "map_mm.tif", map_, tcov, crs, -9999.0, description="mean annual precipitation (mm)")
    _write_cog(cov_dir / "landcover.tif", land.landcover, t10, crs, 0, categorical=True,
               description="land cover (ESA WorldCover codes)")
    item = _new_item("demo-covariates", dt.datetime(2020, 1, 1, tzinfo=dt.UTC), bbox, geom, {})
    item.add_asset("mat", _raster_asset("../../../covariates/mat_degC.tif", "Mean annual temperature", ["data"],
                                        spec.epsg, mat.shape, tcov, dtype="float32", nodata=-9999.0, unit="degC"))
    item.add_asset("map", _raster_asset("../../../covariates/map_mm.tif", "Mean annual precipitation", ["data"],
                                        spec.epsg, map_.shape, tcov, dtype="float32", nodata=-9999.0, unit="mm"))
    item.add_asset("landcover", _raster_asset("../../../covariates/landcover.tif", "Land cover", ["data"],
                                              spec.epsg, land.landcover.shape, t10, dtype="uint8", nodata=0))
    covc.add_item(item)
    bar.update()
    k, n = spec.n_margin, spec.n
    t_region = from_origin(spec.bounds[0], spec.bounds[3], res, res)
    for year in spec.years:  # the region only: maps are scored over the region
        _write_cog(root / "truth" / f"soc_true_{year}.tif", np.ascontiguousarray(land.soc(year)[k:k + n, k:k + n]),
                   t_region, crs, -9999.0, description=f"true 0-30 cm SOC {year} (g/kg)")


def generate_world(root: Path, spec: WorldSpec, progress: bool = True) -> Path:
    """Write the whole world into ``root`` (which must not exist yet). Returns ``root``."""
    import pystac
    from tqdm import tqdm

    rng = np.random.default_rng(spec.seed)
    land = make_landscape(rng, spec.n_raster, spec.resolution_m, spec.years)
    bbox, geom = _bbox_geom(spec.raster_bounds, spec.epsg)
    w = _Gen(spec=spec, rng=rng, land=land, stac_dir=root / "stac", bbox=bbox, geom=geom)

    catalog = pystac.Catalog(id="socmap-demo-world", description=(
        "socmap demo world: synthetic Sentinel-2 L2A, Sentinel-1 RTC, Copernicus DEM and covariates over a "
        f"{spec.size_m / 1000:g} x {spec.size_m / 1000:g} km region (seed {spec.seed})."))
    extent = pystac.Extent(
        pystac.SpatialExtent([bbox]),
        pystac.TemporalExtent([[dt.datetime(min(spec.years), 1, 1, tzinfo=dt.UTC),
                                dt.datetime(max(spec.years), 12, 31, tzinfo=dt.UTC)]]))

    def collection(cid: str, desc: str) -> pystac.Collection:
        c = pystac.Collection(id=cid, description=desc, extent=extent, license="CC0-1.0")
        catalog.add_child(c)
        return c

    s2c = collection("sentinel-2-l2a", "Synthetic Sentinel-2 Level-2A surface reflectance (DN, see raster:bands).")
    s1c = collection("sentinel-1-rtc", "Synthetic Sentinel-1 radiometrically terrain corrected gamma0 (linear).")
    demc = collection("cop-dem-glo-30", "Synthetic Copernicus DEM GLO-30 (m).")
    covc = collection("demo-covariates", "Climate and land-cover covariates of the demo world.")

    n_s2 = len(spec.years) * len(spec.s2_doys)
    n_s1 = len(spec.years) * len(spec.s1_doys)
    bar = tqdm(total=n_s2 + n_s1 + 3, desc="demo world", unit="scene", disable=not progress)
    _write_s2(w, s2c, bar)
    _write_s1(w, s1c, bar)
    _write_dem(w, demc, bar)
    _write_covariates(w, root, covc, bar)
    sites = write_survey(root / "survey" / "soil_survey.csv", rng, land, spec)
    sites = sites.round({"x": 1, "y": 1, "lon": 7, "lat": 7, "soc_true_gkg": 4})
    sites.to_csv(root / "truth" / "sites.csv", index=False)
    bar.update()
    bar.close()

    catalog.normalize_hrefs(str(w.stac_dir))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    _write_manifest(root, spec)
    return root


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_manifest(root: Path, spec: WorldSpec) -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "world.json")
    manifest = {
        "token": spec.token(), "format": WORLD_FORMAT, "spec": asdict(spec), "crs": f"EPSG:{spec.epsg}",
        "bounds": list(spec.bounds), "raster_bounds": list(spec.raster_bounds),
        "landcover_classes": {str(k): v[0] for k, v in LANDCOVER.items()},
        "files": {str(p.relative_to(root)): _sha256(p) for p in files},
    }
    (root / "world.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def world_matches(root: Path, spec: WorldSpec) -> bool:
    """True if ``root`` holds a complete world generated from ``spec`` (same token, every file present)."""
    man = root / "world.json"
    if not man.is_file():
        return False
    try:
        data = json.loads(man.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return data.get("token") == spec.token() and all((root / f).is_file() for f in data.get("files", {}))


def ensure_world(root: Path, spec: WorldSpec | None = None, *, force: bool = False, progress: bool = True) -> Path:
    """Reuse the world in ``root`` if it was made from ``spec``; else generate it (atomically: a temporary
    sibling folder renamed into place, so an interrupted run never leaves a half world)."""
    spec = spec or WorldSpec()
    root = Path(root).expanduser().resolve()
    if not force and world_matches(root, spec):
        return root
    with atomic_path(root) as tmp:
        generate_world(tmp, spec, progress=progress)
    return root
