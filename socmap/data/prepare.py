"""``socmap prepare``: survey tables -> harmonised topsoil SOC samples, split, covariates, preprocessing.

Everything is read and computed first (a bad input raises before anything is written); then each file is written
atomically (:func:`socmap.io.atomic_path`: a temporary sibling renamed into place), the report last:

- ``samples.parquet``: one row per site (columns in :data:`SAMPLE_COLUMNS`, then survey covariates, raster
  covariates in physical units, and the model-ready ``feat_*`` columns);
- ``prepare_report.json``: inputs, per-rule counts of dropped and merged rows, settings, split sizes,
  covariate sampling counts and provenance;
- ``preprocess.json`` + ``preprocess_reference.parquet``: the preprocessing fitted on the training split
  (:class:`~socmap.data.preprocess.Preprocessor`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap.config import CovariateLayer, DataConfig, PipelineConfig
from socmap.data.columns import SurveyMapping, load_mapping
from socmap.data.covariates import sample_raster
from socmap.data.harmonise import Ledger, depth_weight, harmonise_rows, merge_sites
from socmap.data.preprocess import Preprocessor
from socmap.data.readers import read_table
from socmap.data.samples import SAMPLE_COLUMNS
from socmap.data.split import block_split, stratified_split
from socmap.errors import ConfigError, DataError
from socmap.io import PREPARE_REPORT, SAMPLES, atomic_path, json_safe

__all__ = ["REPORT_FILE", "SAMPLES_FILE", "SAMPLE_COLUMNS", "PrepareResult", "plain_pipeline", "run"]

SAMPLES_FILE = SAMPLES
"""Alias of :data:`socmap.io.SAMPLES`."""
REPORT_FILE = PREPARE_REPORT
"""Alias of :data:`socmap.io.PREPARE_REPORT`."""


@dataclass
class PrepareResult:
    """What :func:`run` wrote."""

    out_dir: Path
    samples: pd.DataFrame
    report: dict[str, Any]
    preprocessor: Preprocessor

    def summary(self) -> str:
        """One line for the CLI and the demo: rows in, sites out, split sizes and the rules that fired."""
        r = self.report
        c = r["split"]["counts"]
        dropped = {k: v["count"] for k, v in r["rules"].items() if v["count"]}
        return (f"{r['rows_in']} survey rows -> {r['sites_out']} sites ({r['split']['method']} split, "
                f"train/val/test {c['train']}/{c['val']}/{c['test']}); rules: {dropped}")


def _resolve_sources(inputs: Sequence[str | Path] | None,
                     mappings: Sequence[str | Path | SurveyMapping] | None, pipeline: PipelineConfig | None,
                     data: DataConfig) -> list[tuple[str, SurveyMapping]]:
    paths = [str(i) for i in (inputs or [])]
    maps = list(mappings or [])
    if not paths:
        if pipeline is None or not data.sources:
            raise ConfigError("no soil table given: pass --input FILE --mapping NAME, or a pipeline "
                              "(--region/--pipeline) whose data.sources lists the tables")
        if maps:
            raise ConfigError("--mapping given without --input; the pipeline's data.sources name their "
                              "own mappings")
        out: list[tuple[str, SurveyMapping]] = []
        for s in data.sources:
            path = pipeline.resolve(s.path) or s.path
            name = s.mapping
            if Path(name).suffix in (".yaml", ".yml"):
                name = pipeline.resolve(name) or name
            out.append((path, load_mapping(name)))
        return out
    if not maps:
        raise ConfigError("--input given without --mapping: name a shipped mapping (afsp, demo) or a "
                          "mapping YAML")
    if len(maps) == 1:
        maps = maps * len(paths)
    if len(maps) != len(paths):
        raise ConfigError(f"{len(paths)} inputs but {len(maps)} mappings: give one mapping for all "
                          "inputs or one per input, in the same order")
    loaded: dict[str, SurveyMapping] = {}
    out = []
    for i, m in zip(paths, maps, strict=True):
        key = str(m) if not isinstance(m, SurveyMapping) else f"obj{id(m)}"
        if key not in loaded:
            loaded[key] = load_mapping(m)
        out.append((i, loaded[key]))
    return out


def _layer_path(layer: CovariateLayer, pipeline: PipelineConfig | None) -> str:
    if pipeline is not None:
        return pipeline.resolve(layer.path) or layer.path
    return layer.path


def _write_outputs(out_dir: Path, samples: pd.DataFrame, report: dict[str, Any], pre: Preprocessor) -> None:
    """Write every output atomically (:func:`socmap.io.atomic_path`), the report last: it says the run finished.

    Everything is computed before this is called, so a bad input leaves nothing; other stages' files in
    ``out_dir`` are left alone.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / SAMPLES_FILE) as tmp:
        samples.to_parquet(tmp, index=False)
    pre.save(out_dir)
    with atomic_path(out_dir / REPORT_FILE) as tmp:
        tmp.write_text(json.dumps(json_safe(report), indent=2))


