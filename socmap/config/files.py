"""YAML files of pipelines and grids: reading, ``${ENV}`` expansion, relative paths, the shipped regions and grids,
and validation errors that name the file and the dotted key.

Nothing here knows the schema (:mod:`socmap.config.schema`): :func:`validate_yaml` validates any pydantic class,
so the schema can read a grid file and :mod:`socmap.config.loading` a pipeline without an import cycle.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from socmap.config.secrets import check_no_credentials
from socmap.errors import ConfigError


def socmap_home() -> Path:
    """Folder for socmap's caches and the generated demo world (``$SOCMAP_HOME``, default ~/.cache/socmap)."""
    return Path(os.environ.get("SOCMAP_HOME", Path.home() / ".cache" / "socmap")).expanduser()


# ------------------------------------------------------------------------------------------- YAML
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any) -> Any:
    """Expand ``${VAR}`` in every string of a parsed YAML (SOCMAP_HOME gets its default)."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "SOCMAP_HOME":
                return str(socmap_home())
            return os.environ.get(name, m.group(0))

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def resolve_path(path: str | None, source_file: Path | None) -> str | None:
    """``path`` made absolute against ``source_file``'s folder (URLs, absolute paths and ``None`` pass through)."""
    if path is None or "://" in path or source_file is None:
        return path
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (source_file.parent / p).resolve())


def _read_yaml(path: Path) -> dict[str, Any]:
    """The mapping at the top of the YAML file ``path``, credentials refused and ``${ENV}`` expanded."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    check_no_credentials(path, data)
    return _expand(data)


# ------------------------------------------------------------------------------ validation, shipped files
def _format_error(path: Path, exc: ValidationError) -> str:
    """One line per problem: ``FILE: dotted.key: message``; the first is the headline."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "required value missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and kind not in ("missing",) and not isinstance(err["input"], dict | list):
                msg += f" (got {err['input']!r})"
        parts.append(f"{loc}: {msg}")
    return f"{path}: " + "; ".join(parts)


def _builtin_dir(kind: str) -> Path:
    return Path(str(resources.files("socmap").joinpath("resources", kind)))


def list_regions() -> list[str]:
    """Names of the shipped pipelines (``pipelines/*.yaml``)."""
    return sorted(p.stem for p in _builtin_dir("pipelines").glob("*.yaml"))


def find_pipeline(region: str) -> Path:
    """Path of the shipped pipeline for ``region``."""
    path = _builtin_dir("pipelines") / f"{region}.yaml"
    if not path.is_file():
        raise ConfigError(f"no pipeline for region {region!r}; shipped: {', '.join(list_regions())} "
                          "(or pass --pipeline FILE)")
    return path


def find_grid(name: str, base: Path | None = None) -> Path:
    """Path of grid ``name``: a YAML path (relative to ``base``) or a shipped grid name."""
    cand = Path(name).expanduser()
    if cand.suffix in (".yaml", ".yml"):
        if not cand.is_absolute() and base is not None:
            cand = base / cand
        if cand.is_file():
            return cand
        raise ConfigError(f"grid file {cand} not found")
    path = _builtin_dir("grids") / f"{name}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in _builtin_dir("grids").glob("*.yaml"))
        raise ConfigError(f"no grid named {name!r}; shipped: {', '.join(shipped)}")
    return path


Model = TypeVar("Model", bound=BaseModel)


def validate_yaml(cls: type[Model], path: Path) -> Model:
    """``cls`` validated from the YAML at ``path``; every problem is reported in one :class:`ConfigError` naming the
    file and the dotted key of each."""
    try:
        return cls.model_validate(_read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from None
