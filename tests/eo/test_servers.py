"""The test servers themselves: byte ranges work (206) and rustac answers STAC searches."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.eo.servers import ServedFolder


def test_file_server_serves_byte_ranges(small_world: Path, served_world: ServedFolder) -> None:
    rel = "stac/cop-dem-glo-30/Copernicus_DSM_COG_10_DEMO_00/data.tif"
    req = urllib.request.Request(f"{served_world.url}/{rel}", headers={"Range": "bytes=0-99"})
    with urllib.request.urlopen(req) as r:
        body = r.read()
        assert r.status == 206
    assert body == (small_world / rel).read_bytes()[:100]


@pytest.mark.requires_rustac
def test_rustac_searches_collections(stac_api) -> None:  # type: ignore[no-untyped-def]
    import pystac_client

    client = pystac_client.Client.open(stac_api.url)
    items = list(client.search(collections=["sentinel-2-l2a"], datetime="2023").items())
    assert items and all(i.datetime.year == 2023 for i in items)
    assert all(a.href.startswith("http://127.0.0.1:") for a in items[0].assets.values())
