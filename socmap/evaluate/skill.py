"""Every method on the held-out sites by every metric, and the SpTGNN against the best baseline, with cluster
bootstrap intervals.

Methods: the SpTGNN (its expectation, and its median), XGBoost and the RFSI-like XGBoost (medians, and means by
smearing; :mod:`socmap.evaluate.baselines`), the quantile regression forest and regression kriging (means and
medians of their predictive distributions; :mod:`socmap.evaluate.probabilistic`).

Metrics, all on the held-out sites: RMSE and MAE (g/kg), RMSE of log(1 + SOC) (the relative error, what a map
of a skewed property is usually judged on), MEC (model efficiency, 1 - SS_res / SS_tot, the R2 of
:func:`socmap.metrics.r2`), the RMSE without each method's largest 1 % of errors (how much of the RMSE a handful
of sites carry); for the probabilistic methods (SpTGNN, QRF, RK) the CRPS in g/kg and the coverage of their own
90 % and 95 % central intervals, also by distance to the nearest training site (0-2, 2-10, 10-50, > 50 km).

Intervals: percentile 95 % intervals over resamples of ~10 km clusters of test sites (:mod:`socmap.evaluate.clusters`),
the same resamples for every method (paired). ``ratio_best``: for RMSE, MAE, RMSE of log and CRPS, the SpTGNN's
value over the best baseline's (the lowest, chosen on the full sample), with the cluster interval and, for
comparison, the single-site bootstrap interval; below 1 the SpTGNN is better.

The SpTGNN's predictive in g/kg is that of the map: log(1 + SOC) ~ its calibrated mean and total variance,
intervals from its own shape (Student t where ``socmap train`` fitted tails, :func:`socmap.metrics.std_quantile`);
its CRPS is the log-normal one on the same variance (the Gaussian on log(1 + SOC), as the report's other CRPS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from socmap.evaluate.baselines import fit_and_eval_rows
from socmap.evaluate.clusters import cell_clusters, cluster_counts, percentile_interval, resampled_means
from socmap.evaluate.probabilistic import INTERVAL_LEVELS, ProbabilisticResult, run_probabilistic_baselines
from socmap.geo import sphere_knn
from socmap.metrics import crps_log1p_normal, interval_k, mae, r2, rmse

__all__ = [
    "COVERAGE_BINS_KM",
    "LABEL_KEYS",
    "SkillRows",
    "baseline_prob_rows",
    "rmse_trimmed",
    "skill_json",
    "skill_markdown",
    "skill_report",
    "skill_rows",
    "sptgnn_prob_rows",
    "sptgnn_skill_rows",
]

LABEL_KEYS = {"SpTGNN": "sptgnn", "SpTGNN (median)": "sptgnn_median", "XGBoost": "xgb",
              "XGBoost (smeared)": "xgb_smeared", "RFSI-like XGBoost": "rfsi",
              "RFSI-like XGBoost (smeared)": "rfsi_smeared", "QRF (mean)": "qrf", "QRF (median)": "qrf_median",
              "RK (mean)": "rk", "RK (median)": "rk_median"}
"""Report label of each method -> its short name in benchmark JSON keys (``qrf`` and ``rk`` are the means)."""

PROB_LABELS = {"qrf": ("QRF (mean)", "QRF (median)"), "rk": ("RK (mean)", "RK (median)")}
"""Labels of each probabilistic baseline's mean and median rows; its distributional scores go with the mean's."""

COVERAGE_BINS_KM = ((0.0, 2.0, "0-2"), (2.0, 10.0, "2-10"), (10.0, 50.0, "10-50"), (50.0, math.inf, ">50"))
"""Bins (km; lower end included) of distance to the nearest training site for the coverage by distance."""

RATIO_METRICS = ("rmse", "mae", "rmse_log", "crps")
"""Metrics the SpTGNN is set against the best baseline on (lower is better for each)."""

_ROOT = {"rmse": np.sqrt, "rmse_log": np.sqrt}
"""Metrics whose per-site loss is a square: the metric is the root of its mean."""


@dataclass
class SkillRows:
    """Per-site predictions and scores of every method on the evaluated sites (one protocol, or pooled folds)."""

    y_gkg: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    dist_km: np.ndarray
    """Distance of each site to the nearest training site, km."""
    point: dict[str, np.ndarray]
    """Report label -> point prediction, g/kg."""
    prob: dict[str, dict[str, np.ndarray]]
    """Report label -> per-site ``crps`` (g/kg) and ``cov90`` / ``cov95`` (1 inside the interval, else 0)."""
    baselines: list[dict[str, Any]] = field(default_factory=list)
    """Fit time and settings of the probabilistic baselines (one entry per fit: per fold when pooled)."""

    @staticmethod
    def concat(parts: list[SkillRows]) -> SkillRows:
        """The rows of several disjoint evaluations (e.g. block cross-validation folds) as one."""
        def cat(arrays: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(arrays)

        first = parts[0]
        return SkillRows(cat([p.y_gkg for p in parts]), cat([p.lon for p in parts]), cat([p.lat for p in parts]),
                         cat([p.dist_km for p in parts]),
                         {k: cat([p.point[k] for p in parts]) for k in first.point},
                         {k: {m: cat([p.prob[k][m] for p in parts]) for m in v} for k, v in first.prob.items()},
                         [b for p in parts for b in p.baselines])


def sptgnn_prob_rows(y_gkg: np.ndarray, mu_log: np.ndarray, var_log: np.ndarray,
                     dof: float | None) -> dict[str, np.ndarray]:
    """Per-site CRPS (g/kg, log-normal on the predictive's variance) and 90 / 95 % interval hits of the SpTGNN's
    calibrated predictive: log(1 + SOC) with mean ``mu_log``, variance ``var_log`` and tail shape ``dof``."""
    y, mu, sd = np.asarray(y_gkg, float), np.asarray(mu_log, float), np.sqrt(np.asarray(var_log, float))
    out = {"crps": np.asarray(crps_log1p_normal(y[:, None], mu[:, None], sd[:, None]))}
    for lv in INTERVAL_LEVELS:
        k = interval_k(lv, "predictive", dof)
        out[f"cov{round(100 * lv)}"] = ((np.expm1(mu - k * sd) <= y) & (y <= np.expm1(mu + k * sd))).astype(float)
    return out


def baseline_prob_rows(y_gkg: np.ndarray, res: ProbabilisticResult) -> dict[str, np.ndarray]:
    """Per-site CRPS (g/kg) and 90 / 95 % interval hits of one probabilistic baseline."""
    y = np.asarray(y_gkg, float)
    out = {"crps": res.crps_rows(y)}
    for lv, (lo, hi) in res.intervals.items():
        out[f"cov{round(100 * lv)}"] = ((lo <= y) & (y <= hi)).astype(float)
    return out


def skill_rows(samples: pd.DataFrame, feature_columns: list[str] | None, eval_mask: np.ndarray,
               point: dict[str, np.ndarray], mu_log: np.ndarray, var_log: np.ndarray, dof: float | None, *,
               train_mask: np.ndarray | None = None, seed: int = 0, n_jobs: int | None = None) -> SkillRows:
    """Fit the probabilistic baselines (QRF, RK) on the training rows and gather every method's per-site
    predictions and scores on the ``eval_mask`` rows.

    ``point``: report label -> point prediction (g/kg) of the other methods on those rows (the SpTGNN's and the
    XGBoost baselines', as :func:`socmap.evaluate.report.score_predictions` scores them); ``mu_log``,
    ``var_log``, ``dof``: the SpTGNN's calibrated predictive on log(1 + SOC) at those rows. ``train_mask``
    defaults to ``samples.split == "train"``.
    """
    train_mask, eval_mask = fit_and_eval_rows(samples, train_mask, eval_mask)
    y = samples["soc_gkg"].to_numpy(np.float64)[eval_mask]
    lonlat = samples[["lon", "lat"]].to_numpy(np.float64)
    dist, _ = sphere_knn(lonlat[train_mask], lonlat[eval_mask], 1)
    probs = run_probabilistic_baselines(samples, feature_columns, eval_mask=eval_mask, train_mask=train_mask,
                                        seed=seed, n_jobs=n_jobs)
    pts = {k: np.asarray(v, np.float64) for k, v in point.items()}
    prob = {"SpTGNN": sptgnn_prob_rows(y, mu_log, var_log, dof)}
    info = {}
    for name, res in probs.items():
        mean_label, median_label = PROB_LABELS[name]
        pts[mean_label], pts[median_label] = res.mean_gkg, res.median_gkg
        prob[mean_label] = baseline_prob_rows(y, res)
        info[name] = {"seconds": round(res.seconds, 2), "params": res.params}
    return SkillRows(y, lonlat[eval_mask, 0], lonlat[eval_mask, 1], dist[:, 0], pts, prob, [info])


def sptgnn_skill_rows(samples: pd.DataFrame, feature_columns: list[str] | None, pred: Any, eval_mask: np.ndarray,
                      others: dict[str, np.ndarray], *, train_mask: np.ndarray | None = None, seed: int = 0,
                      n_jobs: int | None = None) -> SkillRows:
    """:func:`skill_rows` for an SpTGNN prediction ``pred`` of every row of ``samples`` (a calibrated
    ``EnsemblePrediction``: its ``mean`` and ``total_var`` on log(1 + SOC), ``tail_dof``, ``mean_gkg()``).

    The SpTGNN's point rows are its expectation and median at the ``eval_mask`` rows unless ``others`` (label ->
    g/kg at those rows: the baselines', and any SpTGNN rows to use instead) gives them.
    """
    m = np.asarray(eval_mask, bool)
    mu = np.asarray(pred.mean, np.float64)
    point = {"SpTGNN": np.asarray(pred.mean_gkg(), np.float64)[m], "SpTGNN (median)": np.expm1(mu[m]), **others}
    return skill_rows(samples, feature_columns, m, point, mu[m], np.asarray(pred.total_var, np.float64)[m],
                      pred.tail_dof, train_mask=train_mask, seed=seed, n_jobs=n_jobs)


def rmse_trimmed(y: np.ndarray, pred: np.ndarray, fraction: float = 0.01) -> float:
    """RMSE (units of ``y``) without the largest ``fraction`` of absolute errors (at least one is dropped, as
    :func:`socmap.evaluate.report.top_error_share` counts them): the RMSE the bulk of the sites see."""
    e2 = np.sort((np.asarray(pred, float) - np.asarray(y, float)) ** 2)
    k = max(1, round(fraction * len(e2)))
    return float(np.sqrt(np.mean(e2[:-k]))) if len(e2) > k else float("nan")


def _log1p(p: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(np.asarray(p, float), -1.0 + 1e-9))


def _losses(rows: SkillRows) -> dict[str, dict[str, np.ndarray]]:
    """Per-site loss of every metric that is a mean over sites, for every method (label)."""
    y, ylog = rows.y_gkg, np.log1p(rows.y_gkg)
    out: dict[str, dict[str, np.ndarray]] = {}
    for label, p in rows.point.items():
        e = p - y
        out[label] = {"rmse": e**2, "mae": np.abs(e), "rmse_log": (_log1p(p) - ylog) ** 2, **rows.prob.get(label, {})}
    return out


def _finish(metric: str, mean_loss: np.ndarray) -> np.ndarray:
    return np.asarray(_ROOT.get(metric, np.asarray)(mean_loss))


def _method_metrics(rows: SkillRows, label: str, losses: dict[str, np.ndarray], clusters: np.ndarray,
                    counts: np.ndarray | None) -> dict[str, Any]:
    """One method's row: each metric's value and, with ``counts``, its cluster bootstrap 95 % interval."""
    y, p = rows.y_gkg, rows.point[label]
    values = {"rmse": float(rmse(y, p)), "mae": float(mae(y, p)), "rmse_log": float(rmse(np.log1p(y), _log1p(p)))}
    values.update({m: float(np.mean(v)) for m, v in losses.items() if m not in values})
    out: dict[str, Any] = {}
    for m, v in values.items():
        out[m] = {"value": v}
        if counts is not None:
            out[m]["ci95"] = percentile_interval(_finish(m, resampled_means(losses[m], clusters, counts)))
    out["r2"] = {"value": float(r2(y, p))}
    out["rmse_trim1"] = {"value": rmse_trimmed(y, p)}
    return out


def _ratio_best(methods: dict[str, Any], losses: dict[str, dict[str, np.ndarray]], metric: str,
                resamples: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> dict[str, Any] | None:
    """The SpTGNN's ``metric`` over the best (lowest) baseline's, with its interval under each resampling scheme
    in ``resamples`` (name -> (cluster ids, counts))."""
    base = {k: m[metric]["value"] for k, m in methods.items() if not k.startswith("SpTGNN") and metric in m}
    if "SpTGNN" not in methods or metric not in methods["SpTGNN"] or not base:
        return None
    best = min(base, key=lambda k: base[k])
    out: dict[str, Any] = {"best": best, "value": methods["SpTGNN"][metric]["value"] / base[best]}
    for name, (clusters, counts) in resamples.items():
        if counts is None:
            continue
        a = _finish(metric, resampled_means(losses["SpTGNN"][metric], clusters, counts))
        b = _finish(metric, resampled_means(losses[best][metric], clusters, counts))
        out[name] = percentile_interval(a / b)
    return out


def _coverage_by_distance(rows: SkillRows) -> dict[str, dict[str, Any]]:
    """Each probabilistic method's 90 / 95 % coverage within :data:`COVERAGE_BINS_KM` (None in an empty bin)."""
    out: dict[str, dict[str, Any]] = {}
    for label, prob in rows.prob.items():
        out[label] = {}
        for lo, hi, name in COVERAGE_BINS_KM:
            m = (rows.dist_km >= lo) & (rows.dist_km < hi)
            out[label][name] = {"n": int(m.sum()),
                                **{c: float(prob[c][m].mean()) if m.any() else None for c in ("cov90", "cov95")}}
    return out


def skill_report(rows: SkillRows, *, n_boot: int = 1000, seed: int = 0, cell_km: float = 10.0) -> dict[str, Any]:
    """Methods by metrics with cluster bootstrap intervals, the SpTGNN-to-best-baseline ratios (cluster and
    site intervals) and coverage by distance, as one JSON-ready dict (see the module docstring)."""
    clusters = cell_clusters(rows.lon, rows.lat, cell_km)
    n_clusters, n = int(clusters.max()) + 1, len(rows.y_gkg)
    counts = cluster_counts(n_clusters, n_boot, seed) if n_boot > 0 else None
    site_counts = cluster_counts(n, n_boot, seed) if n_boot > 0 else None
    losses = _losses(rows)
    methods = {label: _method_metrics(rows, label, losses[label], clusters, counts) for label in rows.point}
    resamples = {"ci95": (clusters, counts), "ci95_site": (np.arange(n), site_counts)}
    ratios = {m: r for m in RATIO_METRICS if (r := _ratio_best(methods, losses, m, resamples)) is not None}
    return {"n": n, "cell_km": cell_km, "n_clusters": n_clusters, "n_boot": n_boot, "methods": methods,
            "ratio_best": ratios, "cov_by_distance": _coverage_by_distance(rows), "baselines": rows.baselines}


def skill_json(skill: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Flat benchmark keys of one :func:`skill_report`: ``{prefix}{method}_{metric}`` (method short names in
    :data:`LABEL_KEYS`), ``{prefix}ratio_{metric}_best`` with ``_ci95`` [lo, hi] (cluster) and ``_method``, and
    ``{prefix}cov95_by_distance`` (the SpTGNN's coverage in each distance bin)."""
    if not skill:
        return {}
    out: dict[str, Any] = {}
    for label, m in skill["methods"].items():
        key = LABEL_KEYS.get(label)
        for metric in ("rmse", "mae", "rmse_log", "r2", "rmse_trim1", "crps", "cov90", "cov95"):
            if key and metric in m:
                out[f"{prefix}{key}_{metric}"] = m[metric]["value"]
    for metric, r in skill["ratio_best"].items():
        out[f"{prefix}ratio_{metric}_best"] = r["value"]
        out[f"{prefix}ratio_{metric}_best_ci95"] = [round(c, 4) for c in r["ci95"]] if "ci95" in r else None
        out[f"{prefix}ratio_{metric}_best_method"] = r["best"]
    sp = skill["cov_by_distance"].get("SpTGNN", {})
    out[f"{prefix}cov95_by_distance"] = {k: v["cov95"] for k, v in sp.items()}
    return out


def _cell(m: dict[str, Any] | None, nd: int) -> str:
    if not m or m.get("value") is None or not math.isfinite(m["value"]):
        return ""
    s = f"{m['value']:.{nd}f}"
    return s + (f" [{m['ci95'][0]:.{nd}f}, {m['ci95'][1]:.{nd}f}]" if "ci95" in m else "")


def skill_markdown(skill: dict[str, Any] | None) -> list[str]:
    """report.md lines for one :func:`skill_report`: the methods-by-metrics table, the ratio rows and the coverage
    by distance (empty when there is none)."""
    if not skill:
        return []
    cols = (("RMSE", "rmse", 2), ("MAE", "mae", 2), ("RMSE log(1+SOC)", "rmse_log", 3), ("MEC (R2)", "r2", 3),
            ("RMSE w/o top 1 %", "rmse_trim1", 2), ("CRPS", "crps", 2), ("Cov@90", "cov90", 3),
            ("Cov@95", "cov95", 3))
    lines = ["", f"### Methods by metric (n = {skill['n']}; brackets: 95 % intervals from resampling "
             f"{skill['n_clusters']} clusters of {skill['cell_km']:g} km cells), g/kg", "",
             "| Method | " + " | ".join(c[0] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for label, m in skill["methods"].items():
        lines.append(f"| {label} | " + " | ".join(_cell(m.get(k), nd) for _, k, nd in cols) + " |")
    if skill["ratio_best"]:
        lines += ["", "SpTGNN / best baseline (below 1: the SpTGNN is better; cluster and single-site bootstrap "
                  "95 % intervals):", "", "| Metric | Best baseline | Ratio | Cluster interval | Site interval |",
                  "|---|---|---|---|---|"]
        for metric, r in skill["ratio_best"].items():
            ci = [f"[{r[k][0]:.3f}, {r[k][1]:.3f}]" if k in r else "" for k in ("ci95", "ci95_site")]
            lines.append(f"| {metric} | {r['best']} | {r['value']:.3f} | {ci[0]} | {ci[1]} |")
    cov = skill["cov_by_distance"]
    names = list(cov)
    lines += ["", "Cov@95 of each method's own interval by distance to the nearest training site:", "",
              "| distance, km | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for _, _, b in COVERAGE_BINS_KM:
        vals = [cov[k][b]["cov95"] for k in names]
        lines.append(f"| {b} | {cov[names[0]][b]['n']} | "
                     + " | ".join("-" if v is None else f"{v:.3f}" for v in vals) + " |")
    return lines
