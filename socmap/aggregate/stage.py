"""``socmap aggregate``: per-zone SOC (and stock) with intervals that account for spatially correlated errors.

For each zone: its area (km2, equal-area), the mapped cells it covers (exact coverage fractions), the mapped area,
the area-weighted mean SOC (g/kg) and its interval at ``level``, the naive interval (cells independent), the share
of its mapped area outside the area of applicability and, where the pipeline names a bulk-density layer, the SOC
stock (t C/ha) and the zone total (t C) with its interval. The error model is in :mod:`socmap.aggregate.interval`,
the correlogram in :mod:`socmap.aggregate.correlogram`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from socmap.aggregate.correlogram import Correlogram, fit_correlogram, heldout_residuals
from socmap.aggregate.interval import EXACT_MAX, LEVEL, N_PAIRS, ZoneSum, zone_sum
from socmap.aggregate.stock import STOCK_FORMULA, layer_on_grid, stock_factor
from socmap.aggregate.zonal import cell_areas_km2, metres_per_unit, zone_cells
from socmap.aggregate.zones import read_zones
from socmap.errors import ConfigError, DataError
from socmap.io import AGG_CHART_SUFFIX, AGG_GPKG_SUFFIX, AGG_META_SUFFIX, AGG_TABLE_SUFFIX, MAP_ZARR, atomic_path

if TYPE_CHECKING:
    from socmap.config import PipelineConfig
    from socmap.inference import Bundle

__all__ = ["AggregateResult", "MapLayers", "aggregate_zones", "load_map", "map_correlogram", "map_crs",
           "map_pipeline", "run", "write_gpkg"]

ASSUMPTIONS = (
    "errors Gaussian on the g/kg scale for the zone figure (cell sd from the log-normal of log(1+SOC));",
    "one stationary, isotropic correlogram of standardised errors for the whole map, fitted on the held-out "
    "points (exponential + nugget);",
    "the residual error's sd is the cell's calibrated aleatoric sd, at point support (no change of support from "
    "a point to a cell);",
    "the ensemble members' maps are coherent draws of the epistemic error (their zone means' spread is the "
    "epistemic part), independent of the residual part;",
    "bulk density and coarse fragments exact (their errors are not propagated).",
)


@dataclass
class MapLayers:
    """The map layers aggregation reads, NaN = no data; ``members`` (M, rows, cols) or None."""

    soc: np.ndarray
    aleatoric_var: np.ndarray
    epistemic_var: np.ndarray
    total_sd: np.ndarray
    aoa: np.ndarray | None
    members: np.ndarray | None
    transform: Any
    crs: Any
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.soc.shape

    @cached_property
    def geographic(self) -> bool:
        """Whether the grid is in degrees; parsed once, as :meth:`cell_points` asks for it on every zone."""
        from pyproj import CRS

        return bool(CRS.from_user_input(self.crs).is_geographic)

    @cached_property
    def _metres_per_unit(self) -> float:
        return metres_per_unit(self.crs)

    def cell_points(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(N, 2) cell centres: (lon, lat) degrees on a geographic grid, else (x, y) in km."""
        t = self.transform
        x = t.c + (cols + 0.5) * t.a
        y = t.f + (rows + 0.5) * t.e
        if self.geographic:
            return np.c_[x, y]
        return np.c_[x, y] * self._metres_per_unit / 1000.0


def _open_store(root: Path) -> Any:
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr

    store = Path(root) / MAP_ZARR
    if not store.exists():
        raise DataError(f"{root} has no {MAP_ZARR}; aggregate needs the zarr store (output.formats: zarr)")
    return xr.open_zarr(store, consolidated=False)


def map_crs(root: Path) -> Any:
    """The CRS of the map in the version folder ``root``."""
    with _open_store(root) as ds:
        return ds.rio.crs


