"""Credentials come from the environment only and never leak: a pipeline YAML holding one is rejected with one line
(that does not repeat it); a planted fake key reaches the local servers that require it (a STAC API by
``SOCMAP_STAC_API_KEY``, covariate COGs by GDAL's ``GDAL_HTTP_HEADERS``) and appears in no output file, no log
record and no message, also when the run fails; names that become paths cannot leave OUT."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from socmap.cli import cli
from socmap.config import redact
from socmap.errors import ConfigError, EOError

from .test_faults import _pipeline

KEY = "sk-fake-9f8e7d6c5b4a39281706"
YEAR = 2020


class _KeyServer:
    """127.0.0.1 server that answers only requests carrying ``X-API-Key: KEY``: a minimal STAC API landing page and
    ``/collections``, and the test world's files (delegated to ``files``). It records which requests had the key."""

    def __init__(self, files: Any = None) -> None:
        self.files = files
        self.seen: list[tuple[str, bool]] = []
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        ok = req.headers.get("X-API-Key") == KEY
        self.seen.append((req.path, ok))
        if not ok:
            return Response("missing or wrong API key", status=401)(environ, start_response)
        if req.path.endswith(".tif") and self.files is not None:
            return self.files(environ, start_response)
        if req.path.rstrip("/") == "/collections":
            body = {"collections": [{"type": "Collection", "id": c, "stac_version": "1.0.0", "description": c,
                                     "license": "proprietary", "links": [],
                                     "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                                                "temporal": {"interval": [[None, None]]}}}
                                    for c in ("sentinel-2-l2a", "sentinel-1-rtc", "cop-dem-glo-30")],
                    "links": []}
        else:
            body = {"type": "Catalog", "id": "keyed", "stac_version": "1.0.0", "description": "needs a key",
                    "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                                   "https://api.stacspec.org/v1.0.0/collections"],
                    "links": [{"rel": "self", "href": self.url + "/"},
                              {"rel": "data", "href": self.url + "/collections"}]}
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("case", ["key", "signed_url", "userinfo", "env_ref"])
def test_credentials_in_a_pipeline_are_rejected(case: str, map_world: dict[str, Path], tmp_path: Path) -> None:
    pipe = yaml.safe_load(map_world["pipeline"].read_text())
    pipe["grid"] = str(map_world["root"] / "grid4.yaml")
    cov = pipe["data"]["covariates"][0]
    if case == "key":
        pipe["stac"] = {"api": "http://127.0.0.1:9/", "api_key": KEY}
    elif case == "signed_url":
        cov["path"] = f"https://acct.blob.core.windows.net/c/temp.tif?sv=2024-01-01&sig={KEY}"
    elif case == "userinfo":
        cov["path"] = f"https://user:{KEY}@example.org/temp.tif"
    else:
        pipe["stac"] = {"api": "https://example.org/stac?key=${SOCMAP_STAC_API_KEY}"}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(pipe))
    r = CliRunner().invoke(cli, ["check-config", "--pipeline", str(path)])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "credential" in lines[0], r.output
    assert KEY not in r.output and "environment" in lines[0]


def test_stac_api_key_from_the_environment(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
                                           ) -> None:
    from socmap.eo.stac import StacSource

    srv = _KeyServer()
    cols = ["sentinel-2-l2a", "sentinel-1-rtc", "cop-dem-glo-30"]
    caplog.set_level(logging.DEBUG)
    try:
        monkeypatch.delenv("SOCMAP_STAC_API_KEY", raising=False)
        with pytest.raises(EOError) as no_key:
            StacSource(api=srv.url + "/", catalog=None, collections=cols, signing="none", retries=0,
                           timeout_s=5)
        assert "missing or wrong API key" in str(no_key.value)
        monkeypatch.setenv("SOCMAP_STAC_API_KEY", KEY)
        StacSource(api=srv.url + "/", catalog=None, collections=cols, signing="none", retries=0, timeout_s=5)
        assert any(ok for _, ok in srv.seen)
        monkeypatch.setenv("SOCMAP_STAC_API_KEY", KEY[:-1] + "X")  # a wrong key: the message must not show it
        with pytest.raises(EOError) as wrong:
            StacSource(api=srv.url + "/", catalog=None, collections=cols, signing="none", retries=0,
                           timeout_s=5)
        assert KEY[:-1] not in redact(str(wrong.value))
    finally:
        srv.close()
    assert KEY not in caplog.text and KEY[:-1] not in caplog.text


def test_planted_key_never_in_outputs_logs_or_messages(map_world: dict[str, Path], map_bundle: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from tests.eo.servers import FileServer

    srv = _KeyServer(FileServer(map_world["root"]))
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "maps"
    outputs: list[str] = []
    try:
        monkeypatch.setenv("SOCMAP_STAC_API_KEY", KEY)
        monkeypatch.setenv("GDAL_HTTP_HEADERS", f"X-API-Key: {KEY}")  # a cloud token, from the environment only
        monkeypatch.setenv("CPL_VSIL_CURL_NON_CACHED", f"/vsicurl/{srv.url}")
        pipe = _pipeline(map_world, tmp_path, tile=32, covariate_base=srv.url)
        args = ["predict", "--pipeline", str(pipe), "--year", str(YEAR), "--model", str(map_bundle), "--out",
                str(out), "--scheduler", "threads", "--no-progress", "--tiles", "r000_c000,r001_c001"]
        r = CliRunner().invoke(cli, args)
        outputs.append(r.output)
        assert r.exit_code == 0, r.output
        assert all(ok for p, ok in srv.seen if p.endswith(".tif")) and srv.seen  # the key was sent and accepted
        monkeypatch.setenv("GDAL_HTTP_HEADERS", f"X-API-Key: {KEY[::-1]}")  # a wrong token: every tile fails
        r = CliRunner().invoke(cli, [*args[:-1], "r000_c001"])
        outputs.append(r.output)
        assert r.exit_code == 3 and "1 of 1 tiles failed" in r.output, r.output
    finally:
        srv.close()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "provenance.json" for p in files) and any(p.suffix == ".tif" for p in files)
    for p in files:
        blob = p.read_bytes()
        for k in (KEY, KEY[::-1]):
            assert k.encode() not in blob, p
    for text in [*outputs, caplog.text]:
        assert KEY not in text and KEY[::-1] not in text


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "x" * 200, ""])
def test_names_that_become_paths_are_checked(name: str, map_world: dict[str, Path], map_bundle: Path,
                                             tmp_path: Path) -> None:
    from socmap.config import load_pipeline
    from socmap.mapping import predict

    cfg = load_pipeline(map_world["pipeline"])
    with pytest.raises(ConfigError, match="cannot be used as a folder"):
        predict.run(cfg, map_bundle, tmp_path / "out", year=YEAR, scheduler="threads", progress=False,
                    version=name or ".")
    cfg.name = name or ".."
    with pytest.raises(ConfigError, match="cannot be used as a folder"):
        predict.run(cfg, map_bundle, tmp_path / "out", year=YEAR, scheduler="threads", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()
