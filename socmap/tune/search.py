"""The two-step search on a Dask cluster: the shared journal, counting done trials, running a step's missing
trials as Dask tasks, ranking, and the step-2 space.

Every trial lives in one Optuna JournalStorage file (``OUT/study.journal``) holding two studies, ``wide`` and
``narrow``. A run counts the trials each study already finished and submits only the missing ones, so re-running
the same command after a kill continues where it stopped; a trial the kill left RUNNING is marked FAIL (with the
user attribute ``interrupted``) and does not count. One ``socmap tune`` runs on an output folder at a time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from socmap.config import TuneConfig, TuneParam
from socmap.errors import ConfigError
from socmap.tune.objective import TrialTask, open_storage, run_trial
from socmap.tune.space import dump_space, load_space, narrow_space

__all__ = ["STEPS", "counted", "load_or_create", "mark_interrupted", "narrow_for", "open_search", "rank_key",
           "run_step", "split_trials", "top_trials"]

STEPS = ("wide", "narrow")


def split_trials(total: int, tune: TuneConfig) -> tuple[int, int]:
    """``--trials total`` as (wide, narrow), in the proportion of ``tune.wide_trials : tune.narrow_trials``; the
    wide step gets at least one."""
    frac = tune.wide_trials / (tune.wide_trials + tune.narrow_trials)
    wide = min(total, max(1, round(total * frac)))
    return wide, total - wide


def load_or_create(storage: Any, name: str, attrs: dict[str, Any]) -> Any:
    """The study ``name`` in ``storage`` (created with ``attrs`` as user attributes); an existing study whose
    attributes differ (another space, epochs or data) is refused: its trials would not be comparable."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True)
    old = study.user_attrs
    if not old:
        for k, v in attrs.items():
            study.set_user_attr(k, v)
        return study
    for k, v in attrs.items():
        if k in old and old[k] != v:
            raise ConfigError(f"the search stored in this --out ran with another {k} ({_short(old[k])} vs "
                              f"{_short(v)}); use a new --out folder, or delete it to start again")
    return study


def _short(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= 80 else s[:77] + "..."


def mark_interrupted(storage: Any, study: Any) -> int:
    """Mark the trials a killed run left RUNNING as FAIL (user attribute ``interrupted``); returns how many.

    Only safe while no other process runs this search (one ``socmap tune`` per output folder)."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tid = t._trial_id  # optuna keeps the storage id private; the storage API needs it
        storage.set_trial_user_attr(tid, "interrupted", True)
        storage.set_trial_state_values(tid, TrialState.FAIL)
        n += 1
    return n


def counted(study: Any) -> list[Any]:
    """The trials that count towards the step's total: finished (complete, pruned or failed), not interrupted."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False, states=done) if not t.user_attrs.get("interrupted")]


def rank_key(t: Any) -> tuple[float, float]:
    """Ranking of a complete trial: validation MAPE (%, lower first), then validation R2 (higher first)."""
    r2 = t.user_attrs.get("val_r2", float("nan"))
    return (float(t.value), -float(r2) if math.isfinite(r2) else math.inf)


def top_trials(trials: Sequence[Any], fraction: float) -> list[Any]:
    """The best ``fraction`` of the complete trials (at least one), best first."""
    from optuna.trial import TrialState

    done = sorted((t for t in trials if t.state == TrialState.COMPLETE and t.value is not None), key=rank_key)
    return done[: max(1, math.ceil(fraction * len(done)))] if done else []


def narrow_for(narrow_study: Any, wide_study: Any, space: dict[str, TuneParam], tune: TuneConfig
               ) -> dict[str, TuneParam]:
    """Step 2's space: the one stored with the narrow study (fixed when step 2 first ran), else derived from the
    wide step's top quartile now and stored."""
    stored = narrow_study.user_attrs.get("narrow_space")
    if stored:
        return load_space(json.loads(stored))
    top = top_trials(counted(wide_study), tune.top_fraction)
    narrowed = narrow_space(space, [t.params for t in top])
    narrow_study.set_user_attr("narrow_space", json.dumps(dump_space(narrowed)))
    narrow_study.set_user_attr("narrowed_from", [t.number for t in top])
    return narrowed


def run_step(client: Any, storage_path: Path, study: Any, *, target: int, data_dir: Path,
             pipeline: dict[str, Any], space: dict[str, TuneParam], tune: TuneConfig, epochs: int, seed: int,
             progress: bool = True, on_result: Callable[[dict[str, Any]], None] | None = None) -> list[dict]:
    """Run the trials ``study`` still lacks to reach ``target`` done, as Dask tasks (``client`` None: one after
    another in this process). Returns the new trials' summaries."""
    have = len(counted(study))
    missing = max(0, target - have)
    if missing == 0:
        return []
    name = study.study_name
    tasks = [TrialTask(storage=str(storage_path), study=name, data_dir=str(data_dir), pipeline=pipeline,
                       space=dump_space(space), epochs=epochs, seed=seed,
                       sampler_seed=seed * 100_003 + (0 if name == "wide" else 50_000) + have + i,
                       startup_trials=tune.startup_trials, pruner=tune.pruner.model_dump(mode="json"),
                       trial_minutes=tune.trial_minutes)
             for i in range(missing)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=target, initial=have, desc=f"tune {name}", unit="trial")
    results: list[dict] = []

    def done(r: dict[str, Any]) -> None:
        results.append(r)
        if on_result is not None:
            on_result(r)
        if bar is not None:
            best = min((x["value"] for x in results if x["state"] == "COMPLETE" and x["value"] is not None),
                       default=None)
            bar.update(1)
            bar.set_postfix(last=r["state"].lower(), best_val_mape=f"{best:.2f}" if best is not None else "-")

    try:
        if client is None:
            for t in tasks:
                done(run_trial(t))
        else:
            from distributed import as_completed

            futures = [client.submit(run_trial, t, pure=False) for t in tasks]
            for fut in as_completed(futures):
                done(fut.result())
    finally:
        if bar is not None:
            bar.close()
    return results


def open_search(out: Path) -> tuple[Path, Any]:
    """The journal path in ``out`` and its storage (created if new)."""
    from socmap.io import TUNE_STUDY

    out.mkdir(parents=True, exist_ok=True)
    path = out / TUNE_STUDY
    return path, open_storage(path)
