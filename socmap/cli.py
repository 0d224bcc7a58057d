"""The ``socmap`` command line: one sub-command per stage, each a thin wrapper around the stage's entry point.

prepare -> extract -> embed -> train -> evaluate -> predict -> aggregate; ``demo`` runs them all on the embedded
world. Every stage module exposes ``run(cfg, <inputs>, out, *, options)`` (``socmap.data.prepare``,
``socmap.eo.extract``, ``socmap.encoders.finetune``, ``socmap.encoders.embed``, ``socmap.train.stage``,
``socmap.evaluate.stage``, ``socmap.tune.stage``, ``socmap.mapping.predict``, ``socmap.aggregate.stage``,
``socmap.demo.stage``); a command here parses its options, loads the pipeline, calls ``run`` and prints the
result's ``summary()``. An option left out is not passed on: the stage's ``run`` owns its default, which ``--help``
shows (:class:`_StageOption`).
A :class:`~socmap.errors.SocmapError` (bad input the user can fix) ends the run with one line on stderr
and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from socmap.device import DEVICES
from socmap.errors import SocmapError

if TYPE_CHECKING:
    from socmap.config import PipelineConfig

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(fn: F) -> F:
    """Turn a SocmapError into ``socmap: error: ...`` on stderr and exit code 2 (no traceback); an error with an
    ``exit_code`` attribute (``socmap predict``'s failed tiles: 3) exits with that code instead. A full disk or a
    permission error met while writing ends with one line too (exit 2)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SocmapError as exc:
            from socmap.config import redact

            msg = redact(" ".join(str(exc).split()))  # one line, whatever the message held; no credentials
            click.echo(f"socmap: error: {msg}", err=True)
            sys.exit(int(getattr(exc, "exit_code", 2)))
        except OSError as exc:
            from socmap.io import DISK_ERRNOS

            if exc.errno not in DISK_ERRNOS:
                raise
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"socmap: error: {exc.strerror or exc}{where}; free space or fix the permissions, then run "
                       "the same command again (finished work is kept)", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _pipeline_options(fn: F) -> F:
    """``--region NAME`` (a shipped pipeline) or ``--pipeline FILE`` (any other)."""
    fn = click.option(
        "--pipeline",
        "pipeline_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Pipeline YAML to use instead of a shipped region.",
    )(fn)
    from socmap.config.files import list_regions

    fn = click.option("--region", default=None, help=f"Shipped pipeline name: {', '.join(list_regions())}.")(fn)
    return fn


def _constant(ref: str) -> Any:
    """The object ``"module:NAME"`` names (imported only when asked for)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


class _StageOption(click.Option):
    """An option whose default its stage owns: the value is None unless given (the command passes on only what was
    given, :func:`_given`) and ``--help`` shows the default of the same-named parameter of ``stage``'s ``run`` (or
    ``shown``). ``help_refs`` fill ``{placeholders}`` of the help text from constants (``"module:NAME"``). The stage
    modules are slow to import, so both are read only when the help is shown."""

    def __init__(self, *decls: Any, stage: str | None = None, shown: str | None = None,
                 help_refs: dict[str, str] | None = None, **attrs: Any) -> None:
        super().__init__(*decls, **attrs)
        self.stage, self.shown, self.help_refs = stage, shown, help_refs or {}

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        if self.shown is not None:
            extra["default"] = self.shown
        elif self.stage is not None and self.name is not None:
            run = importlib.import_module(self.stage).run
            extra["default"] = str(inspect.signature(run).parameters[self.name].default)
        return extra

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None or not self.help_refs:
            return record
        return record[0], record[1].format(**{k: _constant(v) for k, v in self.help_refs.items()})


def _given(**options: Any) -> dict[str, Any]:
    """The options the user gave (not None): a stage's own defaults stand for the others."""
    return {k: v for k, v in options.items() if v is not None}


def _device_option(stage: str | None, shown: str | None = None,
                   help: str = "Torch device (auto: CUDA when present, else CPU).") -> Callable[[F], F]:
    """``--device`` (:mod:`socmap.device`), its default owned by ``stage`` (or shown as ``shown``)."""
    return click.option("--device", cls=_StageOption, stage=stage, shown=shown, type=click.Choice(DEVICES),
                        default=None, show_default=True, help=help)