@dataclass
class _Harmonised:
    """Every table read and harmonised: horizons, depth-weighted profiles, merged sites, and their bookkeeping."""

    horizons: pd.DataFrame
    profiles: pd.DataFrame
    sites: pd.DataFrame
    inputs_info: list[dict[str, Any]]
    survey_cov: list[str]
    survey_prov: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        return int(sum(x["rows"] for x in self.inputs_info))


def _harmonise_sources(sources: list[tuple[str, SurveyMapping]], settings: DataConfig, ledger: Ledger,
                       bar_off: bool | None) -> _Harmonised:
    """Read and harmonise every table (all reading happens before anything is written)."""
    from tqdm.auto import tqdm

    horizons, inputs_info, survey_cov = [], [], []
    survey_prov: dict[str, dict[str, Any]] = {}
    for i, (path, m) in enumerate(tqdm(sources, desc="read tables",
                                       disable=bar_off if len(sources) > 1 else True)):
        df = read_table(path, m)
        h = harmonise_rows(df, m, settings, ledger, input_index=i, path=path)
        horizons.append(h)
        inputs_info.append({"path": path, "mapping": m.name, "mapping_file": str(m.source_file or ""),
                            "format": df.attrs.get("format"), "crs": df.attrs.get("crs"),
                            "soc_unit": m.soc_unit, "soc_factor_to_gkg": m.soc_factor, "rows": len(df),
                            "topsoil_horizons": len(h)})
        for name, col in m.covariates.items():
            if name not in survey_cov:
                survey_cov.append(name)
            survey_prov.setdefault(name, {"name": name, "origin": "survey", "mappable": False,
                                          "unit": m.covariate_units.get(name, ""), "columns": {}})
            survey_prov[name]["columns"][path] = col
    hz = pd.concat(horizons, ignore_index=True)
    for c in survey_cov:
        if c not in hz.columns:
            hz[c] = np.nan
    profiles = depth_weight(hz, settings, ledger, survey_cov) if len(hz) else hz
    sites = merge_sites(profiles, settings, ledger, survey_cov) if len(profiles) else profiles
    out = _Harmonised(hz, profiles, sites, inputs_info, survey_cov, survey_prov)
    if len(sites) == 0:
        rules = {k: v["count"] for k, v in ledger.to_dict().items() if v["count"]}
        raise DataError(f"{', '.join(p for p, _ in sources)}: no site left after harmonisation "
                        f"({out.rows_in} rows in; {rules}); check the mapping's units, depths and coordinates")
    if sites["sample_id"].duplicated().any():  # pragma: no cover - merge_sites guarantees it
        raise AssertionError("duplicate sample_id after merging sites")
    return out


