"""Proof on known truth: random polygons over a map whose true SOC is known, and how often the intervals cover
the true zone mean (``benchmarks/aggregate_coverage.py``, ``socmap demo``, the tests).

The true zone mean is the truth raster averaged onto the map grid (``Resampling.average``, as
:func:`socmap.mapping.score.score_map` scores maps) and weighted exactly like the map's cells
(:func:`socmap.aggregate.stage.aggregate_zones` with ``reference``), so map and truth are compared over the same
mapped part of each zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap.aggregate.interval import LEVEL
from socmap.metrics import interval_coverage

__all__ = ["CoverageCheck", "coverage_check", "covered_share", "map_coverage", "random_zones"]


def random_zones(bounds: tuple[float, float, float, float], n: int, crs: Any, *, seed: int,
                 area_km2: tuple[float, float] = (0.25, 25.0), vertices: int = 12) -> Any:
    """``n`` random star-shaped polygons inside ``bounds`` (a projected CRS in metres), areas log-uniform in
    ``area_km2``; a GeoDataFrame with ``zone`` (``z<seed>_<i>``) and ``area_km2``."""
    import geopandas as gpd
    from shapely import Polygon
    from shapely.affinity import scale, translate

    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = bounds
    geoms, names = [], []
    for i in range(n):
        target = float(np.exp(rng.uniform(*np.log(area_km2)))) * 1e6
        ang = np.sort(rng.uniform(0, 2 * np.pi, vertices))
        rad = rng.uniform(0.6, 1.0, vertices)
        unit = Polygon(np.c_[rad * np.cos(ang), rad * np.sin(ang)]).buffer(0)
        aspect = float(rng.uniform(0.5, 2.0))
        poly = scale(unit, np.sqrt(aspect), 1 / np.sqrt(aspect), origin=(0, 0))
        poly = scale(poly, np.sqrt(target / poly.area), np.sqrt(target / poly.area), origin=(0, 0))
        bx0, by0, bx1, by1 = poly.bounds
        cx = rng.uniform(xmin - bx0, xmax - bx1) if xmax - bx1 > xmin - bx0 else (xmin + xmax) / 2
        cy = rng.uniform(ymin - by0, ymax - by1) if ymax - by1 > ymin - by0 else (ymin + ymax) / 2
        geoms.append(translate(poly, cx, cy))
        names.append(f"z{seed}_{i:03d}")
    gdf = gpd.GeoDataFrame({"zone": names}, geometry=geoms, crs=crs)
    gdf["area_km2"] = gdf.geometry.area.to_numpy() / 1e6
    return gdf


def covered_share(table: pd.DataFrame, truth: Any, *, naive: bool = False) -> float:
    """Share of the rows of ``table`` whose interval (the naive one with ``naive``) holds ``truth`` (g/kg)."""
    lo, hi = ("naive_lo_gkg", "naive_hi_gkg") if naive else ("soc_lo_gkg", "soc_hi_gkg")
    return float(interval_coverage(truth, table[lo].to_numpy(float), table[hi].to_numpy(float)))


@dataclass
class CoverageCheck:
    """How often the intervals covered the true zone means."""

    zones: int
    coverage: float
    naive_coverage: float
    level: float
    mean_width_ratio: float
    """Mean over zones of (interval width / naive width)."""
    bias_gkg: float
    """Mean of (map zone mean - true zone mean), g/kg."""
    table: pd.DataFrame

    def line(self) -> str:
        return (f"{self.level:.0%} intervals covered the true zone mean in {self.coverage:.1%} of {self.zones} "
                f"random zones (naive, cells independent: {self.naive_coverage:.1%}); intervals "
                f"{self.mean_width_ratio:.1f}x the naive width, bias {self.bias_gkg:+.2f} g/kg")

    def figures(self) -> dict[str, Any]:
        return {"zones": self.zones, "coverage": round(self.coverage, 4),
                "naive_coverage": round(self.naive_coverage, 4), "level": self.level,
                "width_ratio": round(self.mean_width_ratio, 3), "bias_gkg": round(self.bias_gkg, 4)}


def coverage_check(layers: Any, truth_grid: np.ndarray, correlogram: Any, *, seeds: list[int], n_zones: int,
                   level: float = LEVEL, area_km2: tuple[float, float] = (0.25, 25.0), n_pairs: int = 50_000,
                   progress: bool = False) -> CoverageCheck:
    """Random zones (``n_zones`` per seed) over ``layers`` (a projected map), scored against ``truth_grid``."""
    from socmap.aggregate.stage import aggregate_zones

    t = layers.transform
    rows, cols = layers.shape
    bounds = (t.c, t.f + rows * t.e, t.c + cols * t.a, t.f)
    tables = []
    for s in seeds:
        zones = random_zones(bounds, n_zones, layers.crs, seed=s, area_km2=area_km2)
        tables.append(aggregate_zones(layers, zones, correlogram, level=level, reference=truth_grid,
                                      n_pairs=n_pairs, seed=s, progress=progress))
    tab = pd.concat(tables, ignore_index=True)
    tab = tab[np.isfinite(tab["soc_mean_gkg"]) & np.isfinite(tab["reference_mean"])]
    y = tab["reference_mean"].to_numpy()
    cov = covered_share(tab, y)
    naive = covered_share(tab, y, naive=True)
    ratio = float(np.mean(tab["soc_sd_gkg"] / tab["naive_sd_gkg"]))
    return CoverageCheck(zones=len(tab), coverage=cov, naive_coverage=naive, level=level, mean_width_ratio=ratio,
                         bias_gkg=float(np.mean(tab["soc_mean_gkg"] - y)), table=tab)


def map_coverage(maps: Path | str, model: Path | str | None, truth: Path | str, *, seeds: list[int],
                 n_zones: int = 50, level: float = LEVEL, area_km2: tuple[float, float] = (0.25, 25.0),
                 n_pairs: int = 50_000, progress: bool = False) -> tuple[CoverageCheck, Any]:
    """:func:`coverage_check` of a map folder (``socmap predict`` output) against a truth raster, the correlogram
    fitted on ``model``'s held-out points (default: the bundle the map records); returns (check, correlogram)."""
    from socmap.aggregate.stage import load_map, map_correlogram
    from socmap.aggregate.stock import layer_on_grid
    from socmap.inference import load_bundle
    from socmap.mapping.layout import resolve_maps

    layers = load_map(resolve_maps(maps))
    corr = map_correlogram(load_bundle(model or layers.attrs["model"], load_members=False), layers)
    grid_truth = layer_on_grid(truth, layers.transform, layers.shape, layers.crs)
    chk = coverage_check(layers, grid_truth, corr, seeds=seeds, n_zones=n_zones, level=level, area_km2=area_km2,
                         n_pairs=n_pairs, progress=progress)
    return chk, corr