def load_map(root: Path, bounds: tuple[float, float, float, float] | None = None) -> MapLayers:
    """The layers of the map version folder ``root`` (its ``soc.zarr``; ``soc`` is ``soc_mean``, the expectation:
    a zone mean or stock adds up expectations, never medians); with ``bounds`` (xmin, ymin, xmax, ymax in
    the map's CRS, e.g. the zones' extent) only the window of cells that covers them, so a continental map is not
    read whole for a few provinces."""
    with _open_store(root) as ds:
        need = ["soc_mean", "aleatoric_var", "epistemic_var", "total_sd"]
        missing = [v for v in need if v not in ds]
        if missing:
            raise DataError(f"{root / MAP_ZARR} lacks the layers {', '.join(missing)} (output.variables); map again "
                            "with them")
        t = ds.rio.transform()
        rows, cols = ds.sizes["y"], ds.sizes["x"]
        r0, r1, c0, c1 = 0, rows, 0, cols
        if bounds is not None:
            xmin, ymin, xmax, ymax = bounds
            c0 = int(np.clip(np.floor((xmin - t.c) / t.a) - 1, 0, cols))
            c1 = int(np.clip(np.ceil((xmax - t.c) / t.a) + 1, c0, cols))
            r0 = int(np.clip(np.floor((ymax - t.f) / t.e) - 1, 0, rows))
            r1 = int(np.clip(np.ceil((ymin - t.f) / t.e) + 1, r0, rows))
        win = ds.isel(y=slice(r0, r1), x=slice(c0, c1))

        def get(name: str) -> np.ndarray:
            return np.asarray(win[name].values, np.float64)

        from rasterio.transform import Affine

        return MapLayers(soc=get("soc_mean"), aleatoric_var=get("aleatoric_var"),
                         epistemic_var=get("epistemic_var"), total_sd=get("total_sd"),
                         aoa=get("aoa") if "aoa" in ds else None,
                         members=get("soc_member") if "soc_member" in ds else None,
                         transform=t * Affine.translation(c0, r0), crs=ds.rio.crs, attrs=dict(ds.attrs))


def map_correlogram(bundle: Bundle, layers: MapLayers, *, max_cells: int = 200_000, seed: int = 0) -> Correlogram:
    """Fit the correlogram on the bundle's held-out residuals, distances as the map measures them, the points
    weighted to match the map's cells in their distance to the nearest training site
    (:func:`~socmap.aggregate.correlogram.distance_matched_weights`; at most ``max_cells`` cells sampled)."""
    from scipy.spatial import cKDTree

    from socmap.aggregate.correlogram import distance_matched_weights
    from socmap.data.split import SPLIT_CODES

    lonlat, r = heldout_residuals(bundle)
    train = np.asarray(bundle.node_lonlat, np.float64)[np.asarray(bundle.node_split) == SPLIT_CODES["train"]]
    rows, cols = np.nonzero(np.isfinite(layers.soc))
    if len(rows) > max_cells:
        pick = np.random.default_rng(seed).choice(len(rows), max_cells, replace=False)
        rows, cols = rows[pick], cols[pick]
    cells = layers.cell_points(rows, cols)
    if layers.geographic:  # 3-D unit vectors: chord distance orders like great-circle
        from socmap.geo import lonlat_to_unit

        pts, tr_pts, cell_pts = lonlat_to_unit(lonlat), lonlat_to_unit(train), lonlat_to_unit(cells)
    else:
        pts, tr_pts, cell_pts = _projected_km(lonlat, layers.crs), _projected_km(train, layers.crs), cells
    tree = cKDTree(tr_pts)
    weights = None
    if len(cell_pts) and len(tr_pts):
        weights = distance_matched_weights(tree.query(pts)[0], tree.query(cell_pts)[0])
    if layers.geographic:
        return fit_correlogram(lonlat, r, geographic=True, weights=weights)
    return fit_correlogram(pts, r, geographic=False, weights=weights)


def _projected_km(lonlat: np.ndarray, crs: Any) -> np.ndarray:
    """(lon, lat) degrees to the map's projected CRS, km."""
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = tr.transform(lonlat[:, 0], lonlat[:, 1])
    return np.c_[x, y] * metres_per_unit(crs) / 1000.0


