"""The "Map your own region" page runs as written: its mapping, grid and pipeline YAML, read out of
docs/your-region.md, and the commands it lists, on a small seeded survey and seeded rasters named as the page names
them. The only edit to the page's text is the grid's bounds (the generated rasters cover a 1 x 1 degree box): the
pipeline trains with the defaults a new user gets (``preset: cpu``)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from socmap.cli import cli
from tests.soil.helpers import write_raster

PAGE = Path(__file__).resolve().parents[1] / "docs" / "your-region.md"
WEST, SOUTH, EAST, NORTH = 35.0, -7.0, 36.0, -6.0
"""The generated world: rasters and survey cover this box (degrees); the page's sample rows lie inside it."""
RES = 0.01
"""Raster cell size, degrees (100 x 100 cells)."""
N_SITES = 300
WATER = 200
"""Land-cover code of the water corner, which the page's pipeline masks out (``mask_exclude_codes``)."""


def _fenced(text: str, lang: str) -> list[str]:
    """The contents of the page's fenced blocks of language ``lang``, in page order."""
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _one(blocks: list[str], needle: str) -> str:
    (block,) = [b for b in blocks if needle in b]
    return block


def _page() -> dict[str, Any]:
    """The page's mapping, grid and pipeline YAML (parsed), survey header and commands (split like a shell)."""
    text = PAGE.read_text()
    yamls = _fenced(text, "yaml")
    commands = [shlex.split(line) for block in _fenced(text, "bash") for line in block.splitlines()
                if line.startswith("socmap ")]
    (header,) = [line for block in _fenced(text, "text") for line in block.splitlines()[:1] if "," in line]
    return {"mapping": yaml.safe_load(_one(yamls, "profile_id:")), "grid": yaml.safe_load(_one(yamls, "tile_size:")),
            "pipeline": yaml.safe_load(_one(yamls, "\ndata:")), "header": header.split(","), "commands": commands}


def _fields(lon: np.ndarray, lat: np.ndarray) -> dict[str, np.ndarray]:
    """Smooth covariate fields at (lon, lat): temperature degC, rain mm, elevation m, NDVI, land-cover class."""
    u, v = (lon - WEST) / (EAST - WEST), (NORTH - lat) / (NORTH - SOUTH)
    return {"bio1": 24 - 5 * v + np.sin(5 * u), "bio12": 700 + 500 * u + 100 * np.cos(4 * v),
            "elevation": 800 + 900 * v + 200 * np.sin(6 * u), "ndvi": 0.2 + 0.5 * u * (0.7 + 0.3 * np.cos(3 * v)),
            "landcover": np.where(u + 0.2 * np.sin(8 * v) < 0.4, 10, np.where(v < 0.5, 20, 30))}


