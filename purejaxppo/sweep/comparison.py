"""The statistics of a sweep's comparison settings: IQM / mean / median with bootstrap CIs per setting
(`comparison_entries`), the ranking with P(#1 > this) and CI overlaps (`rank_entries`), and the verdict.
Definitions: `purejaxppo.sweep.report`'s module docstring."""

from __future__ import annotations

import dataclasses

import numpy as np

from purejaxppo.sweep import stats
from purejaxppo.sweep.scores import METRICS, SCORES, ScoredRuns, SettingRuns
from purejaxppo.sweep.values import jsonable, setting_value, value_formatters


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """The bootstrap's settings, the same for every statistic of a report."""

    reps: int
    confidence: float
    seed: int

    def ci(self, x, metric) -> list:
        return list(stats.bootstrap_ci(x, metric, reps=self.reps, confidence=self.confidence, seed=self.seed))

    def metrics(self, x) -> dict:
        """{metric: [point, lo, hi]} for every metric of `METRICS`."""
        return {mt: self.ci(x, mt) for mt in METRICS}

    def prob_improvement(self, x, y) -> list:
        return list(stats.probability_of_improvement(x, y, reps=self.reps, seed=self.seed, confidence=self.confidence))


def _overlap(a, b) -> bool:
    return a[1] <= b[2] and b[1] <= a[2]


# --------------------------------------------------------------------------- one comparison setting


def _notes(label: str, members: list[SettingRuns], sr: ScoredRuns, entry: dict, counts: dict[str, int]) -> list[str]:
    """The report's notes about a comparison setting: failed runs, unequal usable runs per env."""
    k, n_failed, n_min = len(members), entry["n_failed"], entry["n_used"]
    notes = []
    if n_failed:
        failed = {m.env: int((~sr.usable[m.id]).sum()) for m in members}
        where = "" if k == 1 else " (" + ", ".join(f"{e}: {n}" for e, n in failed.items() if n) + ")"
        total = entry["n_runs"]
        if n_min == 0:
            notes.append(
                f"`{label}`: {n_failed} of {total} runs failed{where}, leaving "
                + ("no usable run" if k == 1 else "an env with no usable run")
                + "; it is unranked."
            )
        else:
            notes.append(f"`{label}`: {n_failed} of {total} runs failed{where}; its statistics use the remaining runs.")
    if k > 1 and n_min > 0 and len(set(counts.values())) > 1:
        notes.append(
            f"`{label}`: usable runs per env differ ({', '.join(f'{e}: {c}' for e, c in counts.items())}); "
            f"the normalized score matrix keeps the first {n_min} usable runs of each env."
        )
    return notes


def _matrix(members: list[SettingRuns], sr: ScoredRuns, n_min: int) -> dict[str, np.ndarray]:
    """Per score kind, what the statistics aggregate: the raw `[n]` scores (K = 1), else the normalized `[n, K]`."""
    if len(members) == 1:
        first = members[0]
        return {s: sr.scores[first.id][s][sr.usable[first.id]] for s in SCORES}
    return {
        s: np.stack([sr.normalize(sr.scores[m.id][s][sr.usable[m.id]][:n_min], m.env, s) for m in members], axis=1)
        for s in SCORES
    }


def _per_env(members: list[SettingRuns], sr: ScoredRuns, boot: Bootstrap) -> dict:
    """K > 1: each env's raw (not normalized) statistics."""
    per_env = {}
    for m in members:
        u = sr.usable[m.id]
        per_env[m.env] = {
            "setting_id": jsonable(m.id),
            "n_seeds": int(np.asarray(m.returns).shape[0]),
            "n_failed": int((~u).sum()),
            "n_diverged": int(np.asarray(m.diverged, bool).sum()),
            **{s: (boot.metrics(sr.scores[m.id][s][u]) if u.any() else None) for s in SCORES},
        }
    return per_env


