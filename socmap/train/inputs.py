"""Read a data folder into the training graph's node inputs: samples, covariates, embeddings, NDVI, elevation.

Targets are :math:`y = \\log(1 + \\mathrm{SOC})` (SOC in g/kg), standardised with the training split's mean and sd
(:class:`socmap.inference.scaler.TargetScaler`); validation and test targets are read here for scoring only and
never enter an input or a loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from socmap.config import PipelineConfig
from socmap.data.split import SPLIT_CODES
from socmap.errors import DataError, ModelError
from socmap.io import EMBEDDINGS, IMAGE_COVARIATES, PREPROCESS, SAMPLES

__all__ = ["TrainingData", "load_training_data", "resolve_node_covariates"]

# Where the graph's NDVI / elevation relations read their per-node value, in order of preference: a samples
# column (a covariate layer of that name, e.g. the real Africa rasters) or an image covariate from `socmap extract`.
NDVI_SOURCES = (("samples", "ndvi"), ("image", "ndvi_p50"))
ELEVATION_SOURCES = (("samples", "elevation"), ("image", "elevation_m"))


@dataclass
class TrainingData:
    """Every node of the training graph (all samples, rows in samples.parquet order)."""

    sample_id: np.ndarray
    lonlat: np.ndarray
    """(N, 2) float64 degrees."""
    year: np.ndarray
    """(N,) calendar year."""
    soc_gkg: np.ndarray
    """(N,) observed SOC, g/kg (all splits; only training values are ever an input or in a loss)."""
    split: np.ndarray
    """(N,) int8 codes, see :data:`socmap.data.split.SPLIT_CODES`."""
    feature_columns: list[str]
    """Preprocessor feature names, the model's tabular input order (samples columns ``feat_<name>``)."""
    tabular: np.ndarray | None
    """(N, d) float32 preprocessed covariates, or None when the tabular stream is off."""
    image: np.ndarray | None
    """(N, D) float32 cached ViT embeddings (NaN rows where no patch), or None."""
    image_ok: np.ndarray | None
    ndvi: np.ndarray | None
    """(N,) NDVI for the ``ndvi`` relation (NaN filled with the training median), or None."""
    elevation: np.ndarray | None
    """(N,) elevation, m, for the ``elevation`` relation (NaN filled with the training median), or None."""
    embeddings_attrs: dict | None = None
    fill_values: dict[str, float] = field(default_factory=dict)
    """What a missing ``ndvi`` / ``elevation`` node value was filled with (the training split's median)."""

    def __len__(self) -> int:
        return len(self.sample_id)

    @property
    def y_log(self) -> np.ndarray:
        return np.log1p(self.soc_gkg)

    def mask(self, split: str) -> np.ndarray:
        return self.split == SPLIT_CODES[split]


def _fill(values: np.ndarray, train: np.ndarray, what: str) -> tuple[np.ndarray, float]:
    """``values`` with NaN replaced by the training split's median (all finite values' where no training value
    is finite), and that fill value: the bundle keeps it so prediction fills a map cell's gap the same way."""
    v = np.asarray(values, np.float64).copy()
    bad = ~np.isfinite(v)
    if bad.all():
        raise DataError(f"every sample's {what} is missing; drop {what!r} from model.graph.relations")
    good_train = train & ~bad
    fill = float(np.median(v[good_train] if good_train.any() else v[~bad]))
    v[bad] = fill
    return v, fill


def resolve_node_covariates(samples: pd.DataFrame, data_dir: Path | None, relations: list[str]
                            ) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, str]]:
    """NDVI and elevation per node for the relations that need them, and where each came from.

    A samples column (``ndvi``, ``elevation``: covariate layers of those names) is used first, then the image
    covariates ``ndvi_p50`` / ``elevation_m`` that ``socmap extract`` wrote beside the samples.
    """
    from socmap.graph import node_covariates

    image_cov: pd.DataFrame | None = None
    if data_dir is not None and (data_dir / IMAGE_COVARIATES).is_file():
        ic = pd.read_parquet(data_dir / IMAGE_COVARIATES)
        image_cov = samples[["sample_id"]].merge(ic, on="sample_id", how="left")
    out: dict[str, np.ndarray | None] = {"ndvi": None, "elevation": None}
    source: dict[str, str] = {}
    for rel, options in (("ndvi", NDVI_SOURCES), ("elevation", ELEVATION_SOURCES)):
        if rel not in relations:
            continue
        for where, col in options:
            table = samples if where == "samples" else image_cov
            if table is not None and col in table.columns:
                kw = {"ndvi_column": col, "elevation_column": None} if rel == "ndvi" else \
                    {"ndvi_column": None, "elevation_column": col}
                nd, el = node_covariates(table, **kw)
                out[rel] = nd if rel == "ndvi" else el
                source[rel] = f"{where}:{col}"
                break
        else:
            raise DataError(f"the {rel!r} relation needs a per-sample {rel} value: add a covariate layer named "
                            f"{rel!r} to data.covariates, run `socmap extract` (image covariates), or drop "
                            f"{rel!r} from model.graph.relations")
    return out["ndvi"], out["elevation"], source