def _sample_rasters(sites: pd.DataFrame, data: DataConfig, pipeline: PipelineConfig | None, bar_off: bool | None
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Add one column per raster covariate layer to ``sites`` (in place); returns (sampling info, provenance)."""
    from tqdm.auto import tqdm

    lon, lat = sites["lon"].to_numpy(), sites["lat"].to_numpy()
    layer_info, raster_prov = [], []
    names = set(sites.columns)
    for layer in tqdm(data.covariates, desc="sample covariates",
                      disable=bar_off if data.covariates else True):
        if layer.name in names:
            raise ConfigError(f"covariate layer name {layer.name!r} clashes with a column of the samples; "
                              "rename it")
        path = _layer_path(layer, pipeline)
        vals, info = sample_raster(path, lon, lat, name=layer.name, band=layer.band,
                                   scale=1.0 if layer.categorical else layer.scale,
                                   offset=0.0 if layer.categorical else layer.offset,
                                   search_px=data.covariate_search_px,
                                   min_coverage=data.covariate_min_coverage)
        sites[layer.name] = np.round(vals) if layer.categorical else vals
        names.add(layer.name)
        layer_info.append(info.to_dict())
        raster_prov.append({"name": layer.name, "origin": "raster", "mappable": True, "path": path,
                            "band": layer.band, "unit": layer.unit, "scale": layer.scale,
                            "offset": layer.offset, "categorical": layer.categorical})
    return layer_info, raster_prov


def _assign_split(sites: pd.DataFrame, data: DataConfig, method: str) -> None:
    cfg = data.split
    if method == "random":
        sites["split"] = stratified_split(sites["soc_gkg"], cfg)
    elif method == "block":
        sites["split"] = block_split(sites["lon"].to_numpy(), sites["lat"].to_numpy(), cfg)
    else:
        raise ConfigError(f"unknown split method {method!r}; use random or block")


def _report(hm: _Harmonised, samples: pd.DataFrame, ledger: Ledger, data: DataConfig, method: str,
            covariates: dict[str, Any], t_start: float) -> dict[str, Any]:
    """prepare_report.json: inputs, per-rule counts, settings, split sizes, covariates and provenance."""
    cfg = data.split
    counts = samples["split"].value_counts().reindex(["train", "val", "test"], fill_value=0)
    rules = ledger.to_dict()
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": hm.inputs_info,
        "rows_in": hm.rows_in,
        "topsoil_horizons": len(hm.horizons),
        "profiles": int(len(hm.profiles) + ledger.total("insufficient_depth_coverage")),
        "profiles_kept": len(hm.profiles),
        "sites_out": len(samples),
        "rules": rules,
        "dropped_rows": int(sum(v["count"] for v in rules.values()
                                if v["level"] == "rows" and v["action"] == "dropped")),
        "merged_rows": rules["replicate_averaged"]["count"],
        "dropped_profiles": rules["insufficient_depth_coverage"]["count"],
        "merged_profiles": rules["same_site_same_source"]["count"] + rules["same_site_cross_source"]["count"],
        "accounting": {"rows": "rows_in - dropped_rows - merged_rows = topsoil_horizons",
                       "profiles": "profiles - dropped_profiles - merged_profiles = sites_out"},
        "soc_range_gkg": [data.soc_min_gkg, data.soc_max_gkg],
        "soc_gkg": {"min": float(samples.soc_gkg.min()), "median": float(samples.soc_gkg.median()),
                    "mean": float(samples.soc_gkg.mean()), "max": float(samples.soc_gkg.max())},
        "depth_cm": [data.top_cm, data.bottom_cm],
        "min_depth_coverage": data.min_depth_coverage,
        "site_tolerance_m": data.site_tolerance_m,
        "year": {"min": int(samples.year.min()), "max": int(samples.year.max()),
                 "sites_placeholder": int(samples.year_is_placeholder.sum()),
                 "rows_filled_default": int(ledger.notes.get("year_filled_default_rows", 0))},
        "sources": {str(k): int(v) for k, v in samples["source"].value_counts().items()},
        "split": {"method": method, "seed": cfg.seed, "fractions": list(cfg.fractions),
                  **({"strata": cfg.strata, "binned_on": "log(1+soc_gkg)"} if method == "random"
                     else {"block_km": cfg.block_km, "projection": "EPSG:6933"}),
                  "counts": {k: int(v) for k, v in counts.items()}},
        "covariates": covariates,
        "columns": list(samples.columns),
        "seconds": round(time.perf_counter() - t_start, 2),
    }


def plain_pipeline() -> PipelineConfig:
    """The pipeline of a ``socmap prepare`` given no ``--region``/``--pipeline``: the default ``data`` settings, no
    ``data.sources`` (the tables come from ``--input``) and no raster covariates."""
    return PipelineConfig(name="plain", grid="global")


def run(cfg: PipelineConfig, inputs: Sequence[str | Path] | None, out: str | Path, *,
        mappings: Sequence[str | Path | SurveyMapping] | None = None, data: DataConfig | None = None,
        split: str | None = None, progress: bool = True) -> PrepareResult:
    """Harmonise soil tables to one topsoil (0-30 cm) SOC value (g/kg) per site, split, add covariates.

    Args:
        cfg: the region's pipeline: its ``data`` block gives limits, raster covariates and the split; relative
            paths in it resolve against the pipeline file (:func:`plain_pipeline`: defaults, no raster covariates).
        inputs: soil tables (CSV, Parquet, GeoPackage; paths or URLs). ``None``: the pipeline's data.sources.
        out: output folder (created, or its files replaced) holding samples.parquet, prepare_report.json,
            preprocess.json and preprocess_reference.parquet.
        mappings: one mapping (name of a shipped one, YAML path, or :class:`SurveyMapping`) for every input,
            or one per input.
        data: settings to use instead of ``cfg.data``.
        split: ``random`` (stratified, paper 4.5) or ``block`` (spatial blocks), overriding the config.
        progress: show progress bars (on a terminal only).

    Raises:
        ConfigError, DataError: bad mapping, table, CRS, unit, column or raster; nothing is written.
    """
    t_start = time.perf_counter()
    if data is None:
        data = cfg.data
    sources = _resolve_sources(inputs, mappings, cfg, data)
    ledger = Ledger()
    bar_off = None if progress else True  # None: tqdm shows bars on a terminal only
    hm = _harmonise_sources(sources, data, ledger, bar_off)
    sites = hm.sites
    layer_info, raster_prov = _sample_rasters(sites, data, cfg, bar_off)
    method = split or data.split.method
    _assign_split(sites, data, method)

    # ---- preprocessing fitted on train only
    missing_sc = [c for c in data.survey_covariates if c not in sites.columns]
    if missing_sc:
        raise ConfigError(f"data.survey_covariates names {', '.join(missing_sc)}, which no mapping provides "
                          f"(mapped survey covariates: {', '.join(hm.survey_cov) or 'none'})")
    numeric = [la.name for la in data.covariates if not la.categorical] + list(data.survey_covariates)
    categorical = [layer.name for layer in data.covariates if layer.categorical]
    prov = raster_prov + [{**hm.survey_prov[c], "categorical": False} for c in data.survey_covariates]
    pre = Preprocessor.fit(sites[sites["split"] == "train"], numeric, categorical, k=data.impute_k,
                           provenance=prov)
    feats = pre.transform(sites)
    missing_before = {c: int(sites[c].isna().sum()) for c in pre.required_columns}

    # ---- assemble
    extra = [*hm.survey_cov, *(layer.name for layer in data.covariates)]
    samples = sites[SAMPLE_COLUMNS + extra].copy()
    samples["year"] = samples["year"].astype("int32")
    for c in feats.columns:
        samples[f"feat_{c}"] = feats[c].to_numpy()
    covariates = {"needed": pre.required_columns, "features": pre.feature_names,
                  "categorical_features": pre.categorical_features, "provenance": prov,
                  "raster_sampling": layer_info, "search_px": data.covariate_search_px,
                  "missing_before_imputation": missing_before, "impute_k": data.impute_k,
                  "fitted_on": "train", "survey_only": hm.survey_cov}
    report = _report(hm, samples, ledger, data, method, covariates, t_start)
    _write_outputs(Path(out), samples, report, pre)
    return PrepareResult(out_dir=Path(out), samples=samples, report=report, preprocessor=pre)
