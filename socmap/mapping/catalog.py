"""The STAC Collection of a region's maps: ``OUT/REGION/collection.json``, one Item per finished year and version.

Each map version folder holds its own STAC Item (``OUT/REGION/YEAR/VERSION/item.json``, written by
:func:`socmap.mapping.writers.stac_item`). The Collection beside the year folders links every finished one of them
by a relative href, so a series of annual maps opens as one (``pystac.Collection.from_file(...).get_items()``, or
any reader of static STAC catalogues), wherever the folder is copied or served. Its extent spans the Items'
bounding boxes and years; its summaries list the years, the versions and the layers.

A version counts as finished when its run summary says that no tile failed and none of the grid remains (the
condition under which ``latest.json`` names it), so a ``--tiles`` run over part of the grid is not listed.
The file is rebuilt from what is on disk each time a map finishes, so a re-run never lists an Item twice, and
written atomically. Two runs of the same region that finish together can each read the folder before the other's
Item is there; the writer reads the folder again after writing and rewrites until the two agree, so the last
writer lists both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from socmap.io import MAP_ITEM, MAP_SUMMARY, atomic_path

__all__ = ["COLLECTION", "finished_items", "write_collection"]

COLLECTION = "collection.json"
"""The Collection's file name, in the region folder ``OUT/REGION/``."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def finished_items(region_root: Path) -> dict[str, dict[str, Any]]:
    """``{"YEAR/VERSION": Item JSON}`` of every finished map under ``region_root`` (``OUT/REGION``), in year and
    version order."""
    out: dict[str, dict[str, Any]] = {}
    for item_path in sorted(Path(region_root).glob(f"*/*/{MAP_ITEM}")):
        if not item_path.parent.parent.name.isdigit():  # OUT/REGION/YEAR/VERSION only
            continue
        summary = _read_json(item_path.parent / MAP_SUMMARY)
        if summary is None or summary.get("tiles_failed") or summary.get("tiles_remaining"):
            continue
        item = _read_json(item_path)
        if item is None or not item.get("bbox"):
            continue
        out[item_path.parent.relative_to(region_root).as_posix()] = item
    return out


def _collection(region: str, items: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The Collection's JSON over ``items`` (see :func:`finished_items`), validated against the STAC core schema."""
    from datetime import datetime

    import pystac

    from socmap.mapping.writers import LAYERS, core_validator

    boxes = [it["bbox"] for it in items.values()]
    bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    props = [it.get("properties", {}) for it in items.values()]
    starts = [datetime.fromisoformat(p["start_datetime"]) for p in props if p.get("start_datetime")]
    ends = [datetime.fromisoformat(p["end_datetime"]) for p in props if p.get("end_datetime")]
    years = sorted({int(k.split("/")[0]) for k in items})
    layers = sorted({k for it in items.values() for k in it.get("assets", {}) if k in LAYERS},
                    key=list(LAYERS).index)
    summaries: dict[str, Any] = {"socmap:year": years, "socmap:version": sorted({k.split("/")[1] for k in items}),
                                 "socmap:layers": layers}
    for key in ("socmap:grid_crs", "socmap:resolution"):
        values = sorted({p[key] for p in props if key in p})
        if values:
            summaries[key] = values
    coll = pystac.Collection(
        id=f"socmap-{region}", title=f"Topsoil SOC (0-30 cm) {region}",
        description=(f"socmap maps of topsoil soil organic carbon (0-30 cm) over {region}, one Item per year and "
                     "map version; each Item's assets are the layers (VRT mosaics and tile COGs), the zarr store, "
                     "quick-looks and provenance"),
        extent=pystac.Extent(pystac.SpatialExtent([bbox]),
                             pystac.TemporalExtent([[min(starts) if starts else None, max(ends) if ends else None]])),
        license="other", summaries=pystac.Summaries(summaries))
    for key, it in items.items():
        coll.add_link(pystac.Link(rel=pystac.RelType.ITEM, target=f"./{key}/{MAP_ITEM}",
                                  media_type=pystac.MediaType.GEOJSON, title=it.get("id")))
    coll.validate(validator=core_validator())
    return coll.to_dict(include_self_link=False, transform_hrefs=False)


def write_collection(region_root: Path) -> Path | None:
    """Write (or refresh) ``region_root/collection.json`` linking every finished map under it; the region is the
    folder's name. Returns its path, or None when no map there is finished yet (nothing is written)."""
    region_root = Path(region_root)
    path = region_root / COLLECTION
    listed: list[str] | None = None
    for _ in range(5):  # another run of this region may finish while this one writes: read again until stable
        items = finished_items(region_root)
        if list(items) == listed:
            break
        if not items:
            return None
        doc = _collection(region_root.name, items)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
        listed = list(items)
    return path
