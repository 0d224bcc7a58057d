"""Loading pipelines and grids: a shipped region or grid name, or a YAML path, read and validated.

Both are validated on load: an unknown key, a value of the wrong type or a missing required value raises
:class:`~socmap.errors.ConfigError`, whose message names the file and the dotted key, so a user can fix the YAML
without reading a traceback.

Relative paths in a pipeline are resolved against the pipeline file's folder; ``${SOCMAP_HOME}`` and other
environment variables are expanded first (``SOCMAP_HOME`` defaults to ``~/.cache/socmap``). A YAML holding a
credential is rejected before expansion (:func:`socmap.config.secrets.check_no_credentials`). Reading the files
themselves lives in :mod:`socmap.config.files`.
"""

from __future__ import annotations

from pathlib import Path

from socmap.config.files import find_grid, find_pipeline
from socmap.config.schema import GridConfig, PipelineConfig
from socmap.errors import ConfigError


def load_pipeline(path_or_region: str | Path) -> PipelineConfig:
    """Read and validate a pipeline from a YAML path, or a shipped region name (``demo``, ``africa``...)."""
    p = Path(path_or_region).expanduser()
    if p.suffix not in (".yaml", ".yml") and not p.is_file():  # a folder named like the region is no pipeline
        p = find_pipeline(str(path_or_region))
    p = p.resolve()
    cfg = PipelineConfig.from_yaml(p)
    try:
        cfg.load_grid()
    except ConfigError as exc:
        raise ConfigError(f"{p}: grid: {exc}") from None
    return cfg


def load_grid(name: str | Path, base: Path | None = None) -> GridConfig:
    """Read and validate a grid by name or path."""
    return GridConfig.from_yaml(find_grid(str(name), base).resolve())
