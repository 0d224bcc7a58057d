"""Benchmark: does a finished SOC map look like soil? Facets at nearest-site borders and uncertainty off the data.

Reads a ``socmap predict`` map (the version folder ``OUT/REGION/YEAR/VERSION/`` holding ``soc.zarr``, or its year
folder, whose ``latest.json`` is followed) with the reader ``socmap aggregate`` uses, and the prepared data folder
of the bundle that made it (``samples.parquet``: the sites with ``split == train`` are the training sites), then
prints the figures of :mod:`socmap.evaluate.realism` and, last, one JSON line:

- ``facet_ratio``: mean |difference| of ``soc_mean`` between 4-adjacent mapped cells whose nearest training site
  (great-circle) differs, over the same for adjacent cells sharing it. A Voronoi mosaic of the sites scores far
  above 1; goal <= 1.3;
- ``facet_ratio_by_distance``: the same ratio within deciles of distance to the nearest training site, pooled
  (geometric mean): sites and borders are dense where the map varies most, so even a smooth map scores the plain
  ratio above 1 (a 50 km Gaussian-kernel smoother of the Africa labels: 1.22); this one compares like with like;
- ``facet_ratio_by_distance_log``: the same figure on the steps of log1p(``soc_mean``) instead of g/kg, so a
  step counts by its relative size (a high-SOC region's steps no longer outweigh the rest);
- ``sd_ratio_aoa``: median relative sd (``total_sd / soc_mean``) of the cells outside the area of applicability
  over that of the cells inside it; goal >= 1.5;
- ``sd_ratio_aoa_log``: the same ratio of the median sd of log(1 + SOC), the predictive's own log-scale sd,
  recovered exactly from ``total_sd``, ``q05`` and ``q95`` (:func:`socmap.evaluate.realism.log_scale_sd`; None
  when the map lacks one of them);

plus the counts (cells, pairs of each kind, cells inside / outside the AOA) and the means and medians behind them.

Usage::

    python benchmarks/map_realism.py --maps maps/africa-coarse/2012/VERSION --data DATA
    python benchmarks/map_realism.py --maps maps/africa-coarse/2012 --data DATA --sites all

Goal (issue 18): the 2012 Africa 10' map from the shipped africa-coarse bundle; it scored facet_ratio 2.34 and
sd_ratio_aoa 1.07 before the issue.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FACET_GOAL, SD_RATIO_GOAL = 1.3, 1.5


def cell_lonlat(layers, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, 2) lon, lat (degrees) of the centres of the cells (rows, cols) of a map in any CRS."""
    t = layers.transform
    x, y = t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e
    if layers.geographic:
        return np.c_[x, y]
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(layers.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return np.c_[lon, lat]


def finite_or_none(x: object) -> object:
    """JSON has no inf / NaN: None stands for an undefined figure (e.g. no cell outside the AOA)."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def extra_layers(root: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The layers ``names`` of the map's ``soc.zarr`` (whole grid, NaN = no data), None if one is missing."""
    import xarray as xr

    from socmap.io import MAP_ZARR

    with xr.open_zarr(root / MAP_ZARR, consolidated=False) as ds:
        if any(n not in ds for n in names):
            return None
        return {n: np.asarray(ds[n].values, np.float64) for n in names}


def log_sd_ratio(root: Path, aoa: np.ndarray | None) -> object:
    """:func:`socmap.evaluate.realism.sd_ratio_aoa` of the log-scale sd (the log sd is already relative: the
    mean passed is 1), None without an ``aoa``, ``total_sd``, ``q05`` or ``q95`` layer."""
    from socmap.evaluate.realism import log_scale_sd, sd_ratio_aoa

    layers = extra_layers(root, ("total_sd", "q05", "q95"))
    if layers is None or aoa is None:
        return None
    sd_log = log_scale_sd(layers["total_sd"], layers["q05"], layers["q95"])
    return sd_ratio_aoa(np.where(np.isfinite(sd_log), 1.0, np.nan), sd_log, aoa)


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--maps", required=True, type=Path, help="map version folder (or its year folder)")
    ap.add_argument("--data", required=True, type=Path, help="the bundle's prepared data folder (samples.parquet)")
    ap.add_argument("--sites", choices=["train", "all"], default="train",
                    help="sites whose Voronoi cells are tested: the training sites (default) or every sample")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from socmap.aggregate.stage import load_map
    from socmap.errors import SocmapError
    from socmap.evaluate.realism import facet_ratio, facet_ratio_by_distance, nearest_site, sd_ratio_aoa
    from socmap.io import SAMPLES
    from socmap.mapping.layout import resolve_maps

    t0 = time.perf_counter()
    try:
        root = resolve_maps(args.maps)
        layers = load_map(root)
        samples = pd.read_parquet(args.data / SAMPLES, columns=["lon", "lat", "split"])
    except (SocmapError, OSError) as exc:
        raise SystemExit(f"map_realism: error: {exc}") from None
    if args.sites == "train":
        samples = samples[samples["split"] == "train"]
    if samples.empty:
        raise SystemExit(f"map_realism: error: {args.data / SAMPLES} has no {args.sites} sites")
    soc = layers.soc
    rows, cols = np.nonzero(np.isfinite(soc))
    site = np.full(soc.shape, -1, np.int64)
    dist_km = np.full(soc.shape, np.nan)
    site[rows, cols], dist_km[rows, cols] = nearest_site(cell_lonlat(layers, rows, cols),
                                                         samples[["lon", "lat"]].to_numpy(), return_km=True)
    facet = facet_ratio(soc, site)
    facet_binned = facet_ratio_by_distance(soc, site, dist_km)
    facet_binned_log = facet_ratio_by_distance(np.log1p(soc), site, dist_km)
    sd = layers.total_sd
    if not np.isfinite(sd).any():  # a map written without total_sd: its variances give it
        sd = np.sqrt(layers.aleatoric_var + layers.epistemic_var)
    ratio = sd_ratio_aoa(soc, sd, layers.aoa) if layers.aoa is not None else None
    ratio_log = log_sd_ratio(root, layers.aoa)

    print(f"map {root}: {soc.shape[0]} x {soc.shape[1]} grid, {len(rows)} mapped cells; "
          f"{len(samples)} {args.sites} sites, {len(np.unique(site[rows, cols]))} of them nearest to a mapped cell")
    print(f"facets: mean |step| of soc_mean across nearest-site borders {facet.mean_diff_across:.4g} g/kg "
          f"({facet.pairs_across} pairs), within {facet.mean_diff_within:.4g} g/kg ({facet.pairs_within} pairs): "
          f"facet_ratio {facet.facet_ratio:.3f} (goal <= {FACET_GOAL}); at equal distance from the sites "
          f"{facet_binned:.3f}, on log1p(SOC) steps {facet_binned_log:.3f}")
    if ratio is None:
        print("no aoa layer in the map: sd_ratio_aoa not computed")
    else:
        print(f"relative sd (total_sd / soc_mean), median: inside the AOA {ratio.median_rel_sd_inside:.3f} "
              f"({ratio.cells_inside} cells), outside {ratio.median_rel_sd_outside:.3f} ({ratio.cells_outside} "
              f"cells): sd_ratio_aoa {ratio.sd_ratio_aoa:.3f} (goal >= {SD_RATIO_GOAL})")
    if ratio_log is not None:
        print(f"sd of log(1 + SOC), median: inside the AOA {ratio_log.median_rel_sd_inside:.3f}, outside "
              f"{ratio_log.median_rel_sd_outside:.3f}: sd_ratio_aoa_log {ratio_log.sd_ratio_aoa:.3f}")
    result: dict[str, object] = {
        "facet_ratio": facet.facet_ratio, "facet_ratio_by_distance": facet_binned,
        "facet_ratio_by_distance_log": facet_binned_log,
        "sd_ratio_aoa": None if ratio is None else ratio.sd_ratio_aoa,
        "sd_ratio_aoa_log": None if ratio_log is None else ratio_log.sd_ratio_aoa,
        "cells": len(rows), "pairs_across": facet.pairs_across, "pairs_within": facet.pairs_within,
        "cells_inside_aoa": None if ratio is None else ratio.cells_inside,
        "cells_outside_aoa": None if ratio is None else ratio.cells_outside,
        "mean_diff_across": facet.mean_diff_across, "mean_diff_within": facet.mean_diff_within,
        "median_rel_sd_inside": None if ratio is None else ratio.median_rel_sd_inside,
        "median_rel_sd_outside": None if ratio is None else ratio.median_rel_sd_outside,
        "sites": len(samples), "site_set": args.sites, "facet_goal": FACET_GOAL, "sd_ratio_goal": SD_RATIO_GOAL,
        "maps": str(root), "seconds": time.perf_counter() - t0,
    }
    result = {k: finite_or_none(float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in result.items()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