def _write_rasters(root: Path, covariates: list[dict[str, Any]]) -> None:
    """One GeoTIFF per covariate layer of the page's pipeline, at the path it names; water in the south-east."""
    lon = WEST + (np.arange(round((EAST - WEST) / RES)) + 0.5) * RES
    lat = NORTH - (np.arange(round((NORTH - SOUTH) / RES)) + 0.5) * RES
    glon, glat = np.meshgrid(lon, lat)
    fields = _fields(glon, glat)
    water = (glon > EAST - 0.15) & (glat < SOUTH + 0.15)
    for layer in covariates:
        path = root / layer["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if layer.get("categorical"):
            data = np.where(water, WATER, fields[layer["name"]]).astype("uint8")
            write_raster(path, data, west=WEST, north=NORTH, res=RES, nodata=255)
        else:
            data = np.where(water, -9999.0, fields[layer["name"]]).astype("float32")
            write_raster(path, data, west=WEST, north=NORTH, res=RES)


def _write_survey(path: Path, mapping: dict[str, Any], header: list[str]) -> None:
    """A seeded survey in the page's layout: two horizons (0-15, 15-30 cm) per site, SOC in percent."""
    rng = np.random.default_rng(0)
    lon = rng.uniform(WEST + 0.02, EAST - 0.2, N_SITES)
    lat = rng.uniform(SOUTH + 0.2, NORTH - 0.02, N_SITES)
    f = _fields(lon, lat)
    gkg = np.exp(1.5 + 0.06 * (f["bio12"] - 700) / 50 + 1.5 * f["ndvi"] - 0.0004 * (f["elevation"] - 800)
                 + 0.2 * (f["landcover"] == 30) + rng.normal(0, 0.15, N_SITES))
    days = rng.integers(0, 5 * 365, N_SITES)
    rows = []
    for i in range(N_SITES):
        date = (pd.Timestamp("2015-01-01") + pd.Timedelta(days=int(days[i]))).date().isoformat()
        for top, bottom, share in ((0, 15, 1.2), (15, 30, 0.8)):
            rows.append({mapping["profile_id"]: f"TZ-{i:04d}", mapping["x"]: round(lon[i], 5),
                         mapping["y"]: round(lat[i], 5), mapping["soc"]: round(share * gkg[i] / 10, 3),
                         mapping["top"]: top, mapping["bottom"]: bottom, mapping["date"]: date})
    table = pd.DataFrame(rows)
    assert list(table.columns) == header  # the page's column layout
    table.to_csv(path, index=False)


def _write_zones(path: Path, field: str) -> None:
    """Three provinces (polygons, EPSG:4326) named in ``field``; one reaches into the water."""
    import geopandas as gpd
    from shapely import box

    boxes = [box(35.05, -6.45, 35.45, -6.05), box(35.5, -6.9, 35.8, -6.5), box(35.7, -7.0, 36.0, -6.7)]
    gpd.GeoDataFrame({field: ["north", "centre", "coast"]}, geometry=boxes, crs="EPSG:4326").to_file(path)


def _write_world(root: Path, page: dict[str, Any]) -> None:
    """The page's three YAML files (the grid's bounds set to the generated box), survey, rasters and zones."""
    pipeline = page["pipeline"]
    (source,) = pipeline["data"]["sources"]
    (root / source["mapping"]).write_text(yaml.safe_dump(page["mapping"], sort_keys=False))
    grid = {**page["grid"], "bounds": [WEST, SOUTH, EAST, NORTH]}
    (root / pipeline["grid"]).write_text(yaml.safe_dump(grid, sort_keys=False))
    (pipeline_file,) = {c[c.index("--pipeline") + 1] for c in page["commands"] if "--pipeline" in c}
    (root / pipeline_file).write_text(yaml.safe_dump(pipeline, sort_keys=False))
    _write_survey(root / source["path"], page["mapping"], page["header"])
    _write_rasters(root, pipeline["data"]["covariates"])
    (aggregate,) = [c for c in page["commands"] if c[1] == "aggregate"]
    _write_zones(root / aggregate[aggregate.index("--zones") + 1], aggregate[aggregate.index("--field") + 1])


@pytest.fixture
def _one_torch_thread() -> Iterator[None]:
    """Torch on one thread for the test: the graph has a few hundred nodes, and two intra-op threads on a busy
    2-core machine (a parallel test run) made training about ten times slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("_one_torch_thread")
def test_the_walk_through_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = _page()
    assert [c[1] for c in page["commands"]] == ["check-config", "prepare", "train", "evaluate", "predict",
                                                "aggregate"]
    assert "model" in page["pipeline"] and "train" not in page["pipeline"]  # the preset's training, as a user gets
    monkeypatch.setenv("SOCMAP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    _write_world(tmp_path, page)
    for command in page["commands"]:
        result = CliRunner().invoke(cli, command[1:])
        assert result.exit_code == 0, f"{shlex.join(command)}:\n{result.output}"
    aggregate = page["commands"][-1]
    zones = pd.read_csv(tmp_path / aggregate[aggregate.index("--out") + 1])
    assert len(zones) == 3 and np.isfinite(zones["soc_mean_gkg"]).all() and (zones["soc_mean_gkg"] > 0).all()
