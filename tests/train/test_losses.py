"""Losses against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from socmap.config import TrainConfig
from socmap.train import beta_nll_loss, gaussian_nll_loss, main_loss, mse_loss

PRED = [0.5, -1.0, 2.0, 0.1]
LOGVAR = [0.2, -0.5, 1.0, 0.0]
Y = [1.0, -1.5, 0.0, float("nan")]  # the NaN target is skipped


def _t(x: list[float], grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def _hand_nll(weight: np.ndarray | None = None) -> float:
    p, s, y = (np.array(a[:3]) for a in (PRED, LOGVAR, Y))
    w = np.ones(3) if weight is None else weight
    return float(np.mean(0.5 * w * (np.exp(-s) * (y - p) ** 2 + s)))


def test_mse_and_nll_match_hand_computation() -> None:
    p, s, y = _t(PRED), _t(LOGVAR), _t(Y)
    assert float(mse_loss(p, y)) == pytest.approx(np.mean((np.array(PRED[:3]) - np.array(Y[:3])) ** 2))
    assert float(gaussian_nll_loss(p, s, y)) == pytest.approx(_hand_nll())
    mask = torch.tensor([True, False, True, True])
    assert float(mse_loss(p, y, mask)) == pytest.approx(((0.5 - 1.0) ** 2 + 2.0**2) / 2)


def test_huber_matches_hand_computation() -> None:
    cfg = TrainConfig(loss="huber")
    r = np.abs(np.array(PRED[:3]) - np.array(Y[:3]))  # 0.5, 0.5, 2.0
    hand = np.mean(np.where(r <= 1.0, 0.5 * r**2, 1.0 * (r - 0.5)))
    got = main_loss("huber", _t(PRED), _t(LOGVAR), _t(Y), None, epoch=0, cfg=cfg, huber_delta=1.0)
    assert float(got) == pytest.approx(hand)


def test_beta_nll_value_and_stop_gradient_weight() -> None:
    beta = 0.5
    p, s, y = _t(PRED, grad=True), _t(LOGVAR, grad=True), _t(Y)
    loss = beta_nll_loss(p, s, y, beta=beta)
    pv, sv, yv = (np.array(a[:3]) for a in (PRED, LOGVAR, Y))
    w = np.exp(beta * sv)  # sigma^(2 beta) = exp(beta s)
    assert float(loss.detach()) == pytest.approx(_hand_nll(w))
    loss.backward()
    n = 3
    # The weight is a constant: d/dp = w e^-s (p - y) / n, d/ds = 0.5 w (1 - e^-s r^2) / n.
    np.testing.assert_allclose(p.grad.numpy()[:3], w * np.exp(-sv) * (pv - yv) / n, rtol=1e-12)
    np.testing.assert_allclose(s.grad.numpy()[:3], 0.5 * w * (1 - np.exp(-sv) * (yv - pv) ** 2) / n, rtol=1e-12)
    assert p.grad[3] == 0 and s.grad[3] == 0
    # with a weight that carried gradient, d/ds would gain 0.5 beta w (e^-s r^2 + s) / n: it must not be there
    with_grad = 0.5 * w * (1 - np.exp(-sv) * (yv - pv) ** 2) / n + 0.5 * beta * w * (
        np.exp(-sv) * (yv - pv) ** 2 + sv) / n
    assert not np.allclose(s.grad.numpy()[:3], with_grad)


def test_beta_zero_is_plain_nll() -> None:
    p, s, y = _t(PRED), _t(LOGVAR), _t(Y)
    assert float(beta_nll_loss(p, s, y, beta=0.0)) == pytest.approx(float(gaussian_nll_loss(p, s, y)))


def test_hybrid_switches_after_warm_start() -> None:
    cfg = TrainConfig(loss="hybrid", warm_start_epochs=3, nll_weight=0.25)
    p, s, y = _t(PRED), _t(LOGVAR), _t(Y)
    mse, nll = float(mse_loss(p, y)), _hand_nll()
    for epoch in (0, 2):
        assert float(main_loss("hybrid", p, s, y, None, epoch=epoch, cfg=cfg)) == pytest.approx(mse)
    for epoch in (3, 10):
        assert float(main_loss("hybrid", p, s, y, None, epoch=epoch, cfg=cfg)) == pytest.approx(mse + 0.25 * nll)
