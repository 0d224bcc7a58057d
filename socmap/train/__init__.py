"""socmap.train: losses, the transductive trainer, the deep ensemble, its calibration and the model bundle.

:func:`socmap.train.stage.run` (``socmap train``) writes a bundle; ``load_bundle`` reads it back for ``evaluate`` and
``predict``.
"""

from socmap.train.bundle import BUNDLE_FORMAT, Bundle, load_bundle
from socmap.train.calibration import Calibration, fit_calibration, recalibrate
from socmap.train.ensemble import (
    EnsemblePrediction,
    combine_members,
    fit_distance_temperature,
    fit_mean_var_cap,
    fit_tail_dof,
    fit_temperature,
)
from socmap.train.inputs import TargetScaler
from socmap.train.losses import beta_nll_loss, gaussian_nll_loss, huber_loss, main_loss, mse_loss, total_loss
from socmap.train.stage import TrainResult

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "Calibration",
    "EnsemblePrediction",
    "TargetScaler",
    "TrainResult",
    "beta_nll_loss",
    "combine_members",
    "fit_calibration",
    "fit_distance_temperature",
    "fit_mean_var_cap",
    "fit_tail_dof",
    "fit_temperature",
    "gaussian_nll_loss",
    "huber_loss",
    "load_bundle",
    "main_loss",
    "mse_loss",
    "recalibrate",
    "total_loss",
]
