"""Train and predict agree on real data: a small Africa bundle's held-out sites through the map path.

Prepares the Africa set with the ``africa-coarse`` pipeline (no imagery, the real 10' rasters), keeps a random
subsample of the sites (``--sites``; their prepared features and split as prepare wrote them), trains a small
ensemble and then predicts every validation and test site as if it were a map cell:

- *map path*: the site's covariates read from the rasters as a tile reads them
  (:func:`socmap.mapping.cells.cell_covariates`), preprocessed and attached by
  :func:`socmap.mapping.tile_job.cell_inputs` / :func:`~socmap.mapping.tile_job.predict_cells`;
- *model path*: the site's stored inputs (the bundle's node features) through ``Bundle.predict_new``;

and compares both with the transductive predictions ``socmap evaluate`` scores (``Bundle.predict_nodes``), in
log(1+SOC) units (each member's mean) and in g/kg (the calibrated median). Sites the map does not map (a coastal
site whose own raster cell is sea; prepare found a value within ``covariate_search_px``) or whose raster reading
differs from prepare's features are counted apart: they are other inputs, not another model.

Usage::

    python benchmarks/map_parity.py [--sites 4000] [--members 2] [--epochs 3] [--keep OUT]

The last line printed is one JSON object: max_abs_diff (log(1+SOC), over the map-path sites), max_abs_diff_gkg,
n_sites, model_path_max_abs_diff, n_heldout, n_not_mapped, n_features_differ, seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def subsample(src: Path, dst: Path, n: int, seed: int) -> None:
    """A data folder holding ``n`` random sites of ``src`` (their features and split unchanged)."""
    import pandas as pd

    from socmap.io import PREPROCESS, PREPROCESS_REFERENCE, SAMPLES

    dst.mkdir(parents=True, exist_ok=True)
    df = pd.read_parquet(src / SAMPLES)
    if 0 < n < len(df):
        df = df.iloc[np.sort(np.random.default_rng(seed).choice(len(df), n, replace=False))]
    df.reset_index(drop=True).to_parquet(dst / SAMPLES)
    for name in (PREPROCESS, PREPROCESS_REFERENCE):
        shutil.copy2(src / name, dst / name)


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipeline", default="africa-coarse", help="shipped region or pipeline YAML (no imagery)")
    ap.add_argument("--data", type=Path, default=None, help="a prepared data folder to reuse (default: prepare)")
    ap.add_argument("--sites", type=int, default=4000, help="sites to keep (0: all)")
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--widths", choices=["small", "pipeline"], default="small",
                    help="small: RGAT 64-32, fusion 64, 4 experts (minutes on 2 cores); pipeline: Table 6")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="write the data folder and bundle here and keep them")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from socmap.config import load_pipeline
    from socmap.data.split import SPLIT_CODES
    from socmap.inference import load_bundle
    from socmap.mapping.cells import cell_covariates
    from socmap.mapping.tile_job import cell_inputs, load_context, predict_cells
    from socmap.train import stage as train

    t0 = time.perf_counter()
    cfg = load_pipeline(args.pipeline)
    if "image" in cfg.model.streams:
        raise SystemExit(f"pipeline {cfg.name} has an image stream: use a no-imagery pipeline")
    if args.widths == "small":
        cfg.model.rgat.hidden_dims = [64, 32]
        cfg.model.moe.fusion_dim, cfg.model.moe.experts = 64, 4
        cfg.model.pre_mlp.hidden, cfg.model.pre_mlp.out = [64], 64
        cfg.model.post_mlp.hidden, cfg.model.post_mlp.out = [32], 32
    cfg.train.epochs = args.epochs
    cfg.train.warm_start_epochs = min(cfg.train.warm_start_epochs, args.epochs)
    with tempfile.TemporaryDirectory(prefix="socmap-mapparity-") as tmp:
        work = args.keep.resolve() if args.keep else Path(tmp)
        full = args.data
        if full is None:
            from socmap.data import prepare

            full = work / "prepared"
            if not (full / "samples.parquet").is_file():
                prepare.run(cfg, None, full, progress=False)
        data, model = work / "data", work / "model"
        subsample(full, data, args.sites, args.seed)
        ts = time.perf_counter()
        res = train.run(cfg, data, model, members=args.members, device="cpu", seed=args.seed, progress=False)
        print(f"train ({time.perf_counter() - ts:.0f} s): {res.summary()}", flush=True)

        bundle = load_bundle(model, cfg)
        held = np.flatnonzero(bundle.node_split != SPLIT_CODES["train"])
        lonlat, years = bundle.node_lonlat[held], bundle.node_year[held].astype(np.int64)
        evaluated = bundle.predict_nodes()
        assert bundle.node_inputs is not None and bundle.node_inputs.tabular is not None
        stored_tab = bundle.node_inputs.tabular[held].numpy()
        ndvi = None if bundle.node_ndvi is None else bundle.node_ndvi[held]
        elev = None if bundle.node_elevation is None else bundle.node_elevation[held]
        direct = bundle.predict_new(lonlat, years, stored_tab, None, ndvi, elev)
        model_diff = float(np.abs(direct.member_mean - evaluated.member_mean[:, held]).max())

        ctx = load_context(cfg, bundle)
        raw, mapped = cell_covariates(cfg, lonlat)
        inputs = cell_inputs(ctx, raw, np.arange(len(held)))
        assert inputs.features is not None
        same = mapped & (np.abs(inputs.features - stored_tab).max(axis=1) <= 1e-5)
        pred = predict_cells(ctx, lonlat[same], years[same], type(inputs)(
            inputs.features[same], None if inputs.ndvi is None else inputs.ndvi[same],
            None if inputs.elevation is None else inputs.elevation[same]))
        ev_mean = evaluated.member_mean[:, held[same]]
        diff = float(np.abs(pred.member_mean - ev_mean).max()) if same.any() else float("nan")
        diff_gkg = float(np.abs(pred.soc_gkg() - evaluated.soc_gkg()[held[same]]).max()) if same.any() else \
            float("nan")
    result = {"max_abs_diff": diff, "max_abs_diff_gkg": diff_gkg, "n_sites": int(same.sum()),
              "model_path_max_abs_diff": model_diff, "n_heldout": len(held), "n_not_mapped": int((~mapped).sum()),
              "n_features_differ": int((mapped & ~same).sum()), "nodes": len(bundle.node_split),
              "members": bundle.n_members, "widths": args.widths, "seconds": round(time.perf_counter() - t0, 1)}
    print(f"{result['n_sites']} of {len(held)} held-out sites through the map path: max |map - evaluated| "
          f"{diff:.2e} log(1+SOC), {diff_gkg:.2e} g/kg; stored inputs through predict_new: {model_diff:.2e} "
          f"({result['n_not_mapped']} not mapped, {result['n_features_differ']} with other raster readings)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
