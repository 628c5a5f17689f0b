"""What a sweep's statistics start from: every run's scores (`run_scores`), the runs checked (`check_runs`),
grouped into comparison settings (`comparison_groups`) and normalized per env when there are several
(`score_runs`). The definitions are in `purejaxppo.sweep.report`'s module docstring (and `DEFINITIONS`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from purejaxppo.errors import ConfigError
from purejaxppo.sweep.values import setting_value, value_key

SCORES = ("final", "auc")
METRICS = ("iqm", "mean", "median")

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

    Definitions in `purejaxppo.sweep.report`'s module docstring; a failed run (no finite value) scores NaN in both.
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


# --------------------------------------------------------------------------- validation


def _check_setting(r, varied: list[str]) -> None:
    """One `SettingRuns`' types and shapes, and its values of the varied fields."""
    if not isinstance(r.values, dict):
        raise ConfigError(f"setting {r.id}: `values` must be a dict, got {type(r.values).__name__}")
    ret, st, dv = np.asarray(r.returns), np.asarray(r.steps), np.asarray(r.diverged)
    if ret.ndim != 2 or ret.shape[0] < 1 or ret.shape[1] < 1:
        raise ConfigError(f"setting {r.id}: `returns` must be [S, T] with S, T >= 1, got shape {ret.shape}")
    if st.shape != (ret.shape[1],):
        raise ConfigError(
            f"setting {r.id}: `steps` must have shape ({ret.shape[1]},) to match `returns` {ret.shape}, got {st.shape}"
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


def check_runs(runs, varied) -> tuple[list[SettingRuns], list[str]]:
    """`(runs, varied)` as lists, checked: ConfigError for anything `compute_report` cannot report on."""
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
        _check_setting(r, varied)
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


# --------------------------------------------------------------------------- comparison settings


def comparison_groups(runs: list[SettingRuns], fields: list[str], envs: list[str]) -> list[dict[str, SettingRuns]]:
    """The comparison settings, in order of first appearance: each `{env: its SettingRuns}`.

    `fields`: the varied fields other than env. With several `envs`, each must cover every env.
    """
    groups: dict[tuple, dict[str, SettingRuns]] = {}
    for r in runs:
        key = tuple(value_key(r.values[f]) for f in fields)
        g = groups.setdefault(key, {})
        if r.env in g:
            what = "the same varied values" + (f" on env {r.env!r}" if len(envs) > 1 else "")
            raise ConfigError(
                f"settings {g[r.env].id} and {r.id} have {what}: "
                f"{{{', '.join(f'{f}={r.values[f]!r}' for f in fields)}}}"
            )
        g[r.env] = r
    if len(envs) > 1:
        for g in groups.values():
            missing = [e for e in envs if e not in g]
            if missing:
                some = next(iter(g.values()))
                raise ConfigError(
                    f"setting {some.id} ({', '.join(f'{f}={some.values[f]!r}' for f in fields) or 'no other field'}) "
                    f"has no counterpart on env(s) {', '.join(map(repr, missing))}: every combination "
                    "of the other varied fields needs a setting on every env"
                )
    return list(groups.values())


def field_values(runs: list[SettingRuns], fields: list[str]) -> dict[str, list]:
    """Per field: its distinct (JSON-safe) values, in order of first appearance."""
    return {
        f: list({value_key(setting_value(r.values[f])): setting_value(r.values[f]) for r in runs}.values())
        for f in fields
    }


# --------------------------------------------------------------------------- scores and normalization


@dataclasses.dataclass
class ScoredRuns:
    """Every run's scores, which runs are usable, and the per-env normalization (K > 1)."""

    scores: dict  # setting id -> {score kind: [S]}
    usable: dict  # setting id -> [S] bool: the run has a finite score (it did not fail)
    bounds: dict[str, dict[str, tuple[float, float]]]  # env -> score kind -> (lo, hi); empty when K = 1
    normalization: dict | None  # sweep.json's "normalization" (None when K = 1)

    def normalize(self, x: np.ndarray, env: str, s: str) -> np.ndarray:
        lo, hi = self.bounds[env][s]
        return (x - lo) / ((hi - lo) if hi != lo else 1.0)


def _reference_bounds(reference_scores: dict, envs: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    missing = [e for e in envs if e not in reference_scores]
    if missing:
        raise ConfigError(f"`reference_scores` has no entry for env(s) {', '.join(map(repr, missing))}")
    bounds = {}
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
    return bounds


def _min_max_bounds(runs, envs, scores, usable) -> dict[str, dict[str, tuple[float, float]]]:
    bounds: dict[str, dict[str, tuple[float, float]]] = {}
    for e in envs:
        bounds[e] = {}
        for s in SCORES:
            vals = np.concatenate([scores[r.id][s][usable[r.id]] for r in runs if r.env == e])
            bounds[e][s] = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    return bounds


def score_runs(runs: list[SettingRuns], envs: list[str], reference_scores: dict | None) -> ScoredRuns:
    """Every run's scores and, with several envs, each env's normalization bounds."""
    scores = {r.id: run_scores(r.steps, r.returns) for r in runs}
    usable = {r.id: np.isfinite(scores[r.id]["final"]) for r in runs}
    if len(envs) == 1:
        return ScoredRuns(scores, usable, {}, None)
    if reference_scores is not None:
        bounds, method = _reference_bounds(reference_scores, envs), "reference_scores"
    else:
        bounds, method = _min_max_bounds(runs, envs, scores, usable), "min-max"
    normalization = {"method": method, "bounds": {e: {s: list(bounds[e][s]) for s in SCORES} for e in envs}}
    return ScoredRuns(scores, usable, bounds, normalization)
