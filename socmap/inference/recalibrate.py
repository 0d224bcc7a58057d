"""``socmap calibrate``: refit a bundle's calibration on its validation split without retraining a member.

The calibration (:mod:`socmap.inference.calibration`) needs only the members' stored node outputs, the labels and
the split, so an improved calibration reaches an existing bundle (and its maps) in seconds without changing a
weight. The weights, the graph, the node outputs and the split (the bundle's own) are untouched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from socmap.config import PipelineConfig
from socmap.data.split import SPLIT_CODES
from socmap.errors import DataError
from socmap.inference.calibration import Calibration, fit_calibration, validation_metrics
from socmap.inference.card import card_markdown
from socmap.inference.format import BUNDLE_JSON, CARD_JSON, CARD_MD
from socmap.inference.loading import load_bundle
from socmap.inference.writing import card_json, info_json
from socmap.io import SAMPLES, atomic_path

__all__ = ["CalibrateResult", "run"]


@dataclass
class CalibrateResult:
    """What :func:`run` (``socmap calibrate``) fitted and where it wrote it."""

    path: Path
    """The bundle folder, rewritten in place."""
    calibration: Calibration
    validation: dict[str, float]
    """The calibrated ensemble's validation figures, g/kg (RMSE, MAE, R2, MAPE %, NLL on log(1+SOC), PICP95)."""

    def summary(self) -> str:
        cal = self.calibration
        cap = "none" if cal.mean_var_cap is None else f"{cal.mean_var_cap:g}"
        tails = "Gaussian" if cal.tail_dof is None else f"Student t, {cal.tail_dof:.2f} dof"
        return (f"calibrate: T {cal.temperature:.4f}, {cal.growth_text()}, tails {tails}, mean cap {cap} -> "
                f"{self.path}")


def _read_labels(data_dir: Path) -> pd.DataFrame:
    """sample_id and soc_gkg (g/kg) of every sample in DATA/samples.parquet."""
    samples_path = Path(data_dir) / SAMPLES
    if not samples_path.is_file():
        raise DataError(f"{samples_path} does not exist: pass the data folder the bundle was trained on")
    return pd.read_parquet(samples_path, columns=["sample_id", "soc_gkg"])


def _replace_files(texts: dict[Path, str]) -> None:
    """Write each text to its path under a temporary name and rename it into place (all composed beforehand)."""
    for path, text in texts.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)


def run(cfg: PipelineConfig, data_dir: Path, model: Path, *, progress: bool = True) -> CalibrateResult:
    """Refit the calibration of the bundle ``model`` from its stored node outputs, its stored block residuals (when
    trained with ``train.variance_blocks_km``) and the labels in ``data_dir``/samples.parquet (the data it was
    trained on), and rewrite its bundle.json and model card.

    Args:
        cfg: the pipeline; its covariates, streams and relations must be the bundle's (the CLI passes the
            bundle's own unless ``--region`` / ``--pipeline`` names one).
        data_dir: the data folder the bundle was trained on.
        model: the bundle folder, rewritten in place: every file is composed before any is replaced, and each is
            written under a temporary name and renamed.
        progress: accepted like every stage's; the fit takes seconds and shows no bar.

    Fitting the same bundle twice gives the same calibration, and a bundle the current ``socmap train`` wrote keeps
    its own.
    """
    root = Path(model)
    bundle = load_bundle(root, cfg, load_members=False)
    samples = _read_labels(Path(data_dir))
    bundle.check_samples(samples, Path(data_dir) / SAMPLES)
    soc = samples["soc_gkg"].to_numpy(np.float64)
    val = bundle.node_split == SPLIT_CODES["val"]
    seeds = bundle.info.seeds or [0]
    area = bundle.applicability
    cal, cal_val = fit_calibration(bundle.node_member_mean, bundle.node_member_var, soc, bundle.node_lonlat,
                                   bundle.node_split == SPLIT_CODES["train"], val, seed=int(seeds[0]),
                                   residuals=bundle.block_residuals, di=bundle.node_di(),
                                   di_scale=float("nan") if area is None else area.threshold)
    metrics = validation_metrics(cal_val, soc[val])
    info = dataclasses.replace(bundle.info, calibration=cal)
    card = dataclasses.replace(bundle.card, calibration=cal, validation=metrics)
    _replace_files({root / BUNDLE_JSON: info_json(info), root / CARD_JSON: card_json(card),
                    root / CARD_MD: card_markdown(card)})
    return CalibrateResult(root, cal, metrics)
