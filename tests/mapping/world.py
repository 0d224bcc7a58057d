"""The mapping tests' small world, written by plain functions (the mapping and aggregate fixtures and
tests/data/bundle/data.py, which trains the stored bundle on it, write the same world).

Layout (lon 36.00..36.40, lat -3.40..-3.00, rasters at 0.01 degree): the map grid covers lon 36.00..36.32,
lat -3.32..-3.00 at 0.005 degree (64 x 64 cells); the sea (no-data in every layer) is lon > 36.26, lat < -3.26;
survey sites lie only west of lon 36.20, so the eastern strip is far from every training node.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

LON0, LAT1, RES = 36.0, -3.0, 0.01
N = 40
SEA_LON, SEA_LAT = 36.26, -3.26
SITES_WEST_OF = 36.20
GRID_BOUNDS = [36.0, -3.32, 36.32, -3.0]
GRID_RES = 0.005
"""Map cell size, degrees: 64 x 64 cells, in 1 tile of 64 or 4 tiles of 32 (a 32-cell tile gets a COG overview)."""
GRID_N = 64
TILE = 32


def _write_raster(path: Path, arr: np.ndarray, dtype: str, nodata: float) -> None:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=N, height=N, count=1, dtype=dtype, crs="EPSG:4326",
                       transform=from_origin(LON0, LAT1, RES, RES), nodata=nodata) as ds:
        ds.write(arr.astype(dtype), 1)


def _fields(lon: np.ndarray, lat: np.ndarray) -> dict[str, np.ndarray]:
    """Smooth seeded covariate fields at (lon, lat)."""
    u, v = (lon - LON0) / 0.4, (LAT1 - lat) / 0.4
    temp = 20 + 4 * u - 3 * v + np.sin(7 * u) * np.cos(5 * v)
    ndvi = 0.2 + 0.5 * (1 - v) * (0.6 + 0.4 * np.cos(4 * u))
    elev = 900 + 600 * v + 150 * np.sin(6 * u)
    lc = np.where(u + 0.3 * np.sin(9 * v) < 0.35, 10, np.where(v < 0.5, 20, 30))
    return {"temp": temp, "ndvi": ndvi, "elevation": elev, "lc": lc}


def write_map_world(root: Path) -> dict[str, Path]:
    """Seeded rasters, survey, grids (1 tile and 4 tiles) and three pipelines in ``root`` (created); their paths.

    Deterministic: the same files every call, so a bundle trained on one copy maps any other.
    """
    root.mkdir(parents=True, exist_ok=True)
    lon = LON0 + (np.arange(N) + 0.5) * RES
    lat = LAT1 - (np.arange(N) + 0.5) * RES
    glon, glat = np.meshgrid(lon, lat)
    f = _fields(glon, glat)
    sea = (glon > SEA_LON) & (glat < SEA_LAT)
    for name in ("temp", "ndvi", "elevation"):
        _write_raster(root / f"{name}.tif", np.where(sea, -9999.0, f[name]), "float32", -9999.0)
    _write_raster(root / "lc.tif", np.where(sea, 255, f["lc"]), "uint8", 255)

    rng = np.random.default_rng(0)
    n = 240
    slon = rng.uniform(36.0, SITES_WEST_OF, n)
    slat = rng.uniform(-3.40, -3.0, n)
    sf = _fields(slon, slat)
    soc = np.exp(2.2 + 0.08 * (sf["temp"] - 20) + 1.2 * sf["ndvi"] + 0.15 * (sf["lc"] == 30)
                 + rng.normal(0, 0.15, n))  # g/kg
    survey = pd.DataFrame({
        "profile_id": [f"P{i:04d}" for i in range(n)], "lab_sample_id": [f"L{i:04d}" for i in range(n)],
        "longitude": slon.round(6), "latitude": slat.round(6), "sampling_date": "2020-06-15",
        "upper_depth_cm": 0, "lower_depth_cm": 30, "org_carbon_pct": (soc / 10).round(4),
        "ph_h2o": 6.0, "clay_pct": 20.0})
    survey.to_csv(root / "survey.csv", index=False)

    for name, tile in (("grid1", GRID_N), ("grid4", TILE)):
        (root / f"{name}.yaml").write_text(yaml.safe_dump({
            "name": name, "crs": "EPSG:4326", "resolution": GRID_RES, "bounds": GRID_BOUNDS, "tile_size": tile}))
    pipe = {
        "name": "mapworld", "description": "mapping test world", "grid": "grid4.yaml",
        "preset": "table6",  # the keys below over Table 6's defaults: what the stored bundle was trained with
        "data": {"sources": [{"path": "survey.csv", "mapping": "demo"}],
                 "covariates": [{"name": "temp", "path": "temp.tif", "unit": "degC"},
                                {"name": "ndvi", "path": "ndvi.tif", "unit": "1"},
                                {"name": "elevation", "path": "elevation.tif", "unit": "m"},
                                {"name": "lc", "path": "lc.tif", "unit": "class", "categorical": True}],
                 "split": {"method": "random", "fractions": [0.8, 0.1, 0.1], "strata": 5, "seed": 0,
                           "block_km": 5.0}},  # the sites span 22 x 44 km: evaluate's block protocol needs blocks
        "stac": None, "imagery": {"enabled": False},
        "model": {"streams": ["tabular", "position", "time"],
                  "positional": {"scales": 4, "sigma_min": 0.01, "sigma_max": 1.0, "out_dim": 8},
                  "temporal": {"frequencies": 2, "out_dim": 4, "year_min": 2015, "year_max": 2025},
                  "moe": {"experts": 2, "fusion_dim": 16}, "graph": {"k_spatial": 5, "spatial_k_mode": "fixed"},
                  "rgat": {"hidden_dims": [16, 8], "heads": 2, "bases": 2, "dropout": 0.1},
                  "pre_mlp": {"hidden": [16], "out": 16}, "post_mlp": {"hidden": [8], "out": 8}},
        "train": {"epochs": 4, "early_stop_patience": 4, "warm_start_epochs": 1, "ensemble_members": 2,
                  "learning_rate": 3e-3, "device": "cpu"},
        "output": {"year": 2020},
    }
    (root / "pipeline.yaml").write_text(yaml.safe_dump(pipe, sort_keys=False))
    pipe1 = {**pipe, "grid": "grid1.yaml"}
    (root / "pipeline1.yaml").write_text(yaml.safe_dump(pipe1, sort_keys=False))
    other = {**pipe, "data": {**pipe["data"], "covariates": pipe["data"]["covariates"][:3]}}
    (root / "pipeline_other_covariates.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    return {"root": root, "pipeline": root / "pipeline.yaml", "pipeline1": root / "pipeline1.yaml",
            "other": root / "pipeline_other_covariates.yaml"}