def _load_or(region: str | None, pipeline_file: Path | None, fallback: Callable[[], PipelineConfig]) -> PipelineConfig:
    """The pipeline ``--region``/``--pipeline`` name, else ``fallback()`` (a command's own default pipeline)."""
    if region is None and pipeline_file is None:
        return fallback()
    return _load(region, pipeline_file)


def _load(region: str | None, pipeline_file: Path | None, default: str | None = None) -> PipelineConfig:
    from socmap.config import load_pipeline

    if pipeline_file is not None and region is not None:
        raise SocmapError("give either --region or --pipeline, not both")
    if pipeline_file is not None:
        if not pipeline_file.exists():
            raise SocmapError(f"pipeline file {pipeline_file} not found")
        return load_pipeline(pipeline_file)
    name = region or default
    if name is None:
        raise SocmapError("give --region NAME or --pipeline FILE")
    return load_pipeline(name)


class _OneLineGroup(click.Group):
    """The ``socmap`` group: click's own usage errors (a missing option, a value out of range, an unknown
    command) end in one line, ``socmap: error: ...`` and exit code 2, like every other bad input."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            msg = " ".join(exc.format_message().split())
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            click.echo(f"socmap: error: {msg}{hint}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(0)


@click.group(cls=_OneLineGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="socmap")
def cli() -> None:
    """socmap: wall-to-wall maps of topsoil soil organic carbon with calibrated uncertainty (SpTGNN).

    Stages run in order: prepare -> extract -> embed -> train -> evaluate -> predict
    (`socmap tune` searches a pipeline's hyper-parameters before train).
    `socmap demo --out DIR` runs them all on a generated demo world, offline.
    """


# ----------------------------------------------------------------------------------------------- demo
@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the run's data/, model/, report/ and maps/.")
@click.option("--seed", cls=_StageOption, stage="socmap.demo.stage", type=int, default=None, show_default=True,
              help="Seed of the generated world.")
@click.option("--regenerate", is_flag=True, help="Generate the world again even if a matching one exists.")
@_one_line_errors
def demo(out_dir: Path, seed: int | None, regenerate: bool) -> None:
    """Run the whole job on the embedded demo world (generated into $SOCMAP_HOME/demo-world)."""
    from socmap.demo import stage

    res = stage.run(_load(None, None, default="demo"), out_dir, regenerate=regenerate, **_given(seed=seed))
    click.echo(res.summary())


@cli.command("demo-world")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the world (default $SOCMAP_HOME/demo-world).")
@click.option("--seed", default=0, show_default=True)
@click.option("--size-km", default=10.0, show_default=True, help="Edge of the square region, km.")
@click.option("--sites", default=600, show_default=True, help="Number of survey sites.")
@click.option("--force", is_flag=True, help="Overwrite an existing world.")
@_one_line_errors
def demo_world(out_dir: Path | None, seed: int, size_km: float, sites: int, force: bool) -> None:
    """Generate only the demo world: rasters (COG), STAC catalogue, survey CSV and true SOC."""
    from socmap.demo.world import WorldSpec, default_world_dir, ensure_world

    spec = WorldSpec(seed=seed, size_m=size_km * 1000.0, n_sites=sites)
    path = ensure_world(out_dir or default_world_dir(), spec, force=force)
    click.echo(f"demo world: {path}")


# ------------------------------------------------------------------------------------------- stages
@cli.command()
@click.option("--input", "inputs", multiple=True, type=click.Path(path_type=Path),
              help="Soil table (CSV, Parquet, GeoPackage); repeat for several sources.")
@click.option("--mapping", "mappings", multiple=True,
              help="Mapping name (demo, afsp) or YAML path; one for all inputs or one per input.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data folder to write (created; later stages read it with --data).")
@click.option("--split", type=click.Choice(["random", "block"]), default=None,
              help="Split method (default: the pipeline's).")
@_pipeline_options
@_one_line_errors
def prepare(inputs: tuple[Path, ...], mappings: tuple[str, ...], out_dir: Path, split: str | None,
            region: str | None, pipeline_file: Path | None) -> None:
    """Harmonise soil surveys to topsoil SOC (g/kg), split, and sample the tabular covariates.

    Writes OUT/samples.parquet, OUT/prepare_report.json and the preprocessing fitted on the training split
    (OUT/preprocess.json); a failed run writes nothing. Without --input, the pipeline's data.sources are read.
    """
    from socmap.data import prepare as stage
    from socmap.io import PREPARE_REPORT, SAMPLES

    cfg = _load_or(region, pipeline_file, stage.plain_pipeline)
    res = stage.run(cfg, list(inputs) or None, out_dir, mappings=list(mappings) or None, split=split)
    click.echo(res.summary())
    click.echo(f"wrote {res.out_dir / SAMPLES} and {res.out_dir / PREPARE_REPORT}")


@cli.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data folder: reads DATA/samples.parquet, writes patches.zarr, image_covariates.parquet, "
                   "extract_failures.csv and extract_report.json into it.")
@click.option("--samples", type=click.Path(dir_okay=False, path_type=Path), default=None, hidden=True,
              help="Deprecated: use --data (a samples file other than DATA/samples.parquet; needs --out).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None, hidden=True,
              help="Deprecated: use --data (where --samples' outputs go).")
@click.option("--scheduler", envvar="DASK_SCHEDULER_ADDRESS", default=None,
              help="Address of an existing Dask scheduler, or 'threads' for no cluster (default: a LocalCluster).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="LocalCluster worker processes (default: half the CPUs).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@_pipeline_options
@_one_line_errors
def extract(data_dir: Path | None, samples: Path | None, out_dir: Path | None, scheduler: str | None,
            workers: int | None, progress: bool, region: str | None, pipeline_file: Path | None) -> None:
    """Search STAC, build annual composites, cut patches into patches.zarr and add image covariates.

    A sample older (or newer) than every year of imagery.years is imaged in the nearest of them; the imagery
    year is recorded beside the sampling year.
    """
    from socmap.eo import extract as stage

    if data_dir is not None:
        if samples is not None or out_dir is not None:
            raise SocmapError("give --data DIR alone (--samples and --out are its deprecated spelling)")
        samples, out_dir = data_dir, data_dir
    elif samples is None or out_dir is None:
        raise SocmapError("give --data DIR: the folder `socmap prepare --out DIR` wrote")
    cfg = _load(region, pipeline_file)
    res = stage.run(cfg, samples, out_dir, scheduler=scheduler, workers=workers, progress=progress)
    click.echo(res.summary())


@cli.command("finetune-vit")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data folder holding patches.zarr and samples.parquet.")
@click.option("--epochs", type=int, default=None, help="Epochs in all (default: model.encoder.finetune_epochs).")
@click.option("--warmup-epochs", type=int, default=None,
              help="First epochs with the backbone frozen (default: model.encoder.finetune_warmup_epochs).")
@click.option("--batch-size", type=int, default=None, help="Default: model.encoder.batch_size.")
@_device_option("socmap.encoders.finetune")
@click.option("--seed", cls=_StageOption, stage="socmap.encoders.finetune", type=int, default=None,
              show_default=True)
@_pipeline_options
@_one_line_errors
def finetune_vit(data_dir: Path, epochs: int | None, warmup_epochs: int | None, batch_size: int | None,
                 device: str | None, seed: int | None, region: str | None, pipeline_file: Path | None) -> None:
    """Fine-tune TerraMind + CLS-merge as a regression on log SOC (frozen warm-up), write vit_finetuned.pt."""
    from socmap.encoders import finetune as stage

    res = stage.run(_load(region, pipeline_file), data_dir, data_dir, epochs=epochs, warmup_epochs=warmup_epochs,
                    batch_size=batch_size, **_given(device=device, seed=seed))
    click.echo(res.summary())


@cli.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data folder holding patches.zarr and samples.parquet; embeddings.zarr is written there.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Encoder weights (default: DATA/vit_finetuned.pt, else model.encoder.checkpoint, else random).")
@click.option("--batch-size", type=int, default=None, help="Default: model.encoder.batch_size.")
@_device_option("socmap.encoders.embed")
@_pipeline_options
@_one_line_errors
def embed(data_dir: Path, checkpoint: Path | None, batch_size: int | None, device: str | None, region: str | None,
          pipeline_file: Path | None) -> None:
    """Encode every sample's patches once with the frozen TerraMind backbone and cache the embeddings."""
    from socmap.encoders import embed as stage

    res = stage.run(_load(region, pipeline_file), data_dir, data_dir, checkpoint=checkpoint, batch_size=batch_size,
                    **_given(device=device))
    click.echo(res.summary())


@cli.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data folder from `socmap prepare` (and `socmap embed` when the image stream is on).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model bundle folder to write (replaced atomically; default: a new version under "
                   "$SOCMAP_HOME/models/REGION/, named in its latest.json once complete).")
@click.option("--members", type=click.IntRange(min=1), default=None,
              help="Ensemble size (default: train.ensemble_members).")
@_device_option(None, shown="train.device")
@click.option("--seed", type=int, default=None, help="Seed of member 0 (default: train.seed); member m uses seed+m.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar per member.")
@_pipeline_options
@_one_line_errors
def train(data_dir: Path, out_dir: Path | None, members: int | None, device: str | None, seed: int | None,
          progress: bool, region: str | None, pipeline_file: Path | None) -> None:
    """Train the SpTGNN deep ensemble, calibrate it on the validation split and write the model bundle."""
    from socmap.inference import registry
    from socmap.train import stage

    cfg = _load(region, pipeline_file)
    target = registry.new_version(cfg.name) if out_dir is None else out_dir
    res = stage.run(cfg, data_dir, target, members=members, device=device, seed=seed, progress=progress)
    if out_dir is None:
        registry.publish(cfg.name, target)
    click.echo(res.summary())


@cli.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data folder the bundle was trained on (samples.parquet).")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model bundle written by `socmap train`; its bundle.json and model card are rewritten.")
@_pipeline_options
@_one_line_errors
def calibrate(data_dir: Path, model_dir: Path, region: str | None, pipeline_file: Path | None) -> None:
    """Refit a bundle's calibration on its validation split (T, distance term, mean cap, tail shape), no retraining."""
    from socmap.inference import recalibrate
    from socmap.inference.loading import read_pipeline

    given = region is not None or pipeline_file is not None
    cfg = _load(region, pipeline_file) if given else read_pipeline(model_dir)
    click.echo(recalibrate.run(cfg, data_dir, model_dir).summary())


