"""``socmap tune``: the two-step hyper-parameter search of a pipeline on DATA, on a Dask cluster, resumable.

1. **wide**: ``tune.space`` as declared (the paper's step 1: GNN depth and widths, learning rate, expert type,
   fusion width, experts, attention mechanism and mode, dropout, weight decay, batch size);
2. **narrow**: the space narrowed to the top quartile of step 1 (:func:`socmap.tune.space.narrow_space`).

Each trial trains one member for ``tune.epochs`` epochs with the test labels hidden, reports its best validation
MAPE each epoch to the pruner, and is ranked by validation MAPE (R2 breaking ties). Then the best configuration and
the hand-set one are retrained the same way (``tune.final_members`` members, ``tune.final_epochs`` epochs, same
seed) and scored once on validation and test.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import socmap.tune.report as rep
import socmap.tune.search as search
from socmap.config import PipelineConfig, TuneConfig, TuneParam, get_dotted
from socmap.errors import ConfigError, DataError, ModelError
from socmap.io import SAMPLES, TUNE_BEST_PIPELINE, TUNE_FINAL_DIR, TUNE_TRIALS
from socmap.tune.space import apply_params, decode, dump_space, hand_set_params, space_fingerprint

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TuneResult", "run"]


@dataclass
class TuneResult:
    """What a search wrote and found."""

    out: Path
    counts: dict[str, int]
    """Trials done per step (complete, pruned or failed)."""
    best: dict[str, Any]
    """The best trial: step, number, params (pipeline values), validation metrics."""
    final: dict[str, Any] | None
    """Final retrains (``best`` and ``hand-set``: val / test metrics), None with ``final=False``."""
    seconds: float

    def summary(self) -> str:
        b = self.best
        line = (f"{sum(self.counts.values())} trials ({self.counts['wide']} wide, {self.counts['narrow']} narrow) "
                f"in {self.seconds:.0f} s; best {b['step']} #{b['number']}: val MAPE {b['val_mape']:.2f} %, "
                f"R2 {b['val_r2']:.3f}")
        if self.final:
            f = self.final
            line += (f"; retrained: best val/test MAPE {f['best']['val']['mape']:.1f}/{f['best']['test']['mape']:.1f} %"
                     f" vs hand-set {f['hand-set']['val']['mape']:.1f}/{f['hand-set']['test']['mape']:.1f} %")
        return line + f" -> {self.out / TUNE_BEST_PIPELINE}"


def _check_data(data_dir: Path) -> None:
    if not (data_dir / SAMPLES).is_file():
        raise DataError(f"{data_dir / SAMPLES} not found; give --data the folder `socmap prepare --out` wrote")


@dataclass
class _Search:
    """One search's settings (the options resolved against ``tune:``) and its studies, as the steps share them."""

    cfg: PipelineConfig
    tc: TuneConfig
    data_dir: Path
    out: Path
    n_epochs: int
    """Maximum epochs per trial."""
    seed: int
    n_wide: int
    n_narrow: int
    storage_path: Path | None = None
    studies: dict[str, Any] = field(default_factory=dict)
    """Step name (``wide``, ``narrow``) -> its optuna study."""
    narrow: dict[str, TuneParam] = field(default_factory=dict)
    """The narrowed space of step 2 (``tc.space`` until it is narrowed)."""


def _settings(cfg: PipelineConfig, data_dir: Path, out: Path, *, trials: int | None, epochs: int | None,
              seed: int | None) -> _Search:
    """The search's settings: each option, or its ``tune:`` default; a bad value raises before anything runs."""
    tc = cfg.tune
    if tc is None:
        where = cfg.source_file or cfg.name
        raise ConfigError(f"{where}: no tune: section; declare the search space there (see pipelines/demo.yaml)")
    _check_data(data_dir)
    total = trials if trials is not None else tc.wide_trials + tc.narrow_trials
    if total < 1:
        raise ConfigError(f"--trials must be >= 1, got {total}")
    n_epochs = epochs if epochs is not None else tc.epochs
    if n_epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {n_epochs}")
    n_wide, n_narrow = search.split_trials(total, tc)
    return _Search(cfg=cfg, tc=tc, data_dir=data_dir, out=out, n_epochs=n_epochs,
                   seed=tc.seed if seed is None else seed, n_wide=n_wide, n_narrow=n_narrow, narrow=tc.space)