def _read_samples(sp: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """samples.parquet and its split codes; DataError unless it has every column training reads and both a
    training and a validation split."""
    samples = pd.read_parquet(sp)
    need = ["sample_id", "lon", "lat", "year", "soc_gkg", "split"]
    missing = [c for c in need if c not in samples.columns]
    if missing:
        raise DataError(f"{sp} lacks column(s) {', '.join(missing)}; run `socmap prepare` again")
    bad_split = sorted(set(samples["split"].astype(str)) - set(SPLIT_CODES))
    if bad_split:
        raise DataError(f"{sp}: unknown split value(s) {bad_split}; expected train, val, test")
    split = samples["split"].astype(str).map(SPLIT_CODES).to_numpy(np.int8)
    for name in ("train", "val"):
        if not (split == SPLIT_CODES[name]).any():
            raise DataError(f"{sp} has no {name!r} samples; training needs both train and val")
    return samples, split


def _tabular(samples: pd.DataFrame, feature_columns: list[str], sp: Path) -> np.ndarray:
    """(N, d) float32 model-ready covariates: the samples' ``feat_<name>`` columns in ``feature_columns`` order."""
    cols = [f"feat_{c}" for c in feature_columns]
    miss = [c for c in cols if c not in samples.columns]
    if miss:
        raise DataError(f"{sp} lacks the model-ready column(s) {', '.join(miss[:5])} that {PREPROCESS} "
                        "names; run `socmap prepare` again")
    if not cols:
        raise DataError("the tabular stream is on but the pipeline has no covariates; add data.covariates "
                        "or drop 'tabular' from model.streams")
    tabular = samples[cols].to_numpy(np.float32)
    if not np.isfinite(tabular).all():
        raise DataError(f"{sp}: the feat_* columns hold NaN; run `socmap prepare` again")
    return tabular


def _image(samples: pd.DataFrame, data_dir: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(N, D) float32 cached ViT embeddings (NaN rows where no patch), which rows have one, and the store's
    attributes."""
    if not (data_dir / EMBEDDINGS).exists():
        raise ModelError(f"model.streams has 'image' but {data_dir / EMBEDDINGS} does not exist: run "
                         f"`socmap embed --data {data_dir}` or drop 'image' from model.streams")
    from socmap.encoders import load_embeddings

    emb = load_embeddings(data_dir / EMBEDDINGS)
    image, image_ok = emb.aligned(samples["sample_id"].to_numpy())
    return image.astype(np.float32), image_ok, emb.attrs


def _located_labels(samples: pd.DataFrame, train: np.ndarray, sp: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) lon/lat degrees and (N,) SOC g/kg; DataError on a missing position or training label."""
    lonlat = samples[["lon", "lat"]].to_numpy(np.float64)
    if not np.isfinite(lonlat).all():
        raise DataError(f"{sp}: lon/lat hold NaN; run `socmap prepare` again")
    soc = samples["soc_gkg"].to_numpy(np.float64)
    if not (np.isfinite(soc[train]).all() and (soc[train] > -1).all()):
        raise DataError(f"{sp}: training soc_gkg holds NaN or values <= -1 g/kg")
    return lonlat, soc


def _filled_node_covariates(samples: pd.DataFrame, data_dir: Path, relations: list[str], train: np.ndarray
                            ) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, str], dict[str, float]]:
    """NDVI and elevation per node (:func:`resolve_node_covariates`) with gaps filled by :func:`_fill`, where
    each came from, and the fill values."""
    ndvi, elev, sources = resolve_node_covariates(samples, data_dir, relations)
    fill_values: dict[str, float] = {}
    if ndvi is not None:
        ndvi, fill_values["ndvi"] = _fill(ndvi, train, "ndvi")
    if elev is not None:
        elev, fill_values["elevation"] = _fill(elev, train, "elevation")
    return ndvi, elev, sources, fill_values


def load_training_data(data_dir: Path, cfg: PipelineConfig) -> tuple[TrainingData, object, dict[str, str]]:
    """Read DATA/samples.parquet, preprocess.json and (image stream on) embeddings.zarr.

    Returns ``(data, preprocessor, covariate_sources)``.
    """
    from socmap.data import Preprocessor

    data_dir = Path(data_dir)
    sp = data_dir / SAMPLES
    if not sp.is_file():
        raise DataError(f"{sp} not found; run `socmap prepare --out {data_dir}` first")
    samples, split = _read_samples(sp)
    train = split == SPLIT_CODES["train"]
    if not (data_dir / PREPROCESS).is_file():
        raise DataError(f"{data_dir / PREPROCESS} not found; run `socmap prepare --out {data_dir}` first")
    pre = Preprocessor.load(data_dir)
    streams = cfg.model.streams
    feature_columns = list(pre.feature_names)
    tabular = _tabular(samples, feature_columns, sp) if "tabular" in streams else None
    image, image_ok, attrs = _image(samples, data_dir) if "image" in streams else (None, None, None)
    lonlat, soc = _located_labels(samples, train, sp)
    ndvi, elev, sources, fill_values = _filled_node_covariates(samples, data_dir, list(cfg.model.graph.relations),
                                                               train)
    data = TrainingData(
        sample_id=samples["sample_id"].astype(str).to_numpy(), lonlat=lonlat,
        year=samples["year"].to_numpy(np.float64), soc_gkg=soc, split=split, feature_columns=feature_columns,
        tabular=tabular, image=image, image_ok=image_ok, ndvi=ndvi, elevation=elev, embeddings_attrs=attrs,
        fill_values=fill_values,
    )
    return data, pre, sources