@dataclass
class _ZoneCells:
    """The mapped cells of one zone: their rows, columns, areas (km2) and error parts, as the zone figures use
    them (``members`` (M, N) or None)."""

    rows: np.ndarray
    cols: np.ndarray
    area: np.ndarray
    pts: np.ndarray
    soc: np.ndarray
    members: np.ndarray | None
    epi_sd: np.ndarray
    res_sd: np.ndarray
    tot_sd: np.ndarray

    @classmethod
    def of(cls, layers: MapLayers, rows: np.ndarray, cols: np.ndarray, area: np.ndarray) -> _ZoneCells:
        return cls(rows=rows, cols=cols, area=area, pts=layers.cell_points(rows, cols), soc=layers.soc[rows, cols],
                   members=None if layers.members is None else layers.members[:, rows, cols],
                   epi_sd=np.sqrt(np.maximum(layers.epistemic_var[rows, cols], 0)),
                   res_sd=np.sqrt(np.maximum(layers.aleatoric_var[rows, cols], 0)),
                   tot_sd=layers.total_sd[rows, cols])

    def subset(self, keep: np.ndarray) -> _ZoneCells:
        """The cells where ``keep`` holds."""
        return _ZoneCells(rows=self.rows[keep], cols=self.cols[keep], area=self.area[keep], pts=self.pts[keep],
                          soc=self.soc[keep], members=None if self.members is None else self.members[:, keep],
                          epi_sd=self.epi_sd[keep], res_sd=self.res_sd[keep], tot_sd=self.tot_sd[keep])


@dataclass
class _ZoneSums:
    """What every zone's figures share: the map, the correlogram, the options and one random generator."""

    layers: MapLayers
    correlogram: Correlogram
    level: float
    n_pairs: int
    exact_max: int
    rng: np.random.Generator

    def zone_sum(self, weights: np.ndarray, z: _ZoneCells) -> ZoneSum:
        return zone_sum(weights, z.soc, z.members, z.epi_sd, z.res_sd, z.tot_sd, z.pts, self.correlogram,
                        geographic=self.layers.geographic, exact_max=self.exact_max, n_pairs=self.n_pairs,
                        rng=self.rng)

    def mean_columns(self, z: _ZoneCells) -> tuple[dict[str, Any], np.ndarray]:
        """The zone's mean SOC (g/kg) with its interval, sd parts and naive interval; and the cells' weights."""
        w = z.area / z.area.sum()
        zs = self.zone_sum(w, z)
        lo, hi = zs.interval(self.level)
        nlo, nhi = zs.interval(self.level, naive=True)
        return ({"soc_mean_gkg": zs.value, "soc_lo_gkg": lo, "soc_hi_gkg": hi, "soc_sd_gkg": zs.sd,
                 "sd_epistemic_gkg": float(np.sqrt(zs.var_epistemic)),
                 "sd_residual_gkg": float(np.sqrt(zs.var_residual)), "naive_lo_gkg": nlo, "naive_hi_gkg": nhi,
                 "naive_sd_gkg": zs.sd_naive, "exact_pairs": zs.exact}, w)

    def stock_columns(self, z: _ZoneCells, bulk_density: np.ndarray,
                      coarse_fragments: np.ndarray | None) -> dict[str, Any]:
        """The zone's SOC stock over its cells with a bulk density: mean (t C/ha), total (t C) and its interval."""
        bd = bulk_density[z.rows, z.cols]
        cf = None if coarse_fragments is None else np.nan_to_num(coarse_fragments[z.rows, z.cols], nan=0.0)
        has = np.isfinite(bd)
        rec: dict[str, Any] = {"stock_cells": int(has.sum())}
        if has.any():
            f = stock_factor(bd[has], None if cf is None else cf[has], z.area[has] * 100.0)
            ts = self.zone_sum(f, z.subset(has))
            tlo, thi = ts.interval(self.level)
            area_ha = float(z.area[has].sum() * 100.0)
            rec.update({"stock_tc_ha": ts.value / area_ha, "stock_total_tc": ts.value,
                        "stock_total_lo_tc": tlo, "stock_total_hi_tc": thi, "stock_total_sd_tc": ts.sd})
        return rec


def _finite_cells(layers: MapLayers) -> np.ndarray:
    """(rows, cols) bool: the cells with every layer the zone figures read."""
    finite = (np.isfinite(layers.soc) & np.isfinite(layers.aleatoric_var) & np.isfinite(layers.epistemic_var)
              & np.isfinite(layers.total_sd))
    if layers.members is not None:
        finite &= np.isfinite(layers.members).all(axis=0)
    return finite


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ConfigError(f"--level must be between 0 and 1 (e.g. 0.9), got {level}")


