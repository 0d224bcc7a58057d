"""SOC stock: the formula, and a zone total whose interval comes from the same error model as the mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socmap.aggregate.check import random_zones
from socmap.aggregate.correlogram import Correlogram
from socmap.aggregate.stage import aggregate_zones
from tests.aggregate.synthetic import synthetic_map


def test_stock_formula_and_total() -> None:
    layers, _, _, _ = synthetic_map(3, n=60)
    t = layers.transform
    bounds = (t.c, t.f + 60 * t.e, t.c + 60 * t.a, t.f)
    zones = random_zones(bounds, 4, layers.crs, seed=0, area_km2=(0.25, 2.0))
    corr = Correlogram(len_scale_km=0.3, nugget_share=0.2)
    bd = np.full(layers.shape, 1.2)
    cf = np.full(layers.shape, 0.1)
    tab = aggregate_zones(layers, zones, corr, bulk_density=bd, coarse_fragments=cf)
    # constant BD and CF: stock = mean SOC * 1.2 g/cm3 * 30 cm * 0.9 * 0.1 t C/ha per (g/kg g/cm3 cm)
    np.testing.assert_allclose(tab["stock_tc_ha"], tab["soc_mean_gkg"] * 1.2 * 30 * 0.9 * 0.1, rtol=1e-9)
    np.testing.assert_allclose(tab["stock_total_tc"], tab["stock_tc_ha"] * tab["mapped_km2"] * 100, rtol=1e-9)
    # the total's relative interval is the mean's (the factor is constant)
    rel_mean = (tab["soc_hi_gkg"] - tab["soc_lo_gkg"]) / tab["soc_mean_gkg"]
    rel_total = (tab["stock_total_hi_tc"] - tab["stock_total_lo_tc"]) / tab["stock_total_tc"]
    np.testing.assert_allclose(rel_total, rel_mean, rtol=1e-6)
    # zones are 0.25-2 km2 at 50 m: 100-800 cells, so the residual part is exact over all pairs
    assert tab["exact_pairs"].all()


def test_bulk_density_raster_is_averaged_onto_the_map_grid(tmp_path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    from socmap.aggregate.stock import layer_on_grid

    layers, _, _, _ = synthetic_map(4, n=40)
    # SoilGrids-like: cg/cm3 at 25 m, half the cells 100, half 140 in a checkerboard -> 1.2 g/cm3 per 50 m cell
    fine = np.where((np.add.outer(np.arange(80), np.arange(80)) % 2) == 0, 100, 140).astype("int16")
    path = tmp_path / "bdod.tif"
    with rasterio.open(path, "w", driver="GTiff", width=80, height=80, count=1, dtype="int16", crs=layers.crs,
                       transform=from_origin(250_000.0, 9_600_000.0, 25.0, 25.0), nodata=-32768) as ds:
        ds.write(fine, 1)
    bd = layer_on_grid(path, layers.transform, layers.shape, layers.crs, scale=0.01)
    np.testing.assert_allclose(bd, 1.2, rtol=1e-6)
