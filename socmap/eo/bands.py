"""Band metadata of the three image modalities, in the order and units TerraMind expects.

``S2L2A``: the 11 Sentinel-2 L2A bands of the paper's section 4.2 (B01, coastal aerosol, is left out; B10,
cirrus, is not in L2A). Values are DN = 10000 x bottom-of-atmosphere reflectance with the processing-baseline
04.00 ``BOA_ADD_OFFSET`` (+1000) removed, so scenes of both baselines agree. NaN = no clear observation.

``S1GRD``: VV and VH backscatter in dB (10 log10 of the linear, terrain-flattened gamma0 of a map-projected
product such as Planetary Computer's ``sentinel-1-rtc``; GRD in radar geometry cannot be placed on a grid).

``DEM``: elevation above the geoid in metres (Copernicus GLO-30), resampled bilinearly onto the 10 m patch grid.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BANDS",
    "DEM_ASSET",
    "S1_ASSETS",
    "S1_BANDS",
    "S2_BANDS",
    "S2_COVARIATE_BANDS",
    "S2_INVALID_SCL",
    "S2_OFFSET_BASELINE",
    "UNITS",
    "Band",
]


@dataclass(frozen=True)
class Band:
    """One output band: name, STAC asset key, unit and centre wavelength (um; 0 for SAR/DEM)."""

    name: str
    asset: str
    unit: str
    wavelength_um: float = 0.0
    native_res_m: float = 10.0


S2_BANDS: tuple[Band, ...] = (
    Band("B02", "B02", "DN", 0.490, 10),  # blue
    Band("B03", "B03", "DN", 0.560, 10),  # green
    Band("B04", "B04", "DN", 0.665, 10),  # red
    Band("B05", "B05", "DN", 0.705, 20),  # red edge 1
    Band("B06", "B06", "DN", 0.740, 20),  # red edge 2
    Band("B07", "B07", "DN", 0.783, 20),  # red edge 3
    Band("B08", "B08", "DN", 0.842, 10),  # broad NIR
    Band("B8A", "B8A", "DN", 0.865, 20),  # narrow NIR
    Band("B09", "B09", "DN", 0.945, 60),  # water vapour
    Band("B11", "B11", "DN", 1.610, 20),  # SWIR 1
    Band("B12", "B12", "DN", 2.190, 20),  # SWIR 2
)
"""Sentinel-2 L2A output bands, TerraMind order (Planetary Computer / demo asset keys)."""

S1_BANDS: tuple[Band, ...] = (Band("VV", "vv", "dB"), Band("VH", "vh", "dB"))
S1_ASSETS = tuple(b.asset for b in S1_BANDS)
DEM_ASSET = "data"
"""Asset key of the elevation raster in ``cop-dem-glo-30`` (Planetary Computer's)."""

BANDS: dict[str, list[str]] = {
    "S2L2A": [b.name for b in S2_BANDS],
    "S1GRD": [b.name for b in S1_BANDS],
    "DEM": ["DEM"],
}
"""Modality -> band names, the ``bands`` attribute of ``patches.zarr``."""

UNITS: dict[str, str] = {
    "S2L2A": "DN = 10000 x surface reflectance (baseline-04.00 offset removed)",
    "S1GRD": "dB (10 log10 gamma0, terrain corrected)",
    "DEM": "m",
}

S2_INVALID_SCL: frozenset[int] = frozenset({0, 1, 3, 8, 9, 10})
"""SCL classes masked out: no data, saturated/defective, cloud shadow, cloud medium/high probability, cirrus."""

S2_OFFSET_BASELINE = "04.00"
"""From this ``s2:processing_baseline`` on, L2A DN carry +1000 (BOA_ADD_OFFSET); removed on read."""
S2_BOA_ADD_OFFSET = 1000.0

S2_COVARIATE_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
"""Blue, green, red, NIR, SWIR1, SWIR2: the spectral-statistics bands of the paper's Table 2."""


def s2_offset(baseline: str | None) -> float:
    """DN to add to a scene of this processing baseline so that DN = 10000 x reflectance.

    Chosen from ``s2:processing_baseline`` and not from the acquisition date or ``raster:bands`` offset: the date
    misplaces reprocessed archives and some catalogues advertise a wrong offset. A missing baseline is treated as
    new (>= 04.00), which every scene processed since 2022-01-25 is.
    """
    if baseline is None:
        return -S2_BOA_ADD_OFFSET
    try:
        major, minor = (int(p) for p in str(baseline).split(".")[:2])
    except ValueError:
        return -S2_BOA_ADD_OFFSET
    ref_major, ref_minor = (int(p) for p in S2_OFFSET_BASELINE.split("."))
    return -S2_BOA_ADD_OFFSET if (major, minor) >= (ref_major, ref_minor) else 0.0
