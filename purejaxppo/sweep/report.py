"""Report for a hyperparameter sweep: statistics, `sweep.md`, `sweep.json` and plots.

A sweep trains several *settings* (hyperparameter combinations), each with S seeds,
possibly over several envs. Given every setting's learning curves (`SettingRuns`),
`compute_report` computes the statistics (a JSON-able dict, the content of
`sweep.json`) and `write_report` writes `sweep.md`, `sweep.json` and PNG plots.
The statistics come from `purejaxppo.sweep.stats` (Agarwal et al. 2021: IQM with
stratified percentile-bootstrap CIs over seeds, probability of improvement).

This module composes the pieces: `purejaxppo.sweep.scores` (per-run scores, validation,
comparison settings, normalization), `purejaxppo.sweep.comparison` (statistics, ranking,
verdict), `purejaxppo.sweep.markdown` (sweep.md) and `purejaxppo.sweep.plots` (the PNGs).

Definitions
-----------
Per-run scores (non-finite points, NaN or inf, are ignored):

* **final**: the mean episode return over the last ceil(10%) of the run's logged
  points (at least one point). If none of those points is finite, the last finite
  value before them is used.
* **auc**: the area under the learning curve (`np.trapezoid` over `steps`, through
  the finite points only, i.e. linear interpolation across missing points) divided
  by the env-step span of those finite points: the average return over training.
  With a single finite point, that value.
* A run with no finite value at all is **failed**: it is left out of the
  statistics and counted per setting. A **diverged** run (non-finite numbers during
  training) is only counted: its scores still count, since it keeps acting with its
  last finite parameters.

Comparison settings:

* If "env" is among the varied fields, the settings that share every other varied
  field's value form one *comparison setting*, evaluated across the K envs of the
  sweep (tasks); every comparison setting must have a setting on every env.
  Otherwise (or when the sweep has one env) each setting is its own comparison
  setting, K = 1, and the sweep must have a single env.
* K = 1: statistics of the raw scores `[n]` of the usable runs.
* K > 1: scores are normalized per env, `(score - lo) / (hi - lo)` (denominator 1
  when hi == lo), with `(lo, hi) = reference_scores[env]` when `reference_scores`
  is given (it must then cover every env), else the min and max of that env's
  usable run scores over the whole sweep (separately for final and auc). The
  normalized `[n, K]` matrix is aggregated with the stratified bootstrap
  (`stats.bootstrap_ci`). If a comparison setting's envs have different numbers of
  usable runs, every column keeps only the first n_min usable runs (by seed index),
  n_min being the smallest count; per-env raw statistics use all usable runs.

Statistics, for both score kinds: IQM, mean and median, each with a percentile
bootstrap CI (`stats.bootstrap_ci(matrix, metric, reps, confidence, seed)`; the
same `seed` for every call).

Ranking and flags (for the chosen `score`):

* Comparison settings are ranked by the IQM point estimate, highest first; ties
  (e.g. every setting at an env's maximum return) are broken by the other score's
  IQM, then by order of first appearance; rank 1 is the best. A comparison setting
  with no usable run (for K > 1: no usable run on some env) is unranked and listed
  last.
* **P(#1 > this)**: `stats.probability_of_improvement(best, this)` on the `[n]`
  raw or `[n, K]` normalized scores, with its bootstrap CI.
* Two CIs `[l1, h1]`, `[l2, h2]` *overlap* when `l1 <= h2 and l2 <= h1`.
  `overlapping_ranks` lists the ranks of the other ranked settings whose IQM CI
  overlaps this one's; `not_distinguishable_from_best` is true when rank 1 is among
  them (false for the best itself, null for unranked settings).

Plots (matplotlib's Agg canvas, no pyplot; skipped with a note when matplotlib is
missing): `curves.png` (per env `curves_<env>.png` when there are several), the IQM
over seeds of the raw episode return per logged update with a `stats.curve_ci`
band, one line per comparison setting, at most the top 12 by rank (failed runs are
left out; a run's NaN points are filled by linear interpolation between its finite
points, constant beyond the ends); `sensitivity_<field>.png` per varied field other
than env: the IQM of the chosen score (normalized aggregate when K > 1) against the
field's value, with CI error bars.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from purejaxppo.errors import ConfigError
from purejaxppo.sweep import stats
from purejaxppo.sweep.comparison import Bootstrap, comparison_entries, rank_entries, verdict
from purejaxppo.sweep.markdown import render_markdown
from purejaxppo.sweep.plots import MAX_CURVES, MAX_SENSITIVITY_LINES, sensitivity_series, write_plots
from purejaxppo.sweep.scores import (
    DEFINITIONS,
    METRICS,
    SCORES,
    SettingRuns,
    check_runs,
    comparison_groups,
    field_values,
    run_scores,
    score_runs,
)
from purejaxppo.sweep.values import jsonable

__all__ = [
    "DEFINITIONS",
    "MAX_CURVES",
    "MAX_SENSITIVITY_LINES",
    "METRICS",
    "SCORES",
    "SettingRuns",
    "compute_report",
    "run_scores",
    "sensitivity_series",
    "write_report",
]


def compute_report(
    runs: list[SettingRuns],
    varied: list[str],
    *,
    score: str = "final",
    reference_scores: dict[str, tuple[float, float]] | None = None,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> dict:
    """All statistics as a JSON-able dict (this is sweep.json's content).

    runs:    one `SettingRuns` per setting (per env when env is varied).
    varied:  the varied field names (in display order); "env" among them groups the
             settings across envs (see the module docstring).
    score:   "final" or "auc": the score that ranks the settings (both are reported).
    reference_scores: {env: (lo, hi)} for the normalization when there are several envs;
             default: min/max over the sweep's runs per env.
    confidence, reps, seed: passed to `stats.bootstrap_ci` / `probability_of_improvement`.
    """
    if score not in SCORES:
        raise ConfigError(f"`score` must be one of {SCORES}, got {score!r}")
    runs, varied = check_runs(runs, varied)
    stats._check_confidence(confidence)
    stats._check_reps(reps)
    fields = [f for f in varied if f != "env"]
    envs = list(dict.fromkeys(r.env for r in runs))
    groups = comparison_groups(runs, fields, envs)
    per_field_values = field_values(runs, fields)
    scored = score_runs(runs, envs, reference_scores)
    boot = Bootstrap(reps=reps, confidence=confidence, seed=seed)
    entries, matrices, notes = comparison_entries(groups, envs, fields, per_field_values, scored, boot)
    settings, n_ranked = rank_entries(entries, matrices, score, boot)
    report = {
        "definitions": DEFINITIONS,
        "score": score,
        "confidence": float(confidence),
        "reps": int(reps),
        "seed": jsonable(seed),
        "envs": envs,
        "num_envs": len(envs),
        "varied": varied,
        "varied_values": per_field_values,
        "seeds_per_setting": {e: int(np.asarray(next(r for r in runs if r.env == e).returns).shape[0]) for e in envs},
        "num_settings": len(runs),
        "num_comparison_settings": len(entries),
        "normalization": scored.normalization,
        "notes": notes,
        "verdict": verdict(settings, n_ranked, score, confidence, len(envs)),
        "settings": settings,
    }
    report = jsonable(report)
    json.dumps(report, allow_nan=False)  # guaranteed JSON-safe
    return report


def write_report(
    report: dict, runs: list[SettingRuns], out_dir, *, title: str | None = None, plots: bool = True
) -> list[pathlib.Path]:
    """Write sweep.md, sweep.json and the PNGs into out_dir; return the written paths.

    report: `compute_report`'s dict; runs: the same `SettingRuns` (their curves are plotted).
    title:  the markdown title (default "Sweep: <envs>").
    plots:  False writes no PNGs; with matplotlib missing, PNGs are skipped and sweep.md says so.
    """
    out = pathlib.Path(out_dir)
    runs_by_id = {r.id: r for r in runs}
    for e in report["settings"]:
        for sid in e["setting_ids"]:
            if sid not in runs_by_id:
                raise ConfigError(f"setting id {sid} of the report is not among `runs`")
    out.mkdir(parents=True, exist_ok=True)
    title = title or ("Sweep: " + ", ".join(report["envs"]))
    pngs, plot_note = write_plots(report, runs_by_id, out) if plots else ([], None)
    md = out / "sweep.md"
    md.write_text(render_markdown(report, title, [p.name for p in pngs], plot_note), encoding="utf-8")
    js = out / "sweep.json"
    js.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return [md, js] + pngs
