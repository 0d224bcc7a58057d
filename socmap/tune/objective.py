"""What a Dask worker runs: one trial (ask the shared study, train one member, report each epoch, tell), and the
final retrain of a configuration scored on validation and test.

A trial never reads a test label: the data are loaded with every test SOC value replaced by NaN before the graph,
the target scaler or the Moran's I targets are built (the trainer itself reads only training labels and, to score
an epoch, validation labels). The final retrain (:func:`final_run`) is the one place the test split is scored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from socmap.config import PipelineConfig
from socmap.errors import short_error
from socmap.metrics import interval_coverage, regression_metrics
from socmap.train import GraphContext, TrainingData

__all__ = ["TrialTask", "final_run", "make_pruner", "make_sampler", "open_storage", "run_trial", "train_once"]

_CACHE: dict[str, tuple[TrainingData, GraphContext]] = {}
"""Per process: the data and graph of the last data folder and graph settings (a worker runs many trials)."""


def open_storage(path: str | Path) -> Any:
    """The Optuna JournalStorage in ``path``: an append-only log file that several processes (Dask workers on one
    file system) write under a file lock; reading it back replays every trial, which makes a search resumable."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def make_sampler(seed: int, startup_trials: int) -> Any:
    """TPE with the constant-liar heuristic: trials running in parallel count as bad, so concurrent workers do not
    all sample the same point."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials, constant_liar=True)


def make_pruner(pruner: dict[str, Any]) -> Any:
    """The pipeline's ``tune.pruner`` as an Optuna pruner (steps are epochs)."""
    import optuna

    kind = pruner.get("kind", "median")
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner["startup_trials"],
                                           n_warmup_steps=pruner["warmup_epochs"])
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=pruner["min_resource"],
                                                      reduction_factor=pruner["reduction_factor"])
    return optuna.pruners.NopPruner()


def _context(data_dir: Path, cfg: PipelineConfig) -> tuple[TrainingData, GraphContext]:
    """Training data with the test labels hidden, and the graph context, cached per process."""
    from socmap.data.split import SPLIT_CODES
    from socmap.device import resolve_device
    from socmap.io import SAMPLES
    from socmap.train import load_training_data, training_context

    m = cfg.model
    key = json.dumps([str(data_dir.resolve()), (data_dir / SAMPLES).stat().st_mtime_ns, m.graph.model_dump(mode="json"),
                      m.streams, m.label_input, cfg.train.device])
    if key not in _CACHE:
        data, _, _ = load_training_data(data_dir, cfg)
        soc = data.soc_gkg.copy()
        soc[data.split == SPLIT_CODES["test"]] = np.nan  # the search never sees a test label
        data = replace(data, soc_gkg=soc)
        _, ctx = training_context(data, cfg, resolve_device(cfg.train.device))
        _CACHE.clear()
        _CACHE[key] = (data, ctx)
    return _CACHE[key]


def train_once(data_dir: Path, cfg: PipelineConfig, *, epochs: int, seed: int,
               on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train one member of ``cfg`` on DATA (test labels hidden) for at most ``epochs`` epochs.

    Returns the best epoch's validation metrics (``val_mape`` %, ``val_r2``, ``val_rmse``/``val_mae`` g/kg,
    ``val_loss``), ``best_epoch``, ``epochs_run`` and ``train_seconds``.
    """
    from socmap.train import train_member

    data, ctx = _context(Path(data_dir), cfg)
    tab = 0 if data.tabular is None else data.tabular.shape[1]
    img = 0 if data.image is None else data.image.shape[1]
    res = train_member(ctx, cfg, tab, img, seed, train_years=data.year[data.mask("train")], progress=False,
                       epochs=epochs, on_epoch=on_epoch)
    return {**res.best_val, "best_epoch": res.best_epoch, "epochs_run": len(res.history),
            "train_seconds": res.seconds}


@dataclass(frozen=True)
class TrialTask:
    """Everything a worker needs for one trial (plain values: it travels to the worker by pickle)."""

    storage: str
    """Path of the JournalStorage file."""
    study: str
    """``wide`` or ``narrow``."""
    data_dir: str
    pipeline: dict[str, Any]
    """The hand-set pipeline, paths resolved (``model_dump(mode="json")``)."""
    space: dict[str, dict[str, Any]]
    """This step's space (``TuneParam`` dumps)."""
    epochs: int
    seed: int
    """Training seed (the same for every trial, so trials differ only in their parameters)."""
    sampler_seed: int
    """Seed of this task's sampler (distinct per task)."""
    startup_trials: int
    pruner: dict[str, Any] = field(default_factory=dict)
    trial_minutes: float | None = None


