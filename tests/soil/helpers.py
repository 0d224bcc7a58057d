"""Small hand-made survey tables and rasters for the socmap.data tests (seeded, written into tmp_path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from socmap.config import DataConfig
from socmap.data.columns import SurveyMapping
from socmap.data.harmonise import Ledger, depth_weight, harmonise_rows, merge_sites

#: Mapping of the hand-made tables: one row per horizon.
BASE_MAPPING: dict[str, Any] = dict(name="t", profile_id="pid", x="x", y="y", crs="EPSG:4326", soc="soc",
                                    soc_unit="g/kg", top="top", bottom="bot", year="yr", source_name="s1")


def row(pid: str = "p1", x: float = 10.0, y: float = 5.0, soc: float = 10.0, top: float = 0.0,
        bot: float = 30.0, yr: float | None = 2015, **kw: Any) -> dict[str, Any]:
    """One horizon of the hand-made tables (lon/lat degrees, SOC in the mapping's unit, depths cm)."""
    return dict(pid=pid, x=x, y=y, soc=soc, top=top, bot=bot, yr=yr, **kw)


def harmonise(rows: list[dict[str, Any]], settings: DataConfig | None = None,
              **mapping: Any) -> tuple[pd.DataFrame, Ledger]:
    """Sites (one row each) and the ledger for ``rows`` under BASE_MAPPING updated with ``mapping``."""
    m = SurveyMapping.model_validate({**BASE_MAPPING, **mapping})
    df = pd.DataFrame(rows)
    df.attrs["crs"] = m.crs
    s = settings or DataConfig()
    led = Ledger()
    h = harmonise_rows(df, m, s, led, path="t.csv")
    cov = list(m.covariates)
    p = depth_weight(h, s, led, cov)
    return merge_sites(p, s, led, cov), led


def write_mapping(path: Path, **over: Any) -> Path:
    path.write_text(yaml.safe_dump({**BASE_MAPPING, **over}))
    return path


def write_raster(path: Path, data: np.ndarray, *, crs: str = "EPSG:4326", west: float = 0.0,
                 north: float = 10.0, res: float = 1.0, nodata: float | None = -9999.0) -> Path:
    """A one-band GeoTIFF with its upper-left corner at (west, north) and square cells of ``res``."""
    import rasterio
    from affine import Affine

    with rasterio.open(path, "w", driver="GTiff", height=data.shape[0], width=data.shape[1], count=1,
                       dtype=data.dtype, crs=crs, transform=Affine(res, 0.0, west, 0.0, -res, north),
                       nodata=nodata) as ds:
        ds.write(data, 1)
    return path


@pytest.fixture
def survey(tmp_path: Path) -> tuple[Path, Path]:
    """A 60-site survey CSV (two horizons each, seeded) inside lon 0..10, lat 0..10, and its mapping."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        x, y = rng.uniform(0.5, 9.5), rng.uniform(0.5, 9.5)
        rows.append(row(f"p{i}", x, y, soc=float(rng.lognormal(2, 0.6)), top=0, bot=10))
        rows.append(row(f"p{i}", x, y, soc=float(rng.lognormal(1.5, 0.6)), top=10, bot=30))
    csv = tmp_path / "survey.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv, write_mapping(tmp_path / "map.yaml")