def _entry(members: list[SettingRuns], values: dict, label: str, sr: ScoredRuns) -> dict:
    """A comparison setting's entry of sweep.json's "settings", before its statistics and rank."""
    counts = {m.env: int(sr.usable[m.id].sum()) for m in members}
    return {
        "label": label,
        "values": values,
        "setting_ids": [jsonable(m.id) for m in members],
        "envs": [m.env for m in members],
        "n_seeds": min(np.asarray(m.returns).shape[0] for m in members),
        "n_runs": int(sum(np.asarray(m.returns).shape[0] for m in members)),
        "n_used": min(counts.values()),
        "n_failed": int(sum(int((~sr.usable[m.id]).sum()) for m in members)),
        "n_diverged": int(sum(int(np.asarray(m.diverged, bool).sum()) for m in members)),
        "run_scores": {m.env: {s: jsonable(sr.scores[m.id][s]) for s in SCORES} for m in members},
        "scores": None,
        "rank": None,
        "prob_improvement_of_best": None,
        "not_distinguishable_from_best": None,
        "overlapping_ranks": [],
        "per_env": None,
    }


def comparison_entries(
    groups: list[dict[str, SettingRuns]],
    envs: list[str],
    fields: list[str],
    per_field_values: dict[str, list],
    sr: ScoredRuns,
    boot: Bootstrap,
) -> tuple[list[dict], list[dict | None], list[str]]:
    """(entries, score matrices, notes): per comparison setting its entry with statistics (unranked yet) and
    `{score kind: [n] or [n, K] array}` (None without a usable run), and the report's notes."""
    fmts = value_formatters(per_field_values)
    entries: list[dict] = []
    matrices: list[dict | None] = []
    notes: list[str] = []
    for g in groups:
        members = [g[e] for e in envs if e in g]
        values = {f: setting_value(members[0].values[f]) for f in fields}
        label = ", ".join(f"{f}={fmts[f](values[f])}" for f in fields) or "(all)"
        entry = _entry(members, values, label, sr)
        notes += _notes(label, members, sr, entry, {m.env: int(sr.usable[m.id].sum()) for m in members})
        mat = None
        if entry["n_used"] > 0:
            mat = _matrix(members, sr, entry["n_used"])
            entry["scores"] = {s: boot.metrics(mat[s]) for s in SCORES}
        if len(envs) > 1:
            entry["per_env"] = _per_env(members, sr, boot)
        entries.append(entry)
        matrices.append(mat)
    return entries, matrices, notes


# --------------------------------------------------------------------------- ranking and verdict


def rank_entries(entries: list[dict], matrices: list[dict | None], score: str, boot: Bootstrap) -> tuple[list, int]:
    """(the entries ranked, the number ranked): sets each ranked entry's rank, P(#1 > this) and CI overlaps.

    By the chosen score's IQM; ties (e.g. every setting at an env's maximum return) by the other score's, then
    by order; the unranked (no usable run) come last."""
    other = "auc" if score == "final" else "final"
    ranked = sorted(
        (i for i, e in enumerate(entries) if e["scores"] is not None),
        key=lambda i: (-entries[i]["scores"][score]["iqm"][0], -entries[i]["scores"][other]["iqm"][0], i),
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
            ent["prob_improvement_of_best"] = boot.prob_improvement(best_mat[score], own_mat[score])
    return [entries[i] for i in ranked + unranked], len(ranked)


def verdict(settings: list[dict], n_ranked: int, score: str, confidence: float, k: int) -> str:
    """One sentence: is #1 distinguishable from the other ranked settings?"""
    what = f"{confidence:.0%} CIs of the {score}-score IQM" + (" (normalized over envs)" if k > 1 else "")
    if not n_ranked:
        return "No setting has a usable run: nothing to rank."
    if n_ranked == 1:
        return f"Only #1 `{settings[0]['label']}` has usable runs: nothing to compare it with."
    best = settings[0]
    close = [e["rank"] for e in settings[1:n_ranked] if e["not_distinguishable_from_best"]]
    if close:
        return (
            f"#1 `{best['label']}` is not distinguishable from "
            + ", ".join(f"#{r}" for r in close)
            + f" (overlapping {what})."
        )
    return f"#1 `{best['label']}` is ahead of every other setting with non-overlapping {what}."
