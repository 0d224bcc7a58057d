"""Earth observation (paper section 4.2, Table 2): STAC search, annual composites, patches, image covariates.

:func:`socmap.eo.extract.run` is the stage (``socmap extract``); ``annual_composite`` / ``build_composite`` (a lazy
annual composite of a box on a regular grid) and ``cut_patches`` (patches around points) are the pieces the mapping job
reuses.
"""

from socmap.eo.bands import BANDS, S1_BANDS, S2_BANDS, UNITS
from socmap.eo.composite import (
    AnnualComposite,
    SceneSet,
    aligned_geobox,
    annual_composite,
    build_composite,
    horn_terrain,
)
from socmap.eo.covariates import COVARIATE_COLUMNS, COVARIATE_UNITS
from socmap.eo.extract import ExtractResult, imagery_year_for
from socmap.eo.patches import cut_patches, group_samples, patch_bounds, utm_epsg
from socmap.eo.stac import StacSource
from socmap.eo.store import MODALITIES, PatchStore, open_patches

__all__ = [
    "BANDS",
    "COVARIATE_COLUMNS",
    "COVARIATE_UNITS",
    "MODALITIES",
    "S1_BANDS",
    "S2_BANDS",
    "UNITS",
    "AnnualComposite",
    "ExtractResult",
    "PatchStore",
    "SceneSet",
    "StacSource",
    "aligned_geobox",
    "annual_composite",
    "build_composite",
    "cut_patches",
    "group_samples",
    "horn_terrain",
    "imagery_year_for",
    "open_patches",
    "patch_bounds",
    "utm_epsg",
]
