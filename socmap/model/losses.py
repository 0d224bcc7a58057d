"""Loss pieces of eq. (3): Huber on SOC, Huber on local Moran's I (weighted), and the MoE penalty."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from socmap.model.sptgnn import SpTGNNOutput

__all__ = ["huber_loss", "sptgnn_loss"]


def huber_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None, delta: float = 1.0) -> Tensor:
    """Mean Huber loss over ``mask`` (and over finite targets only)."""
    ok = target.isfinite() if mask is None else mask & target.isfinite()
    if not bool(ok.any()):
        return pred.sum() * 0.0
    return F.huber_loss(pred[ok], target[ok], delta=delta)


def sptgnn_loss(out: SpTGNNOutput, y: Tensor, moran: Tensor, train_mask: Tensor, aux_weight: float,
                delta: float = 1.0) -> dict[str, Tensor]:
    r""":math:`L = L_{main} + \lambda_a L_{autocorr} + L_{MoE}` (eq. 3), over training nodes only.

    Returns a dict with ``loss`` (the total) and its parts ``main``, ``autocorr``, ``moe``. Validation and test
    targets must be masked out by ``train_mask`` (their Moran's I is NaN anyway).
    """
    main = huber_loss(out.soc, y, train_mask, delta)
    aux = huber_loss(out.moran, moran, train_mask, delta)
    total = main + aux_weight * aux + out.moe.loss
    return {"loss": total, "main": main, "autocorr": aux, "moe": out.moe.loss}
