"""MkDocs hook: pages whose content is generated from the code and the stored benchmark results at build time.

A page asks for generated content with one marker line (an HTML comment, so the Markdown source stays readable):

- ``<!-- socmap:cli NAME -->``: the ``--help`` text of ``socmap NAME`` (``socmap`` alone for the group), rendered by
  click from the very command objects the CLI runs, so a flag added to ``socmap/cli.py`` shows up here.
- ``<!-- socmap:config -->``: the configuration reference, one table per section, walked from the pydantic schema
  (``socmap.config.PipelineConfig`` and ``GridConfig``): key, type, default and description (the field's
  ``description`` or the attribute docstring under it).
- ``<!-- socmap:schema MODULE.CLASS -->``: the same tables for another pydantic model (the survey mapping).
- ``<!-- socmap:presets -->``: every ``model`` / ``train`` key a preset sets (``socmap.config.presets``), with
  each preset's value side by side.
- ``<!-- socmap:results NAME -->``: a results table read from ``benchmarks/results/*.json`` (see ``RESULTS``), every
  stored run; ``<!-- socmap:results NAME latest -->``: the last stored run only.
- ``<!-- socmap:shipped PROTOCOL -->``: the shipped model against the baselines under one evaluation protocol
  (``random``, ``block``, ``demo``; see ``PROTOCOLS``), methods by metrics, with a bar chart of the RMSE: from the
  runs a result file marks ``"shipped": PROTOCOL``.
- ``<!-- socmap:csv PATH COLUMNS... -->``: a table of chosen columns of a CSV stored in the repository.

An unknown marker, a missing file or a missing key stops the build (``PluginError``), so ``mkdocs build --strict``
fails instead of publishing a page with a hole in it; so does a sub-command whose ``--help`` no page shows, or a
stored result file that no page shows.
"""

from __future__ import annotations

import ast
import csv
import importlib
import inspect
import itertools
import json
import re
import textwrap
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"^<!--\s*socmap:(?P<kind>[a-z-]+)(?P<args>[^>]*?)\s*-->\s*$", re.MULTILINE)


# ------------------------------------------------------------------------------------------------ CLI help
def cli_help(name: str) -> str:
    """The ``--help`` text of ``socmap NAME`` as a fenced block (``socmap`` for the group itself)."""
    import click

    from socmap.cli import cli

    root = click.Context(cli, info_name="socmap", terminal_width=100, max_content_width=100)
    if name == "socmap":
        return f"```text\n$ socmap --help\n{cli.get_help(root)}\n```"
    command = cli.commands.get(name)
    if command is None:
        raise PluginError(f"socmap:cli: no sub-command {name!r} (have: {', '.join(sorted(cli.commands))})")
    ctx = click.Context(command, info_name=name, parent=root, terminal_width=100, max_content_width=100)
    return f"```text\n$ socmap {name} --help\n{command.get_help(ctx)}\n```"


# ------------------------------------------------------------------------------------ configuration reference
def _attribute_docstrings(cls: type) -> dict[str, str]:
    """Docstrings written under a class's annotated attributes (``x: int = 1`` then ``\"\"\"...\"\"\"``)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        tree = ast.parse(source)
        if not tree.body or not isinstance(tree.body[0], ast.ClassDef):
            continue
        body = tree.body[0].body
        for stmt, nxt in itertools.pairwise(body):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _model_in(annotation: Any) -> type | None:
    """The pydantic model a field holds (directly, optionally, or as list / dict values), if any."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    """A short, readable type: ``int > 0``, ``list[CovariateLayer]``, ``'random' | 'block'``..."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        text = " | ".join(repr(a) for a in args)
    elif origin is typing.Annotated:
        return _type_name(args[0], [*metadata, *annotation.__metadata__])
    elif origin in (typing.Union, types.UnionType):
        text = " | ".join(_type_name(a, []) for a in args)
    elif origin is not None:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a, []) for a in args)
        text = f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    elif annotation is type(None):
        text = "None"
    else:
        text = getattr(annotation, "__name__", str(annotation))
    bounds = []
    for meta in metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value}")
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _default(field: Any) -> str:
    """The default as YAML would spell it, ``required`` where there is none, ``section`` for a nested block."""
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "*required*"
    else:
        value = field.default
    if hasattr(value, "model_dump"):
        return "*section*"
    return f"`{json.dumps(value, default=str)}`"


