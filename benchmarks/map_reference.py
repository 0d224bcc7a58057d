"""Benchmark: the realism figures of the SpTGNN map beside those of the baselines' maps on the same cells.

``benchmarks/map_realism.py`` scores one map; whether a figure is good needs a reference on the same grid and the
same survey sites. This maps the XGBoost and RFSI-like baselines of ``socmap evaluate``
(:mod:`socmap.evaluate.baselines`: the paper's XGBoost on the bundle's ``feat_*`` inputs + lon, lat, year; the
RFSI-like one adds the 10 nearest training labels, their distances and inverse-distance mean), fitted on the
bundle's training rows, through the map path itself: ``socmap predict``'s tiles, cell covariates and
preprocessing, with the model step (:func:`socmap.mapping.tile_job.predict_cells`) answering with the baseline's
log(1 + SOC) prediction instead of the bundle's. So the three maps differ in the model only. Each is scored with
``map_realism.py``'s figures against the same training sites, and the SpTGNN's figures are also given as ratios to
each baseline's (measured in the same run).

XGBoost has no input that depends on the nearest site at all, so its ``facet_ratio`` is what the figure gives a map
without Voronoi facets on this site layout: the sites cluster where SOC varies most (issue 18). A baseline map has
no uncertainty layers worth the name (its variance is set to 0), so only the facet figures are reported for it.

Usage::

    python benchmarks/map_reference.py --pipeline pipelines/africa-coarse.yaml --model DIR/model \\
        --data DIR/data --maps maps/africa-coarse/2012

Each baseline's map is a full ``socmap predict`` map folder under ``--out/<baseline>/REGION/YEAR/VERSION/``,
with a VRT mosaic per layer (``soc_mean.vrt`` ...; COGs are written even where the pipeline asks for zarr only), so
it opens in QGIS or GDAL and scores with ``map_realism.py`` like any map; without ``--out`` they go to a temporary
folder, deleted at the end.

Ends with one JSON line: ``sptgnn_<figure>`` for ``facet_ratio``, ``facet_ratio_by_distance`` and
``facet_ratio_by_distance_log`` (the same on log1p(SOC) steps), the same for each baseline (``xgboost_*``,
``rfsi_*``), ``<figure>_vs_<baseline>`` (SpTGNN over baseline, e.g. ``facet_ratio_by_distance_log_vs_xgboost``),
each baseline's ``soc_mean`` VRT (``<baseline>_vrt``, with ``--out``) and the seconds each baseline map took.
With ``--truth TIF`` (a world whose true SOC is known, such as the demo's ``truth/soc_true_YEAR.tif``), every map's
``soc_mean`` is also scored against it (:func:`socmap.mapping.score.score_map`: the truth averaged onto the map
grid): ``<map>_r2_vs_truth`` and ``<map>_rmse_vs_truth`` (g/kg) for ``sptgnn`` and each baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ("xgboost", "rfsi")
FIGURES = ("facet_ratio", "facet_ratio_by_distance", "facet_ratio_by_distance_log")


def baseline_predictor(name: str, samples: Any, feature_columns: list[str], *, k: int = 10, seed: int = 0) -> Any:
    """A stand-in for :func:`socmap.mapping.tile_job.predict_cells` that answers with baseline ``name``, fitted on
    the training rows of ``samples``: an ensemble of one member whose mean is the baseline's log1p(SOC) and whose
    variance is 0 (so ``soc_mean`` = ``soc_median`` = its expm1, the paper's point prediction)."""
    from socmap.evaluate.baselines import baseline_inputs, fit_xgboost, spatial_lag_features
    from socmap.inference import EnsemblePrediction

    x, _ = baseline_inputs(samples, feature_columns)
    train = (samples["split"] == "train").to_numpy()
    y = samples["soc_gkg"].to_numpy(np.float64)
    lonlat = samples[["lon", "lat"]].to_numpy(np.float64)
    ylog = np.log1p(y[train])
    xt = x[train]
    if name == "rfsi":
        xt = np.column_stack([xt, spatial_lag_features(lonlat[train], ylog, lonlat[train], k=k, exclude_self=True)])
    model = fit_xgboost(xt, y[train], seed=seed)

    def predict(ctx: Any, cell_lonlat: np.ndarray, year: Any, inputs: Any, image: Any = None,
                di: Any = None) -> EnsemblePrediction:
        years = np.broadcast_to(np.asarray(year, np.float64), (len(cell_lonlat),))
        xq = np.column_stack([inputs.features, cell_lonlat, years])
        if name == "rfsi":
            xq = np.column_stack([xq, spatial_lag_features(lonlat[train], ylog, cell_lonlat, k=k)])
        mu = model.predict(xq).astype(np.float64)[None, :]
        return EnsemblePrediction.from_members(mu, np.zeros_like(mu))

    return predict


def map_baseline(name: str, cfg: Any, model: Path, samples: Any, feature_columns: list[str], out: Path,
                 year: int) -> Path:
    """Map baseline ``name`` through ``socmap predict``'s tiles (in this process) into ``out``; the map's root."""
    from socmap.mapping import predict, tile_job

    if "cog" not in cfg.output.formats:  # the VRT mosaics are made over the tile COGs
        cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"formats": [*cfg.output.formats,
                                                                                       "cog"]})})
    original = tile_job.predict_cells
    tile_job.predict_cells = baseline_predictor(name, samples, feature_columns)
    try:
        res = predict.run(cfg, model, out, year=year, scheduler="threads", progress=False)
    finally:
        tile_job.predict_cells = original
    return Path(res.root)


