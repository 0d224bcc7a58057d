"""Each ablation variant switches off exactly its component (and None where it is already off)."""

from __future__ import annotations

import pytest

from socmap.config import load_pipeline
from socmap.evaluate.stage import ABLATIONS, ablation_config


def test_variants_change_one_thing() -> None:
    cfg = load_pipeline("demo")
    base = cfg.model_dump()
    assert ablation_config(cfg, "full").model_dump() == base
    sp = ablation_config(cfg, "spatial-only graph")
    assert sp is not None and sp.model.graph.relations == ["spatial"]
    cc = ablation_config(cfg, "concat fusion")
    assert cc is not None and cc.model.moe.fusion == "concat"
    nt = ablation_config(cfg, "no temporal encoder")
    assert nt is not None and "time" not in nt.model.streams
    nm = ablation_config(cfg, "no Moran loss")
    assert nm is not None and nm.train.aux_weight == 0.0
    assert cfg.model_dump() == base  # the input is not modified
    with pytest.raises(ValueError):
        ablation_config(cfg, "no graph")
    assert len(ABLATIONS) == 6


def test_variant_already_off_is_none() -> None:
    cfg = load_pipeline("demo")
    cfg.model.streams = [s for s in cfg.model.streams if s != "image"]
    assert ablation_config(cfg, "no imagery") is None
