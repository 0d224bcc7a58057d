"""Score an ensemble's predictions and the baselines, and write the report folder (paper section 5).

``score_predictions`` turns predictions into one nested dict of numbers (everything goes to report.json);
``write_report`` renders it as report.md with the paper's table layouts (Tables 4, 7-10, 11, 12 where they apply)
plus the figures, and writes the whole folder atomically.

Scales (said again in the report): point metrics on SOC in g/kg, the point prediction being expm1 of the
predictive mean on log(1 + SOC) (the log-normal median); every distributional metric (ECE, NLL, CRPS, coverage,
interval width, epistemic fraction, z diagnostics) on log(1 + SOC), where the model's Gaussian lives.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from socmap.evaluate.baselines import BaselineResult
from socmap.evaluate.bootstrap import N_BOOT, point_metrics, rmse_ratio, uncertainty_metrics
from socmap.evaluate.diagnostics import z_diagnostics
from socmap.evaluate.figures import (
    ensemble_size_figure,
    pred_vs_obs_figure,
    reliability_figure,
    residual_map_figure,
)
from socmap.evaluate.skill import skill_markdown
from socmap.io import (
    FIG_ENSEMBLE_SIZE,
    FIG_PRED_VS_OBS,
    FIG_RELIABILITY,
    FIG_RESIDUAL_MAP,
    REPORT_JSON,
    REPORT_MD,
    atomic_path,
    json_safe,
)
from socmap.metrics import ECE_LEVELS, coverage_width, ece, epistemic_fraction, gaussian_nll, mape, rmse

if TYPE_CHECKING:
    from socmap.inference.calibration import Calibration
    from socmap.inference.predictive import EnsemblePrediction

__all__ = ["FigureData", "ensemble_size_table", "score_predictions", "write_report"]

SCALES = ("Point metrics (MAE, RMSE, MAPE, R2) are on SOC in g/kg; the SpTGNN point prediction is the expectation "
          "of its calibrated predictive (the map's soc_mean); 'SpTGNN (median)' is expm1 of its predictive mean on "
          "log(1 + SOC), the median of the implied log-normal (the map's soc_median), as the paper scores it. "
          "XGBoost and RFSI-like are expm1 of a log prediction (medians) and, '(smeared)', means by Duan's "
          "smearing. Distributional metrics (ECE, "
          "NLL, CRPS, Cov@95, MPIW@95, epistemic fraction, z diagnostics) are on log(1 + SOC g/kg), where the "
          "model's Gaussian lives; coverage is the same on both scales, MPIW is also given in g/kg.")


@dataclass
class FigureData:
    """The arrays behind the figures (rows = the evaluated split)."""

    observed_gkg: np.ndarray
    predictions_gkg: dict[str, np.ndarray]
    lon: np.ndarray
    lat: np.ndarray


def ensemble_size_table(raw: EnsemblePrediction, calibration: Calibration | float, y_log: np.ndarray,
                        mask: np.ndarray, dist_km: np.ndarray | None = None,
                        di: np.ndarray | None = None) -> list[dict]:
    """Table 9: accuracy and calibration of the first M members, M = 1..M_total, no retraining.

    Each subset is re-aggregated by eq. 6 (``raw.subset``) and calibrated by the full ensemble's ``calibration``
    (a bare T for eq. 7 alone) at the rows' distances ``dist_km`` from the training sites and their DI ``di``; g/kg
    figures score its
    expectation, ECE and ``cov95_predictive`` its own intervals.
    """
    calib = _as_calibration(calibration)
    n_members = int(np.asarray(raw.member_mean).shape[0])
    y_gkg = np.expm1(y_log)
    rows = []
    for m in range(1, n_members + 1):
        sub = calib.apply(raw.subset(list(range(m))), dist_km, di)
        mu = np.asarray(sub.mean)[mask]
        point = sub.mean_gkg()[mask]
        a, e = np.asarray(sub.aleatoric_var)[mask], np.asarray(sub.epistemic_var)[mask]
        sigma = np.sqrt(a + e)
        rows.append({
            "members": m,
            "rmse_gkg": float(rmse(y_gkg, point)),
            "rmse_log": float(rmse(y_log, mu)),
            "mape": float(mape(y_gkg, point)),
            "nll": float(gaussian_nll(y_log, mu, a + e)),
            "ece": float(ece(y_log, mu, sigma, dof=sub.tail_dof)),
            "cov95_vp": float(coverage_width(y_log, mu, sigma, method="vp")[0]),
            "cov95_gaussian": float(coverage_width(y_log, mu, sigma)[0]),
            "cov95_predictive": float(coverage_width(y_log, mu, sigma, method="predictive", dof=sub.tail_dof)[0]),
            "epistemic_fraction": float(epistemic_fraction(a, e)),
        })
    return rows


def score_predictions(samples: pd.DataFrame, raw: EnsemblePrediction, calibration: Calibration | float, *,
                      baselines: dict[str, BaselineResult] | None = None, eval_split: str = "test",
                      n_boot: int = N_BOOT, seed: int = 0, dist_km: np.ndarray | None = None,
                      di: np.ndarray | None = None) -> tuple[dict[str, Any], FigureData]:
    """Every number of the report for one model on one split, and the arrays its figures need.

    ``raw``: uncalibrated predictions for every row of ``samples`` (in order); ``calibration``: the bundle's
    (:attr:`socmap.inference.Bundle.calibration`; a bare T for eq. 7 alone), applied at ``dist_km``, each row's
    distance from the nearest training site (km; None: the distance pieces are left out), and ``di``, each row's
    dissimilarity index (None: the growth's DI factor is left out); ``baselines``:
    predictions for the ``eval_split`` rows. All bootstrap intervals share one ``seed``, so they are paired across
    methods and across pre/post calibration.
    """
    calib = _as_calibration(calibration)
    split = samples["split"].to_numpy()
    mask = split == eval_split
    if not mask.any():
        raise ValueError(f"no {eval_split!r} rows in samples")
    if len(raw.mean) != len(samples):
        raise ValueError(f"predictions have {len(raw.mean)} rows, samples {len(samples)}")
    y_gkg_all = samples["soc_gkg"].to_numpy(dtype=np.float64)
    y_log_all = np.log1p(y_gkg_all)
    cal = calib.apply(raw, dist_km, di)
    y_gkg, y_log = y_gkg_all[mask], y_log_all[mask]
    pred = {"SpTGNN": cal.mean_gkg()[mask], "SpTGNN (median)": np.expm1(np.asarray(raw.mean, float)[mask])}
    pred.update(baseline_predictions(baselines))

    report: dict[str, Any] = {"eval_split": eval_split, "n_eval": int(mask.sum()), "scales": SCALES,
                              "counts": {str(k): int(v) for k, v in pd.Series(split).value_counts().items()}}
    report["point"] = {name: point_metrics(y_gkg, p, n_boot=n_boot, seed=seed) for name, p in pred.items()}
    report["rmse_ratio"] = ratio_rows(y_gkg, pred, n_boot=n_boot, seed=seed)
    report["top_error_share"] = top_error_share(y_gkg, pred)
    if dist_km is not None:
        report["by_distance"] = error_by_distance(y_gkg, pred, np.asarray(dist_km, np.float64)[mask])
    other = "val" if eval_split == "test" else None
    if other is not None and (split == other).any():
        vm = split == other
        report["point_val"] = {"SpTGNN": point_metrics(y_gkg_all[vm], cal.mean_gkg()[vm], n_boot=n_boot, seed=seed),
                               "SpTGNN (median)": point_metrics(y_gkg_all[vm], np.expm1(np.asarray(raw.mean)[vm]),
                                                                n_boot=n_boot, seed=seed)}

    unc: dict[str, Any] = {"temperature": float(calib.temperature), "distance_power": float(calib.distance_power)}
    diag: dict[str, Any] = {}
    for tag, p in (("pre", raw), ("post", cal)):
        mu = np.asarray(p.mean, float)[mask]
        a, e = np.asarray(p.aleatoric_var, float)[mask], np.asarray(p.epistemic_var, float)[mask]
        unc[tag] = uncertainty_metrics(y_log, mu, a, e, n_boot=n_boot, seed=seed, dof=p.tail_dof)
        diag[tag] = z_diagnostics(y_log, mu, np.sqrt(a + e), seed=seed)
    report["uncertainty"] = unc
    report["diagnostics"] = diag
    report["ensemble_size"] = ensemble_size_table(raw, calib, y_log, mask, dist_km, di)
    report["calibration"] = calib.to_info()
    report["mean_var_cap"] = calib.mean_var_cap
    report["tail_dof"] = calib.tail_dof
    report["members"] = int(np.asarray(raw.member_mean).shape[0])
    if baselines:
        report["baselines"] = {k: {"seconds": round(v.seconds, 2), "params": v.params} for k, v in baselines.items()}
    fig = FigureData(observed_gkg=y_gkg, predictions_gkg=pred,
                     lon=samples["lon"].to_numpy()[mask], lat=samples["lat"].to_numpy()[mask])
    return report, fig


def _as_calibration(calibration: Calibration | float) -> Calibration:
    from socmap.inference.calibration import Calibration

    return calibration if isinstance(calibration, Calibration) else Calibration(float(calibration))


def baseline_predictions(baselines: dict[str, BaselineResult] | None) -> dict[str, np.ndarray]:
    """Each baseline's predictions (g/kg) under its report label: as the paper runs it and, where fitted, smeared."""
    out: dict[str, np.ndarray] = {}
    for res in (baselines or {}).values():
        label = {"xgboost": "XGBoost", "rfsi": "RFSI-like XGBoost"}.get(res.name, res.name)
        out[label] = res.pred_gkg
        if res.smeared_gkg is not None:
            out[f"{label} (smeared)"] = res.smeared_gkg
    return out


DISTANCE_BINS_KM = (0.0, 0.5, 2.0, 10.0, 30.0, math.inf)
"""Edges (km) of :func:`error_by_distance`'s bins of distance to the nearest training site: co-located with a
survey cluster, within it, next to it, in the same landscape, off the data."""


def error_by_distance(y_gkg: np.ndarray, pred: dict[str, np.ndarray], dist_km: np.ndarray,
                      edges: tuple[float, ...] = DISTANCE_BINS_KM) -> list[dict[str, Any]]:
    """RMSE and MAE (g/kg) of every method within bins of distance to the nearest training site (``dist_km``,
    km, one per row): where the map's methods differ, which the pooled RMSE hides (on Africa's
    validation sites the RFSI-like baseline led within 0.5 km and the SpTGNN at 0.5-2 km). Empty bins are left
    out."""
    y, d = np.asarray(y_gkg, np.float64), np.asarray(dist_km, np.float64)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        m = (d >= lo) & (d < hi)
        if not m.any():
            continue
        err = {name: np.asarray(p, np.float64)[m] - y[m] for name, p in pred.items()}
        rows.append({"lo_km": lo, "hi_km": None if math.isinf(hi) else hi, "n": int(m.sum()),
                     "rmse": {k: float(np.sqrt(np.mean(e**2))) for k, e in err.items()},
                     "mae": {k: float(np.mean(np.abs(e))) for k, e in err.items()}})
    return rows


def top_error_share(y_gkg: np.ndarray, pred: dict[str, np.ndarray], fraction: float = 0.01) -> dict[str, float]:
    """Each method's share of its squared error (g/kg^2) that its largest ``fraction`` of errors carry: near 1,
    its RMSE follows a handful of sites (on Africa's validation sites the largest 1 % carried 69 %)."""
    y = np.asarray(y_gkg, np.float64)
    k = max(1, round(fraction * len(y)))
    out = {}
    for name, p in pred.items():
        e2 = np.sort((np.asarray(p, np.float64) - y) ** 2)[::-1]
        out[name] = float(e2[:k].sum() / e2.sum()) if e2.sum() > 0 else 0.0
    return out


def ratio_rows(y_gkg: np.ndarray, pred: dict[str, np.ndarray], *, n_boot: int, seed: int) -> dict[str, Any]:
    """The SpTGNN's RMSE (its expectation) over each baseline's, paired bootstrap 95 % intervals
    (:func:`~socmap.evaluate.bootstrap.rmse_ratio`); the accuracy bar is a ratio to the better XGBoost form."""
    return {name: rmse_ratio(y_gkg, pred["SpTGNN"], p, n_boot=n_boot, seed=seed)
            for name, p in pred.items() if not name.startswith("SpTGNN")}


# -------------------------------------------------------------------------------------------- rendering
def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float) and (abs(x) >= 1e4 or (0 < abs(x) < 10 ** -nd)):
        return f"{x:.2e}"
    return f"{x:.{nd}f}"