def _cell(text: str) -> str:
    """Markdown-table-safe text: one line, no bare pipes, reST double back-quotes as code."""
    text = " ".join(text.split()).replace("|", "\\|")
    text = re.sub(r":(?:func|class|meth|mod|attr):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _config_tables(model: type, prefix: str, seen: set[tuple[type, str]], root: str = "") -> list[str]:
    """One table for ``model`` under the dotted ``prefix`` (``root`` names the top level), then one per section."""
    if (model, prefix) in seen:
        return []
    seen.add((model, prefix))
    docs = _attribute_docstrings(model)
    title = f"`{prefix}`" if prefix else root
    lines = [f"### {title}", "", f"{_cell(inspect.cleandoc(model.__doc__ or ''))} (`{model.__name__}`)", "",
             "| key | type | default | description |", "|---|---|---|---|"]
    nested: list[tuple[type, str]] = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        if field.exclude:
            continue
        description = field.description or docs.get(name, "")
        lines.append(f"| `{name}` | `{_cell(_type_name(field.annotation, list(field.metadata)))}` | "
                     f"{_cell(_default(field))} | {_cell(description)} |")
        sub = _model_in(field.annotation)
        if sub is not None:
            origin = typing.get_origin(field.annotation)
            key = f"{prefix}.{name}" if prefix else name
            if origin is list:
                key += "[]"
            elif origin is dict:
                key += ".KEY"
            nested.append((sub, key))
    lines.append("")
    for sub, key in nested:
        lines += _config_tables(sub, key, seen)
    return lines


def config_reference() -> str:
    """Every key of a pipeline YAML and of a grid YAML, from the schema classes themselves."""
    from socmap.config import GridConfig, PipelineConfig

    seen: set[tuple[type, str]] = set()
    pipeline = _config_tables(PipelineConfig, "", seen, "pipeline: top level")
    lines = ["## Pipeline (`pipelines/NAME.yaml`)", "", *pipeline,
             "## Grid (`grids/NAME.yaml`)", "", *_config_tables(GridConfig, "", seen, "grid: top level")]
    return "\n".join(lines)


def schema_reference(dotted: str) -> str:
    """The tables of one other pydantic model named by its import path (e.g. ``socmap.data.SurveyMapping``)."""
    module_name, _, name = dotted.rpartition(".")
    try:
        model = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"socmap:schema: cannot import {dotted} ({exc})") from None
    return "\n".join(_config_tables(model, "", set(), "top level"))


