"""Tabular covariate preprocessing fitted on the training split only (paper 4.3).

Continuous covariates are standardised (mean 0, sd 1 over the training samples, NaN ignored); categorical
covariates (land cover codes) are one-hot encoded over the classes seen in training (an unseen class gives
all zeros). Missing values are then filled by a KNN imputer (k = 5, sklearn's ``nan_euclidean`` distance on
the standardised values) whose donors are the training samples only; a missing categorical value becomes
the mean one-hot vector of its 5 neighbours (a soft class membership).

The fitted state is saved next to the data (``preprocess.json`` + ``preprocess_reference.parquet``, the
imputer's donor matrix), and :meth:`Preprocessor.transform` applies the very same transform at prediction
time, with nothing re-fitted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap.errors import DataError
from socmap.io import PREPROCESS, PREPROCESS_REFERENCE, atomic_path

__all__ = ["PREPROCESS_FILE", "REFERENCE_FILE", "Preprocessor"]

PREPROCESS_FILE = PREPROCESS
"""Alias of :data:`socmap.io.PREPROCESS`."""
REFERENCE_FILE = PREPROCESS_REFERENCE
"""Alias of :data:`socmap.io.PREPROCESS_REFERENCE`."""


@dataclass
class Preprocessor:
    """Standardise continuous covariates, one-hot categorical ones, KNN-impute the gaps (fit on train)."""

    numeric: list[str]
    """Continuous covariate columns, standardised."""
    categorical: dict[str, list[int]]
    """Categorical covariate column -> class codes seen in training (one-hot columns ``<name>_<code>``)."""
    mean: list[float]
    scale: list[float]
    k: int
    """Neighbours of the KNN imputer (the pipeline's ``data.impute_k``)."""
    reference: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    """The imputer's donors: the training samples' feature matrix (standardised + one-hot, NaN kept)."""
    provenance: list[dict[str, Any]] = field(default_factory=list)
    """Where each covariate came from (raster path or survey column), its unit, and if it can be mapped."""
    _imputer: Any = field(default=None, repr=False)

    # ----------------------------------------------------------------------------------------- fit
    @classmethod
    def fit(cls, train: pd.DataFrame, numeric: list[str], categorical: list[str], *, k: int,
            provenance: list[dict[str, Any]] | None = None) -> Preprocessor:
        """Fit on the training rows only (``train`` must hold every listed column)."""
        from sklearn.preprocessing import StandardScaler

        if numeric:
            sc = StandardScaler().fit(train[numeric].to_numpy(float))
            mean = np.nan_to_num(sc.mean_, nan=0.0).tolist()
            scale = np.where(np.isfinite(sc.scale_) & (sc.scale_ > 0), sc.scale_, 1.0).tolist()
        else:
            mean, scale = [], []
        cats = {c: sorted(int(v) for v in pd.unique(train[c].dropna())) for c in categorical}
        pre = cls(numeric=list(numeric), categorical=cats, mean=mean, scale=scale, k=k,
                  provenance=list(provenance or []))
        pre.reference = pre._encode(train)
        return pre

    # ------------------------------------------------------------------------------------ transform
    @property
    def feature_names(self) -> list[str]:
        """Model input columns, in order: standardised continuous, then one-hot categorical."""
        return [*self.numeric, *(f"{c}_{code}" for c, codes in self.categorical.items() for code in codes)]

    @property
    def categorical_features(self) -> list[str]:
        """The one-hot columns (not to be standardised again downstream)."""
        return [f"{c}_{code}" for c, codes in self.categorical.items() for code in codes]

    @property
    def required_columns(self) -> list[str]:
        """Raw covariate columns :meth:`transform` needs."""
        return [*self.numeric, *self.categorical]

    def _encode(self, df: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.required_columns if c not in df.columns]
        if missing:
            raise DataError(f"covariate column(s) {', '.join(missing)} missing; the preprocessing was fitted "
                            f"with {', '.join(self.required_columns)}")
        parts = []
        if self.numeric:
            x = df[self.numeric].to_numpy(float)
            parts.append((x - np.asarray(self.mean)) / np.asarray(self.scale))
        for c, codes in self.categorical.items():
            v = df[c].to_numpy(float)
            oh = (v[:, None] == np.asarray(codes, float)[None, :]).astype(float)
            oh[np.isnan(v)] = np.nan
            parts.append(oh)
        return np.hstack(parts) if parts else np.empty((len(df), 0))

    def ready_imputer(self) -> None:
        """Import and fit the KNN imputer now (about 1 s, once) rather than in the first :meth:`transform` that
        meets a gap: a map worker calls it while loading, so no tile pays for it."""
        self._knn()

    def _knn(self) -> Any:
        if self._imputer is None:
            from sklearn.impute import KNNImputer

            self._imputer = KNNImputer(n_neighbors=self.k, keep_empty_features=True).fit(self.reference)
        return self._imputer

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Model-ready features for ``df`` (raw covariates in physical units), same index, no NaN."""
        x = self._encode(df)
        if x.shape[1] and np.isnan(x).any():
            x = self._knn().transform(x)
        x = np.nan_to_num(x, nan=0.0)  # only a column with no training value at all is still NaN
        return pd.DataFrame(x, index=df.index, columns=self.feature_names)

    # ---------------------------------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        return {"kind": "socmap.data.Preprocessor", "version": 1, "numeric": self.numeric,
                "categorical": self.categorical, "mean": self.mean, "scale": self.scale, "k": self.k,
                "feature_names": self.feature_names, "categorical_features": self.categorical_features,
                "reference_file": REFERENCE_FILE, "reference_rows": int(self.reference.shape[0]),
                "covariates": self.provenance}

    def save(self, folder: str | Path) -> None:
        """Write the imputer's donor matrix ``preprocess_reference.parquet``, then ``preprocess.json`` (each
        atomically; the JSON, which names the reference, last)."""
        folder = Path(folder)
        with atomic_path(folder / REFERENCE_FILE) as tmp:
            pd.DataFrame(self.reference, columns=self.feature_names).to_parquet(tmp, index=False)
        with atomic_path(folder / PREPROCESS_FILE) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> Preprocessor:
        """The preprocessing ``socmap prepare`` saved in ``folder``."""
        folder = Path(folder)
        p = folder / PREPROCESS_FILE
        if not p.is_file():
            raise DataError(f"{p}: not found; run `socmap prepare` first")
        try:
            d = json.loads(p.read_text())
            ref = pd.read_parquet(folder / d.get("reference_file", REFERENCE_FILE)).to_numpy(float)
        except (OSError, ValueError) as exc:
            raise DataError(f"{p}: cannot read the saved preprocessing ({exc})") from None
        cats = {c: [int(v) for v in codes] for c, codes in d["categorical"].items()}
        if not d["feature_names"]:
            ref = np.empty((0, 0))
        return cls(numeric=list(d["numeric"]), categorical=cats, mean=list(d["mean"]), scale=list(d["scale"]),
                   k=int(d["k"]), reference=ref.reshape(len(ref), -1),
                   provenance=list(d.get("covariates", [])))
