"""A PNG of zone means with their intervals (and the naive independent-cells interval beside them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from socmap.io import atomic_path

__all__ = ["zone_chart"]


def zone_chart(table: pd.DataFrame, path: Path, *, level: float, title: str, max_zones: int = 40) -> Path:
    """Horizontal bars: each zone's area-weighted mean SOC (g/kg) with its interval at ``level`` (thick) and the
    naive interval (thin, grey); the ``max_zones`` largest zones, sorted by mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table[np.isfinite(table["soc_mean_gkg"])]
    t = t.nlargest(max_zones, "area_km2").sort_values("soc_mean_gkg")
    n = max(len(t), 1)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.28 * n), dpi=110)
    y = np.arange(len(t))
    m = t["soc_mean_gkg"].to_numpy()
    ax.hlines(y, t["naive_lo_gkg"], t["naive_hi_gkg"], color="0.6", lw=6, alpha=0.5,
              label=f"naive {level:.0%} (cells independent)")
    ax.hlines(y, t["soc_lo_gkg"], t["soc_hi_gkg"], color="tab:brown", lw=2,
              label=f"{level:.0%} interval (correlated errors)")
    ax.plot(m, y, "o", color="k", ms=4, label="zone mean")
    ax.set_yticks(y, [str(z)[:28] for z in t["zone"]], fontsize=8)
    ax.set_xlabel("area-weighted mean topsoil SOC, 0-30 cm (g/kg)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
