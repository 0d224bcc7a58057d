"""MkDocs hook: pages whose content is generated from the code and the stored benchmark results at build time.

A page asks for generated content with one marker line (an HTML comment, so the Markdown source stays readable):

- ``<!-- socmap:cli NAME -->``: the ``--help`` text of ``socmap NAME`` (``socmap`` alone for the group), rendered by
  click from the very command objects the CLI runs, so a flag added to ``socmap/cli.py`` shows up here.
- ``<!-- socmap:config -->``: the configuration reference, one table per section, walked from the pydantic schema
  (``socmap.config.PipelineConfig`` and ``GridConfig``): key, type, default and description (the field's
  ``description`` or the attribute docstring under it).
- ``<!-- socmap:schema MODULE.CLASS -->``: the same tables for another pydantic model (the survey mapping).
- ``<!-- socmap:results NAME -->``: a results table read from ``benchmarks/results/*.json`` (see ``RESULTS``).
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


def _key_table(name: str, columns: list[tuple[str, str]], *, by_key: bool = False) -> str:
    """The stored runs of ``name`` against chosen result keys (a key a run lacks shows ``-``).

    One row per run, one column per key; ``by_key`` turns it round (one row per key, one column per run) for
    results with many keys and few runs.
    """
    runs = _load_runs(name)
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
                   + (" (the README quoted part of this JSON line; only that part is stored)"
                      if run.get("partial") else ""))
        out.append("")
        out.append(f"    ```json\n    {json.dumps(run['result'])}\n    ```")
        out.append("")
    return "\n".join(out)


def _real_data() -> str:
    return _key_table("real_data", [
        ("setting", "setting"), ("members", "members"), ("n_test", "n test"),
        ("sptgnn_rmse", "SpTGNN RMSE (expectation)"), ("sptgnn_median_rmse", "SpTGNN RMSE (median)"),
        ("xgb_rmse", "XGBoost RMSE"), ("xgb_smeared_rmse", "XGBoost smeared"), ("rfsi_rmse", "RFSI-like RMSE"),
        ("rfsi_smeared_rmse", "RFSI-like smeared"), ("ece_post", "ECE after T"), ("cov95_post", "Cov@95 (VP)"),
        ("cov95_gaussian_post", "Cov@95 (Gaussian)"), ("cov95_predictive_post", "Cov@95 (the predictive's interval)"),
        ("ece_gaussian_post", "ECE after T, Gaussian intervals"), ("tail_dof", "tails: Student t dof"),
        ("distance_power", "T's distance power"), ("temperature", "T"), ("seconds", "seconds"),
        ("rmse_ratio_xgb_smeared", "SpTGNN / XGBoost smeared RMSE"),
        ("rmse_ratio_xgb_smeared_ci95", "its paired 95 % interval"),
        ("block_folds", "blocks: folds (1: one held-out set)"), ("block_n", "blocks: sites scored"),
        ("block_sptgnn_rmse", "blocks: SpTGNN RMSE"), ("block_sptgnn_median_rmse", "blocks: SpTGNN median RMSE"),
        ("block_xgb_rmse", "blocks: XGBoost RMSE"),
        ("block_xgb_smeared_rmse", "blocks: XGBoost smeared"), ("block_rfsi_rmse", "blocks: RFSI-like RMSE"),
        ("block_rfsi_smeared_rmse", "blocks: RFSI-like smeared"), ("block_ece_post", "blocks: ECE after T"),
        ("block_cov95_post", "blocks: Cov@95 (VP)"), ("block_cov95_gaussian_post", "blocks: Cov@95 (Gaussian)"),
        ("block_rmse_ratio_xgb_smeared", "blocks: SpTGNN / XGBoost smeared RMSE"),
        ("block_rmse_ratio_xgb_smeared_ci95", "its paired 95 % interval")], by_key=True)


def _paper() -> str:
    return _key_table("paper", [("n_test", "n test"), ("mae", "MAE"), ("rmse", "RMSE"), ("mape", "MAPE %"),
                                ("r2", "R2")])


def _map_scaling() -> str:
    return _key_table("map_scaling", [
        ("cells_per_s", "cells/s"), ("seconds_1x", "s, 1 tile"), ("seconds_4x", "s, 4 tiles"),
        ("time_ratio_4x", "time ratio 4x/1x"), ("mem_ratio_4x", "memory ratio 4x/1x"),
        ("max_rss_mib_1x", "peak RSS MiB 1x"), ("max_rss_mib_4x", "peak RSS MiB 4x")])


def _map_realism() -> str:
    return _key_table("map_realism", [
        ("facet_ratio", "facet ratio (goal <= 1.3)"),
        ("facet_ratio_by_distance", "facet ratio at equal distance from the sites"),
        ("sd_ratio_aoa", "sd ratio outside/inside AOA (goal >= 1.5)"),
        ("cells", "cells"), ("mean_diff_across", "mean diff across borders"),
        ("mean_diff_within", "mean diff within"), ("median_rel_sd_inside", "median rel. sd inside AOA"),
        ("median_rel_sd_outside", "median rel. sd outside AOA")], by_key=True)


def _map_reference() -> str:
    return _key_table("map_reference", [
        ("sptgnn_facet_ratio", "SpTGNN facet ratio"), ("xgboost_facet_ratio", "XGBoost facet ratio"),
        ("rfsi_facet_ratio", "RFSI-like facet ratio"),
        ("sptgnn_facet_ratio_by_distance", "SpTGNN, at equal distance from the sites"),
        ("xgboost_facet_ratio_by_distance", "XGBoost, at equal distance"),
        ("rfsi_facet_ratio_by_distance", "RFSI-like, at equal distance"),
        ("facet_ratio_vs_xgboost", "SpTGNN / XGBoost"), ("facet_ratio_by_distance_vs_xgboost",
                                                          "SpTGNN / XGBoost at equal distance")], by_key=True)


def _map_parity() -> str:
    return _key_table("map_parity", [
        ("max_abs_diff", "max abs diff (log scale)"), ("max_abs_diff_gkg", "max abs diff g/kg"),
        ("n_sites", "sites compared"), ("n_heldout", "held-out sites"), ("n_not_mapped", "not mapped (sea)"),
        ("n_features_differ", "features that differ")])


def _aggregate_coverage() -> str:
    return _key_table("aggregate_coverage", [
        ("zones", "zones"), ("level", "level"), ("coverage", "coverage"), ("naive_coverage", "naive coverage"),
        ("width_ratio", "width ratio"), ("bias_gkg", "bias g/kg")])


def _train_africa() -> str:
    return _key_table("train_africa", [("minutes_to_xgb_val", "minutes to XGBoost's validation RMSE")])


RESULTS: dict[str, Callable[[], str]] = {
    "real_data": _real_data,
    "paper": _paper,
    "map_scaling": _map_scaling,
    "map_realism": _map_realism,
    "map_reference": _map_reference,
    "map_parity": _map_parity,
    "aggregate_coverage": _aggregate_coverage,
    "train_africa": _train_africa,
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
    if kind in _USED and len(args) == 1:
        _USED[kind].add(args[0])
    if kind == "cli" and len(args) == 1:
        return cli_help(args[0])
    if kind == "config" and not args:
        return config_reference()
    if kind == "schema" and len(args) == 1:
        return schema_reference(args[0])
    if kind == "results" and len(args) == 1:
        if args[0] not in RESULTS:
            raise PluginError(f"socmap:results: unknown table {args[0]!r} (have: {', '.join(RESULTS)})")
        return RESULTS[args[0]]()
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