def aggregate_zones(layers: MapLayers, zones: Any, correlogram: Correlogram, *, level: float = LEVEL,
                    bulk_density: np.ndarray | None = None, coarse_fragments: np.ndarray | None = None,
                    n_pairs: int = N_PAIRS, exact_max: int = EXACT_MAX, seed: int = 0, progress: bool = False,
                    reference: np.ndarray | None = None) -> pd.DataFrame:
    """One row per zone of ``zones`` (from :func:`socmap.aggregate.zones.read_zones`, in the map's CRS).

    ``bulk_density`` (g/cm3) and ``coarse_fragments`` (volume fraction) are on the map grid; with bulk density
    the stock columns are added. ``reference`` (a grid like the map's, e.g. the true SOC) adds
    ``reference_mean``: its mean with the very weights of the zone's SOC mean.
    """
    import sys

    from tqdm.auto import tqdm

    _check_level(level)
    sums = _ZoneSums(layers, correlogram, level, n_pairs, exact_max, np.random.default_rng(seed))
    cells = zone_cells(zones, layers.transform, layers.shape, layers.crs)
    row_area = cell_areas_km2(layers.transform, layers.shape, layers.crs)
    finite = _finite_cells(layers)
    rows_out = []
    for k, zc in enumerate(tqdm(cells, desc="zones", unit="zone", disable=not progress, file=sys.stderr)):
        rec: dict[str, Any] = {"zone": zones["zone"].iloc[k], "area_km2": float(zones["area_km2"].iloc[k])}
        ok = finite[zc.rows, zc.cols]
        r, c = zc.rows[ok], zc.cols[ok]
        area = zc.coverage[ok] * row_area[r]
        rec["cells"] = int(ok.sum())
        rec["mapped_km2"] = float(area.sum())
        if rec["cells"] == 0 or area.sum() <= 0:
            rows_out.append(rec)
            continue
        z = _ZoneCells.of(layers, r, c, area)
        mean, w = sums.mean_columns(z)
        rec.update(mean)
        if reference is not None:
            rec["reference_mean"] = float(w @ reference[r, c])
        if layers.aoa is not None:
            rec["outside_aoa_share"] = float(area[layers.aoa[r, c] == 1].sum() / area.sum())
        if bulk_density is not None:
            rec.update(sums.stock_columns(z, bulk_density, coarse_fragments))
        rows_out.append(rec)
    return pd.DataFrame(rows_out)


COLUMNS = {
    "zone": "zone name (the --field value)",
    "area_km2": "zone area, km2 (equal-area, EPSG:6933)",
    "mapped_km2": "area of the zone covered by mapped cells, km2",
    "cells": "map cells with data touching the zone",
    "soc_mean_gkg": "area-weighted mean topsoil (0-30 cm) SOC of the mapped part, g/kg",
    "soc_lo_gkg": "lower bound of its interval at the level, g/kg",
    "soc_hi_gkg": "upper bound, g/kg",
    "soc_sd_gkg": "sd of the zone mean, g/kg (epistemic and residual parts together)",
    "sd_epistemic_gkg": "epistemic part: sd of the zone mean over the ensemble members' maps, g/kg",
    "sd_residual_gkg": "residual part: sqrt(sum_ij w_i w_j sigma_i sigma_j rho(d_ij)), g/kg",
    "naive_lo_gkg": "naive interval, cells independent (sqrt(sum w_i^2 total_sd_i^2)), lower, g/kg",
    "naive_hi_gkg": "naive interval, upper, g/kg",
    "naive_sd_gkg": "naive sd, g/kg",
    "exact_pairs": "true: the residual part summed over every pair of cells; false: sampled pairs",
    "outside_aoa_share": "share of the mapped area outside the area of applicability (0..1)",
    "stock_cells": "cells with a bulk density",
    "stock_tc_ha": "mean SOC stock 0-30 cm, t C/ha",
    "stock_total_tc": "zone total SOC stock 0-30 cm, t C",
    "stock_total_lo_tc": "lower bound of the total's interval, t C",
    "stock_total_hi_tc": "upper bound, t C",
    "stock_total_sd_tc": "sd of the total, t C",
}


