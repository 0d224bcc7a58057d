"""What made a map: the provenance record written to ``provenance.json`` and the STAC Item's ``socmap:provenance``.

It answers, months later, "which code, which model, which settings and which imagery made this map, and when":
the socmap version and git commit (when the code runs from a git checkout), the bundle's folder, creation time and
sha256 (:func:`socmap.mapping.records.bundle_sha256`), the pipeline as resolved (credential-looking values
redacted), the year, embedding mode and version folder, the STAC items each tile used, the start and end of the
run (UTC) and which tiles were done, skipped (done before) or failed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socmap.config import PipelineConfig, redact_tree

if TYPE_CHECKING:
    from socmap.inference import Bundle

__all__ = ["git_commit", "provenance"]


def git_commit() -> str | None:
    """The commit the running socmap package was loaded from (``+dirty`` when it has local changes), or None when
    it is not a git checkout (an installed wheel, the Docker image)."""
    import socmap

    here = Path(socmap.__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha or None


def provenance(cfg: PipelineConfig, *, year: int, mode: str, version: str, model: Path, bundle: Bundle,
               bundle_sha: str, key: str, started: str, finished: str, root: Path, chosen: list[str],
               done: list[str], skipped: list[str], failed: dict[str, str],
               stac_items: dict[str, list[str]]) -> dict[str, Any]:
    """The provenance record of one run (JSON-ready; times are UTC ISO 8601). ``stac_items`` holds the tiles
    mapped in this run; tiles skipped keep the items recorded by the run that mapped them (read back here from the
    previous ``provenance.json`` when there is one)."""
    import json

    import socmap
    from socmap.io import MAP_PROVENANCE

    items = dict(stac_items)
    old = root / MAP_PROVENANCE
    if old.is_file():
        try:
            prev = json.loads(old.read_text()).get("stac_items", {})
            items = {**{t: v for t, v in prev.items() if t in skipped}, **items}
        except (OSError, ValueError, AttributeError):
            pass
    return {
        "socmap_version": socmap.__version__,
        "git_commit": git_commit(),
        "bundle": {"path": str(Path(model).resolve()), "sha256": bundle_sha,
                   "created": bundle.info.created or None},
        "region": cfg.name, "year": int(year), "embedding_mode": mode, "version": version, "run_key": key,
        "pipeline": redact_tree(cfg.model_dump(mode="json")),
        "started": started, "finished": finished,
        "tiles": {"total": len(chosen), "done": sorted(done), "skipped": sorted(skipped),
                  "failed": {t: failed[t] for t in sorted(failed)}},
        "stac_items": {t: items[t] for t in sorted(items)},
    }
