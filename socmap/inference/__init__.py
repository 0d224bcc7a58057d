"""socmap.inference: using a trained model. The model bundle's format, reading and writing it, the ensemble's
predictive, its calibration, the distance-aware term, prediction for new points and the model card.

``socmap train`` writes a bundle (:func:`socmap.inference.writing.write_bundle`); :func:`load_bundle` reads it back
for ``evaluate``, ``predict`` and ``aggregate``; ``socmap calibrate`` refits its calibration
(:func:`socmap.inference.recalibrate.run`).
"""

from socmap.inference.bundle import Bundle
from socmap.inference.calibration import Calibration, fit_calibration, validation_metrics
from socmap.inference.card import ModelCard, card_markdown
from socmap.inference.distance import DistanceVariance, nearest_site_km
from socmap.inference.format import BUNDLE_FORMAT, BundleInfo
from socmap.inference.loading import load_bundle
from socmap.inference.mean_cap import fit_mean_var_cap
from socmap.inference.predictive import EnsemblePrediction, combine_members
from socmap.inference.recalibrate import CalibrateResult
from socmap.inference.scaler import TargetScaler
from socmap.inference.tails import fit_tail_dof
from socmap.inference.temperature import distance_growth, fit_distance_temperature, fit_temperature

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "BundleInfo",
    "CalibrateResult",
    "Calibration",
    "DistanceVariance",
    "EnsemblePrediction",
    "ModelCard",
    "TargetScaler",
    "card_markdown",
    "combine_members",
    "distance_growth",
    "fit_calibration",
    "fit_distance_temperature",
    "fit_mean_var_cap",
    "fit_tail_dof",
    "fit_temperature",
    "load_bundle",
    "nearest_site_km",
    "validation_metrics",
]