def write_gpkg(gdf: Any, path: Path, layer_metadata: dict[str, str] | None = None) -> Path:
    """Write ``gdf`` as the layer ``zones`` of a GeoPackage, atomically (the temporary sibling's name does not end
    in .gpkg, which GDAL only warns about)."""
    import warnings

    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The filename extension should be 'gpkg'")
        gdf.to_file(tmp, driver="GPKG", layer="zones", engine="pyogrio", layer_metadata=layer_metadata)
    return path


@dataclass
class AggregateResult:
    """What ``socmap aggregate`` wrote."""

    table: pd.DataFrame
    paths: dict[str, Path]
    correlogram: Correlogram
    level: float
    seconds: float

    def summary(self) -> str:
        t = self.table
        n_ok = int(np.isfinite(t.get("soc_mean_gkg", pd.Series(dtype=float))).sum())
        c = self.correlogram
        return (f"{len(t)} zones ({n_ok} with mapped cells), {self.level:.0%} intervals; error correlogram: range "
                f"{c.len_scale_km:.3g} km, nugget share {c.nugget_share:.2f}, map-wide share {c.shared_share:.2f}, "
                f"sill {c.sill:.2f} ({c.n_points} held-out points) -> "
                f"{self.paths['table']} ({self.seconds:.1f} s)")


def output_paths(out: Path | str) -> dict[str, Path]:
    """``--out`` names the CSV; the GeoPackage, chart and metadata lie beside it with the same stem."""
    p = Path(out)
    stem = p.with_suffix("") if p.suffix.lower() == AGG_TABLE_SUFFIX else p
    return {"table": stem.with_name(stem.name + AGG_TABLE_SUFFIX), "gpkg": stem.with_name(stem.name + AGG_GPKG_SUFFIX),
            "chart": stem.with_name(stem.name + AGG_CHART_SUFFIX), "meta": stem.with_name(stem.name + AGG_META_SUFFIX)}


def _bundle_path(root: Path, attrs: dict[str, Any], model: Path | str | None) -> Path:
    """The bundle whose held-out points give the error correlogram: ``model``, else the one the map records."""
    if model is not None:
        return Path(model)
    if "model" not in attrs:
        raise DataError(f"the map {root} does not record its model bundle; pass --model")
    return Path(attrs["model"])


def map_pipeline(maps: Path | str, model: Path | str | None = None) -> PipelineConfig:
    """The pipeline the map at ``maps`` was made with: the one its bundle (``model``, else the bundle the map
    records) was trained with; ``socmap aggregate`` takes its stock layers from it unless given a pipeline."""
    from socmap.inference.loading import read_pipeline
    from socmap.mapping.layout import resolve_maps

    root = resolve_maps(maps)
    with _open_store(root) as ds:
        attrs = dict(ds.attrs)
    return read_pipeline(_bundle_path(root, attrs, model))


