"""What a search leaves in OUT: the trials table, the importance and slice plots, the best pipeline YAML and the
final report (best vs hand-set, retrained once, validation and test)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from socmap.config import PipelineConfig, TuneParam
from socmap.io import (
    TUNE_IMPORTANCE,
    TUNE_REPORT_JSON,
    TUNE_REPORT_MD,
    TUNE_SLICES,
    TUNE_TRIALS,
    atomic_path,
    json_safe,
)
from socmap.tune.space import encode

__all__ = ["importances", "plot_importance", "plot_slices", "trials_frame", "write_best_pipeline", "write_report",
           "write_trials"]

METRICS = ("val_mape", "val_r2", "val_rmse", "val_mae", "val_loss", "best_epoch", "epochs_run")


def trials_frame(studies: dict[str, Any]) -> pd.DataFrame:
    """One row per trial of every step: step, number, state, value (best validation MAPE %), the validation
    metrics of its best epoch, seconds, whether it is the enqueued hand-set configuration,
    each parameter (``param:<key>``, as stored) and any error."""
    rows = []
    for step, study in studies.items():
        for t in study.get_trials(deepcopy=False):
            row: dict[str, Any] = {"step": step, "number": t.number, "state": t.state.name,
                                   "interrupted": bool(t.user_attrs.get("interrupted", False)),
                                   "hand_set": bool(t.user_attrs.get("hand_set", False)), "value": t.value}
            row.update({k: t.user_attrs.get(k) for k in METRICS})
            row["seconds"] = t.user_attrs.get("seconds")
            row.update({f"param:{k}": v for k, v in t.params.items()})
            row["error"] = t.user_attrs.get("error", "")
            rows.append(row)
    return pd.DataFrame(rows)


def write_trials(df: pd.DataFrame, out: Path) -> Path:
    with atomic_path(out / TUNE_TRIALS) as tmp:
        df.to_csv(tmp, index=False)
    return out / TUNE_TRIALS


def importances(study: Any, seed: int) -> dict[str, float]:
    """fANOVA importance of each parameter for the objective over ``study``'s complete trials (empty when there
    are too few to fit it)."""
    import optuna
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(done) < 2:
        return {}
    try:
        imp = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
    except (RuntimeError, ValueError):  # e.g. every trial took the same values
        return {}
    return {k: float(v) for k, v in imp.items()}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_importance(imp: dict[str, float], out: Path, n_trials: int) -> Path:
    """Horizontal bars of the fANOVA importances (step 1), largest on top."""
    plt = _plt()
    keys = sorted(imp, key=imp.get)  # type: ignore[arg-type]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(3, len(keys)) + 1.4))
    if keys:
        ax.barh(keys, [imp[k] for k in keys], color="tab:blue")
        for y, k in enumerate(keys):
            ax.text(imp[k], y, f" {imp[k]:.2f}", va="center", fontsize=8)
        ax.set_xlim(0, max(imp.values()) * 1.2 or 1)
    else:
        ax.text(0.5, 0.5, "too few complete trials for fANOVA", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("fANOVA importance for validation MAPE (fraction of variance)")
    ax.set_title(f"Hyper-parameter importance (fANOVA), wide step: {n_trials} complete trials", fontsize=10)
    fig.tight_layout()
    with atomic_path(out / TUNE_IMPORTANCE) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out / TUNE_IMPORTANCE


def plot_slices(df: pd.DataFrame, space: dict[str, TuneParam], keys: list[str], out: Path) -> Path:
    """Validation MAPE against each of ``keys`` (the most important parameters): one panel each, wide and narrow
    trials in two colours, pruned trials hollow (their MAPE is the best they reached before being stopped)."""
    plt = _plt()
    keys = keys or list(space)[:4]
    n = len(keys)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    ok = df[df["state"].isin(["COMPLETE", "PRUNED"]) & df["val_mape"].notna()] if len(df) else df
    for ax, key in zip(axes.flat, keys, strict=False):
        p = space[key]
        col = f"param:{key}"
        labels = None if p.choices is None else [str(encode(c)) for c in p.choices]
        for step, colour in (("wide", "tab:blue"), ("narrow", "tab:orange")):
            for state, face in (("COMPLETE", colour), ("PRUNED", "none")):
                sel = ok[(ok["step"] == step) & (ok["state"] == state)] if len(ok) else ok
                if not len(sel) or col not in sel:
                    continue
                x = sel[col]
                if labels is not None:
                    x = x.map(lambda v, labels=labels: labels.index(str(v)) if str(v) in labels else np.nan)
                ax.scatter(x, sel["val_mape"], s=28, facecolors=face, edgecolors=colour,
                           label=f"{step} {state.lower()}")
        if p.choices is not None:
            ax.set_xticks(range(len(p.choices)))
            ax.set_xlim(-0.5, len(p.choices) - 0.5)
            ax.set_xticklabels([str(c).replace(" ", "") for c in p.choices], rotation=20, fontsize=7)
        elif p.log:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel("validation MAPE (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(fontsize=7, loc="best")
    fig.suptitle("Validation MAPE by parameter (most important first)")
    fig.tight_layout()
    with atomic_path(out / TUNE_SLICES) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out / TUNE_SLICES


def write_best_pipeline(cfg: PipelineConfig, path: Path, header: str) -> Path:
    """``cfg`` as a pipeline YAML (paths absolute, so it loads from anywhere), with a comment header."""
    from socmap.inference.format import resolved_pipeline_dict

    d = resolved_pipeline_dict(cfg)
    text = "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(d, sort_keys=False, width=110)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def _row(label: str, m: dict[str, Any]) -> str:
    return (f"| {label} | {m['mape']:.2f} | {m['rmse']:.3f} | {m['mae']:.3f} | {m['r2']:.4f} | "
            f"{m.get('picp95', float('nan')):.3f} | {m.get('n', '')} |")


def write_report(report: dict[str, Any], out: Path) -> Path:
    """tune_report.json (every number) and tune_report.md (the tables)."""
    with atomic_path(out / TUNE_REPORT_JSON) as tmp:
        tmp.write_text(json.dumps(json_safe(report), indent=2))
    b = report["best"]
    lines = [f"# Hyper-parameter search: {report['pipeline']}", "",
             f"- Data: {report['data']}", f"- Trials: {report['counts']} (state counts {report['states']}), "
             f"{report['epochs']} epochs max per trial, one member, seed {report['seed']}; "
             f"{report['seconds']:.0f} s in all",
             "- Ranking: validation MAPE (%) of the best epoch, R2 breaking ties; the test split is never read "
             "during the search.",
             f"- Best trial: {b['step']} #{b['number']}: validation MAPE {b['val_mape']:.2f} %, R2 "
             f"{b['val_r2']:.4f}, RMSE {b['val_rmse']:.3f} g/kg", "", "## Best parameters", "",
             "| key | hand-set | best |", "|---|---|---|"]
    for k, v in b["params"].items():
        lines.append(f"| {k} | {json.dumps(report['hand_set_params'].get(k))} | {json.dumps(v)} |")
    imp = report.get("importance") or {}
    if imp:
        lines += ["", "## fANOVA importance (wide step)", "", "| key | importance |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in imp.items()]
    fin = report.get("final")
    if fin:
        lines += ["", f"## Final retrain: {fin['best']['members']} member(s), {fin['best']['epochs']} epochs each, "
                  "same seed", "",
                  "| configuration / split | MAPE % | RMSE g/kg | MAE g/kg | R2 | PICP95 | n |",
                  "|---|---|---|---|---|---|---|"]
        for name in ("best", "hand-set"):
            for split in ("val", "test"):
                lines.append(_row(f"{name} / {split}", fin[name][split]))
        lines += ["", f"Chosen on validation: **{fin['winner_val']}**. The test rows are reported once, after the "
                  "search, and choose nothing."]
    lines.append("")
    with atomic_path(out / TUNE_REPORT_MD) as tmp:
        tmp.write_text("\n".join(lines))
    return out / TUNE_REPORT_MD
