"""Survey column mappings: how to read one soil table without writing code (``socmap prepare --mapping``).

A mapping is a small YAML file that names the columns of a survey (x, y, CRS, SOC and its unit, horizon
depths, date or year, profile id, source) and the survey-specific choices of harmonisation (what to do with
rows that have no date, which dates are placeholders, how much of 0-30 cm a profile must cover).
``socmap/data/mappings/<name>.yaml`` holds the shipped ones (``demo``, ``afsp``); any other path works too.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from socmap.errors import ConfigError

__all__ = ["SOC_UNITS", "SurveyMapping", "list_mappings", "load_mapping"]

#: SOC units a mapping may name, with the factor that turns a value into g/kg of soil organic carbon.
#: Organic-matter units are divided by the mapping's ``om_factor`` (van Bemmelen 1.724 by default) first.
SOC_UNITS: dict[str, float] = {
    "g/kg": 1.0,
    "permille": 1.0,  # 1 permille = 1 g/kg
    "mg/g": 1.0,
    "percent": 10.0,  # 1 % by mass = 10 g/kg
    "om_percent": 10.0,  # organic matter in %, then / om_factor
    "om_g/kg": 1.0,  # organic matter in g/kg, then / om_factor
}
_UNIT_ALIASES = {
    "g kg-1": "g/kg", "g/kg": "g/kg", "gkg": "g/kg", "g_per_kg": "g/kg",
    "permille": "permille", "‰": "permille", "per mille": "permille",
    "mg/g": "mg/g",
    "%": "percent", "percent": "percent", "pct": "percent",
    "om%": "om_percent", "om_percent": "om_percent", "om_pct": "om_percent",
    "om_g/kg": "om_g/kg", "om g/kg": "om_g/kg",
}


class SurveyMapping(BaseModel):
    """Column names and harmonisation choices of one soil survey table (one row per horizon or point)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Short name used in reports (``afsp``, ``demo``)."""
    description: str = ""
    profile_id: str
    """Column holding the profile (site) id; horizons of one profile share it."""
    sample_id: str | None = None
    """Column holding the lab sample id (optional; only reported)."""
    x: str | None
    """Column of the x coordinate (longitude for geographic CRSs); ``null`` = GeoPackage point geometry."""
    y: str | None
    """Column of the y coordinate (latitude for geographic CRSs); ``null`` = GeoPackage point geometry."""
    crs: str | None = "EPSG:4326"
    """CRS of x/y, anything pyproj understands; ``null`` = the GeoPackage layer's own CRS."""
    soc: str
    """Column of the SOC (or organic matter) value."""
    soc_unit: str
    """One of g/kg, permille, mg/g, percent, om_percent, om_g/kg (aliases: %, ‰, pct, om%)."""
    om_factor: Annotated[float, Field(gt=1.0)] = 1.724
    """Organic matter / organic carbon ratio for ``om_*`` units (van Bemmelen factor 1.724)."""
    top: str | None = None
    """Column of the horizon's upper depth; ``null`` with ``fixed_depth_cm`` for point surveys."""
    bottom: str | None = None
    """Column of the horizon's lower depth."""
    depth_unit: Literal["cm", "m", "mm"] = "cm"
    fixed_depth_cm: tuple[float, float] | None = None
    """(top, bottom) cm of every sample of a survey without depth columns (e.g. LUCAS 0-20 cm)."""
    date: str | None = None
    """Column of the sampling date (parsed to a year); tried before ``year``."""
    year: str | None = None
    """Column of the sampling year (used where ``date`` is missing or unparseable)."""
    source: str | None = None
    """Column naming the source database of each row (e.g. AfSPDB, Af_soilspec)."""
    source_name: str | None = None
    """Source label of every row when there is no ``source`` column (default: the file's stem)."""
    placeholder_dates: dict[str, str] = Field(default_factory=dict)
    """Per source, a date (YYYY-MM-DD) that is a placeholder, not the real sampling date: the year is kept
    but flagged ``year_is_placeholder``."""
    default_year: int | dict[str, int] | None = None
    """Year given to rows without any date: one int, or per source; ``null`` = drop them as incomplete
    metadata. Filled years are flagged ``year_is_placeholder``."""
    covariates: dict[str, str] = Field(default_factory=dict)
    """Survey columns harmonised like SOC (depth-weighted) and kept as possible covariates:
    ``{covariate name: column}``, e.g. ``{ph_h2o: PHIHOX}``."""
    covariate_units: dict[str, str] = Field(default_factory=dict)
    """Unit of each survey covariate (reported only), e.g. ``{clay_pct: "%"}``."""
    layer: str | None = None
    """GeoPackage layer (default: the first)."""
    csv_sep: str = ","

    source_file: Path | None = Field(default=None, exclude=True)

    @field_validator("soc_unit")
    @classmethod
    def _unit(cls, v: str) -> str:
        key = _UNIT_ALIASES.get(v.strip().lower()) or _UNIT_ALIASES.get(v.strip())
        if key is None:
            raise ValueError(f"unknown SOC unit {v!r}; use one of {', '.join(SOC_UNITS)}")
        return key

    @field_validator("crs")
    @classmethod
    def _crs(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(v)
        except CRSError:
            raise ValueError(f"unknown CRS {v!r}; give an EPSG code such as EPSG:4326 or a WKT/PROJ "
                             "string") from None
        return v

    @model_validator(mode="after")
    def _depths(self) -> SurveyMapping:
        if self.fixed_depth_cm is None and (self.top is None or self.bottom is None):
            raise ValueError("give the depth columns 'top' and 'bottom', or 'fixed_depth_cm: [top, bottom]'")
        if self.fixed_depth_cm is not None and not self.fixed_depth_cm[1] > self.fixed_depth_cm[0]:
            raise ValueError(f"fixed_depth_cm must be [top, bottom] with bottom > top, "
                             f"got {self.fixed_depth_cm}")
        if (self.x is None) != (self.y is None):
            raise ValueError("give both 'x' and 'y' columns, or neither (GeoPackage point geometry)")
        return self

    @property
    def soc_factor(self) -> float:
        """Factor turning a value in ``soc_unit`` into SOC g/kg."""
        f = SOC_UNITS[self.soc_unit]
        return f / self.om_factor if self.soc_unit.startswith("om_") else f

    @property
    def depth_factor(self) -> float:
        """Factor turning a depth in ``depth_unit`` into cm."""
        return {"cm": 1.0, "m": 100.0, "mm": 0.1}[self.depth_unit]

    def required_columns(self) -> list[str]:
        """Columns a table must have for this mapping (covariate columns included)."""
        cols = [self.profile_id, self.soc, self.x, self.y, self.top, self.bottom, self.date, self.year,
                self.source, self.sample_id, *self.covariates.values()]
        return [c for c in cols if c is not None]

    @property
    def label(self) -> str:
        """Where this mapping came from, for messages."""
        return str(self.source_file) if self.source_file else f"mapping {self.name!r}"


def _mapping_dir() -> Path:
    return Path(str(resources.files("socmap.data").joinpath("mappings")))


def list_mappings() -> list[str]:
    """Names of the shipped mappings (``socmap/data/mappings/*.yaml``)."""
    return sorted(p.stem for p in _mapping_dir().glob("*.yaml"))


def load_mapping(name_or_path: str | Path | SurveyMapping) -> SurveyMapping:
    """A shipped mapping by name (``afsp``, ``demo``) or a mapping YAML by path, validated.

    Raises:
        ConfigError: the file is missing, not YAML, or a key is unknown/wrong; the message names the file.
    """
    if isinstance(name_or_path, SurveyMapping):
        return name_or_path
    p = Path(name_or_path).expanduser()
    if not p.suffix and not p.is_file():  # a folder named like the mapping is no mapping
        p = _mapping_dir() / f"{name_or_path}.yaml"
        if not p.is_file():
            raise ConfigError(f"no shipped mapping named {str(name_or_path)!r}; shipped: "
                              f"{', '.join(list_mappings())} (or give a mapping YAML path)")
    if not p.is_file():
        raise ConfigError(f"mapping file {p} not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a mapping must be a YAML dictionary of column names")
    data.setdefault("name", p.stem)
    try:
        m = SurveyMapping.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}")
        raise ConfigError(f"{p}: " + "; ".join(parts)) from None
    m.source_file = p
    return m
