#!/usr/bin/env python3
"""Write a tiny ``prepare`` output here: samples.parquet, preprocess.json, preprocess_reference.parquet.

Six sites (sample ids s000..s005) in northern Tanzania, sampling years 2015-2024 (s000 predates the imagery
archive), splits train x4 / val / test, one raster covariate (mat, degC) and one categorical (landcover), with
the ``feat_*`` columns of a :class:`~socmap.data.Preprocessor` fitted on the training rows, as prepare writes them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from socmap.data import SAMPLE_COLUMNS, Preprocessor  # noqa: E402
from socmap.io import SAMPLES, atomic_path  # noqa: E402
from tests.data import print_checksums  # noqa: E402

N = 6


def main() -> None:
    rng = np.random.default_rng(20260101)
    df = pd.DataFrame({
        "sample_id": [f"s{i:03d}" for i in range(N)],
        "lon": np.round(36.70 + rng.uniform(0, 0.05, N), 6),
        "lat": np.round(-3.40 + rng.uniform(0, 0.05, N), 6),
        "year": np.array([2015, 2022, 2023, 2022, 2024, 2023], dtype="int32"),
        "soc_gkg": np.round(rng.uniform(2, 40, N), 3),
        "source": "fixture",
        "split": ["train"] * (N - 2) + ["val", "test"],
        "year_is_placeholder": False,
        "n_profiles": 1,
        "n_horizons": 2,
        "n_rows": 2,
        "depth_coverage": 1.0,
        "mat": np.round(rng.uniform(18, 24, N), 2),
        "landcover": np.array([10, 20, 10, 60, 20, 10], dtype=float),
    })
    assert list(df.columns[: len(SAMPLE_COLUMNS)]) == SAMPLE_COLUMNS
    pre = Preprocessor.fit(df[df.split == "train"], ["mat"], ["landcover"], k=2,
                           provenance=[{"name": "mat", "origin": "raster", "unit": "degC"},
                                       {"name": "landcover", "origin": "raster", "categorical": True}])
    feats = pre.transform(df)
    for c in feats.columns:
        df[f"feat_{c}"] = feats[c].to_numpy()
    with atomic_path(HERE / SAMPLES) as tmp:
        df.to_parquet(tmp, index=False)
    pre.save(HERE)
    print_checksums(HERE)


if __name__ == "__main__":
    main()
