"""``socmap demo``: the whole job on the embedded demo world, offline.

Layout of ``--out DIR``::

    DIR/data/    samples.parquet, prepare_report.json, patches.zarr, embeddings.zarr (see socmap.io)
    DIR/model/   the model bundle
    DIR/report/  report.md, report.json, figures
    DIR/maps/    demo/YEAR/VERSION/: COGs + VRTs, zarr, STAC Item, quick-looks, provenance.json,
                 score_vs_truth.json; demo/YEAR/latest.json names VERSION (socmap.mapping.layout)
    DIR/aggregate/  random_zones.gpkg and `socmap aggregate` over it: zones.csv, .gpkg, .png, .json

The world itself lives in ``$SOCMAP_HOME/demo-world`` (reused when it matches the spec), which
``pipelines/demo.yaml`` refers to, so every stage can also be re-run by hand on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from socmap.config import PipelineConfig
from socmap.demo.world import WorldSpec, default_world_dir, ensure_world
from socmap.io import DEMO_AGGREGATE, DEMO_RUN, DEMO_ZONES, atomic_path

__all__ = ["DemoContext", "DemoResult", "run"]


@dataclass
class DemoContext:
    """What the stages of a demo run share: the pipeline, the world folder, and the run's output folder ``out``
    with one subfolder per kind of output (``data``, ``model``, ``report``, ``maps``, ``aggregate``)."""

    cfg: PipelineConfig
    world: Path
    out: Path
    data: Path = field(init=False)
    model: Path = field(init=False)
    report: Path = field(init=False)
    maps: Path = field(init=False)
    aggregate: Path = field(init=False)

    def __post_init__(self) -> None:
        for name in OUTPUT_FOLDERS:
            setattr(self, name, self.out / name)

    @property
    def folders(self) -> list[Path]:
        """The output subfolders, in :data:`OUTPUT_FOLDERS` order."""
        return [getattr(self, name) for name in OUTPUT_FOLDERS]


OUTPUT_FOLDERS = ("data", "model", "report", "maps", "aggregate")
"""The subfolders of a demo run's ``--out``, named as :class:`DemoContext`'s fields."""


@dataclass
class DemoResult:
    """What a demo run did: the world it ran on, its output folder, each stage's summary line and seconds."""

    world: Path
    out: Path
    stages: dict[str, object]
    """Stage name -> ``{"summary": line, "seconds": s}`` (or why it did not run)."""
    seconds: float

    def as_dict(self) -> dict[str, object]:
        """The run summary as demo_run.json holds it."""
        return {"world": str(self.world), "out": str(self.out), "stages": self.stages, "seconds": self.seconds}

    def summary(self) -> str:
        """One line for the CLI: the run's time and its folders."""
        return (f"demo finished in {self.seconds} s: data {self.out / 'data'}, model {self.out / 'model'}, "
                f"report {self.out / 'report'}, maps {self.out / 'maps'}")


Stage = Callable[[DemoContext], str]
"""A stage runs on the context and returns a one-line summary."""


def _prepare(ctx: DemoContext) -> str:
    from socmap.data import prepare

    return prepare.run(ctx.cfg, None, ctx.data, progress=True).summary()


def _extract(ctx: DemoContext) -> str:
    from socmap.eo import extract

    res = extract.run(ctx.cfg, ctx.data, ctx.data, progress=True)
    return (f"{res.n_ok}/{res.n_samples} samples with patches ({res.n_extracted} fetched now, "
            f"{res.n_missing} missing) in {res.n_groups} groups -> {res.patches}")


def _embed(ctx: DemoContext) -> str:
    from socmap.encoders import embed

    res = embed.run(ctx.cfg, ctx.data, ctx.data)
    return f"{res.n_embedded} embeddings of width {res.width} -> {res.path}"


def _train(ctx: DemoContext) -> str:
    from socmap.train import stage

    return stage.run(ctx.cfg, ctx.data, ctx.model, progress=True).summary()


def _evaluate(ctx: DemoContext) -> str:
    from socmap.evaluate import stage

    return stage.run(ctx.cfg, ctx.data, ctx.model, ctx.report).summary()


