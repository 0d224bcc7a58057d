"""socmap.data.read_samples: the one typed loader of samples.parquet, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from socmap.data import LOCATED, TARGET, read_samples
from socmap.errors import DataError
from socmap.io import SAMPLES


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"sample_id": [1, 2], "lon": [36.7, 36.8], "lat": [-3.4, -3.3], "year": [2015.0, 2022.0],
                         "soc_gkg": [10.0, 20.0], "split": ["train", "val"]})


def test_reads_a_folder_a_file_or_a_frame(tmp_path: Path) -> None:
    _frame().to_parquet(tmp_path / SAMPLES)
    _frame().to_csv(tmp_path / "s.csv", index=False)
    for src in (tmp_path, tmp_path / SAMPLES, tmp_path / "s.csv", _frame()):
        df = read_samples(src, required=(*LOCATED, *TARGET))
        assert df["sample_id"].tolist() == ["1", "2"] and df["year"].dtype.kind == "i"


def test_missing_columns_are_named_with_the_fix(tmp_path: Path) -> None:
    _frame().drop(columns=["soc_gkg", "split"]).to_parquet(tmp_path / SAMPLES)
    read_samples(tmp_path)  # extraction needs only position and year
    with pytest.raises(DataError, match=r"lacks column\(s\) soc_gkg, split .*socmap prepare --out"):
        read_samples(tmp_path, required=TARGET)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.assign(sample_id=[7, 7]), "duplicate sample_id values, e.g. 7"),
    (lambda d: d.assign(lat=[-3.4, 95.0]), "samples 2 have no valid lon/lat"),
])
def test_bad_rows_are_refused(change, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=message):
        read_samples(change(_frame()))


def test_missing_file_says_which_stage_writes_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"samples\.parquet not found: run `socmap prepare --out"):
        read_samples(tmp_path / "nowhere")
