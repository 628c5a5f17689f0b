"""Report for a hyperparameter sweep: statistics, `sweep.md`, `sweep.json` and plots.

A sweep trains several *settings* (hyperparameter combinations), each with S seeds,
possibly over several envs. Given every setting's learning curves (`SettingRuns`),
`compute_report` computes the statistics (a JSON-able dict, the content of
`sweep.json`) and `write_report` writes `sweep.md`, `sweep.json` and PNG plots.
The statistics come from `purejaxppo.sweep.stats` (Agarwal et al. 2021: IQM with
stratified percentile-bootstrap CIs over seeds, probability of improvement).

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

import dataclasses
import json
import math
import pathlib
import re
from collections.abc import Callable

import numpy as np

from purejaxppo.errors import ConfigError
from purejaxppo.sweep import stats

SCORES = ("final", "auc")
METRICS = ("iqm", "mean", "median")
MAX_CURVES = 12  # lines in a curves plot: the top ones by rank
MAX_SENSITIVITY_LINES = 10

DEFINITIONS = {
    "final": "mean episode return over the last ceil(10%) of a run's logged points (at least 1), ignoring "
    "non-finite points; if none of those is finite, the last finite value before them",
    "auc": "area under the learning curve (np.trapezoid over env steps through the finite points only) divided by "
    "the env-step span of those points, i.e. the average return over training; a single finite point gives "
    "its value",
    "failed": "a run with no finite episode_return; excluded from the statistics and counted per setting",
    "diverged": "a run that hit non-finite numbers during training; counted, its scores still count",
    "comparison_setting": "the settings sharing all varied fields' values except env (when env is varied), "
    "evaluated over the K envs; otherwise each setting alone (K = 1)",
    "normalized": "K > 1 only: per env (score - lo) / (hi - lo), denominator 1 if hi == lo; (lo, hi) from "
    "reference_scores or the min/max of that env's usable run scores over the sweep (per score kind)",
    "statistics": "IQM, mean, median with percentile-bootstrap CIs over seeds (stratified per env for K > 1), "
    "purejaxppo.sweep.stats.bootstrap_ci",
    "matrix": "K > 1: when envs have different numbers of usable runs, every env keeps its first n_min usable runs "
    "(by seed index), n_min the smallest count",
    "rank": "by the IQM point estimate of the chosen score, highest first (ties broken by the other score's IQM); "
    "settings with no usable run are unranked",
    "prob_improvement_of_best": "P(#1 > this) (ties 1/2) with bootstrap CI, "
    "purejaxppo.sweep.stats.probability_of_improvement",
    "overlap": "CIs [l1, h1] and [l2, h2] overlap when l1 <= h2 and l2 <= h1 (IQM CI of the chosen score)",
    "not_distinguishable_from_best": "the IQM CI overlaps the best's (false for the best, null if unranked)",
}


@dataclasses.dataclass
class SettingRuns:
    """One setting's runs."""

    id: int  # setting id (as in metrics.jsonl rows)
    values: dict  # the *varied* fields' values for this setting (may include "env" when env is varied)
    env: str  # the env id these runs trained on
    steps: np.ndarray  # [T] env steps of the logged updates (increasing)
    returns: np.ndarray  # [S, T] episode_return per seed per logged update (may contain NaN)
    diverged: np.ndarray  # [S] bool: the run diverged (non-finite numbers) during training


# --------------------------------------------------------------------------- per-run scores


_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # type: ignore[attr-defined]  # numpy < 2.0 has only trapz