def _open_studies(s: _Search) -> None:
    """Open (or continue) both steps' studies in ``out``; trials a stopped run left running count as interrupted,
    and a new wide study starts with the hand-set configuration where ``tune.enqueue_hand_set`` asks for it."""
    attrs = {"space": space_fingerprint(s.tc.space), "epochs": s.n_epochs, "data": str(s.data_dir.resolve()),
             "pipeline": s.cfg.name}
    s.storage_path, storage = search.open_search(s.out)
    s.studies = {name: search.load_or_create(storage, name, attrs) for name in search.STEPS}
    for study in s.studies.values():
        search.mark_interrupted(storage, study)
    if s.tc.enqueue_hand_set and not s.studies["wide"].trials:
        hand_params = hand_set_params(s.cfg, s.tc.space)
        if hand_params:
            s.studies["wide"].enqueue_trial(hand_params, user_attrs={"hand_set": True})


def _run_steps(s: _Search, client: Any, *, progress: bool) -> None:
    """Step 1 on the declared space, then step 2 on the space narrowed to step 1's top quartile."""
    from socmap.inference.format import resolved_pipeline_dict

    pipeline = resolved_pipeline_dict(s.cfg)
    storage_path = s.storage_path
    assert storage_path is not None, "open the studies first"

    def step(name: str, target: int, space: dict[str, TuneParam]) -> None:
        search.run_step(client, storage_path, s.studies[name], target=target, data_dir=s.data_dir,
                        pipeline=pipeline, space=space, tune=s.tc, epochs=s.n_epochs, seed=s.seed, progress=progress)

    step("wide", s.n_wide, s.tc.space)
    if s.n_narrow > 0 or search.counted(s.studies["narrow"]):
        s.narrow = search.narrow_for(s.studies["narrow"], s.studies["wide"], s.tc.space, s.tc)
        step("narrow", s.n_narrow, s.narrow)


def _best(s: _Search) -> tuple[dict[str, Any], PipelineConfig, int]:
    """The best trial of both steps (validation MAPE, R2 breaking ties), its pipeline and the trials counted."""
    every = [(name, t) for name, study in s.studies.items() for t in search.counted(study)]
    ranked = search.top_trials([t for _, t in every], 1.0)
    if not ranked:
        raise ModelError(f"no trial of the search in {s.out} completed (see the error column of "
                         f"{s.out / TUNE_TRIALS}); check the space and the data")
    best_t = ranked[0]
    best_step = next(name for name, t in every if t is best_t)
    best_space = s.tc.space if best_step == "wide" else s.narrow
    best = {"step": best_step, "number": best_t.number,
            "params": {k: decode(best_space[k], v) for k, v in best_t.params.items()},
            "val_mape": float(best_t.value),
            **{k: best_t.user_attrs.get(k) for k in ("val_r2", "val_rmse", "val_mae", "best_epoch")}}
    return best, apply_params(s.cfg, best_space, best_t.params), len(every)


def _write_findings(s: _Search, df: pd.DataFrame, best: dict[str, Any], best_cfg: PipelineConfig,
                    n_trials: int) -> dict[str, float]:
    """The parameter importances (plot), the slice plots and best_pipeline.yaml; returns the importances."""
    imp = rep.importances(s.studies["wide"], s.seed)
    n_complete = int(((df["step"] == "wide") & (df["state"] == "COMPLETE")).sum())
    rep.plot_importance(imp, s.out, n_complete)
    rep.plot_slices(df, s.tc.space, list(imp)[:4], s.out)
    header = (f"socmap tune: best of {n_trials} trials ({best['step']} #{best['number']}), validation MAPE "
              f"{best['val_mape']:.2f} %, R2 {best['val_r2']:.4f}\n(one member, {s.n_epochs} epochs per trial, "
              f"data {s.data_dir.resolve()})")
    rep.write_best_pipeline(best_cfg, s.out / TUNE_BEST_PIPELINE, header)
    return imp