@cli.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data folder the bundle was trained on (samples.parquet).")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model bundle written by `socmap train`.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Report folder (report.md, report.json, PNG figures); replaced atomically.")
@click.option("--protocol", cls=_StageOption, stage="socmap.evaluate.stage", type=click.Choice(["random", "block"]),
              default=None, show_default=True,
              help="random: the data's split (transductive); block: also retrain on a spatial block split.")
@click.option("--block-folds", cls=_StageOption, stage="socmap.evaluate.stage", type=click.IntRange(min=1),
              default=None, show_default=True,
              help="With --protocol block: 1 holds out one set of blocks; K >= 2 runs spatial K-fold "
                   "cross-validation (every block tested once, K retrains).")
@click.option("--ablations", is_flag=True, help="Retrain the ablation variants (one member each; slow).")
@click.option("--bootstrap", "n_boot", cls=_StageOption, stage="socmap.evaluate.stage", type=click.IntRange(min=0),
              default=None, show_default=True, help="Bootstrap resamples for the 95 % intervals (0: none).")
@click.option("--seed", cls=_StageOption, stage="socmap.evaluate.stage", type=int, default=None, show_default=True,
              help="Seed of the bootstrap, baselines and retraining.")
@_device_option("socmap.evaluate.stage", help="Torch device for the retraining of --ablations / --protocol block.")
@_pipeline_options
@_one_line_errors
def evaluate(data_dir: Path, model_dir: Path, out_dir: Path, protocol: str | None, block_folds: int | None,
             ablations: bool, n_boot: int | None, seed: int | None, device: str | None, region: str | None,
             pipeline_file: Path | None) -> None:
    """Score a model bundle on the held-out split against XGBoost and an RFSI-like baseline; write the report."""
    from socmap.evaluate import stage

    res = stage.run(_load(region, pipeline_file), data_dir, model_dir, out_dir, ablations=ablations,
                    **_given(protocol=protocol, block_folds=block_folds, n_boot=n_boot, seed=seed, device=device))
    click.echo(res.summary())