def run_scores(steps, returns) -> dict[str, np.ndarray]:
    """Per-run scores `{"final": [S], "auc": [S]}` of `returns` `[S, T]` logged at `steps` `[T]`.

    Definitions in the module docstring; a failed run (no finite value) scores NaN in both.
    """
    x = np.asarray(steps, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or x.ndim != 1 or x.shape[0] != r.shape[1] or r.shape[1] == 0:
        raise ConfigError(f"need returns [S, T] and steps [T] with T >= 1, got shapes {r.shape} and {x.shape}")
    t = r.shape[1]
    k = max(1, -(-t // 10))  # ceil(10% of T), at least 1
    final, auc = np.full(r.shape[0], np.nan), np.full(r.shape[0], np.nan)
    for i, row in enumerate(r):
        ok = np.isfinite(row)
        if not ok.any():
            continue
        window = row[t - k :][ok[t - k :]]
        final[i] = window.mean() if window.size else row[ok][-1]
        xs, ys = x[ok], row[ok]
        span = xs[-1] - xs[0]
        if ys.size == 1:
            auc[i] = ys[0]
        elif span > 0:
            auc[i] = float(_trapezoid(ys, xs)) / span
        else:
            auc[i] = ys.mean()
    return {"final": final, "auc": auc}


# --------------------------------------------------------------------------- helpers


def _jsonable(v):
    """`v` with NumPy scalars/arrays, tuples and non-finite floats made JSON-safe (NaN/inf -> None)."""
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)


def _key(v) -> str:
    """A hashable identity for a (JSON-able) field value."""
    return json.dumps(_jsonable(v), sort_keys=True)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _value_formatters(per_field_values: dict[str, list]) -> dict[str, Callable]:
    """Per field: a compact formatter that still tells all of the field's distinct values apart."""
    out = {}
    for field, vals in per_field_values.items():
        floats = [v for v in vals if isinstance(v, float)]
        prec = 17
        for p in (4, 6, 8, 12):
            if len({format(v, f".{p}g") for v in floats}) == len(set(floats)):
                prec = p
                break

        def fmt(v, prec=prec):
            if isinstance(v, float):
                return format(v, f".{prec}g") if math.isfinite(v) else str(v)
            if isinstance(v, list):
                return "[" + ", ".join(fmt(x) for x in v) + "]"
            return str(v)

        out[field] = fmt
    return out


def _num(x) -> str:
    """A number for a table cell: about 4 significant digits, no exponent in [1e-3, 1e6)."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e6 or a < 1e-3:
        return f"{x:.3g}"
    digits = min(4, max(0, 3 - math.floor(math.log10(a))))
    return f"{x:.{digits}f}"


def _ci(triple, fmt=_num) -> str:
    if triple is None:
        return "—"
    p, lo, hi = triple
    return f"{fmt(p)} [{fmt(lo)}, {fmt(hi)}]"


def _overlap(a, b) -> bool:
    return a[1] <= b[2] and b[1] <= a[2]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "x"


# --------------------------------------------------------------------------- validation


def _check_runs(runs, varied) -> tuple[list[SettingRuns], list[str]]:
    runs = list(runs) if runs is not None else []
    if not runs:
        raise ConfigError("`runs` is empty: no setting to report on")
    if isinstance(varied, str):
        raise ConfigError(f"`varied` must be a list of field names, got the string {varied!r}")
    varied = list(varied)
    if len(set(varied)) != len(varied):
        raise ConfigError(f"`varied` lists a field twice: {varied}")
    ids = set()
    for r in runs:
        if not isinstance(r, SettingRuns):
            raise ConfigError(f"`runs` must hold SettingRuns, got {type(r).__name__}")
        if r.id in ids:
            raise ConfigError(f"setting id {r.id} appears twice in `runs`")
        ids.add(r.id)
        if not isinstance(r.values, dict):
            raise ConfigError(f"setting {r.id}: `values` must be a dict, got {type(r.values).__name__}")
        ret, st, dv = np.asarray(r.returns), np.asarray(r.steps), np.asarray(r.diverged)
        if ret.ndim != 2 or ret.shape[0] < 1 or ret.shape[1] < 1:
            raise ConfigError(f"setting {r.id}: `returns` must be [S, T] with S, T >= 1, got shape {ret.shape}")
        if st.shape != (ret.shape[1],):
            raise ConfigError(
                f"setting {r.id}: `steps` must have shape ({ret.shape[1]},) to match `returns` "
                f"{ret.shape}, got {st.shape}"
            )
        if not np.all(np.isfinite(st.astype(np.float64))) or np.any(np.diff(st.astype(np.float64)) <= 0):
            raise ConfigError(f"setting {r.id}: `steps` must be finite and strictly increasing")
        if dv.shape != (ret.shape[0],):
            raise ConfigError(f"setting {r.id}: `diverged` must have shape ({ret.shape[0]},), got {dv.shape}")
        for f in varied:
            if f == "env":
                if "env" in r.values and r.values["env"] != r.env:
                    raise ConfigError(f"setting {r.id}: values['env'] = {r.values['env']!r} but env = {r.env!r}")
            elif f not in r.values:
                raise ConfigError(
                    f"varied field {f!r} is missing from setting {r.id}'s values (has {sorted(map(str, r.values))})"
                )
    by_env: dict[str, SettingRuns] = {}
    for r in runs:
        first = by_env.setdefault(r.env, r)
        if np.asarray(r.returns).shape[0] != np.asarray(first.returns).shape[0]:
            raise ConfigError(
                f"env {r.env!r}: settings {first.id} and {r.id} have different numbers of seeds "
                f"({np.asarray(first.returns).shape[0]} vs {np.asarray(r.returns).shape[0]})"
            )
    if len(by_env) > 1 and "env" not in varied:
        raise ConfigError(
            f"the runs span several envs ({', '.join(map(repr, by_env))}) but 'env' is not in "
            "`varied`: add it to compare settings across envs"
        )
    return runs, varied


# --------------------------------------------------------------------------- report


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
    runs, varied = _check_runs(runs, varied)
    stats._check_confidence(confidence)
    stats._check_reps(reps)
    fields = [f for f in varied if f != "env"]
    envs = list(dict.fromkeys(r.env for r in runs))
    k = len(envs)
    notes: list[str] = []

    # Group settings into comparison settings.
    groups: dict[tuple, dict[str, SettingRuns]] = {}
    for r in runs:
        key = tuple(_key(r.values[f]) for f in fields)
        g = groups.setdefault(key, {})
        if r.env in g:
            what = "the same varied values" + (f" on env {r.env!r}" if k > 1 else "")
            raise ConfigError(
                f"settings {g[r.env].id} and {r.id} have {what}: "
                f"{{{', '.join(f'{f}={r.values[f]!r}' for f in fields)}}}"
            )
        g[r.env] = r
    if k > 1:
        for g in groups.values():
            missing = [e for e in envs if e not in g]
            if missing:
                some = next(iter(g.values()))
                raise ConfigError(
                    f"setting {some.id} ({', '.join(f'{f}={some.values[f]!r}' for f in fields) or 'no other field'}) "
                    f"has no counterpart on env(s) {', '.join(map(repr, missing))}: every combination "
                    "of the other varied fields needs a setting on every env"
                )

    # Labels.
    per_field_values = {f: list({_key(r.values[f]): _jsonable(r.values[f]) for r in runs}.values()) for f in fields}
    fmts = _value_formatters(per_field_values)

    def label_of(values: dict) -> str:
        return ", ".join(f"{f}={fmts[f](values[f])}" for f in fields) or "(all)"

    # Per-run scores.
    scores = {r.id: run_scores(r.steps, r.returns) for r in runs}
    usable = {r.id: np.isfinite(scores[r.id]["final"]) for r in runs}

    # Normalization (K > 1).
    normalization = None
    bounds: dict[str, dict[str, tuple[float, float]]] = {}
    if k > 1:
        if reference_scores is not None:
            missing = [e for e in envs if e not in reference_scores]
            if missing:
                raise ConfigError(f"`reference_scores` has no entry for env(s) {', '.join(map(repr, missing))}")
            for e in envs:
                try:
                    lo, hi = (float(v) for v in reference_scores[e])
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"`reference_scores[{e!r}]` must be a (lo, hi) pair of numbers, got {reference_scores[e]!r}"
                    ) from None
                if not (math.isfinite(lo) and math.isfinite(hi)):
                    raise ConfigError(f"`reference_scores[{e!r}]` must be finite, got {(lo, hi)}")
                bounds[e] = {s: (lo, hi) for s in SCORES}
            method = "reference_scores"
        else:
            for e in envs:
                bounds[e] = {}
                for s in SCORES:
                    vals = np.concatenate([scores[r.id][s][usable[r.id]] for r in runs if r.env == e])
                    bounds[e][s] = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
            method = "min-max"
        normalization = {"method": method, "bounds": {e: {s: list(bounds[e][s]) for s in SCORES} for e in envs}}

    def normalize(x: np.ndarray, env: str, s: str) -> np.ndarray:
        lo, hi = bounds[env][s]
        return (x - lo) / ((hi - lo) if hi != lo else 1.0)

    def ci3(x, metric):
        return list(stats.bootstrap_ci(x, metric, reps=reps, confidence=confidence, seed=seed))

    # Statistics per comparison setting.
    entries = []
    matrices = []  # per entry: {score kind: [n] or [n, K] array} or None
    for order, g in enumerate(groups.values()):
        members = [g[e] for e in envs if e in g]
        first = members[0]
        values = {f: _jsonable(first.values[f]) for f in fields}
        label = label_of(values)
        n_seeds = min(np.asarray(m.returns).shape[0] for m in members)
        n_failed = int(sum(int((~usable[m.id]).sum()) for m in members))
        n_div = int(sum(int(np.asarray(m.diverged, bool).sum()) for m in members))
        counts = {m.env: int(usable[m.id].sum()) for m in members}
        n_min = min(counts.values())
        entry = {
            "label": label,
            "values": values,
            "setting_ids": [_jsonable(m.id) for m in members],
            "envs": [m.env for m in members],
            "n_seeds": n_seeds,
            "n_runs": int(sum(np.asarray(m.returns).shape[0] for m in members)),
            "n_used": n_min,
            "n_failed": n_failed,
            "n_diverged": n_div,
            "run_scores": {m.env: {s: _jsonable(scores[m.id][s]) for s in SCORES} for m in members},
            "scores": None,
            "rank": None,
            "prob_improvement_of_best": None,
            "not_distinguishable_from_best": None,
            "overlapping_ranks": [],
            "per_env": None,
            "_order": order,
        }
        if n_failed:
            where = (
                ""
                if k == 1
                else " ("
                + ", ".join(f"{m.env}: {int((~usable[m.id]).sum())}" for m in members if (~usable[m.id]).any())
                + ")"
            )
            total = entry["n_runs"]
            if n_min == 0:
                notes.append(
                    f"`{label}`: {n_failed} of {total} runs failed{where}, leaving "
                    + ("no usable run" if k == 1 else "an env with no usable run")
                    + "; it is unranked."
                )
            else:
                notes.append(
                    f"`{label}`: {n_failed} of {total} runs failed{where}; its statistics use the remaining runs."
                )
        if k > 1 and n_min > 0 and len(set(counts.values())) > 1:
            notes.append(
                f"`{label}`: usable runs per env differ ({', '.join(f'{e}: {c}' for e, c in counts.items())}); "
                f"the normalized score matrix keeps the first {n_min} usable runs of each env."
            )
        mat = None
        if n_min > 0:
            if k == 1:
                mat = {s: scores[first.id][s][usable[first.id]] for s in SCORES}
            else:
                mat = {
                    s: np.stack([normalize(scores[m.id][s][usable[m.id]][:n_min], m.env, s) for m in members], axis=1)
                    for s in SCORES
                }
            entry["scores"] = {s: {mt: ci3(mat[s], mt) for mt in METRICS} for s in SCORES}
        if k > 1:
            per_env = {}
            for m in members:
                u = usable[m.id]
                per_env[m.env] = {
                    "setting_id": _jsonable(m.id),
                    "n_seeds": int(np.asarray(m.returns).shape[0]),
                    "n_failed": int((~u).sum()),
                    "n_diverged": int(np.asarray(m.diverged, bool).sum()),
                    **{s: ({mt: ci3(scores[m.id][s][u], mt) for mt in METRICS} if u.any() else None) for s in SCORES},
                }
            entry["per_env"] = per_env
        entries.append(entry)
        matrices.append(mat)

    # Ranking: by the chosen score's IQM; ties (e.g. every setting at an env's maximum return) by the other score's.
    other = "auc" if score == "final" else "final"
    ranked = sorted(
        (i for i, e in enumerate(entries) if e["scores"] is not None),
        key=lambda i: (
            -entries[i]["scores"][score]["iqm"][0],
            -entries[i]["scores"][other]["iqm"][0],
            entries[i]["_order"],
        ),
    )
    unranked = [i for i, e in enumerate(entries) if e["scores"] is None]
    for rank, i in enumerate(ranked, start=1):
        entries[i]["rank"] = rank
    if ranked:
        b = ranked[0]
        best_ci = entries[b]["scores"][score]["iqm"]
        for i in ranked:
            ent = entries[i]
            own = ent["scores"][score]["iqm"]
            ent["overlapping_ranks"] = [
                entries[j]["rank"] for j in ranked if j != i and _overlap(own, entries[j]["scores"][score]["iqm"])
            ]
            if i == b:
                ent["not_distinguishable_from_best"] = False
                continue
            ent["not_distinguishable_from_best"] = _overlap(own, best_ci)
            best_mat, own_mat = matrices[b], matrices[i]
            assert best_mat is not None and own_mat is not None  # a ranked setting has scores: a score matrix
            ent["prob_improvement_of_best"] = list(
                stats.probability_of_improvement(
                    best_mat[score], own_mat[score], reps=reps, seed=seed, confidence=confidence
                )
            )
    settings = [entries[i] for i in ranked + unranked]
    for ent in settings:
        del ent["_order"]

    # Verdict.
    what = f"{confidence:.0%} CIs of the {score}-score IQM" + (" (normalized over envs)" if k > 1 else "")
    if not ranked:
        verdict = "No setting has a usable run: nothing to rank."
    elif len(ranked) == 1:
        verdict = f"Only #1 `{settings[0]['label']}` has usable runs: nothing to compare it with."
    else:
        best = settings[0]
        close = [e["rank"] for e in settings[1 : len(ranked)] if e["not_distinguishable_from_best"]]
        if close:
            verdict = (
                f"#1 `{best['label']}` is not distinguishable from "
                + ", ".join(f"#{r}" for r in close)
                + f" (overlapping {what})."
            )
        else:
            verdict = f"#1 `{best['label']}` is ahead of every other setting with non-overlapping {what}."

    report = {
        "definitions": DEFINITIONS,
        "score": score,
        "confidence": float(confidence),
        "reps": int(reps),
        "seed": _jsonable(seed),
        "envs": envs,
        "num_envs": k,
        "varied": varied,
        "varied_values": {f: per_field_values[f] for f in fields},
        "seeds_per_setting": {e: int(np.asarray(next(r for r in runs if r.env == e).returns).shape[0]) for e in envs},
        "num_settings": len(runs),
        "num_comparison_settings": len(entries),
        "normalization": normalization,
        "notes": notes,
        "verdict": verdict,
        "settings": settings,
    }
    report = _jsonable(report)
    json.dumps(report, allow_nan=False)  # guaranteed JSON-safe
    return report


# --------------------------------------------------------------------------- markdown


def _values_summary(vals: list, fmt) -> str:
    nums = [v for v in vals if _is_number(v)]
    if len(vals) > 8 and len(nums) == len(vals):
        return f"{len(vals)} values in [{fmt(min(nums))}, {fmt(max(nums))}]"
    if len(vals) > 8:
        return f"{len(vals)} values"
    shown = sorted(vals) if len(nums) == len(vals) else vals
    return "{" + ", ".join(fmt(v) for v in shown) + "}"


def _markdown(report: dict, title: str, images: list[str], plot_note: str | None) -> str:
    k, score, conf = report["num_envs"], report["score"], report["confidence"]
    pct = f"{conf:.0%}"
    settings = report["settings"]
    fields = [f for f in report["varied"] if f != "env"]
    fmts = _value_formatters(report["varied_values"])
    envs = report["envs"]
    spp = report["seeds_per_setting"]
    seeds = (
        f"{next(iter(spp.values()))} seeds per setting"
        if len(set(spp.values())) == 1
        else "seeds per setting: " + ", ".join(f"{e}: {s}" for e, s in spp.items())
    )
    env_txt = ", ".join(f"`{e}`" for e in envs)
    varied_txt = "; ".join(f"`{f}` ∈ {_values_summary(report['varied_values'][f], fmts[f])}" for f in fields)
    if k > 1:
        para = (
            f"This sweep compared {report['num_comparison_settings']} settings, each trained on {k} envs "
            f"({env_txt}; {report['num_settings']} env-settings in all), {seeds}. "
        )
    else:
        para = f"This sweep compared {report['num_settings']} settings on {env_txt}, {seeds}. "
    para += f"Varied: {varied_txt}." if varied_txt else "No field other than env was varied."
    para += (
        f" Settings are ranked by the IQM of the **{score}** score (ties broken by the other score's IQM)"
        + (", normalized per env and aggregated over envs" if k > 1 else "")
        + f"; intervals are {pct} percentile-bootstrap CIs over seeds ({report['reps']} resamples"
        + (", stratified per env" if k > 1 else "")
        + ")."
    )

    lines = [
        f"# {title}",
        "",
        para,
        "",
        "Definitions:",
        "",
        f"- **final**: {DEFINITIONS['final']}.",
        f"- **AUC**: {DEFINITIONS['auc']}.",
        f"- **failed** run: {DEFINITIONS['failed']}; **diverged** run: {DEFINITIONS['diverged']}.",
        "- **IQM**: mean of the middle 50% of the scores (`purejaxppo.sweep.stats`).",
        f"- **P(#1 > this)**: probability that a run of #1 beats a run of this setting (ties 1/2), "
        f"{pct} bootstrap CI" + (", averaged over envs" if k > 1 else "") + ".",
        f"- **≈ #1**: this setting's {score} IQM CI overlaps #1's (not distinguishable); "
        "**overlaps**: the ranks whose IQM CIs overlap this one's.",
    ]
    if k > 1:
        norm = report["normalization"]
        if norm["method"] == "reference_scores":
            how = "with the given reference scores (lo, hi) per env: " + ", ".join(
                f"{e}: ({_num(b['final'][0])}, {_num(b['final'][1])})" for e, b in norm["bounds"].items()
            )
        else:
            how = (
                "with (lo, hi) = the min and max of that env's run scores over this sweep (per score kind), "
                "so 0 is the sweep's worst run and 1 its best"
            )
        lines.append(
            f"- **normalized** scores (columns marked norm.): per env (score - lo) / (hi - lo), {how}. "
            f"{DEFINITIONS['matrix'][0].upper()}{DEFINITIONS['matrix'][1:]}."
        )
    lines.append("")
    if report["notes"]:
        lines += ["Notes:", ""] + [f"- {n}" for n in report["notes"]] + [""]

    nrm = " (norm.)" if k > 1 else ""
    header = [
        "rank",
        "setting",
        f"final IQM{nrm} [{pct} CI]",
        f"final mean{nrm} [CI]",
        f"final median{nrm} [CI]",
        f"AUC IQM{nrm} [CI]",
        "P(#1 > this) [CI]",
        "≈ #1",
        "overlaps",
        "runs",
        "diverged / failed",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for e in settings:
        sc = e["scores"]
        pi = e["prob_improvement_of_best"]
        flag = "—" if e["rank"] == 1 or e["rank"] is None else ("yes" if e["not_distinguishable_from_best"] else "no")
        row = [
            str(e["rank"]) if e["rank"] is not None else "unranked",
            f"`{e['label']}`",
            _ci(sc and sc["final"]["iqm"]),
            _ci(sc and sc["final"]["mean"]),
            _ci(sc and sc["final"]["median"]),
            _ci(sc and sc["auc"]["iqm"]),
            _ci(pi, lambda x: f"{x:.2f}") if pi else "—",
            flag,
            ", ".join(f"#{r}" for r in e["overlapping_ranks"]) or "—",
            str(e["n_used"]) + (" × " + str(k) + " envs" if k > 1 else ""),
            f"{e['n_diverged']} / {e['n_failed']}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"**Verdict:** {report['verdict']}", ""]

    if k > 1:
        lines += ["Per-env raw scores (not normalized):", ""]
        for env in envs:
            lines += [
                f"**{env}**",
                "",
                f"| rank | setting | final IQM [{pct} CI] | AUC IQM [CI] | seeds | diverged / failed |",
                "|---|---|---|---|---|---|",
            ]
            for e in settings:
                pe = e["per_env"][env]
                lines.append(
                    "| "
                    + " | ".join(
                        [
                            str(e["rank"]) if e["rank"] is not None else "unranked",
                            f"`{e['label']}`",
                            _ci(pe["final"] and pe["final"]["iqm"]),
                            _ci(pe["auc"] and pe["auc"]["iqm"]),
                            str(pe["n_seeds"]),
                            f"{pe['n_diverged']} / {pe['n_failed']}",
                        ]
                    )
                    + " |"
                )
            lines.append("")
    if plot_note:
        lines += [plot_note, ""]
    for img in images:
        lines += [f"![{pathlib.Path(img).stem}]({img})", ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- plots


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        return False
    return True


def _fill_nan(steps: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row's non-finite points filled by linear interpolation between its finite points."""
    out = np.array(rows, dtype=np.float64)
    x = np.asarray(steps, np.float64)
    for row in out:
        ok = np.isfinite(row)
        if not ok.all():
            row[:] = np.interp(x, x[ok], row[ok])
    return out


def _plot_curve_files(report: dict, runs_by_id: dict, out_dir: pathlib.Path) -> list[pathlib.Path]:
    ranked = [e for e in report["settings"] if e["rank"] is not None]
    if not ranked:
        return []
    shown = ranked[:MAX_CURVES]
    capped = len(ranked) > MAX_CURVES
    envs = report["envs"]
    paths, used = [], set()
    for env in envs:
        curves, steps = {}, {}
        for e in shown:
            r = runs_by_id[e["setting_ids"][e["envs"].index(env)]]
            ret = np.asarray(r.returns, np.float64)
            ok = np.isfinite(ret).any(axis=1)
            name = f"#{e['rank']} {e['label']}"
            steps[name] = np.asarray(r.steps, np.float64)  # settings of other batch sizes log at other steps
            curves[name] = _fill_nan(steps[name], ret[ok])
        if len(envs) == 1:
            name = "curves.png"
        else:
            name = f"curves_{_safe_name(env)}.png"
            while name in used:
                name = name[:-4] + "_.png"
        used.add(name)
        title = f"{env}: learning curves"
        if capped:
            title += f" (top {MAX_CURVES} of {len(ranked)} settings by rank)"
        paths.append(
            stats.plot_curves(
                curves,
                steps,
                out_dir / name,
                metric="iqm",
                title=title,
                reps=report["reps"],
                confidence=report["confidence"],
                seed=report["seed"],
            )
        )
    return paths


def sensitivity_series(report: dict, field: str) -> tuple[bool, dict[str, list[dict]]]:
    """How `sensitivity_<field>.png` draws the ranked comparison settings.

    Groups them by the values of the other varied fields (env excluded): {label: entries}.
    Returns `(as_lines, groups)`: lines (one per group, labelled with those values) when that
    gives at most `MAX_SENSITIVITY_LINES` groups of at least 2 points each, else plain points.
    """
    if field == "env" or field not in report["varied"]:
        raise ConfigError(f"{field!r} is not a varied field other than env: {report['varied']}")
    others = [f for f in report["varied"] if f not in ("env", field)]
    fmts = _value_formatters(report["varied_values"])
    groups: dict[str, list] = {}
    for e in report["settings"]:
        if e["rank"] is not None:
            gl = ", ".join(f"{f}={fmts[f](e['values'][f])}" for f in others)
            groups.setdefault(gl, []).append(e)
    as_lines = bool(groups) and len(groups) <= MAX_SENSITIVITY_LINES and all(len(g) >= 2 for g in groups.values())
    return as_lines, groups


def _plot_sensitivity(report: dict, field: str, path: pathlib.Path) -> pathlib.Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    score, k, conf = report["score"], report["num_envs"], report["confidence"]
    ranked = [e for e in report["settings"] if e["rank"] is not None]
    others = [f for f in report["varied"] if f not in ("env", field)]
    fmts = _value_formatters(report["varied_values"])
    xs_all = [e["values"][field] for e in ranked]
    numeric = all(_is_number(v) for v in xs_all)
    if numeric:

        def pos(v):
            return float(v)

        pos_vals = [float(v) for v in xs_all]
        logx = bool(pos_vals) and min(pos_vals) > 0 and max(pos_vals) / min(pos_vals) >= 10
        cats = None
    else:
        cats = list({_key(v): v for v in report["varied_values"][field]}.items())
        index = {kk: i for i, (kk, _) in enumerate(cats)}

        def pos(v):
            return float(index[_key(v)])

        logx = False

    as_lines, groups = sensitivity_series(report, field)

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    def draw(es, fmt, label, color=None, dodge=0.0):
        es = sorted(es, key=lambda e: pos(e["values"][field]))
        x = np.array([pos(e["values"][field]) for e in es]) + dodge
        y = np.array([e["scores"][score]["iqm"][0] for e in es])
        lo = np.array([e["scores"][score]["iqm"][1] for e in es])
        hi = np.array([e["scores"][score]["iqm"][2] for e in es])
        yerr = np.stack([np.maximum(y - lo, 0), np.maximum(hi - y, 0)])
        return ax.errorbar(x, y, yerr=yerr, fmt=fmt, capsize=3, label=label, color=color, alpha=0.9)

    if as_lines:
        n = len(groups)
        for i, (gl, es) in enumerate(groups.items()):
            dodge = 0.0 if numeric or n == 1 else (i - (n - 1) / 2) * min(0.1, 0.6 / n)
            draw(es, "o-", gl or None, dodge=dodge)
    else:
        draw(ranked, "o", None, color="C0")
    if ranked:  # mark #1
        b = ranked[0]
        ax.plot(
            [pos(b["values"][field])],
            [b["scores"][score]["iqm"][0]],
            marker="*",
            markersize=14,
            color="gold",
            markeredgecolor="black",
            linestyle="none",
            label="#1",
            zorder=5,
        )
    if logx:
        ax.set_xscale("log")
    if cats is not None:
        ax.set_xticks(range(len(cats)), [fmts[field](v) for _, v in cats])
        ax.set_xlim(-0.5, len(cats) - 0.5)
    ax.set_xlabel(field)
    what = f"{score} score IQM" + (" (normalized, aggregated over envs)" if k > 1 else "")
    ax.set_ylabel(f"{what}, {conf:.0%} CI")
    ax.set_title(f"Sensitivity to {field}" + ("" if as_lines or not others else " (each point one setting)"))
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


# --------------------------------------------------------------------------- writing


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
    written: list[pathlib.Path] = []
    pngs: list[pathlib.Path] = []
    plot_note = None
    if plots:
        if _have_matplotlib():
            pngs += _plot_curve_files(report, runs_by_id, out)
            if any(e["rank"] is not None for e in report["settings"]):
                for field in report["varied"]:
                    if field != "env":
                        pngs.append(_plot_sensitivity(report, field, out / f"sensitivity_{_safe_name(field)}.png"))
        else:
            plot_note = "Plots skipped: matplotlib is not installed (`pip install 'purejaxppo[plot]'`)."
    md = out / "sweep.md"
    md.write_text(_markdown(report, title, [p.name for p in pngs], plot_note), encoding="utf-8")
    js = out / "sweep.json"
    js.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    written += [md, js] + pngs
    return written