def _dotted_leaves(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of a nested dict's leaves (a list is a leaf), in order."""
    keys: list[str] = []
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else key
        keys += _dotted_leaves(value, dotted) if isinstance(value, dict) else [dotted]
    return keys


def preset_table() -> str:
    """Every key on which the presets differ, with the value each preset resolves it to (the schema default where
    a preset leaves it alone); keys a preset sets to the schema default are left out."""
    from socmap.config import PipelineConfig, get_dotted
    from socmap.config.presets import PRESETS

    names = list(PRESETS)
    resolved = {n: PipelineConfig(name="x", grid="global", preset=n).model_dump(mode="json") for n in names}
    keys = list(dict.fromkeys(k for values in PRESETS.values() for k in _dotted_leaves(values)))
    lines = ["| key | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]
    for key in keys:
        cells = [f"`{json.dumps(get_dotted(resolved[n], key))}`" for n in names]
        if len(set(cells)) == 1:
            continue
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- benchmark results
def _load_runs(name: str) -> list[dict[str, Any]]:
    """The stored runs of benchmark ``name`` (``benchmarks/results/NAME.json``: a list of runs)."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        raise PluginError(f"socmap:results: {path.relative_to(ROOT)} does not exist")
    runs = json.loads(path.read_text())
    if not isinstance(runs, list) or not all("result" in r for r in runs):
        raise PluginError(f"socmap:results: {path.relative_to(ROOT)} must be a list of runs with a 'result'")
    return runs


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return _cell(str(value))


def _key_table(latest: bool, name: str, columns: list[tuple[str, str]], *, by_key: bool = False) -> str:
    """The stored runs of ``name`` against chosen result keys (a key a run lacks shows ``-``); ``latest``: the
    last stored run only (the one the shipped code and model gave; every run shows on the benchmark history page).

    One row per run, one column per key; ``by_key`` turns it round (one row per key, one column per run) for
    results with many keys and few runs.
    """
    runs = _load_runs(name)[-1:] if latest else _load_runs(name)
    if latest:  # the keys this run has (a benchmark gains keys over time; none may be missing from all runs)
        columns = [(key, title) for key, title in columns if key in runs[0]["result"]]
    for key, _ in columns:
        if not any(key in r["result"] for r in runs):
            raise PluginError(f"socmap:results: no run in {name}.json has the key {key!r}")
    if by_key:
        lines = ["| | " + " | ".join(_cell(r["run"]) for r in runs) + " |", "|---|" + "---|" * len(runs)]
        for key, title in columns:
            lines.append(f"| {title} (`{key}`) | " + " | ".join(_fmt(r["result"].get(key)) for r in runs) + " |")
    else:
        lines = ["| run | " + " | ".join(title for _, title in columns) + " |", "|---|" + "---|" * len(columns)]
        for run in runs:
            lines.append(f"| {_cell(run['run'])} | "
                         + " | ".join(_fmt(run["result"].get(key)) for key, _ in columns) + " |")
    return "\n".join([*lines, "", _provenance(name, runs)])


def _provenance(name: str, runs: list[dict[str, Any]]) -> str:
    """What produced each stored run: command, machine, and the JSON line itself (collapsed)."""
    out = [f'??? note "Stored runs: `benchmarks/results/{name}.json`"']
    for run in runs:
        out.append(f"    **{_cell(run['run'])}**: `{run.get('command', '')}`; machine: {_cell(run.get('machine', ''))}"
                   + (" (only part of this JSON line is stored)"
                      if run.get("partial") else ""))
        out.append("")
        out.append(f"    ```json\n    {json.dumps(run['result'])}\n    ```")
        out.append("")
    return "\n".join(out)


def _real_data(latest: bool = False) -> str:
    return _key_table(latest, "real_data", [
        ("setting", "setting"), ("members", "members"), ("n_test", "n test"),
        ("sptgnn_rmse", "SpTGNN RMSE (expectation)"), ("sptgnn_median_rmse", "SpTGNN RMSE (median)"),
        ("xgb_rmse", "XGBoost RMSE"), ("xgb_smeared_rmse", "XGBoost smeared"), ("rfsi_rmse", "RFSI-like RMSE"),
        ("rfsi_smeared_rmse", "RFSI-like smeared"), ("ece_post", "ECE after T"), ("cov95_post", "Cov@95 (VP)"),
        ("cov95_gaussian_post", "Cov@95 (Gaussian)"), ("cov95_predictive_post", "Cov@95 (the predictive's interval)"),
        ("ece_gaussian_post", "ECE after T, Gaussian intervals"), ("tail_dof", "tails: Student t dof"),
        ("distance_power", "T's distance power"), ("temperature", "T"), ("seconds", "seconds"),
        ("rmse_ratio_xgb_smeared", "SpTGNN / XGBoost smeared RMSE"),
        ("rmse_ratio_xgb_smeared_ci95", "its paired 95 % interval"),
        ("sptgnn_mae", "SpTGNN MAE"), ("sptgnn_median_mae", "SpTGNN median MAE"), ("rfsi_mae", "RFSI-like MAE"),
        ("sptgnn_rmse_log", "SpTGNN RMSE log(1+SOC)"), ("rfsi_rmse_log", "RFSI-like RMSE log(1+SOC)"),
        ("qrf_rmse", "QRF (mean) RMSE"), ("rk_rmse", "RK (mean) RMSE"), ("sptgnn_crps", "SpTGNN CRPS"),
        ("qrf_crps", "QRF CRPS"), ("rk_crps", "RK CRPS"), ("ratio_mae_best", "SpTGNN / best MAE"),
        ("ratio_mae_best_ci95", "its cluster 95 % interval"), ("ratio_rmse_log_best", "SpTGNN / best RMSE log"),
        ("ratio_rmse_log_best_ci95", "its cluster 95 % interval"),
        ("block_folds", "blocks: folds (1: one held-out set)"), ("block_n", "blocks: sites scored"),
        ("block_sptgnn_rmse", "blocks: SpTGNN RMSE"), ("block_sptgnn_median_rmse", "blocks: SpTGNN median RMSE"),
        ("block_xgb_rmse", "blocks: XGBoost RMSE"),
        ("block_xgb_smeared_rmse", "blocks: XGBoost smeared"), ("block_rfsi_rmse", "blocks: RFSI-like RMSE"),
        ("block_rfsi_smeared_rmse", "blocks: RFSI-like smeared"), ("block_ece_post", "blocks: ECE after T"),
        ("block_cov95_post", "blocks: Cov@95 (VP)"), ("block_cov95_gaussian_post", "blocks: Cov@95 (Gaussian)"),
        ("block_rmse_ratio_xgb_smeared", "blocks: SpTGNN / XGBoost smeared RMSE"),
        ("block_rmse_ratio_xgb_smeared_ci95", "its paired 95 % interval")], by_key=True)


ABLATION_VARIANTS = (("shipped", "shipped"), ("no_graph", "without RGAT layers (the same inputs through the MLPs)"),
                     ("no_label_inputs", "without the neighbours' labels as inputs"))


def _ablation(latest: bool = False) -> str:
    """One row per variant of the stored ablation run(s): validation RMSE, MAE and log-scale RMSE of the
    expectation and of the median."""
    runs = _load_runs("ablation")[-1:] if latest else _load_runs("ablation")
    cols = [("rmse", "RMSE g/kg"), ("mae", "MAE g/kg"), ("rmse_log", "RMSE log(1+SOC)"),
            ("median_mae", "median: MAE"), ("median_rmse_log", "median: RMSE log(1+SOC)"), ("epochs", "rounds")]
    lines = ["| variant | " + " | ".join(t for _, t in cols) + " |", "|---|" + "---|" * len(cols)]
    for run in runs:
        r = run["result"]
        for key, title in ABLATION_VARIANTS:
            if f"{key}_rmse" in r:
                lines.append(f"| {title} | " + " | ".join(_fmt(r.get(f"{key}_{c}")) for c, _ in cols) + " |")
    return "\n".join([*lines, "", _provenance("ablation", runs)])


def _paper(latest: bool = False) -> str:
    return _key_table(latest, "paper", [("n_test", "n test"), ("mae", "MAE"), ("rmse", "RMSE"), ("mape", "MAPE %"),
                                ("r2", "R2")])


def _map_scaling(latest: bool = False) -> str:
    return _key_table(latest, "map_scaling", [
        ("cells_per_s", "cells/s"), ("seconds_1x", "s, 1 tile"), ("seconds_4x", "s, 4 tiles"),
        ("time_ratio_4x", "time ratio 4x/1x"), ("mem_ratio_4x", "memory ratio 4x/1x"),
        ("max_rss_mib_1x", "peak RSS MiB 1x"), ("max_rss_mib_4x", "peak RSS MiB 4x")])


def _map_throughput(latest: bool = False) -> str:
    return _key_table(latest, "map_throughput", [
        ("cells_per_s", "mapped cells/s (the run)"), ("process_cells_per_s", "mapped cells/s (the process)"),
        ("cells_mapped", "mapped cells"), ("run_seconds", "run s"), ("process_seconds", "process s"),
        ("plan_seconds", "checks and bundle s"), ("startup_seconds", "start-up s"), ("map_seconds", "tiles s"),
        ("finish_seconds", "mosaics and metadata s"), ("scheduler", "scheduler")])


def _map_realism(latest: bool = False) -> str:
    return _key_table(latest, "map_realism", [
        ("facet_ratio", "facet ratio (goal <= 1.3)"),
        ("facet_ratio_by_distance", "facet ratio at equal distance from the sites"),
        ("facet_ratio_by_distance_log", "the same on log(1 + SOC) steps"),
        ("sd_ratio_aoa", "sd ratio outside/inside AOA (goal >= 1.5)"),
        ("sd_ratio_aoa_log", "the same on the log-scale sd"), ("cells_outside_aoa", "cells outside the AOA"),
        ("cells", "cells"), ("mean_diff_across", "mean diff across borders"),
        ("mean_diff_within", "mean diff within"), ("median_rel_sd_inside", "median rel. sd inside AOA"),
        ("median_rel_sd_outside", "median rel. sd outside AOA")], by_key=True)


def _map_reference(latest: bool = False) -> str:
    return _key_table(latest, "map_reference", [
        ("sptgnn_facet_ratio", "SpTGNN facet ratio"), ("xgboost_facet_ratio", "XGBoost facet ratio"),
        ("rfsi_facet_ratio", "RFSI-like facet ratio"),
        ("sptgnn_facet_ratio_by_distance", "SpTGNN, at equal distance from the sites"),
        ("xgboost_facet_ratio_by_distance", "XGBoost, at equal distance"),
        ("rfsi_facet_ratio_by_distance", "RFSI-like, at equal distance"),
        ("facet_ratio_vs_xgboost", "SpTGNN / XGBoost"), ("facet_ratio_by_distance_vs_xgboost",
                                                          "SpTGNN / XGBoost at equal distance"),
        ("sptgnn_facet_ratio_by_distance_log", "SpTGNN, at equal distance, log(1 + SOC) steps"),
        ("xgboost_facet_ratio_by_distance_log", "XGBoost, the same"),
        ("facet_ratio_by_distance_log_vs_xgboost", "SpTGNN / XGBoost, the same (goal <= 1.05)"),
        ("sptgnn_r2_vs_truth", "SpTGNN map R2 against the truth"), ("xgboost_r2_vs_truth", "XGBoost map, the same"),
        ("rfsi_r2_vs_truth", "RFSI-like map, the same")], by_key=True)


def _map_reference_truth(latest: bool = False) -> str:
    """The stored map_reference runs that scored every map against a known truth (``--truth``): one row per map."""
    runs = [r for r in _load_runs("map_reference") if "sptgnn_r2_vs_truth" in r["result"]]
    if not runs:
        raise PluginError("socmap:results: no run in map_reference.json has the key 'sptgnn_r2_vs_truth'")
    runs = runs[-1:] if latest else runs
    lines = ["| run | map | R2 against the truth | RMSE g/kg against the truth |", "|---|---|---|---|"]
    for run in runs:
        r = run["result"]
        for key, title in (("sptgnn", "SpTGNN"), ("xgboost", "XGBoost"), ("rfsi", "RFSI-like XGBoost")):
            if f"{key}_r2_vs_truth" in r:
                lines.append(f"| {_cell(run['run'])} | {title} | {_fmt(r[f'{key}_r2_vs_truth'])} | "
                             f"{_fmt(r.get(f'{key}_rmse_vs_truth'))} |")
    return "\n".join([*lines, "", _provenance("map_reference", runs)])


def _map_parity(latest: bool = False) -> str:
    return _key_table(latest, "map_parity", [
        ("max_abs_diff", "max abs diff (log scale)"), ("max_abs_diff_gkg", "max abs diff g/kg"),
        ("n_sites", "sites compared"), ("n_heldout", "held-out sites"), ("n_not_mapped", "not mapped (sea)"),
        ("n_features_differ", "features that differ")])


def _aggregate_coverage(latest: bool = False) -> str:
    return _key_table(latest, "aggregate_coverage", [
        ("zones", "zones"), ("level", "level"), ("coverage", "coverage"), ("naive_coverage", "naive coverage"),
        ("width_ratio", "width ratio"), ("bias_gkg", "bias g/kg")])


def _train_africa(latest: bool = False) -> str:
    return _key_table(latest, "train_africa", [("minutes_to_xgb_val", "minutes to XGBoost's validation RMSE")])


def _demo_world(latest: bool = False) -> str:
    return _key_table(latest, "demo_world", [
        ("members", "members"), ("n_test", "n test"), ("sptgnn_rmse", "SpTGNN RMSE (expectation)"),
        ("sptgnn_median_rmse", "SpTGNN RMSE (median)"), ("xgb_rmse", "XGBoost RMSE"),
        ("rfsi_rmse", "RFSI-like RMSE"), ("ece_post", "ECE after T"),
        ("cov95_predictive_post", "Cov@95 (the predictive's interval)"), ("map_r2", "map vs truth: R2"),
        ("map_rmse", "map vs truth: RMSE"), ("map_bias", "map vs truth: bias"), ("map_z2", "map: mean z^2"),
        ("map_q05_q95_coverage", "map: q05-q95 coverage")], by_key=True)


# ------------------------------------------------------------------------------------------- the shipped model
PROTOCOLS: dict[str, tuple[str, str]] = {"random": ("real_data", ""), "block": ("real_data", "block_"),
                                         "demo": ("demo_world", "")}
"""Protocol -> (result file, key prefix). A file's runs of the shipped model carry ``"shipped": PROTOCOL``."""

METHODS = (("sptgnn", "SpTGNN, expectation (`soc_mean`)"), ("sptgnn_median", "SpTGNN, median (`soc_median`)"),
           ("xgb", "XGBoost"), ("xgb_smeared", "XGBoost, smeared (a mean)"), ("rfsi", "RFSI-like XGBoost"),
           ("rfsi_smeared", "RFSI-like XGBoost, smeared"), ("qrf", "QRF, mean"), ("qrf_median", "QRF, median"),
           ("rk", "Regression kriging, mean"), ("rk_median", "Regression kriging, median"))
RATIO_METRICS = (("rmse", "RMSE"), ("mae", "MAE"), ("rmse_log", "RMSE of log(1 + SOC)"))
DISTANCE_BINS = ("0-2", "2-10", "10-50", ">50")


def _shipped_runs(protocol: str) -> tuple[str, list[dict[str, Any]]]:
    if protocol not in PROTOCOLS:
        raise PluginError(f"socmap:shipped: unknown protocol {protocol!r} (have: {', '.join(PROTOCOLS)})")
    name = PROTOCOLS[protocol][0]
    runs = [r for r in _load_runs(name) if r.get("shipped") == protocol]
    if not runs:
        raise PluginError(f"socmap:shipped: no run in {name}.json is marked \"shipped\": {protocol!r}")
    return name, runs


def _with_ci(value: Any, ci: Any) -> str:
    if value is None:
        return "-"
    return _fmt(value) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if isinstance(ci, list) and len(ci) == 2 else "")


def _method_rows(run: dict[str, Any], prefix: str) -> list[tuple[str, list[str], float | None]]:
    """(method, metric cells, RMSE) for each method the run scored: RMSE with its 95 % interval, MAE, RMSE of
    log(1 + SOC), R2, MAPE, the paired SpTGNN / method RMSE ratio, and for the probabilistic methods the CRPS and
    the coverage of their own 95 % interval (the SpTGNN's also its ECE)."""
    r = run["result"]
    rows = []
    for key, label in METHODS:
        rmse = r.get(f"{prefix}{key}_rmse")
        if rmse is None:
            continue
        ratio = "-" if key.startswith("sptgnn") else _with_ci(r.get(f"{prefix}rmse_ratio_{key}"),
                                                                r.get(f"{prefix}rmse_ratio_{key}_ci95"))
        own = key == "sptgnn"
        cov = r.get(f"{prefix}{key}_cov95")
        if own and cov is None:
            cov = r.get(f"{prefix}cov95_predictive_post", r.get(f"{prefix}cov95_gaussian_post"))
        rows.append((label, [_with_ci(rmse, r.get(f"{prefix}{key}_rmse_ci95")),
                             _fmt(r.get(f"{prefix}{key}_mae")), _fmt(r.get(f"{prefix}{key}_rmse_log")),
                             _fmt(r.get(f"{prefix}{key}_r2")), _fmt(r.get(f"{prefix}{key}_mape")), ratio,
                             _fmt(r.get(f"{prefix}{key}_crps")), _fmt(cov),
                             _fmt(r.get(f"{prefix}ece_post")) if own else "-"],
                     float(rmse)))
    return rows


SHIPPED_COLUMNS = ["RMSE g/kg [95 %]", "MAE g/kg", "RMSE log(1+SOC)", "R2", "MAPE %",
                   "SpTGNN / method RMSE [paired 95 %]", "CRPS g/kg", "Cov@95 (own interval)", "ECE"]


def _ratio_lines(run: dict[str, Any], prefix: str) -> list[str]:
    """The SpTGNN over the best baseline for each metric, with the 10 km cluster-bootstrap interval, and the
    SpTGNN's 95 % coverage by distance to the nearest training site (empty for runs without them)."""
    r = run["result"]
    rows = [(title, r.get(f"{prefix}ratio_{m}_best_method"), r.get(f"{prefix}ratio_{m}_best"),
             r.get(f"{prefix}ratio_{m}_best_ci95")) for m, title in RATIO_METRICS]
    rows = [row for row in rows if row[2] is not None]
    lines: list[str] = []
    if rows:
        lines += ["SpTGNN (expectation) over the best baseline for each metric (below 1: the SpTGNN is ahead), "
                  "with 95 % intervals from resampling 10 km clusters of sites:", "",
                  "| metric | best baseline | SpTGNN / best [95 %] |", "|---|---|---|"]
        lines += [f"| {t} | {_cell(str(b))} | {_with_ci(v, ci)} |" for t, b, v, ci in rows]
        lines.append("")
    cov = r.get(f"{prefix}cov95_by_distance")
    if isinstance(cov, dict) and cov:
        lines += ["Coverage of the SpTGNN's 95 % interval by distance to the nearest training site (km):", "",
                  "| " + " | ".join(DISTANCE_BINS) + " |", "|" + "---|" * len(DISTANCE_BINS),
                  "| " + " | ".join(_fmt(cov.get(b)) for b in DISTANCE_BINS) + " |", ""]
    return lines


def _bar_chart(bars: list[tuple[str, float, bool]], unit: str) -> str:
    """A horizontal bar chart (inline SVG) of ``(label, value, highlighted)``: the RMSE of each method."""
    top = max(v for _, v, _ in bars) * 1.1
    label_w, bar_w, h = 300, 300, 20
    parts = ['<div class="socmap-chart">',
             f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 60}" height="{h * len(bars) + 24}" '
             'role="img" aria-label="RMSE by method" style="font: 12px sans-serif">']
    for i, (label, value, own) in enumerate(bars):
        y = i * h + 4
        w = bar_w * value / top
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{_svg_text(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{h - 6}" '
                     f'fill="{"#b35806" if own else "#8c8c8c"}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{_fmt(value)}</text>')
    parts.append(f'<text x="{label_w}" y="{h * len(bars) + 20}">RMSE ({unit}) on the held-out sites</text></svg></div>')
    return "".join(parts)


def _svg_text(text: str) -> str:
    return text.replace("`", "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shipped_table(protocol: str) -> str:
    """The shipped model against the baselines under one protocol: methods by metrics (one table; a column per
    input setting where the protocol was run with several), a bar chart of the RMSE, and the stored runs."""
    name, runs = _shipped_runs(protocol)
    prefix = PROTOCOLS[protocol][1]
    settings = len(runs) > 1
    body: list[list[str]] = []
    bars: list[tuple[str, float, bool]] = []
    for run in runs:
        setting = str(run["result"].get("setting", ""))
        for label, cells, rmse in _method_rows(run, prefix):
            body.append(([setting] if settings else []) + [label, *cells])
            bars.append(((f"{setting}: " if settings else "") + label, rmse, label.startswith("SpTGNN")))
    head = (["inputs"] if settings else []) + ["method", *SHIPPED_COLUMNS]
    keep = [i for i in range(len(head)) if any(row[i] != "-" for row in body)]
    lines = ["| " + " | ".join(head[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    lines += ["| " + " | ".join(row[i] for i in keep) + " |" for row in body]
    first = runs[0]["result"]
    n = first.get(f"{prefix}n") or first.get("n_test")
    members = first.get("members")
    lines += ["", f"{_fmt(n)} held-out sites" + (f"; SpTGNN ensemble of {members} members" if members else "")
              + "; " + ("runs" if settings else "run") + ": " + "; ".join(f"*{_cell(r['run'])}*" for r in runs)
              + ".", "", _bar_chart(bars, "g/kg"), ""]
    for run in runs:
        extra = _ratio_lines(run, prefix)
        if extra:
            lines += ([f"*{_cell(str(run['result'].get('setting', '')))}*:", ""] if settings else []) + extra
    maps = [(key, title) for key, title in MAP_SCORES if key in first]
    if maps:  # the whole map against a known truth (the demo world)
        lines += ["The map against the true SOC, every cell:", "",
                  "| " + " | ".join(title for _, title in maps) + " |", "|" + "---|" * len(maps),
                  "| " + " | ".join(str(first[key]) if key == "map_year" else _fmt(first[key]) for key, _ in maps)
                  + " |", ""]
    lines.append(_provenance(name, runs))
    return "\n".join(lines)


MAP_SCORES = (("map_year", "year"), ("map_cells", "cells"), ("map_r2", "R2 (`soc_mean`)"),
              ("map_rmse", "RMSE g/kg (`soc_mean`)"), ("map_median_rmse", "RMSE g/kg (`soc_median`)"),
              ("map_bias", "bias g/kg (`soc_mean`)"), ("map_z2", "mean z^2 (`total_sd`)"),
              ("map_q05_q95_coverage", "q05-q95 coverage"))


RESULTS: dict[str, Callable[..., str]] = {
    "real_data": _real_data,
    "ablation": _ablation,
    "paper": _paper,
    "map_scaling": _map_scaling,
    "map_throughput": _map_throughput,
    "map_realism": _map_realism,
    "map_reference": _map_reference,
    "map_reference_truth": _map_reference_truth,
    "map_parity": _map_parity,
    "aggregate_coverage": _aggregate_coverage,
    "train_africa": _train_africa,
    "demo_world": _demo_world,
}


def csv_table(path: str, columns: list[str]) -> str:
    """Chosen columns of a CSV stored in the repository, as a Markdown table (numbers rounded for reading)."""
    file = ROOT / path
    if not file.is_file():
        raise PluginError(f"socmap:csv: {path} does not exist")
    with file.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = [c for c in columns if rows and c not in rows[0]]
    if missing:
        raise PluginError(f"socmap:csv: {path} has no column {', '.join(missing)}")
    lines = ["| " + " | ".join(f"`{c}`" for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            try:
                cells.append(_fmt(float(row[c])))
            except ValueError:
                cells.append(_cell(row[c]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ hook
_USED: dict[str, set[str]] = {"cli": set(), "results": set()}
"""The sub-commands and result tables the pages of this build showed (checked complete after the build)."""


def _render(match: re.Match[str]) -> str:
    kind, args = match["kind"], match["args"].split()
    if kind in _USED and args:
        _USED[kind].add(args[0])
    if kind == "shipped" and len(args) == 1:
        _USED["results"].add(PROTOCOLS.get(args[0], ("",))[0])
        return shipped_table(args[0])
    if kind == "cli" and len(args) == 1:
        return cli_help(args[0])
    if kind == "config" and not args:
        return config_reference()
    if kind == "schema" and len(args) == 1:
        return schema_reference(args[0])
    if kind == "presets" and not args:
        return preset_table()
    if kind == "results" and (len(args) == 1 or (len(args) == 2 and args[1] == "latest")):
        if args[0] not in RESULTS:
            raise PluginError(f"socmap:results: unknown table {args[0]!r} (have: {', '.join(RESULTS)})")
        return RESULTS[args[0]](latest=len(args) == 2)
    if kind == "csv" and len(args) >= 2:
        return csv_table(args[0], args[1:])
    raise PluginError(f"unknown or malformed marker {match[0]!r}")


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace each ``<!-- socmap:... -->`` marker line of a page by the content it names."""
    try:
        return MARKER.sub(_render, markdown)
    except PluginError as exc:
        raise PluginError(f"{page.file.src_path}: {exc}") from None


def on_config(config: Any, **kwargs: Any) -> Any:
    """Rebuild when the stored results change too (``mkdocs serve``)."""
    for used in _USED.values():
        used.clear()
    config.watch.append(str(RESULTS_DIR))
    return config


def on_post_build(config: Any, **kwargs: Any) -> None:
    """Every sub-command has its ``--help`` on a page and every stored result file is shown somewhere.

    A new sub-command without documentation, or a benchmark result stored but never shown, fails the build.
    """
    from socmap.cli import cli

    undocumented = sorted(set(cli.commands) - _USED["cli"])
    if undocumented:
        raise PluginError(f"no page shows the --help of: {', '.join(undocumented)} (add <!-- socmap:cli NAME -->)")
    stored = {p.stem for p in RESULTS_DIR.glob("*.json")}
    unknown = sorted(stored - set(RESULTS))
    if unknown:
        raise PluginError(f"benchmarks/results/{unknown[0]}.json has no table (add it to RESULTS in {__name__})")
    unshown = sorted(stored - _USED["results"])
    if unshown:
        raise PluginError(f"no page shows benchmarks/results/{unshown[0]}.json (add <!-- socmap:results NAME -->)")
