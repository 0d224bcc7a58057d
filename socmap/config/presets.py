"""Named ``model`` / ``train`` set-ups a pipeline starts from (its top-level ``preset`` key).

A preset fills every ``model`` and ``train`` key the pipeline YAML leaves out; a key the YAML sets always wins,
and nested sections merge key by key (``model: {rgat: {dropout: 0.2}}`` keeps the preset's RGAT widths). Lists
(``hidden_dims``, ``relations``) are values, not merged.

- ``cpu`` (the default): the configuration measured on 2 CPU cores on the real Africa survey (20,722 sites, no
  imagery; the ``africa-coarse`` pipeline runs it): narrow widths, the label trick, full-graph steps with a
  validation round every 5 steps, a 3-member ensemble and a 30-minute safety net per member.
- ``table6``: the paper's Table 6 set-up for GPUs (fusion 512, 8 experts, RGAT [512, 256, 128, 64], learning
  rate 1.95e-4, no label input, 5 members): the schema's own defaults, so this preset sets nothing.

Neither sets ``model.streams`` nor ``model.encoder``: which streams exist (imagery or not) and which TerraMind
backbone to load depend on the data, not on the hardware.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

Preset = Literal["cpu", "table6"]
"""Name of a preset (the pipeline's ``preset`` key)."""

DEFAULT_PRESET: Preset = "cpu"

_CPU: dict[str, dict[str, Any]] = {
    "model": {
        "positional": {"scales": 10, "sigma_min": 0.1, "sigma_max": 10.0, "out_dim": 16},
        "temporal": {"frequencies": 4, "out_dim": 8},
        # Table 6 widths take ~14 s a full-graph step on 2 cores (20,722 nodes), these under 1 s, so a member
        # takes hundreds of steps in its time.
        "moe": {"fusion": "moe", "experts": 4, "expert_type": "cross-gated", "fusion_dim": 128, "top_k": None,
                "load_balance_weight": 1.95e-2},
        # Continuous weights and one k everywhere: a map cell's inputs change continuously as it moves (adaptive k
        # jumps between k_spatial and adaptive_k at HDBSCAN's noise boundary).
        "graph": {"k_spatial": 10, "k_ndvi": 3, "max_distance_km": 2000.0, "slope_scale": 30.0,
                  "hdbscan_min_cluster_size": 8, "adaptive_k": 10, "spatial_k_mode": "fixed",
                  "weighting": "continuous"},
        "rgat": {"hidden_dims": [128, 64], "heads": 4, "bases": 4, "attention_mechanism": "within-relation",
                 "attention_mode": "multiplicative-self-attention", "negative_slope": 0.106, "dropout": 0.1},
        "pre_mlp": {"hidden": [128], "out": 128, "dropout": 0.1},
        "post_mlp": {"hidden": [64], "out": 64, "dropout": 0.10},
        # Label trick: the neighbours' observed training SOC (weighted mean, observed weight share, mean distance)
        # as an input stream; the loss nodes' own labels are hidden in every step.
        "label_input": True,
    },
    "train": {
        # Full-graph steps, the loss on a fresh half of the training nodes each step, a validation round every 5
        # steps: "epochs" and the patiences count rounds. The mini-batch path with sampled fan-outs was measured
        # slower per unit of validation gain on this set.
        "learning_rate": 3.0e-3,
        "weight_decay": 2.79e-5,
        "grad_clip": 0.5,
        "mode": "full",
        "val_every_steps": 5,
        "epochs": 160,
        "early_stop_patience": 20,
        "lr_patience": 6,
        "select_metric": "rmse",
        # Each member stops at early stopping or after `epochs` rounds (about 7 minutes a member on an idle
        # 2-core machine on 20,722 sites), so the same command gives the same model on a busy machine;
        # max_minutes is only a safety net.
        "max_minutes": 30.0,
        "batch_size": 32,
        "aux_weight": 5.3e-5,
        "loss": "hybrid",
        "nll_weight": 0.05,
        "warm_start_epochs": 10,
        "ensemble_members": 3,
    },
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {"cpu": _CPU, "table6": {}}
"""Preset name -> the ``model`` and ``train`` values it fills (``table6``: none, the schema defaults are Table 6)."""


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys on top; where both hold a dict, merged key by key (``over`` wins)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_preset(data: Any) -> Any:
    """A raw pipeline mapping with its preset's values filled in under the ``model`` and ``train`` keys it lacks.

    Anything else (not a mapping, an unknown preset name, a section that is not a mapping) is returned unchanged
    for the schema to report.
    """
    if not isinstance(data, dict):
        return data
    values = PRESETS.get(str(data.get("preset", DEFAULT_PRESET)))
    if not values:
        return data
    out = dict(data)
    for section, preset_values in values.items():
        given = data.get(section, {})
        if isinstance(given, dict):
            out[section] = _merge(preset_values, given)
    return out
