"""A small synthetic map with known truth and a known error model, for the aggregation tests.

Log(1 + SOC) truth ``t`` on a 50 m grid (EPSG:32737); the ensemble's map is ``t - e_epi - e_res``: the members
scatter around the map like the truth does (``e_epi`` and each member's deviation are draws of one coherent
field), and the residual error ``e_res`` is a spatially correlated field plus a nugget, with the sd the map's
aleatoric layer claims. So a correct zone interval must cover the true zone mean at its nominal rate, and an
interval that takes cells as independent must not.
"""

from __future__ import annotations

import numpy as np
from rasterio.transform import from_origin

from socmap.aggregate.stage import MapLayers
from socmap.demo.fields import gaussian_field

CRS = "EPSG:32737"
RES = 50.0


def synthetic_map(seed: int, n: int = 120, members: int = 5, sd_epi: float = 0.06, sd_res: float = 0.15,
                  nugget: float = 0.3, corr_px: float = 8.0) -> tuple[MapLayers, np.ndarray, np.ndarray, np.ndarray]:
    """(layers, truth g/kg grid, log residuals (n, n), total log sd (n, n)) of one realisation."""
    rng = np.random.default_rng(seed)
    shape = (n, n)
    truth_log = 2.6 + 0.5 * gaussian_field(rng, shape, 25.0)
    scale = 1.0 + 0.5 * (gaussian_field(rng, shape, 30.0) > 0)  # sd varies across the map: 1x or 1.5x
    s_res = sd_res * scale
    s_epi = sd_epi * scale

    def epi_draw() -> np.ndarray:
        return s_epi * gaussian_field(rng, shape, corr_px * 2)

    e_res = s_res * (np.sqrt(1 - nugget) * gaussian_field(rng, shape, corr_px) + np.sqrt(nugget)
                     * rng.standard_normal(shape))
    e_epi = epi_draw()
    centre = truth_log - e_epi - e_res
    dev = np.stack([epi_draw() for _ in range(members)])
    dev = (dev - dev.mean(axis=0)) * np.sqrt(members / (members - 1))  # member spread (ddof=1) ~ s_epi
    mem_log = centre[None] + dev
    ens_log = mem_log.mean(axis=0)
    epi_var_log = mem_log.var(axis=0, ddof=1)
    d = np.exp(ens_log) ** 2  # delta method to (g/kg)^2
    layers = MapLayers(soc=np.expm1(ens_log), aleatoric_var=d * s_res**2, epistemic_var=d * epi_var_log,
                       total_sd=np.sqrt(d * (s_res**2 + epi_var_log)), aoa=np.zeros(shape), members=np.expm1(mem_log),
                       transform=from_origin(250_000.0, 9_600_000.0, RES, RES), crs=CRS)
    total_sd_log = np.sqrt(s_res**2 + epi_var_log)
    return layers, np.expm1(truth_log), truth_log - ens_log, total_sd_log


def heldout_points(layers: MapLayers, resid: np.ndarray, sd: np.ndarray, n_points: int, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(xy km, standardised residuals) at ``n_points`` random cells, like a bundle's held-out nodes."""
    rng = np.random.default_rng(seed + 1000)
    rows, cols = layers.shape
    idx = rng.choice(rows * cols, n_points, replace=False)
    r, c = idx // cols, idx % cols
    return layers.cell_points(r, c), resid[r, c] / sd[r, c]