def truth_scores(name: str, root: Path, truth: Path) -> dict[str, float]:
    """``{name}_r2_vs_truth`` and ``{name}_rmse_vs_truth`` of the map folder ``root``'s ``soc_mean`` mosaic."""
    from socmap.mapping.score import score_map

    s = score_map(root / "soc_mean.vrt", truth)
    return {f"{name}_r2_vs_truth": round(s["r2"], 4), f"{name}_rmse_vs_truth": round(s["rmse"], 4)}


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", required=True, type=Path, help="the bundle's pipeline YAML")
    ap.add_argument("--model", required=True, type=Path, help="the bundle folder (socmap train's output)")
    ap.add_argument("--data", required=True, type=Path, help="the bundle's prepared data folder (samples.parquet)")
    ap.add_argument("--maps", required=True, type=Path, help="the SpTGNN map (version or year folder)")
    ap.add_argument("--year", type=int, default=None, help="map year (default: the pipeline's output.year)")
    ap.add_argument("--baselines", nargs="+", choices=BASELINES, default=list(BASELINES))
    ap.add_argument("--out", type=Path, default=None, help="where the baseline maps go (default: a temporary folder)")
    ap.add_argument("--truth", type=Path, default=None,
                    help="a raster of the true SOC (g/kg) to score every map's soc_mean against")
    args = ap.parse_args(argv)
    if args.truth is not None and not args.truth.is_file():
        raise SystemExit(f"map_reference: error: no truth raster at {args.truth}")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pandas as pd
    from map_realism import main as realism

    from socmap.config import load_pipeline
    from socmap.errors import SocmapError
    from socmap.inference import load_bundle
    from socmap.io import SAMPLES
    from socmap.mapping.layout import resolve_maps

    try:
        cfg = load_pipeline(args.pipeline)
        bundle = load_bundle(args.model, None, load_members=False)
        samples = pd.read_parquet(args.data / SAMPLES)
    except (SocmapError, OSError) as exc:
        raise SystemExit(f"map_reference: error: {exc}") from None
    year = args.year or cfg.output.year
    site_args = ["--data", str(args.data)]
    result: dict[str, object] = {}
    ours = realism(["--maps", str(args.maps), *site_args])
    for f in FIGURES:
        result[f"sptgnn_{f}"] = ours[f]
    if args.truth is not None:
        result.update(truth_scores("sptgnn", resolve_maps(args.maps), args.truth))
    with tempfile.TemporaryDirectory(prefix="socmap-mapref-") as tmp:
        for name in args.baselines:
            t0 = time.perf_counter()
            out = (args.out or Path(tmp)) / name
            root = map_baseline(name, cfg, args.model, samples, list(bundle.feature_columns), out, year)
            figs = realism(["--maps", str(root), *site_args])
            result[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
            if args.out is not None:
                result[f"{name}_vrt"] = str(root / "soc_mean.vrt")
            if args.truth is not None:
                result.update(truth_scores(name, root, args.truth))
            for f in FIGURES:
                result[f"{name}_{f}"] = figs[f]
                mine, theirs = ours[f], figs[f]
                ok = isinstance(mine, float) and isinstance(theirs, float) and theirs > 0
                result[f"{f}_vs_{name}"] = round(mine / theirs, 4) if ok else None
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
