"""socmap.train: the losses, the transductive trainer, the deep ensemble's training and the fit step.

:func:`socmap.train.stage.run` (``socmap train``) trains the members, fits their calibration and writes the bundle
through :mod:`socmap.inference`, which reads it back for ``evaluate``, ``predict`` and ``aggregate``. The other
names are the pieces a caller that trains single members (``socmap tune``) uses.
"""

from socmap.train.inputs import TrainingData, load_training_data
from socmap.train.losses import beta_nll_loss, gaussian_nll_loss, huber_loss, main_loss, mse_loss, total_loss
from socmap.train.stage import TrainResult, training_context
from socmap.train.trainer import GraphContext, MemberResult, train_member

__all__ = [
    "GraphContext",
    "MemberResult",
    "TrainResult",
    "TrainingData",
    "beta_nll_loss",
    "gaussian_nll_loss",
    "huber_loss",
    "load_training_data",
    "main_loss",
    "mse_loss",
    "total_loss",
    "train_member",
    "training_context",
]
