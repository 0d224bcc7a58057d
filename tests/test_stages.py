"""Every stage has one entry point of one shape: ``run(cfg, <inputs>, out, *, options)`` in a module named for the
stage, and a ``socmap`` sub-command of the stage's name over it (architecture: one data flow, one direction)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect

import pytest

from socmap.cli import cli
from socmap.config import PipelineConfig

STAGES = {
    "prepare": "socmap.data.prepare",
    "extract": "socmap.eo.extract",
    "finetune-vit": "socmap.encoders.finetune",
    "embed": "socmap.encoders.embed",
    "train": "socmap.train.stage",
    "evaluate": "socmap.evaluate.stage",
    "tune": "socmap.tune.stage",
    "predict": "socmap.mapping.predict",
    "aggregate": "socmap.aggregate.stage",
    "demo": "socmap.demo.stage",
}
"""Stage (= ``socmap`` sub-command) -> the module holding its ``run``."""


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_module_exposes_run_of_the_shared_shape(stage: str) -> None:
    module = importlib.import_module(STAGES[stage])
    run = getattr(module, "run", None)
    assert callable(run), f"{STAGES[stage]} has no run()"
    assert "run" in module.__all__
    params = list(inspect.signature(run).parameters.values())
    kinds = [p.kind for p in params]
    assert inspect.Parameter.VAR_POSITIONAL not in kinds and inspect.Parameter.VAR_KEYWORD not in kinds
    positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert all(p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY) for p in params)
    assert positional[0] == "cfg", f"{stage}: run's first parameter is {positional[0]!r}, not cfg"
    assert positional[-1] == "out", f"{stage}: run's last positional parameter is {positional[-1]!r}, not out"
    # inputs sit between cfg and out; every option after out is keyword-only
    assert [p.name for p in params[:len(positional)]] == positional
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[len(positional):])
    assert run.__doc__, f"{stage}: run has no docstring"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_run_takes_a_pipeline_and_returns_a_result_with_a_summary(stage: str) -> None:
    """``cfg`` has one type (the command resolves a default pipeline before calling ``run``), and every result says
    what the stage did in one ``summary()`` line, which the command prints."""
    module = importlib.import_module(STAGES[stage])
    sig = inspect.signature(module.run)
    assert sig.parameters["cfg"].annotation in ("PipelineConfig", PipelineConfig), stage
    result = getattr(module, str(sig.return_annotation), None)
    assert inspect.isclass(result), f"{stage}: run returns {sig.return_annotation!r}, not a result class"
    assert callable(getattr(result, "summary", None)), f"{stage}: {result.__name__} has no summary()"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_is_a_subcommand(stage: str) -> None:
    assert stage in cli.commands


@pytest.mark.parametrize("old", ["socmap.train.run", "socmap.demo.run", "socmap.data.mapping", "socmap.eo.cluster",
                                 "socmap.mapping.cluster", "socmap.model.losses"])
def test_old_module_paths_are_gone(old: str) -> None:
    """Renamed modules are removed, not aliased: one name for one thing."""
    assert importlib.util.find_spec(old) is None


@pytest.mark.parametrize(("package", "old"), [("socmap.data", "prepare"), ("socmap.eo", "extract"),
                                              ("socmap.encoders", "embed"), ("socmap.encoders", "finetune_vit"),
                                              ("socmap.train", "train"),
                                              ("socmap.evaluate", "evaluate"), ("socmap.tune", "tune"),
                                              ("socmap.mapping", "predict_map"), ("socmap.aggregate", "aggregate"),
                                              ("socmap.train", "aggregate")])
def test_old_stage_functions_are_gone(package: str, old: str) -> None:
    """``socmap.data.prepare`` and the like are the stage modules now, never a second function of the stage."""
    obj = getattr(importlib.import_module(package), old, None)
    assert obj is None or inspect.ismodule(obj)
