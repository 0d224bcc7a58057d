"""bundle.json and model_card.json read into their dataclasses and written back unchanged, the stored bundle's
(written before the calibration had its distance growth, mean cap and tail shape) included."""

from __future__ import annotations

import json

from socmap.inference import BUNDLE_FORMAT, BundleInfo, Calibration, ModelCard, card_markdown
from tests.data import BUNDLE

OFF = {"distance_power": 0.0, "mean_var_cap": None, "tail_dof": None, "growth": None}
"""The calibration keys a bundle may predate, as they read when absent (the piece switched off)."""


def test_stored_bundle_json_round_trips() -> None:
    raw = json.loads((BUNDLE / "model" / "bundle.json").read_text())
    info = BundleInfo.from_dict(raw)
    assert info.format == BUNDLE_FORMAT and info.members == 2 and info.num_nodes == len(info.sample_id) == 240
    assert info.calibration == Calibration.from_info(raw) and info.calibration.temperature == raw["temperature"]
    assert info.to_dict() == {**OFF, **raw}
    assert BundleInfo.from_dict(info.to_dict()) == info
    assert list(info.to_dict())[:5] == ["format", "created", "members", "seeds", "temperature"]


def test_stored_model_card_round_trips_and_renders() -> None:
    raw = json.loads((BUNDLE / "model" / "model_card.json").read_text())
    card = ModelCard.from_dict(raw)
    assert card.to_dict() == {**OFF, **raw}
    assert ModelCard.from_dict(card.to_dict()) == card
    stored = (BUNDLE / "model" / "MODEL_CARD.md").read_text()
    # written before the card named the tails and the variance growth
    assert card_markdown(card).replace(f"; predictive tails: Gaussian; {card.calibration.growth_text()}", "") == stored