def _ci(m: dict[str, Any], nd: int = 3) -> str:
    s = _f(m["value"], nd)
    if "ci95" in m:
        s += f" [{_f(m['ci95'][0], nd)}, {_f(m['ci95'][1], nd)}]"
    return s


def _point_table(rows: dict[str, dict[str, Any]], uq: set[str]) -> list[str]:
    out = ["| Method | n | MAE | RMSE | MAPE % | R2 | UQ |", "|---|---|---|---|---|---|---|"]
    for name, pm in rows.items():
        out.append(f"| {name} | {pm['n']} | {_ci(pm['mae'], 2)} | {_ci(pm['rmse'], 2)} | {_ci(pm['mape'], 1)} | "
                   f"{_ci(pm['r2'])} | {'yes' if name in uq else ''} |")
    return out


def _ratio_lines(ratios: dict[str, Any] | None) -> list[str]:
    if not ratios:
        return []
    return ["", "SpTGNN RMSE / baseline RMSE (paired bootstrap 95 % interval; below 1: the SpTGNN is better): "
            + "; ".join(f"{name} {_ci(r)}" for name, r in ratios.items())]


def _top_share_lines(share: dict[str, float] | None) -> list[str]:
    if not share:
        return []
    return ["", "Share of the squared error in the largest 1 % of errors (near 1: the RMSE follows a handful of "
            "sites): " + "; ".join(f"{name} {v:.0%}" for name, v in share.items())]


