"""Find imagery: a STAC API searched with pystac-client, or a static catalogue / ItemCollection file.

Both give the same thing: for a collection, a lon/lat bounding box and a year, the list of ``pystac.Item`` with
absolute (and, for Planetary Computer, signed) asset hrefs. Sentinel-2 scenes with ``eo:cloud_cover`` at or above
``max_cloud_pct`` are dropped here (also sent to the API as a ``query``, which some servers ignore, so the filter is
always applied client-side too).

Opening checks the endpoint and every collection id up front, so an unreachable API or a typo in the pipeline YAML
ends the run with one line (:class:`~socmap.errors.EOError`) before anything is written.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socmap.errors import ConfigError, EOError, SourceError, short_error
from socmap.io import retry, source_errors

if TYPE_CHECKING:
    from socmap.config import PipelineConfig, StacConfig

__all__ = ["StacSource", "api_key_headers", "item_year_range", "stac_config"]

Bbox = tuple[float, float, float, float]

class _RedactFilter(logging.Filter):
    """Rewrites a log record's text without credentials (pystac-client logs every request's headers at DEBUG,
    the API key among them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from socmap.config import redact

        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


for _name in ("pystac_client.stac_api_io", "pystac_client.client", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_RedactFilter())


def api_key_headers() -> dict[str, str]:
    """``{header: key}`` for STAC API requests when ``SOCMAP_STAC_API_KEY`` is set (header name from
    ``SOCMAP_STAC_API_KEY_HEADER``, default ``X-API-Key``); empty otherwise. Keys come from the environment only."""
    import os

    from socmap.config import STAC_API_KEY_ENV

    key = os.environ.get(STAC_API_KEY_ENV, "").strip()
    if not key:
        return {}
    return {os.environ.get(f"{STAC_API_KEY_ENV}_HEADER", "X-API-Key").strip() or "X-API-Key": key}


def stac_config(cfg: PipelineConfig) -> StacConfig:
    """The pipeline's ``stac`` block; a pipeline without one cannot extract imagery (one-line ConfigError)."""
    if cfg.stac is None:
        raise ConfigError(f"pipeline {cfg.name!r} has no stac: block, so there is no imagery to extract; add one "
                          "(api or catalog) or drop 'image' from model.streams and skip `socmap extract`")
    return cfg.stac


def item_year_range(year: int) -> str:
    """RFC 3339 interval of a calendar year (UTC), as STAC ``datetime`` searches take it."""
    return f"{year}-01-01T00:00:00Z/{year}-12-31T23:59:59Z"


def _bbox_overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return not (a[2] < b[0] or a[0] > b[2] or a[3] < b[1] or a[1] > b[3])


def _item_time(item: Any) -> dt.datetime | None:
    when = item.datetime or item.common_metadata.start_datetime
    return when