def _predict(ctx: DemoContext) -> str:
    """Map the demo region for the pipeline's year into DIR/maps; score the expectation (``soc_mean``) and the
    median (``soc_median``) against the true SOC over the whole region, with the share of it the map covers, and
    the uncertainty layers against the map's own errors (``total_sd``'s mean z^2, the q05-q95 interval's
    coverage of the truth)."""
    from socmap.mapping import predict
    from socmap.mapping.score import score_map, score_uncertainty

    year = ctx.cfg.output.year
    res = predict.run(ctx.cfg, ctx.model, ctx.maps, year=year, progress=True)
    click.echo(res.summary())
    truth = ctx.world / "truth" / f"soc_true_{year}.tif"
    layers = {name: res.root / f"{name}.vrt" for name in ("soc_mean", "soc_median")}
    if not truth.is_file() or not all(p.is_file() for p in layers.values()):
        return f"{res.cells_mapped} cells mapped ({res.cells_per_s:.0f} cells/s) -> {res.root}"
    scores = {name: score_map(path, truth) for name, path in layers.items()}
    bands = {name: res.root / f"{name}.vrt" for name in ("total_sd", "q05", "q95")}
    unc = (score_uncertainty(layers["soc_mean"], bands["total_sd"], bands["q05"], bands["q95"], truth, 0.9)
           if all(p.is_file() for p in bands.values()) else None)
    (res.root / "score_vs_truth.json").write_text(json.dumps({"truth": str(truth), **scores["soc_mean"],
                                                              "layers": scores, "uncertainty": unc}, indent=1) + "\n")
    m, md = scores["soc_mean"], scores["soc_median"]
    line = (f"{res.cells_mapped} cells mapped ({res.cells_per_s:.0f} cells/s) -> {res.root}; the map covers "
            f"{m['coverage']:.1%} of the region; vs the true SOC {year}: soc_mean (expectation) R2 {m['r2']:.3f}, "
            f"RMSE {m['rmse']:.2f} g/kg, bias {m['bias']:+.2f} g/kg; soc_median R2 {md['r2']:.3f}, RMSE "
            f"{md['rmse']:.2f} g/kg, bias {md['bias']:+.2f} g/kg (n = {m['n']})")
    if unc is not None:
        line += (f"; its errors against total_sd: mean z^2 {unc['z2']:.2f} (1 = calibrated); q05-q95 held the "
                 f"truth in {unc['coverage']:.1%} of cells (90 % asked)")
    return line


def _aggregate(ctx: DemoContext) -> str:
    """`socmap aggregate` of the demo map over 50 random zones, then the coverage of its 90 % intervals against the
    true zone means over 100 random zones (two seeds), next to the naive independent-cells coverage."""
    from socmap.aggregate import stage
    from socmap.aggregate.check import map_coverage, random_zones

    year = ctx.cfg.output.year
    maps = ctx.maps / ctx.cfg.name / str(year)
    grid = ctx.cfg.load_grid()
    zones = random_zones(grid.bounds, 50, grid.crs, seed=0)
    ctx.aggregate.mkdir(parents=True, exist_ok=True)
    stage.write_gpkg(zones, ctx.aggregate / DEMO_ZONES)
    res = stage.run(ctx.cfg, maps, ctx.aggregate / DEMO_ZONES, ctx.aggregate / DEMO_AGGREGATE, field="zone",
                    model=ctx.model, progress=True)
    chk, _ = map_coverage(maps, ctx.model, ctx.world / "truth" / f"soc_true_{year}.tif", seeds=[1, 2], n_zones=50)
    return f"{res.summary()}; {chk.line()}"


def _stages() -> list[tuple[str, Stage | None]]:
    """The chain, in order; ``None`` marks a stage that has not landed yet (the run stops there)."""
    return [
        ("prepare", _prepare),
        ("extract", _extract),
        ("embed", _embed),
        ("train", _train),
        ("evaluate", _evaluate),
        ("predict", _predict),
        ("aggregate", _aggregate),
    ]


def run(cfg: PipelineConfig, out: Path, *, seed: int = 0, regenerate: bool = False) -> DemoResult:
    """Generate (or reuse) the demo world and run every landed stage on it, one summary line per stage as it ends;
    write ``out/demo_run.json``.

    ``cfg``: the pipeline to run on the world (``socmap demo``: the shipped ``demo`` pipeline, whose paths point
    into the generated world). ``seed``: the seed of the generated world; ``regenerate``: generate it again even
    if a matching one exists.
    """
    t0 = time.perf_counter()
    out = Path(out).expanduser().resolve()
    world = ensure_world(default_world_dir(), WorldSpec(seed=seed), force=regenerate)
    click.echo(f"demo world: {world}")
    ctx = DemoContext(cfg=cfg, world=world, out=out)
    for sub in ctx.folders:
        sub.mkdir(parents=True, exist_ok=True)
    stages = _run_stages(ctx)
    res = DemoResult(world=world, out=out, stages=stages, seconds=round(time.perf_counter() - t0, 1))
    with atomic_path(out / DEMO_RUN) as tmp:
        tmp.write_text(json.dumps(res.as_dict(), indent=1) + "\n")
    return res


def _run_stages(ctx: DemoContext) -> dict[str, object]:
    """Run the chain in order, echoing each stage's summary line; each stage's summary and seconds."""
    stages: dict[str, object] = {}
    for name, stage in _stages():
        if stage is None:
            click.echo(f"{name}: not implemented yet; the demo stops here")
            stages[name] = "not implemented yet"
            break
        ts = time.perf_counter()
        line = stage(ctx)
        stages[name] = {"summary": line, "seconds": round(time.perf_counter() - ts, 1)}
        click.echo(f"{name}: {line} ({time.perf_counter() - ts:.0f} s)")
    return stages
