"""Typed pipeline and grid configuration.

A *pipeline* (``pipelines/<region>.yaml``) says where the soil data, covariates and imagery come from, the
model's hyper-parameters (a preset, ``cpu`` or the paper's Table 6, plus the keys the YAML sets) and what the map
outputs look like. A *grid*
(``grids/<name>.yaml``) says where the map cells are: CRS, cell size, bounds and tile size.

Six modules, one job each: :mod:`~socmap.config.schema` (the pydantic classes: what is valid),
:mod:`~socmap.config.presets` (the ``model`` / ``train`` values a pipeline's ``preset`` fills in),
:mod:`~socmap.config.files` (YAML, ``${ENV}`` expansion, relative paths, shipped regions and grids),
:mod:`~socmap.config.loading` (a region name or path to a validated pipeline or grid),
:mod:`~socmap.config.dotted` (``a.b.c`` keys into nested dicts) and :mod:`~socmap.config.secrets`
(credentials come from the environment only, and are redacted from outputs).
Import from ``socmap.config``: its ``__all__`` is the public API (the modules keep no second list).
"""

from __future__ import annotations

from socmap.config.dotted import get_dotted, set_dotted
from socmap.config.files import find_grid, find_pipeline, list_regions, resolve_path, socmap_home, validate_yaml
from socmap.config.loading import load_grid, load_pipeline
from socmap.config.presets import DEFAULT_PRESET, PRESETS, Preset, apply_preset
from socmap.config.schema import (
    CovariateLayer,
    DataConfig,
    EncoderConfig,
    GraphConfig,
    GridConfig,
    ImageryConfig,
    MLPConfig,
    ModelConfig,
    MoEConfig,
    OutputConfig,
    PipelineConfig,
    PositionalConfig,
    PrunerConfig,
    Relation,
    RGATConfig,
    SourceConfig,
    SplitConfig,
    StacConfig,
    Stream,
    TemporalConfig,
    TrainConfig,
    TuneConfig,
    TuneParam,
)
from socmap.config.secrets import (
    SECRET_ENV,
    STAC_API_KEY_ENV,
    check_no_credentials,
    env_secrets,
    redact,
    redact_tree,
)

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "SECRET_ENV",
    "STAC_API_KEY_ENV",
    "CovariateLayer",
    "DataConfig",
    "EncoderConfig",
    "GraphConfig",
    "GridConfig",
    "ImageryConfig",
    "MLPConfig",
    "MoEConfig",
    "ModelConfig",
    "OutputConfig",
    "PipelineConfig",
    "PositionalConfig",
    "Preset",
    "PrunerConfig",
    "RGATConfig",
    "Relation",
    "SourceConfig",
    "SplitConfig",
    "StacConfig",
    "Stream",
    "TemporalConfig",
    "TrainConfig",
    "TuneConfig",
    "TuneParam",
    "apply_preset",
    "check_no_credentials",
    "env_secrets",
    "find_grid",
    "find_pipeline",
    "get_dotted",
    "list_regions",
    "load_grid",
    "load_pipeline",
    "redact",
    "redact_tree",
    "resolve_path",
    "set_dotted",
    "socmap_home",
    "validate_yaml",
]