def _stock_layers(cfg: PipelineConfig, layers: MapLayers) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Bulk density (g/cm3) and coarse fragments (volume fraction) on the map grid, where the pipeline names them
    (``output.bulk_density``, ``output.coarse_fragments``); None where it does not."""
    bd = cf = None
    if cfg.output.bulk_density:
        bd = layer_on_grid(cfg.resolve(cfg.output.bulk_density) or "", layers.transform, layers.shape, layers.crs,
                           cfg.output.bulk_density_scale)
        if cfg.output.coarse_fragments:
            cf = layer_on_grid(cfg.resolve(cfg.output.coarse_fragments) or "", layers.transform, layers.shape,
                               layers.crs, cfg.output.coarse_fragments_scale)
    return bd, cf


def _metadata(cfg: PipelineConfig, *, root: Path, zones: Path | str, field: str, level: float, model_path: Path,
              layers: MapLayers, table: pd.DataFrame, corr: Correlogram, n_pairs: int,
              stock: bool) -> dict[str, Any]:
    """The .json (and GeoPackage) metadata: inputs, units, how every figure was computed and the assumptions."""
    return {"maps": str(root.resolve()), "zones": str(Path(zones).resolve()), "field": field, "level": level,
            "model": str(model_path.resolve()), "members_in_map": layers.members is not None,
            "units": {k: v for k, v in COLUMNS.items() if k in table.columns},
            "mean": "sum_i w_i SOC_i, w_i = coverage_i * cell_area_i / sum (exactextract coverage fractions)",
            "interval": "mean +- t_{(1+level)/2, df} sqrt(var_epistemic + var_residual) on g/kg, low >= 0: Student "
                        "t at the Welch-Satterthwaite df = (var_epistemic + var_residual)^2 / (var_epistemic^2 / "
                        "(M - 1)) with M member maps (Gaussian without them); the naive interval is Gaussian",
            "var_epistemic": "Var over ensemble members (ddof=1) of the zone mean of each member's map"
                             if layers.members is not None else
                             "(sum_i w_i epistemic_sd_i)^2: no member maps, epistemic errors taken fully correlated",
            "var_residual": "sum_ij w_i w_j sigma_i sigma_j rho(d_ij), sigma = aleatoric sd (g/kg); exact up to "
                            f"{EXACT_MAX} cells, else {n_pairs} sampled pairs",
            "correlogram": corr.to_dict(), "assumptions": list(ASSUMPTIONS),
            "stock": ({"formula": STOCK_FORMULA, "units": "t C/ha (mean), t C (zone total)",
                       "bulk_density": cfg.resolve(cfg.output.bulk_density),
                       "coarse_fragments": cfg.resolve(cfg.output.coarse_fragments)} if stock else None)}


def _write_outputs(paths: dict[str, Path], table: pd.DataFrame, zgdf: Any, meta: dict[str, Any], *,
                   title: str, level: float) -> None:
    """The CSV, the GeoPackage (metadata in its layer), the chart and the .json metadata, each atomically."""
    from socmap.aggregate.chart import zone_chart

    with atomic_path(paths["table"]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_gpkg(zgdf[["geometry"]].join(table), paths["gpkg"], {"socmap_aggregate": json.dumps(meta, default=str)})
    zone_chart(table, paths["chart"], level=level, title=title)
    with atomic_path(paths["meta"]) as tmp:
        tmp.write_text(json.dumps(meta, indent=1, default=str) + "\n")


def run(cfg: PipelineConfig, maps: Path | str, zones: Path | str, out: Path | str, *, field: str,
        level: float = LEVEL, model: Path | str | None = None, n_pairs: int = N_PAIRS, seed: int = 0,
        progress: bool = True) -> AggregateResult:
    """Aggregate the map at ``maps`` (a version folder or a year folder, :func:`socmap.mapping.layout.resolve_maps`)
    over the polygons of ``zones`` named by ``field``; write the CSV, GeoPackage, chart and metadata at ``out``.

    ``cfg``: the pipeline whose ``output.bulk_density`` and ``output.coarse_fragments`` give the stock
    (``socmap aggregate`` without ``--region``/``--pipeline``: :func:`map_pipeline`, the one the map was made with).
    ``model``: the bundle whose held-out points give the error correlogram (default: the one the map records).
    ``level``: two-sided level of the intervals; ``n_pairs``: cell pairs sampled for the residual part of a zone
    over :data:`~socmap.aggregate.interval.EXACT_MAX` cells; ``seed``: seed of that sampling.
    """
    from socmap.inference import load_bundle
    from socmap.mapping.layout import resolve_maps

    t0 = time.perf_counter()
    _check_level(level)
    root = resolve_maps(maps)
    zgdf = read_zones(zones, field, map_crs(root))
    layers = load_map(root, tuple(float(v) for v in zgdf.total_bounds))  # type: ignore[arg-type]
    model_path = _bundle_path(root, layers.attrs, model)
    corr = map_correlogram(load_bundle(model_path, load_members=False), layers)  # held-out outputs only
    bd, cf = _stock_layers(cfg, layers)
    table = aggregate_zones(layers, zgdf, corr, level=level, bulk_density=bd, coarse_fragments=cf, n_pairs=n_pairs,
                            seed=seed, progress=progress)
    paths = output_paths(out)
    meta = _metadata(cfg, root=root, zones=zones, field=field, level=level, model_path=model_path, layers=layers,
                     table=table, corr=corr, n_pairs=n_pairs, stock=bd is not None)
    _write_outputs(paths, table, zgdf, meta, level=level,
                   title=f"{Path(zones).stem} by {field}: mean SOC with {level:.0%} intervals")
    return AggregateResult(table=table, paths=paths, correlogram=corr, level=level,
                           seconds=time.perf_counter() - t0)