@cli.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data folder from `socmap prepare` (and `socmap embed` when the image stream is on).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Search folder: study.journal, trials.csv, plots, best_pipeline.yaml, tune_report.md, final/. "
                   "Run again to continue a stopped search.")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Trials in all, both steps (default: tune.wide_trials + tune.narrow_trials).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Maximum epochs per trial (default: tune.epochs).")
@click.option("--scheduler", envvar="DASK_SCHEDULER_ADDRESS", default=None,
              help="Address of an existing Dask scheduler, or 'threads' to run the trials one after another in "
                   "this process (default: a LocalCluster, or LocalCUDACluster where a GPU is present).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="LocalCluster worker processes, one trial each at a time (default: half the CPUs).")
@click.option("--seed", type=int, default=None, help="Sampler and training seed (default: tune.seed).")
@click.option("--final/--no-final", default=True, show_default=True,
              help="Retrain the best and the hand-set configuration and score both on validation and test.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@_pipeline_options
@_one_line_errors
def tune(data_dir: Path, out_dir: Path, trials: int | None, epochs: int | None, scheduler: str | None,
         workers: int | None, seed: int | None, final: bool, progress: bool, region: str | None,
         pipeline_file: Path | None) -> None:
    """Search the pipeline's hyper-parameters in two steps (wide, then narrowed) on a Dask cluster.

    The space is the pipeline's tune: section; trials are ranked by validation MAPE (R2 breaks ties) and the
    test split is read only by the final retrain. Writes OUT/best_pipeline.yaml, ready for
    `socmap train --pipeline`.
    """
    from socmap.tune import stage

    res = stage.run(_load(region, pipeline_file), data_dir, out_dir, trials=trials, epochs=epochs,
                    workers=workers, scheduler=scheduler, seed=seed, final=final, progress=progress)
    click.echo(res.summary())


@cli.command()
@click.option("--year", type=int, default=None, help="Map year (default: the pipeline's output.year).")
@click.option("--model", "model", type=click.Path(path_type=Path), default=None,
              help="Model bundle folder written by `socmap train` (default: the region's latest bundle, "
                   "$SOCMAP_HOME/models/REGION/latest.json).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: $SOCMAP_HOME/maps); maps go to OUT/REGION/YEAR/VERSION/ "
                   "(OUT/REGION/YEAR/latest.json names the newest finished version).")
@click.option("--version", "version", default=None,
              help="Version folder name (default: derived from the bundle's checksum and the options, so the same "
                   "command resumes the same folder).")
@click.option("--scheduler", envvar="DASK_SCHEDULER_ADDRESS", default=None, cls=_StageOption,
              help_refs={"cells": "socmap.mapping.predict:LOCAL_RUN_MAX_CELLS"},
              help="Address of an existing Dask scheduler, 'threads' to run the tiles in this process on --workers "
                   "threads, or 'synchronous' for one tile after another (default: 'threads' for jobs of at most "
                   "{cells:,} cells without a GPU, else a LocalCluster, or LocalCUDACluster where a GPU is present).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="LocalCluster worker processes, or tile threads in this process; one torch thread each "
                   "(default: one per CPU, at most 8).")
@click.option("--tiles", default=None, help="Comma-separated tile ids to map (e.g. r003_c012,r003_c013).")
@click.option("--mode", type=click.Choice(["fast", "exact"]), default=None,
              help="Image embedding per cell (imagery pipelines; default: output.embedding_mode).")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@_pipeline_options
@_one_line_errors
def predict(year: int | None, model: Path | None, out_dir: Path | None, scheduler: str | None, workers: int | None,
            tiles: str | None, mode: str | None, progress: bool, region: str | None,
            pipeline_file: Path | None, version: str | None) -> None:
    """Map calibrated SOC and its uncertainty over a region's grid (COG + VRT + zarr + STAC Item + PNG).

    Re-running the same command skips the tiles already done (checked by checksum). Exit codes: 0 all tiles done;
    1 a bug stopped the run (traceback in VERSION/logs/); 2 bad input (nothing written), another run holding the
    version folder, or a full disk / permission error; 3 some tiles met a source failure (the rest are kept; a
    re-run retries only the failed ones). OUT/REGION/YEAR/latest.json moves only once the whole grid is done.
    """
    from socmap.config import socmap_home
    from socmap.inference import registry
    from socmap.io import MAPS_DIR
    from socmap.mapping import predict as stage

    cfg = _load(region, pipeline_file)
    if model is None:
        model = registry.latest_bundle(cfg.name)
        click.echo(f"predict: model {model} (the latest bundle of region {cfg.name})")
    out_dir = socmap_home() / MAPS_DIR if out_dir is None else out_dir
    ids = [t.strip() for t in tiles.split(",") if t.strip()] if tiles else None
    res = stage.run(cfg, model, out_dir, year=year, scheduler=scheduler, tiles=ids, mode=mode, workers=workers,
                    progress=progress, version=version)
    click.echo(res.summary())


@cli.command()
@click.option("--maps", "maps", required=True, type=click.Path(path_type=Path),
              help="Map folder: OUT/REGION/YEAR (its latest.json is followed) or a version folder with soc.zarr.")
@click.option("--zones", "zones", required=True, type=click.Path(path_type=Path),
              help="Zone polygons: GeoPackage, Shapefile or GeoJSON, any CRS.")
@click.option("--field", "field", required=True, help="Column of the zones file that names each zone.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV to write; the .gpkg, .png chart and .json metadata are written beside it.")
@click.option("--level", cls=_StageOption, stage="socmap.aggregate.stage",
              type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=None,
              show_default=True, help="Two-sided level of the intervals.")
@click.option("--model", "model", type=click.Path(path_type=Path), default=None,
              help="Model bundle whose held-out points give the error correlogram (default: the map's own).")
@click.option("--pairs", "n_pairs", cls=_StageOption, stage="socmap.aggregate.stage", type=click.IntRange(min=1000),
              default=None, show_default=True, help_refs={"exact_max": "socmap.aggregate.interval:EXACT_MAX"},
              help="Cell pairs sampled for the residual part of zones over {exact_max} cells.")
@click.option("--seed", cls=_StageOption, stage="socmap.aggregate.stage", type=int, default=None, show_default=True,
              help="Seed of the pair sampling.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@_pipeline_options
@_one_line_errors
def aggregate(maps: Path, zones: Path, field: str, out: Path, level: float | None, model: Path | None,
              n_pairs: int | None, seed: int | None, progress: bool, region: str | None,
              pipeline_file: Path | None) -> None:
    """Per-zone SOC (and stock) with intervals that account for spatially correlated errors (CSV + GPKG + PNG).

    The stock's bulk density and coarse fragments come from the pipeline (--region/--pipeline; default: the one
    the map's bundle was trained with).
    """
    from socmap.aggregate import stage

    cfg = _load_or(region, pipeline_file, lambda: stage.map_pipeline(maps, model))
    res = stage.run(cfg, maps, zones, out, field=field, model=model, progress=progress,
                    **_given(level=level, n_pairs=n_pairs, seed=seed))
    click.echo(res.summary())


@cli.command("check-config")
@_pipeline_options
@_one_line_errors
def check_config(region: str | None, pipeline_file: Path | None) -> None:
    """Validate a pipeline (and its grid) and print where it was read from and the preset its model and train
    keys start from.

    Also warns (one line, exit 0) when a graph relation has no input it can see: a covariate layer or survey
    covariate named ``ndvi`` / ``elevation``, or imagery (``socmap train`` would stop on it after ``prepare``)."""
    cfg = _load(region, pipeline_file)
    grid = cfg.load_grid()
    missing = cfg.missing_relation_inputs()
    if missing:  # a warning, not an error: a prepared data folder may carry the column from elsewhere
        click.echo(f"socmap: warning: {cfg.source_file}: " + "; ".join(missing), err=True)
    click.echo(f"{cfg.source_file}: ok (preset {cfg.preset}; grid {grid.name}: {grid.crs}, {grid.resolution:g} "
               f"units/cell, {grid.shape[0]} x {grid.shape[1]} cells)")


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``socmap`` script (``args`` for tests)."""
    import warnings

    # raised by terratorch / torch_geometric imports under torch 2.14; nothing a user can act on
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    cli.main(args=args, prog_name="socmap")


if __name__ == "__main__":  # pragma: no cover
    main()
