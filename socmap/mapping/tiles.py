"""Tiles of a map grid: the unit of work of ``socmap predict``.

A grid (:class:`socmap.config.GridConfig`) is ``rows x cols`` cells of ``resolution`` CRS units from the top-left
corner ``(xmin, ymax)``; tiles are ``tile_size x tile_size`` cells (the last row and column of tiles may be
smaller). Tile ``r003_c012`` is the 4th tile row from the top, 13th tile column from the left. Cells are
addressed row-major, north to south, west to east, by their centres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from socmap.config import GridConfig
from socmap.errors import ConfigError

__all__ = ["Tile", "cell_centres", "cell_lonlat", "grid_tiles", "grid_transform", "select_tiles"]


@dataclass(frozen=True)
class Tile:
    """One tile: its id and where its cells sit in the grid (row/col offsets and sizes, in cells)."""

    id: str
    row0: int
    col0: int
    nrows: int
    ncols: int

    @property
    def n_cells(self) -> int:
        return self.nrows * self.ncols

    def transform(self, grid: GridConfig) -> Any:
        """The tile's affine transform (rasterio ``Affine``) in the grid CRS."""
        from rasterio.transform import from_origin

        xmin, _, _, ymax = grid.bounds
        return from_origin(xmin + self.col0 * grid.resolution, ymax - self.row0 * grid.resolution,
                           grid.resolution, grid.resolution)

    def bounds(self, grid: GridConfig) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the tile in the grid CRS."""
        xmin, _, _, ymax = grid.bounds
        r = grid.resolution
        x0, y1 = xmin + self.col0 * r, ymax - self.row0 * r
        return (x0, y1 - self.nrows * r, x0 + self.ncols * r, y1)


def grid_transform(grid: GridConfig) -> Any:
    """The whole grid's affine transform (rasterio ``Affine``)."""
    from rasterio.transform import from_origin

    return from_origin(grid.bounds[0], grid.bounds[3], grid.resolution, grid.resolution)


def grid_tiles(grid: GridConfig) -> list[Tile]:
    """Every tile of ``grid``, row-major."""
    rows, cols = grid.shape
    t = grid.tile_size
    out = []
    for i, r0 in enumerate(range(0, rows, t)):
        for j, c0 in enumerate(range(0, cols, t)):
            out.append(Tile(f"r{i:03d}_c{j:03d}", r0, c0, min(t, rows - r0), min(t, cols - c0)))
    return out


def select_tiles(tiles: list[Tile], ids: list[str] | None) -> list[Tile]:
    """The tiles named in ``ids`` (all when ``None``); an unknown id is a :class:`ConfigError` naming the range."""
    if not ids:
        return tiles
    by_id = {t.id: t for t in tiles}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise ConfigError(f"--tiles: no tile {', '.join(unknown)} in this grid (tiles {tiles[0].id} .. "
                          f"{tiles[-1].id}, {len(tiles)} in all)")
    seen: set[str] = set()
    return [by_id[i] for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


def cell_centres(grid: GridConfig, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the tile's cells in the grid CRS, row-major, each shape (nrows * ncols,)."""
    xmin, _, _, ymax = grid.bounds
    r = grid.resolution
    xs = xmin + (tile.col0 + np.arange(tile.ncols) + 0.5) * r
    ys = ymax - (tile.row0 + np.arange(tile.nrows) + 0.5) * r
    xx, yy = np.meshgrid(xs, ys)
    return xx.ravel(), yy.ravel()


def cell_lonlat(crs: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """WGS 84 (lon, lat) degrees of points in ``crs``, shape (N, 2)."""
    from pyproj import CRS, Transformer

    if CRS.from_user_input(crs).equals(CRS.from_epsg(4326)):
        return np.c_[np.asarray(x, float), np.asarray(y, float)]
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(np.asarray(x, float), np.asarray(y, float))
    return np.c_[lon, lat]
