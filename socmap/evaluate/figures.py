"""The report's figures (matplotlib, Agg backend, PNG): the paper's Figures 11-14 for the data at hand.

Each function draws one figure from plain arrays and saves it to ``path`` (the caller decides where; the report
writes them into its temporary folder, which is renamed into place as a whole).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from socmap.metrics import rmse

__all__ = ["ensemble_size_figure", "pred_vs_obs_figure", "reliability_figure", "residual_map_figure"]

DPI = 110


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def pred_vs_obs_figure(path: Path, observed_gkg: np.ndarray, predictions_gkg: dict[str, np.ndarray]) -> Path:
    """Predicted vs observed SOC (g/kg, log-log axes), one hexbin density panel per method, 1:1 line."""
    plt = _plt()
    from matplotlib import ticker

    n = len(predictions_gkg)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.0), squeeze=False, constrained_layout=True)
    y = np.asarray(observed_gkg, float)
    lo = max(0.1, float(np.nanmin([y.min(), *(np.nanmin(p) for p in predictions_gkg.values())])) * 0.8)
    hi = float(np.nanmax([y.max(), *(np.nanmax(p) for p in predictions_gkg.values())])) * 1.25
    gridsize = int(np.clip(np.sqrt(len(y)), 8, 45))
    for ax, (name, pred) in zip(axes[0], predictions_gkg.items(), strict=True):
        hb = ax.hexbin(y, np.asarray(pred, float), xscale="log", yscale="log", gridsize=gridsize, mincnt=1,
                       cmap="viridis", extent=(np.log10(lo), np.log10(hi), np.log10(lo), np.log10(hi)))
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers at the decades only; minor labels collide
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(f"{name} (RMSE {float(rmse(y, pred)):.2f} g/kg)")
        ax.set_xlabel("observed SOC, g/kg")
        ax.set_ylabel("predicted SOC, g/kg")
        fig.colorbar(hb, ax=ax, label="points per cell")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def reliability_figure(path: Path, levels: np.ndarray, curves: dict[str, np.ndarray]) -> Path:
    """Reliability diagram: nominal level of the predictive's central interval (Gaussian before calibration, the
    calibrated predictive's own after it) vs its empirical coverage."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4), constrained_layout=True)
    ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--", label="perfect")
    for (name, cov), marker in zip(curves.items(), "os^v", strict=False):
        ax.plot(levels, cov, marker=marker, ms=4, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("empirical coverage (test)")
    ax.set_title("Reliability of the central intervals, log(1 + SOC)")
    ax.legend(loc="upper left")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def ensemble_size_figure(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Epistemic fraction and RMSE (g/kg) against ensemble size M (post-hoc member subsets)."""
    plt = _plt()
    m = [r["members"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.6), constrained_layout=True)
    a1.plot(m, [r["epistemic_fraction"] for r in rows], marker="o")
    a1.set_xlabel("ensemble size M")
    a1.set_ylabel("epistemic fraction")
    a1.set_ylim(bottom=0)
    a2.plot(m, [r["rmse_gkg"] for r in rows], marker="o", color="C1")
    a2.set_xlabel("ensemble size M")
    a2.set_ylabel("test RMSE, g/kg")
    for ax in (a1, a2):
        ax.set_xticks(m)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def residual_map_figure(path: Path, lon: np.ndarray, lat: np.ndarray, residual_gkg: np.ndarray,
                        title: str = "test residuals (observed - predicted), g/kg") -> Path:
    """Residuals on a lon/lat map, diverging colours clipped at the 95th percentile of |residual|."""
    plt = _plt()
    r = np.asarray(residual_gkg, float)
    lim = float(np.nanquantile(np.abs(r), 0.95)) or 1.0
    fig, ax = plt.subplots(figsize=(5.6, 5.0), constrained_layout=True)
    sc = ax.scatter(lon, lat, c=r, cmap="RdBu", vmin=-lim, vmax=lim, s=14, edgecolors="none")
    fig.colorbar(sc, ax=ax, label="residual, g/kg")
    ax.set_xlabel("longitude, deg")
    ax.set_ylabel("latitude, deg")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