def run_trial(task: TrialTask) -> dict[str, Any]:
    """Ask the shared study for one trial, train it, report its best validation MAPE each epoch (the pruner may
    stop it), and tell the study the outcome. Returns the trial's number, state and metrics.

    A trial whose training fails (e.g. a combination the model refuses) is told FAIL with the error as a user
    attribute; it counts as done, so a search cannot loop on it.
    """
    import optuna
    from optuna.trial import TrialState

    from socmap.tune.space import apply_params, distributions, load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(task.storage)
    study = optuna.load_study(study_name=task.study, storage=storage,
                              sampler=make_sampler(task.sampler_seed, task.startup_trials),
                              pruner=make_pruner(task.pruner))
    space = load_space(task.space)
    trial = study.ask(distributions(space))
    t0 = time.perf_counter()
    best: dict[str, float] = {}

    def report(epoch: int, row: dict[str, float]) -> None:
        if not best or row["val_mape"] < best["val_mape"]:
            best.update({k: float(v) for k, v in row.items() if k.startswith("val_")}, best_epoch=epoch)
        trial.report(best["val_mape"], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    state, value, metrics, error = TrialState.COMPLETE, None, {}, ""
    try:
        base = PipelineConfig.model_validate(task.pipeline)
        cfg = apply_params(base, space, trial.params)
        if task.trial_minutes is not None:
            cfg.train.max_minutes = task.trial_minutes
        metrics = train_once(Path(task.data_dir), cfg, epochs=task.epochs, seed=task.seed, on_epoch=report)
        value = metrics["val_mape"]
        if not np.isfinite(value):
            state, error = TrialState.FAIL, "validation MAPE is not finite"
    except optuna.TrialPruned:
        state, metrics = TrialState.PRUNED, dict(best)
    except Exception as exc:  # a failed trial is a result of the search, not a crash of it
        state, metrics, error = TrialState.FAIL, dict(best), short_error(exc)
    seconds = time.perf_counter() - t0
    for k, v in metrics.items():
        trial.set_user_attr(k, float(v))
    trial.set_user_attr("seconds", seconds)
    if error:
        trial.set_user_attr("error", error)
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    else:
        study.tell(trial, state=state)
    return {"study": task.study, "number": trial.number, "state": state.name, "value": value,
            "seconds": seconds, "error": error, **metrics}


def final_run(data_dir: str, pipeline: dict[str, Any], out: str, *, members: int, epochs: int,
              seed: int) -> dict[str, Any]:
    """Train ``pipeline``'s ensemble into the bundle ``out`` and score it on validation and test (g/kg).

    This is the one place a search reads test labels: after every trial is done, once per configuration.
    """
    import pandas as pd

    from socmap.inference import load_bundle
    from socmap.io import SAMPLES
    from socmap.train import stage as train

    cfg = PipelineConfig.model_validate(pipeline)
    t0 = time.perf_counter()
    res = train.run(cfg, Path(data_dir), Path(out), members=members, epochs=epochs, seed=seed, progress=False)
    pred = load_bundle(Path(out), cfg, load_members=False).predict_nodes(calibrated=True)
    samples = pd.read_parquet(Path(data_dir) / SAMPLES, columns=["soc_gkg", "split"])
    obs, split = samples["soc_gkg"].to_numpy(float), samples["split"].astype(str).to_numpy()
    soc, lo, hi = pred.soc_gkg(), pred.quantile_gkg(0.025), pred.quantile_gkg(0.975)
    out_d: dict[str, Any] = {"members": members, "epochs": epochs, "epochs_run": res.epochs,
                             "seconds": time.perf_counter() - t0, "temperature": res.temperature, "bundle": out}
    for name in ("val", "test"):
        m = split == name
        out_d[name] = {**regression_metrics(obs[m], soc[m]),
                       "picp95": float(interval_coverage(obs[m], lo[m], hi[m])), "n": int(m.sum())}
    return out_d
