"""Soil data: survey mappings, harmonisation to topsoil SOC (g/kg), splits, raster covariates, preprocessing.

:func:`socmap.data.prepare.run` is the stage (``socmap prepare``); the other names are its building blocks.
"""

from __future__ import annotations

from socmap.data.columns import SOC_UNITS, SurveyMapping, list_mappings, load_mapping
from socmap.data.covariates import LayerSample, sample_raster
from socmap.data.harmonise import RULES, Ledger, depth_weight, harmonise_rows, merge_sites
from socmap.data.prepare import REPORT_FILE, SAMPLE_COLUMNS, SAMPLES_FILE, PrepareResult
from socmap.data.preprocess import PREPROCESS_FILE, REFERENCE_FILE, Preprocessor
from socmap.data.readers import read_table
from socmap.data.samples import LOCATED, TARGET, read_samples
from socmap.data.split import SPLITS, block_split, stratified_split

__all__ = [
    "LOCATED",
    "PREPROCESS_FILE",
    "REFERENCE_FILE",
    "REPORT_FILE",
    "RULES",
    "SAMPLES_FILE",
    "SAMPLE_COLUMNS",
    "SOC_UNITS",
    "SPLITS",
    "TARGET",
    "LayerSample",
    "Ledger",
    "PrepareResult",
    "Preprocessor",
    "SurveyMapping",
    "block_split",
    "depth_weight",
    "harmonise_rows",
    "list_mappings",
    "load_mapping",
    "merge_sites",
    "read_samples",
    "read_table",
    "sample_raster",
    "stratified_split",
]
