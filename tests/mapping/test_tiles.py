"""Grid tiling: ids, partial edge tiles, cell centres, selection errors."""

from __future__ import annotations

import numpy as np
import pytest

from socmap.config import GridConfig, load_grid
from socmap.errors import ConfigError
from socmap.mapping import cell_centres, cell_lonlat, grid_tiles, select_tiles


def test_tiles_cover_the_grid_once_with_partial_edges() -> None:
    grid = GridConfig(name="g", crs="EPSG:32737", resolution=50.0,
                      bounds=(250000.0, 9590000.0, 255000.0, 9593500.0), tile_size=40)
    tiles = grid_tiles(grid)
    assert grid.shape == (70, 100)
    assert [t.id for t in tiles[:4]] == ["r000_c000", "r000_c001", "r000_c002", "r001_c000"]
    cover = np.zeros(grid.shape, int)
    for t in tiles:
        cover[t.row0:t.row0 + t.nrows, t.col0:t.col0 + t.ncols] += 1
    assert (cover == 1).all()
    last = tiles[-1]
    assert (last.nrows, last.ncols) == (30, 20)
    x, y = cell_centres(grid, last)
    assert x[0] == pytest.approx(250000 + 80 * 50 + 25) and y[0] == pytest.approx(9593500 - 40 * 50 - 25)
    assert x.shape == (600,) and x[1] - x[0] == pytest.approx(50) and y[20] - y[0] == pytest.approx(-50)
    assert last.bounds(grid) == pytest.approx((254000.0, 9590000.0, 255000.0, 9591500.0))
    ll = cell_lonlat(grid.crs, x, y)
    assert ll.shape == (600, 2) and np.all((ll[:, 0] > 36.7) & (ll[:, 0] < 36.8) & (ll[:, 1] > -3.8))


def test_africa_coarse_grid_and_tile_selection() -> None:
    grid = load_grid("africa-coarse")
    tiles = grid_tiles(grid)
    assert grid.shape == (435, 414) and len(tiles) == 16  # 4 x 4 tiles of 128 cells, the last row and column cut
    assert (tiles[-1].nrows, tiles[-1].ncols) == (435 - 3 * 128, 414 - 3 * 128)
    assert [t.id for t in select_tiles(tiles, ["r003_c002", "r003_c002", "r000_c000"])] == ["r003_c002", "r000_c000"]
    with pytest.raises(ConfigError, match="r004_c000"):
        select_tiles(tiles, ["r004_c000"])
