"""Real local servers for the EO tests: a range-capable static file server and ``rustac serve``.

``FileServer`` is a small werkzeug WSGI app serving a folder with conditional and byte-range support (206), which
``python -m http.server`` lacks, so GDAL's partial COG reads are exercised as in the cloud. It records every
request (path, Range header, status, bytes sent) and can inject HTTP errors for chosen files.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file


@dataclass
class Hit:
    path: str
    range: str | None
    method: str
    status: int
    nbytes: int


@dataclass
class FileServer:
    root: Path
    hits: list[Hit] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    """path suffix -> number of 503 answers still to give (-1 = always)."""
    fault_status: int = 503
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        rel = req.path.lstrip("/")
        with self.lock:
            for suffix, left in self.faults.items():
                if rel.endswith(suffix) and left != 0:
                    if left > 0:
                        self.faults[suffix] = left - 1
                    self.hits.append(Hit(rel, req.headers.get("Range"), req.method, self.fault_status, 0))
                    return Response("injected failure", status=self.fault_status)(environ, start_response)
        path = (self.root / rel).resolve()
        if not path.is_file() or self.root.resolve() not in path.parents:
            self.hits.append(Hit(rel, req.headers.get("Range"), req.method, 404, 0))
            return Response("not found", status=404)(environ, start_response)
        size = path.stat().st_size
        resp = Response(wrap_file(environ, path.open("rb")), mimetype="application/octet-stream",
                        direct_passthrough=True)
        resp.content_length = size
        resp.make_conditional(req, accept_ranges=True, complete_length=size)
        nbytes = 0 if req.method == "HEAD" else int(resp.content_length or 0)
        with self.lock:
            self.hits.append(Hit(rel, req.headers.get("Range"), req.method, resp.status_code, nbytes))
        return resp(environ, start_response)

    def data_hits(self) -> list[Hit]:
        return [h for h in self.hits if h.path.endswith(".tif") and h.method == "GET"]

    def reset(self) -> None:
        with self.lock:
            self.hits.clear()


class ServedFolder:
    """Serve ``root`` on 127.0.0.1 in a thread; ``url`` is its base URL."""

    def __init__(self, root: Path) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.app = FileServer(root)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_items(world: Path, base_url: str, out: Path) -> list[Path]:
    """Write the world's items as one ItemCollection (asset hrefs on ``base_url``) plus its collections."""
    import pystac

    cat = pystac.Catalog.from_file(str(world / "stac" / "catalog.json"))
    feats = []
    files = []
    for coll in cat.get_children():
        cdict = coll.to_dict(include_self_link=False)
        cdict["links"] = []
        cpath = out / f"collection-{coll.id}.json"
        cpath.write_text(json.dumps(cdict))
        files.append(cpath)
        for item in coll.get_items():
            item.make_asset_hrefs_absolute()
            d = item.to_dict(include_self_link=False)
            d["links"] = []
            d["collection"] = coll.id
            for a in d["assets"].values():
                rel = Path(a["href"]).resolve().relative_to(world.resolve())
                a["href"] = f"{base_url}/{rel.as_posix()}"
            feats.append(d)
    ipath = out / "items.json"
    ipath.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return [*files, ipath]


class Rustac:
    """``rustac serve`` of some STAC files on 127.0.0.1; waits until it answers, kills it on close."""

    def __init__(self, hrefs: list[Path]) -> None:
        from tests import rustac_exe

        exe = rustac_exe()
        assert exe, "rustac CLI not found beside python or on PATH (pip install socmap[test])"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([exe, "serve", *map(str, hrefs), "--addr", f"127.0.0.1:{self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rustac serve exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("rustac serve did not answer within 30 s")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
