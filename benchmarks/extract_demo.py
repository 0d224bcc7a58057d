"""Benchmark `socmap extract` on the full 10 x 10 km demo world (600 samples x 3 years, 224 x 224 patches).

Generates (or reuses) the world with ``ensure_world`` under $SOCMAP_HOME (default ~/.cache/socmap), builds a
samples table from its truth, extracts into a fresh temporary folder on a LocalCluster, then re-runs to show that
nothing is fetched again. Ends with one JSON line of the figures.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    import pandas as pd

    from socmap.config import load_pipeline
    from socmap.demo.world import WorldSpec, default_world_dir, ensure_world
    from socmap.eo import extract
    from socmap.io import PATCHES, SAMPLES

    world = ensure_world(default_world_dir(), WorldSpec(), progress=False)
    s = pd.read_csv(world / "truth" / "sites.csv")
    df = pd.DataFrame({"sample_id": s.profile_id.astype(str), "lon": s.lon, "lat": s.lat, "year": s.year,
                       "soc_gkg": s.soc_true_gkg, "source": "demo", "split": "train"})
    cfg = load_pipeline("demo")
    cfg.stac = cfg.stac.model_copy(update={"catalog": str(world / "stac" / "catalog.json")}) if cfg.stac else None
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / SAMPLES
        df.to_parquet(samples, index=False)
        t0 = time.perf_counter()
        res = extract.run(cfg, samples, Path(tmp) / "out", progress=False)
        first = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = extract.run(cfg, samples, Path(tmp) / "out", progress=False)
        second = time.perf_counter() - t1
        zbytes = sum(p.stat().st_size for p in (Path(tmp) / "out" / PATCHES).rglob("*") if p.is_file())
    read_bytes = sum(p.stat().st_size for p in (world / "stac").rglob("*.tif"))
    figures = {
        "samples": res.n_samples, "ok": res.n_ok, "patch_size": cfg.imagery.patch_size,
        "seconds": round(first, 2), "per_sample_ms": round(1000 * first / max(res.n_samples, 1), 1),
        "rerun_seconds": round(second, 2), "rerun_extracted": again.n_extracted,
        "groups": res.n_groups, "zarr_bytes": zbytes, "cog_bytes_in_catalogue": read_bytes,
    }
    print(f"samples {figures['samples']} ({figures['ok']} ok), {figures['seconds']} s, "
          f"{figures['per_sample_ms']} ms/sample, zarr {zbytes / 2**20:.0f} MiB, re-run {second:.2f} s",
          file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