class StacSource:
    """Search one STAC API or one static catalogue for the S2, S1 and DEM collections of a pipeline.

    Args:
        api: STAC API root URL, or ``None``.
        catalog: path or URL of a static ``catalog.json`` / ItemCollection, or ``None`` (exactly one is set).
        collections: the collection ids that will be searched (checked on open).
        signing: ``"planetary_computer"`` signs asset hrefs with the planetary-computer package.
        timeout_s: HTTP timeout of one API request, s.
        retries: attempts after the first for a search that fails with a transient error.
    """

    def __init__(self, *, api: str | None, catalog: str | None, collections: Sequence[str],
                 signing: str, timeout_s: float, retries: int) -> None:
        self.api = api
        self.catalog = catalog
        self.signing = signing
        self.timeout_s = timeout_s
        self.retries = retries
        self.requests = 0
        self._client: Any = None
        self._static: dict[str, list[Any]] | None = None
        if api is not None:
            self._open_api(api, collections)
        elif catalog is not None:
            self._open_static(catalog, collections)
        else:  # pragma: no cover - StacConfig forbids it
            raise EOError("stac: set exactly one of 'api' and 'catalog'")

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> StacSource:
        """Open the source of a :class:`~socmap.config.PipelineConfig` (catalogue paths resolved against it)."""
        s = stac_config(cfg)
        return cls(api=s.api, catalog=cfg.resolve(s.catalog) if s.catalog else None,
                   collections=[s.s2_collection, s.s1_collection, s.dem_collection], signing=s.signing,
                   timeout_s=s.timeout_s, retries=s.retries)

    # ------------------------------------------------------------------------------------------ opening
    def _open_api(self, url: str, collections: Sequence[str]) -> None:
        import pystac_client
        from pystac_client.stac_api_io import StacApiIO
        from urllib3.util.retry import Retry

        retry = Retry(total=self.retries, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                      allowed_methods=None, connect=0)  # an unreachable host fails at once, not after backoff
        io = StacApiIO(headers=api_key_headers(), timeout=self.timeout_s, max_retries=retry)
        modifier = self._signer_modifier()
        try:
            self._client = pystac_client.Client.open(url, stac_io=io, modifier=modifier)
        except Exception as exc:
            raise EOError(f"cannot open STAC API {url}: {short_error(exc)}; check stac.api in the pipeline YAML "
                          "and that the endpoint is reachable") from None
        known = self._api_collection_ids()
        for cid in collections:
            problem = None if cid in known else "not listed under /collections"
            if problem and not known:  # the server lists none: ask for the collection itself
                try:
                    got = self._client.get_collection(cid)
                    problem = None if got is not None and got.id == cid else "not found"
                except Exception as exc:
                    problem = short_error(exc)
            if problem:
                raise EOError(f"STAC API {url} has no collection {cid!r} ({problem}); available: "
                              f"{', '.join(known) or 'none listed'}; fix the *_collection ids under stac: in "
                              "the pipeline YAML")

    def _api_collection_ids(self) -> list[str]:
        try:
            return sorted(c.id for c in self._client.get_collections())
        except Exception:
            return []

    def _signer_modifier(self) -> Callable[[Any], None] | None:
        if self.signing != "planetary_computer":
            return None
        try:
            import planetary_computer
        except ImportError:
            raise EOError("stac.signing is planetary_computer but the planetary-computer package is missing; "
                          "pip install planetary-computer") from None
        return planetary_computer.sign_inplace

    def _open_static(self, href: str, collections: Sequence[str]) -> None:
        import pystac

        if "://" not in href and not Path(href).exists():
            raise EOError(f"STAC catalogue {href} not found; set stac.catalog in the pipeline YAML (for the demo "
                          "world run `socmap demo-world` first)")
        try:
            obj: Any = pystac.read_file(href)
        except pystac.STACTypeError:
            try:  # an ItemCollection (GeoJSON FeatureCollection) is not a STACObject for read_file
                obj = pystac.ItemCollection.from_file(href)
            except Exception as exc:
                raise EOError(f"cannot read STAC catalogue {href}: {short_error(exc)}") from None
        except Exception as exc:
            raise EOError(f"cannot read STAC catalogue {href}: {short_error(exc)}") from None
        by_coll: dict[str, list[Any]] = {}
        if isinstance(obj, pystac.ItemCollection):
            items = list(obj.items)
        elif isinstance(obj, pystac.Catalog):
            items = list(obj.get_items(recursive=True))
        elif isinstance(obj, pystac.Item):
            items = [obj]
        else:
            raise EOError(f"{href} is a {type(obj).__name__}, not a STAC catalogue or ItemCollection")
        for item in items:
            item.make_asset_hrefs_absolute()
            by_coll.setdefault(item.collection_id or "", []).append(item)
        missing = [c for c in collections if c not in by_coll]
        if missing:
            raise EOError(f"STAC catalogue {href} has no items in collection(s) {', '.join(map(repr, missing))}; "
                          f"available: {', '.join(sorted(k for k in by_coll if k))}; fix the *_collection ids "
                          "under stac: in the pipeline YAML")
        signer = self._signer_modifier()
        if signer is not None:
            for lst in by_coll.values():
                for item in lst:
                    signer(item)
        self._static = by_coll

    def _conforms_to_query(self) -> bool:
        from pystac_client.conformance import ConformanceClasses

        try:
            return bool(self._client.conforms_to(ConformanceClasses.QUERY))
        except Exception:
            return False

    # ------------------------------------------------------------------------------------------ search
    def search(self, collection: str, bbox_lonlat: Bbox, year: int | None, *,
               max_cloud_pct: float | None = None) -> list[Any]:
        """Items of ``collection`` over ``bbox_lonlat`` (WGS84) acquired in ``year`` (any time if ``None``).

        Sorted by acquisition time then id, so every run composites the same scenes in the same order.
        Transient API errors are retried ``retries`` times (with backoff) by the HTTP layer; what still fails
        raises :class:`EOError` naming the collection, bbox and year.
        """
        if self._static is not None:
            items = [it for it in self._static.get(collection, [])
                     if it.bbox is None or _bbox_overlaps(it.bbox, bbox_lonlat)]
            if year is not None:
                items = [it for it in items if (t := _item_time(it)) is not None and t.year == year]
        else:
            kw: dict[str, Any] = {"collections": [collection], "bbox": list(bbox_lonlat)}
            if year is not None:
                kw["datetime"] = item_year_range(year)
            if max_cloud_pct is not None and self._conforms_to_query():
                kw["query"] = {"eo:cloud_cover": {"lt": max_cloud_pct}}

            def once() -> list[Any]:
                self.requests += 1
                return list(self._client.search(**kw).items())

            try:
                items = retry(once, attempts=self.retries + 1, base_s=0.5, cap_s=8.0, retry_on=source_errors())
            except source_errors() as exc:
                raise SourceError(f"STAC search of {collection} over {bbox_lonlat} in {year} failed after "
                              f"{self.retries + 1} attempts: {short_error(exc)}") from None
            if year is not None:  # some servers treat the interval loosely
                items = [it for it in items if (t := _item_time(it)) is not None and t.year == year]
        if max_cloud_pct is not None:
            items = [it for it in items if float(it.properties.get("eo:cloud_cover", 0.0)) < max_cloud_pct]
        return sorted(items, key=lambda it: (_item_time(it) or dt.datetime.min.replace(tzinfo=dt.UTC), it.id))

