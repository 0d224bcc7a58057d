#!/usr/bin/env python3
"""Write a tiny ``extract`` output here: patches.zarr (P = 32) for ../samples/samples.parquet, by the real writer.

Smooth seeded fields (so the store stays small) in the bands' units: S2 DN 200-4000 (sample s001 has a 4 x 4
NaN corner, a cloud), S1 dB around -14, DEM m. Sample s003 is missing (ok False, NaN patches, one failure
record); s000 (2015) is imaged in 2022, the first archive year.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from socmap.data import read_samples  # noqa: E402
from socmap.eo import BANDS, COVARIATE_COLUMNS, PatchStore, imagery_year_for  # noqa: E402
from socmap.io import PATCHES  # noqa: E402
from tests.data import print_checksums  # noqa: E402

P = 32
ARCHIVE = (2022, 2023, 2024)


def _field(rng: np.random.Generator, c: int, lo: float, hi: float, step: float) -> np.ndarray:
    """(c, P, P) smooth ramps with a little noise, in [lo, hi], quantised to ``step``."""
    yy, xx = np.mgrid[0:P, 0:P] / (P - 1)
    out = []
    for _ in range(c):
        a, b = rng.uniform(-1, 1, 2)
        base = 0.5 + 0.25 * (a * xx + b * yy)
        out.append(lo + (hi - lo) * np.clip(base + rng.integers(-2, 3, (P, P)) / 100.0, 0, 1))
    return (np.round(np.asarray(out) / step) * step).astype(np.float32)


def main() -> None:
    rng = np.random.default_rng(20260102)
    samples = read_samples(HERE.parent / "samples")
    years = samples["year"].to_numpy()
    path = HERE / PATCHES
    if path.exists():
        import shutil

        shutil.rmtree(path)
    store = PatchStore.open(path, samples["sample_id"].tolist(), years, imagery_years=imagery_year_for(years, ARCHIVE),
                            patch_size=P, resolution_m=10.0, source="tests/data fixture")
    for i in range(len(samples)):
        patches = {"S2L2A": _field(rng, len(BANDS["S2L2A"]), 200, 4000, 20.0),
                   "S1GRD": _field(rng, 2, -20, -8, 0.25), "DEM": _field(rng, 1, 900, 1100, 1.0)}
        cov = np.round(rng.normal(0, 1, len(COVARIATE_COLUMNS)), 3).astype(np.float32)
        failures: list[dict[str, object]] = []
        if i == 1:
            patches["S2L2A"][:, :4, :4] = np.nan
        if i == 3:
            patches = {m: np.full_like(a, np.nan) for m, a in patches.items()}
            cov[:] = np.nan
            failures = [{"modality": "S2L2A", "reason": "no sentinel-2-l2a items in 2022 (fixture)", "attempts": 1}]
        prov = {"S2L2A": [f"fixture-s2-{i}"], "S1GRD": [f"fixture-s1-{i}"], "DEM": ["fixture-dem"]}
        store.write_sample(i, patches, cov, ok=not failures, failures=failures, provenance=prov, done=True)
    print_checksums(HERE)


if __name__ == "__main__":
    main()