def _distance_table(rows: list[dict[str, Any]] | None) -> list[str]:
    if not rows:
        return []
    names = list(rows[0]["rmse"])
    out = ["", "By distance to the nearest training site: RMSE (MAE), g/kg", "",
           "| distance, km | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for r in rows:
        span = f"{r['lo_km']:g}-{r['hi_km']:g}" if r["hi_km"] is not None else f">= {r['lo_km']:g}"
        out.append(f"| {span} | {r['n']} | "
                   + " | ".join(f"{_f(r['rmse'][k], 2)} ({_f(r['mae'][k], 2)})" for k in names) + " |")
    return out


def _header_lines(rep: dict[str, Any]) -> list[str]:
    """Title, where the numbers come from, the split and how to read the brackets."""
    meta = rep.get("meta", {})
    lines = [f"# socmap evaluation: {meta.get('pipeline', '')}", ""]
    for k in ("pipeline", "bundle", "data", "protocol"):
        if k in meta:
            lines.append(f"- {k}: `{meta[k]}`")
    lines += [f"- members: {rep['members']}, temperature T = {rep['uncertainty']['temperature']:.3f}",
              f"- evaluated on the `{rep['eval_split']}` split (n = {rep['n_eval']}); split sizes {rep['counts']}",
              "- brackets: percentile bootstrap 95 % intervals over the same resamples for every row (paired); "
              "ECE is a mean of absolute gaps, so its resampled values sit above the full-sample value on small "
              "sets and its interval can exclude it",
              "", f"**Scales.** {rep['scales']}", ""]
    return lines


def _point_section(rep: dict[str, Any], figs: dict[str, str]) -> list[str]:
    """Point predictions (g/kg) on the evaluated split, and the SpTGNN's on validation where scored."""
    lines = ["## Point predictions (cf. paper Table 10), g/kg", ""]
    lines += _point_table(rep["point"], {"SpTGNN"})
    lines += _ratio_lines(rep.get("rmse_ratio"))
    lines += _top_share_lines(rep.get("top_error_share"))
    lines += _distance_table(rep.get("by_distance"))
    lines += skill_markdown(rep.get("skill"))
    lines += ["", f"![predicted vs observed]({figs['pred_vs_obs']})", ""]
    if "point_val" in rep:
        lines += ["## SpTGNN on the validation split (cf. Table 4), g/kg", ""]
        lines += _point_table(rep["point_val"], {"SpTGNN"})
        lines += [""]
    return lines


def _calibration_section(rep: dict[str, Any], figs: dict[str, str]) -> list[str]:
    """Calibration metrics before and after temperature scaling, log(1 + SOC)."""
    unc = rep["uncertainty"]
    pre, post, t = unc["pre"], unc["post"], unc["temperature"]
    dof = rep.get("tail_dof")
    tails = ("Gaussian" if dof is None else f"Student t with {dof:.2f} degrees of freedom at the same variance "
             "(fitted on validation after T)")
    lines = [f"## Calibration before and after temperature scaling (cf. Table 7), log(1 + SOC); T = {t:.3f}", "",
             f"Post-calibration predictive tails: {tails}; {_growth_text(rep, unc)}, with the distance d to the "
             "nearest training site and the dissimilarity index DI. ECE and the "
             "predictive's Cov@95 score its own central intervals; NLL and CRPS are Gaussian on the same variance; "
             "pre-cal is the raw Gaussian.", "",
             "| Metric | Pre-cal | Post-cal |", "|---|---|---|"]
    for label, key, nd in (("ECE (20 levels, the predictive's intervals)", "ece", 3),
                           ("ECE (20 levels, Gaussian intervals)", "ece_gaussian", 3),
                           ("NLL (Gaussian)", "nll", 3), ("CRPS (Gaussian)", "crps", 3),
                           ("Cov@95, Vysochanskij-Petunin (-> 0.95)", "picp_vp", 3),
                           ("Cov@95, Gaussian (-> 0.95)", "picp_gaussian", 3),
                           ("Cov@95, the predictive's interval (-> 0.95)", "picp_predictive", 3)):
        lines.append(f"| {label} | {_ci(pre[key], nd)} | {_ci(post[key], nd)} |")
    for label, key, nd in (("MPIW@95, VP, log units", "mpiw_vp", 3), ("MPIW@95, VP, g/kg", "mpiw_vp_gkg", 2),
                           ("MPIW@95, Gaussian, log units", "mpiw_gaussian", 3),
                           ("MPIW@95, Gaussian, g/kg", "mpiw_gaussian_gkg", 2),
                           ("MPIW@95, the predictive's, g/kg", "mpiw_predictive_gkg", 2)):
        lines.append(f"| {label} | {_f(pre[key], nd)} | {_f(post[key], nd)} |")
    lines += ["", f"![reliability diagram]({figs['reliability']})", ""]
    return lines


def _decomposition_section(rep: dict[str, Any]) -> list[str]:
    """Aleatoric and epistemic variance after calibration, log(1 + SOC)^2."""
    post = rep["uncertainty"]["post"]
    return ["## Uncertainty decomposition, post-calibration (cf. Table 8), log(1 + SOC)^2", "",
            "| Quantity | Value |", "|---|---|",
            f"| Aleatoric variance (mean) | {_f(post['aleatoric_var_mean'])} |",
            f"| Epistemic variance (mean) | {_ci(post['epistemic_var_mean'])} |",
            f"| Total variance (mean) | {_f(post['total_var_mean'])} |",
            f"| Epistemic fraction (mean of per-point ratios) | {_ci(post['epistemic_fraction'])} |",
            f"| Pearson r(abs err, sigma) | {_f(post['corr_abs_error_sigma']['pearson'])} |",
            f"| Spearman r(abs err, sigma) | {_f(post['corr_abs_error_sigma']['spearman'])} |", ""]


def _ensemble_size_section(rep: dict[str, Any], figs: dict[str, str]) -> list[str]:
    """Scores of post-hoc member subsets, one column per ensemble size."""
    rows = rep["ensemble_size"]
    lines = ["## Ensemble size, post-hoc member subsets (cf. Table 9), scaled by the full ensemble's T", "",
             "| | " + " | ".join(f"M={r['members']}" for r in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for label, key, nd in (("RMSE, g/kg", "rmse_gkg", 3), ("RMSE, log(1+SOC)", "rmse_log", 3),
                           ("MAPE %", "mape", 1), ("NLL", "nll", 3), ("ECE", "ece", 3),
                           ("Cov@95 (VP)", "cov95_vp", 3), ("Epistemic fraction", "epistemic_fraction", 3)):
        lines.append(f"| {label} | " + " | ".join(_f(r[key], nd) for r in rows) + " |")
    lines += ["", f"![ensemble size]({figs['ensemble_size']})", ""]
    return lines


def _diagnostics_section(rep: dict[str, Any], figs: dict[str, str]) -> list[str]:
    """Normality and heteroscedasticity of the standardised residuals z, before and after calibration."""
    diag = rep["diagnostics"]
    lines = ["## Diagnostics on z = (y - mu) / sigma, log(1 + SOC) (cf. Table 12)", "",
             "| Statistic | Pre-cal | Post-cal |", "|---|---|---|"]
    for label, a, b in (("Shapiro-Wilk W / p", "shapiro_w", "shapiro_p"),
                        ("Breusch-Pagan z^2 ~ sigma, LM / p", "bp_sigma_lm", "bp_sigma_p"),
                        ("Breusch-Pagan z^2 ~ mu, LM / p", "bp_mu_lm", "bp_mu_p")):
        lines.append(f"| {label} | {_f(diag['pre'][a])} / {_f(diag['pre'][b])} | "
                     f"{_f(diag['post'][a])} / {_f(diag['post'][b])} |")
    lines += [f"| mean(z) (-> 0) | {_f(diag['pre']['mean_z'])} | {_f(diag['post']['mean_z'])} |",
              f"| var(z) (-> 1) | {_f(diag['pre']['var_z'])} | {_f(diag['post']['var_z'])} |", ""]
    lines += [f"![residual map]({figs['residual_map']})", ""]
    return lines


def _retrain_sections(rep: dict[str, Any]) -> list[str]:
    """The sections of the retraining protocols that ran (ablations, block split), g/kg."""
    lines: list[str] = []
    for section, title in (("ablations", "Ablations under one protocol (cf. Table 11), g/kg"),
                           ("block", "Spatial block split (inductive), g/kg")):
        blk = rep.get(section)
        if not blk:
            continue
        lines += [f"## {title}", ""]
        if blk.get("note"):
            lines += [blk["note"], ""]
        lines += _point_table(blk["point"], set())
        lines += _ratio_lines(blk.get("rmse_ratio"))
        lines += skill_markdown(blk.get("skill"))
        if blk.get("folds"):
            names = [k for k in blk["folds"][0] if k != "n"]
            lines += ["", "Per fold, RMSE g/kg:", "", "| fold | n | " + " | ".join(names) + " |",
                      "|---|---|" + "---|" * len(names)]
            lines += [f"| {i + 1} | {f['n']} | " + " | ".join(_f(f[k], 2) for k in names) + " |"
                      for i, f in enumerate(blk["folds"])]
        lines += [""]
    return lines


def _markdown(rep: dict[str, Any], figs: dict[str, str]) -> str:
    """report.md: the report's sections in order, figures linked by their file names ``figs``."""
    lines = _header_lines(rep)
    lines += _point_section(rep, figs)
    lines += _calibration_section(rep, figs)
    lines += _decomposition_section(rep)
    lines += _ensemble_size_section(rep, figs)
    lines += _diagnostics_section(rep, figs)
    lines += _retrain_sections(rep)
    if rep.get("not_run"):
        lines += ["## Not run", ""] + [f"- {k}: {v}" for k, v in rep["not_run"].items()] + [""]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: Path, fig: FigureData) -> Path:
    """Write ``out/`` (report.md, report.json and the PNGs) atomically; returns ``out``.

    report.json holds every number (``report`` plus the figure file names); NaN is written as null.
    """
    out = Path(out)
    names = {"pred_vs_obs": FIG_PRED_VS_OBS, "reliability": FIG_RELIABILITY, "ensemble_size": FIG_ENSEMBLE_SIZE,
             "residual_map": FIG_RESIDUAL_MAP}
    report = {**report, "figures": names}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        pred_vs_obs_figure(tmp / names["pred_vs_obs"], fig.observed_gkg, fig.predictions_gkg)
        unc = report["uncertainty"]
        t = unc["temperature"]
        reliability_figure(tmp / names["reliability"], ECE_LEVELS, {
            "before calibration": np.asarray(unc["pre"]["reliability"]["coverage"]),
            f"after calibration (T = {t:.2f})": np.asarray(unc["post"]["reliability"]["coverage"]),
        })
        ensemble_size_figure(tmp / names["ensemble_size"], report["ensemble_size"])
        residual_map_figure(tmp / names["residual_map"], fig.lon, fig.lat,
                            fig.observed_gkg - fig.predictions_gkg["SpTGNN"],
                            title="SpTGNN residuals (observed - predicted), g/kg")
        (tmp / REPORT_JSON).write_text(json.dumps(json_safe(report), indent=1) + "\n")
        (tmp / REPORT_MD).write_text(_markdown(report, names) + "\n")
    return out


def _growth_text(rep: dict[str, Any], unc: dict[str, Any]) -> str:
    """The report's phrase for the variance growth (reports that predate ``calibration`` give the power alone)."""
    from socmap.inference.calibration import Calibration

    if "calibration" in rep:
        return Calibration.from_info(rep["calibration"]).growth_text()
    return f"variance x (1 + d / 1 km)^{unc.get('distance_power', 0.0):.3f}"