def _report(s: _Search, df: pd.DataFrame, best: dict[str, Any], imp: dict[str, float], fin: dict[str, Any] | None,
            seconds: float) -> dict[str, Any]:
    """tune_report's numbers: counts and states of the trials, the best, the hand-set values, the final retrains."""
    hand = s.cfg.model_dump(mode="json")
    return {"pipeline": s.cfg.name, "data": str(s.data_dir.resolve()), "seed": s.seed, "epochs": s.n_epochs,
            "counts": {k: len(search.counted(study)) for k, study in s.studies.items()},
            "states": df["state"].value_counts().to_dict(),
            "best": best, "hand_set_params": {k: get_dotted(hand, k) for k in s.tc.space},
            "narrow_space": dump_space(s.narrow) if search.counted(s.studies["narrow"]) else None,
            "importance": imp, "final": fin, "seconds": seconds}


def run(cfg: PipelineConfig, data_dir: Path, out: Path, *, trials: int | None = None, epochs: int | None = None,
        workers: int | None = None, scheduler: str | None = None, seed: int | None = None, final: bool = True,
        progress: bool = True) -> TuneResult:
    """Run (or continue) the search of ``cfg.tune`` on ``data_dir`` and write its outputs into ``out``.

    Args:
        cfg: the hand-set pipeline; its ``tune`` section is the search.
        data_dir: folder from ``socmap prepare`` (+ ``embed`` with the image stream).
        out: search folder (journal, trials.csv, plots, best_pipeline.yaml, report, final bundles).
        trials: trials in all, both steps (default ``tune.wide_trials + tune.narrow_trials``); a re-run continues
            until this many are done.
        epochs: maximum epochs per trial (default ``tune.epochs``).
        workers: LocalCluster worker processes (default: half the CPUs); ``scheduler``: an existing Dask
            scheduler's address, or ``threads`` to run the trials one after another in this process.
        seed: sampler and training seed (default ``tune.seed``).
        final: retrain the best and the hand-set configuration and score them on test (the report).
    """
    from socmap.eo.dask_client import dask_client

    t0 = time.perf_counter()
    s = _settings(cfg, Path(data_dir), Path(out), trials=trials, epochs=epochs, seed=seed)
    _open_studies(s)
    with dask_client(scheduler, workers=workers, threads_per_worker=1) as client:
        _run_steps(s, client, progress=progress)
        df = rep.trials_frame(s.studies)
        rep.write_trials(df, s.out)
        best, best_cfg, n_trials = _best(s)
        imp = _write_findings(s, df, best, best_cfg, n_trials)
        fin = _final(client, s.data_dir, cfg, best_cfg, s.out, s.seed) if final else None
    report = _report(s, df, best, imp, fin, time.perf_counter() - t0)
    rep.write_report(report, s.out)
    return TuneResult(out=s.out, counts=report["counts"], best=best, final=fin, seconds=time.perf_counter() - t0)


def _final(client: Any, data_dir: Path, cfg: PipelineConfig, best_cfg: PipelineConfig, out: Path,
           seed: int) -> dict[str, Any]:
    """Retrain the best and the hand-set configuration (same members, epochs and seed; in parallel on the
    cluster) and score both once on validation and test."""
    from socmap.inference.format import resolved_pipeline_dict
    from socmap.tune.objective import final_run

    tc = cfg.tune
    assert tc is not None
    members = tc.final_members or cfg.train.ensemble_members
    epochs = tc.final_epochs or cfg.train.epochs
    runs = {"best": best_cfg, "hand-set": cfg}
    args = {name: (str(data_dir), resolved_pipeline_dict(c), str(out / TUNE_FINAL_DIR / name))
            for name, c in runs.items()}
    if client is None:
        res: dict[str, Any] = {name: final_run(*a, members=members, epochs=epochs, seed=seed)
                               for name, a in args.items()}
    else:
        futs = {name: client.submit(final_run, *a, pure=False, members=members, epochs=epochs, seed=seed)
                for name, a in args.items()}
        res = {name: f.result() for name, f in futs.items()}
    b, h = res["best"]["val"], res["hand-set"]["val"]
    res["winner_val"] = "best" if (b["mape"], -b["r2"]) <= (h["mape"], -h["r2"]) else "hand-set"
    return res
