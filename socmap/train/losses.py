"""The losses of eq. (3)-(5) and the hybrid schedule, on the standardised target: the one losses module.

:func:`total_loss` is eq. (3) (main term + weighted Huber on local Moran's I + the MoE penalty); with
``loss="huber"`` it is the paper's original form. The main-term functions take the predicted mean ``pred`` and
log-variance ``logvar`` (:math:`s_i`, standardised target units squared, log) of the nodes in ``mask`` and return a
scalar mean over those nodes (NaN targets are skipped).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from socmap.config import TrainConfig
from socmap.model.sptgnn import SpTGNNOutput

__all__ = ["MAIN_LOSSES", "beta_nll_loss", "gaussian_nll_loss", "huber_loss", "main_loss", "mse_loss", "total_loss"]

MAIN_LOSSES = ("huber", "mse", "hybrid", "nll", "beta-nll")


def _select(mask: Tensor | None, target: Tensor) -> Tensor:
    ok = target.isfinite()
    return ok if mask is None else ok & mask


def huber_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None, delta: float = 1.0) -> Tensor:
    """Mean Huber loss over ``mask`` (and over finite targets only); ``delta`` in the units of ``target``."""
    ok = _select(mask, target)
    if not bool(ok.any()):
        return pred.sum() * 0.0
    return F.huber_loss(pred[ok], target[ok], delta=delta)


def mse_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error over ``mask``."""
    ok = _select(mask, target)
    if not bool(ok.any()):
        return pred.sum() * 0.0
    return ((pred[ok] - target[ok]) ** 2).mean()


def gaussian_nll_loss(pred: Tensor, logvar: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Eq. (4): :math:`\frac{1}{2N}\sum_i [e^{-s_i}(y_i - \hat y_i)^2 + s_i]` (the constant :math:`\log 2\pi`
    dropped)."""
    ok = _select(mask, target)
    if not bool(ok.any()):
        return pred.sum() * 0.0
    s = logvar[ok]
    return 0.5 * (torch.exp(-s) * (target[ok] - pred[ok]) ** 2 + s).mean()


def beta_nll_loss(pred: Tensor, logvar: Tensor, target: Tensor, mask: Tensor | None = None,
                  beta: float = 0.5) -> Tensor:
    r"""Eq. (5): each node's NLL term weighted by :math:`\mathrm{sg}[\sigma_i^{2\beta}] = \mathrm{sg}[e^{\beta s_i}]`.

    The weight is detached, so it scales the gradient of the NLL but carries none itself (Seitzer et al. 2022).
    """
    ok = _select(mask, target)
    if not bool(ok.any()):
        return pred.sum() * 0.0
    s = logvar[ok]
    weight = torch.exp(beta * s).detach()
    return 0.5 * (weight * (torch.exp(-s) * (target[ok] - pred[ok]) ** 2 + s)).mean()


def main_loss(kind: str, pred: Tensor, logvar: Tensor, target: Tensor, mask: Tensor | None, *, epoch: int,
              cfg: TrainConfig, huber_delta: float = 1.0) -> Tensor:
    """The main term of eq. (3) for ``cfg.loss`` at ``epoch`` (0-based; the hybrid adds NLL from
    ``warm_start_epochs`` on). ``huber_delta`` is in the units of ``target``."""
    if kind == "huber":
        return huber_loss(pred, target, mask, huber_delta)
    if kind == "mse":
        return mse_loss(pred, target, mask)
    if kind == "nll":
        return gaussian_nll_loss(pred, logvar, target, mask)
    if kind == "beta-nll":
        return beta_nll_loss(pred, logvar, target, mask, cfg.beta)
    if kind == "hybrid":
        mse = mse_loss(pred, target, mask)
        if epoch < cfg.warm_start_epochs:
            return mse
        return mse + cfg.nll_weight * gaussian_nll_loss(pred, logvar, target, mask)
    raise ValueError(f"unknown loss {kind!r}; one of {MAIN_LOSSES}")


def total_loss(out: SpTGNNOutput, y: Tensor, moran: Tensor, mask: Tensor, *, epoch: int, cfg: TrainConfig,
               huber_delta: float = 1.0, moran_delta: float = 1.0) -> dict[str, Tensor]:
    r"""Eq. (3): :math:`L = L_{main} + \lambda_a\,\mathrm{Huber}(\hat\iota, I) + L_{MoE}` over the nodes in
    ``mask`` (training nodes only: validation and test targets must never be in it).

    Returns ``loss`` (the total) and its parts ``main``, ``autocorr``, ``moe``.
    """
    main = main_loss(cfg.loss, out.soc, out.logvar, y, mask, epoch=epoch, cfg=cfg, huber_delta=huber_delta)
    aux = huber_loss(out.moran, moran, mask, moran_delta)
    moe = out.moe.loss
    return {"loss": main + cfg.aux_weight * aux + moe, "main": main, "autocorr": aux, "moe": moe}
