"""socmap.evaluate: accuracy, uncertainty and diagnostics of a model bundle against baselines (paper section 5).

:func:`socmap.evaluate.stage.run` (``socmap evaluate``) scores a bundle on its data's held-out split against XGBoost
and an RFSI-like spatial XGBoost and writes a report folder (report.md, report.json, figures). The metric tables with
bootstrap intervals (:mod:`socmap.evaluate.bootstrap`, over the shared :mod:`socmap.metrics`), the z diagnostics and
the baselines are usable on their own.
"""

from socmap.evaluate.baselines import BaselineResult, run_baselines, spatial_lag_features
from socmap.evaluate.bootstrap import point_metrics, uncertainty_metrics
from socmap.evaluate.diagnostics import z_diagnostics
from socmap.evaluate.report import score_predictions, write_report
from socmap.evaluate.stage import ABLATIONS, EvaluationResult

__all__ = [
    "ABLATIONS",
    "BaselineResult",
    "EvaluationResult",
    "point_metrics",
    "run_baselines",
    "score_predictions",
    "spatial_lag_features",
    "uncertainty_metrics",
    "write_report",
    "z_diagnostics",
]
