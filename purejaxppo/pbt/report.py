"""The report of a population-based training run folder, read back from its metrics.jsonl.

Every logged update has a row per member with its `episode_return`, the explored hyperparameters it trained
with (`hp_<field>`), and at a ready step whom it copied (`pbt_parent`, itself if kept) and its score
(`pbt_score`, the mean return since the previous ready step). From these:

* final scores: each member's mean return over the last `ready_every` updates, with a percentile-bootstrap
  95% CI over those updates (purejaxppo.sweep.stats), and the population's mean over members with its CI;
* the best member (highest final score) and its hyperparameter schedule over training: its own values back
  to the last time it copied another member, that member's before, and so on (the lineage of its learner);
* the lineage: who copied whom at which update;
* the divergences (`divergences`): every time a member diverged, and the ready step at which it copied a
  healthy member's learner (the run's status is "diverged" only while a member still is; `pbt_run` writes it);
* plots: every member's curve (`pbt_curves.png`) and the population's hyperparameters over time with the
  best member's schedule (`pbt_hparams.png`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.core.pbt import PBTConfig
from purejaxppo.errors import RunError
from purejaxppo.runs import RUN_FILE, metric_table, read_metrics
from purejaxppo.sweep.plots import NO_MATPLOTLIB, have_matplotlib
from purejaxppo.sweep.stats import bootstrap_ci
from purejaxppo.sweep.values import num

MAX_LINEAGE_ROWS = 40  # rows of the lineage table in pbt.md (pbt.json holds all)


def _run_info(run_dir: Path) -> tuple[dict, PBTConfig]:
    try:
        info = json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"{run_dir}: cannot read {RUN_FILE} ({e})") from None
    if info.get("pbt") is None:
        raise RunError(f"{run_dir} is not a population-based training run (its {RUN_FILE} names no pbt)")
    return info, PBTConfig.from_json(info["pbt"], source=str(run_dir / RUN_FILE))


def _table(rows: list[dict], p: int, key: str) -> tuple[list[int], np.ndarray]:
    """(logged updates, `[P, T]` values of metrics column `key`, NaN where missing)."""
    return metric_table(rows, key, key="run", x="update", num_rows=p)


def pbt_report(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The report of a PBT run folder as a JSON-able dict (see the module docstring)."""
    run_dir = Path(run_dir)
    info, pbt = _run_info(run_dir)
    rows = [r for r in read_metrics(run_dir) if "run" in r]
    if not rows:
        raise RunError(f"{run_dir}: metrics.jsonl holds no rows yet")
    p, k = pbt.population, pbt.ready_every
    updates, returns = _table(rows, p, "episode_return")
    parents = _table(rows, p, "pbt_parent")[1]
    scores = _table(rows, p, "pbt_score")[1]
    hps = {f: _table(rows, p, f"hp_{f}")[1] for f in pbt.fields}
    done = updates[-1]

    last = np.asarray([u > done - k for u in updates])
    final = []
    for m in range(p):
        vals = returns[m, last]
        vals = vals[np.isfinite(vals)]
        point, lo, hi = _mean_ci(vals)
        final.append(
            {"member": m, "score": point, "ci": [lo, hi], "hparams": {f: float(hps[f][m, -1]) for f in pbt.fields}}
        )
    member_scores = np.asarray([e["score"] for e in final], float)
    order = sorted(range(p), key=lambda m: (-np.nan_to_num(member_scores[m], nan=-np.inf), m))
    for rank, m in enumerate(order, 1):
        final[m]["rank"] = rank
    best = order[0]
    pop = _mean_ci(member_scores[np.isfinite(member_scores)])

    lineage = []
    for j, u in enumerate(updates):
        for m in range(p):
            par = parents[m, j]
            if np.isfinite(par) and int(par) != m:
                lineage.append(
                    {
                        "update": u,
                        "member": m,
                        "parent": int(par),
                        "score": _f(scores[m, j]),
                        "parent_score": _f(scores[int(par), j]),
                    }
                )
    schedule, ancestry = _best_schedule(best, updates, parents, hps)
    events = divergences(rows)
    return {
        "run_dir": str(run_dir),
        "env": info.get("env"),
        "population": p,
        "ready_every": k,
        "truncation": pbt.truncation,
        "perturb": list(pbt.perturb),
        "resample_prob": pbt.resample_prob,
        "ranges": {f: f"{kind}:{lo:g}:{hi:g}" for f, kind, lo, hi in pbt.ranges},
        "fields": list(pbt.fields),
        "num_updates": info.get("num_updates"),
        "update": done,
        "status": info.get("status"),
        "updates": updates,
        "curves": [[_f(x) for x in row] for row in returns],
        "hparams": {f: [[_f(x) for x in row] for row in v] for f, v in hps.items()},
        "lineage": lineage,
        "divergences": events,
        "final": final,
        "population_final": {"mean": _f(pop[0]), "ci": [_f(pop[1]), _f(pop[2])]},
        "best": best,
        "best_schedule": {f: [_f(x) for x in v] for f, v in schedule.items()},
        "best_ancestry": ancestry,
    }


def divergences(rows: list[dict]) -> list[dict]:
    """Every divergence of a population's members, from its metrics.jsonl rows (those with a "run" index).

    One dict per event, by update then member: `member`; `diverged_at_update`, the first logged update with
    its `diverged` flag on (the update where it turned on is always logged); `replaced_at_update` and
    `parent`, the ready step at which it copied another (healthy) member's learner and that member, or None
    while it is still diverged. A replaced member may diverge again: a new event. A diverged member is never
    copied, so a replacement always ends a divergence; when every member is diverged nobody is replaced.
    """
    events: list[dict] = []
    current: dict[int, dict] = {}
    for r in sorted((r for r in rows if "run" in r), key=lambda r: (int(r["update"]), int(r["run"]))):
        m, u = int(r["run"]), int(r["update"])
        if m not in current and (r.get("diverged") or 0) > 0:
            current[m] = {"member": m, "diverged_at_update": u, "replaced_at_update": None, "parent": None}
            events.append(current[m])
        parent = r.get("pbt_parent")
        # the ready step's row is the update's own (its flag still on); the copy ends the divergence after it
        if m in current and parent is not None and int(parent) != m:
            current.pop(m).update(replaced_at_update=u, parent=int(parent))
    return events


def still_diverged(events: list[dict]) -> list[int]:
    """The members whose last divergence in `events` (from `divergences`) was not ended by a replacement."""
    return sorted({e["member"] for e in events if e["replaced_at_update"] is None})


def _mean_ci(vals: np.ndarray) -> tuple[float, float, float]:
    """(mean, 95% bootstrap CI) of finite values; one value is its own interval, none is NaN."""
    if vals.size > 1:
        return bootstrap_ci(vals, "mean")
    x = float(vals[0]) if vals.size else float("nan")
    return x, x, x


def _f(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _best_schedule(best: int, updates: list[int], parents: np.ndarray, hps: dict[str, np.ndarray]):
    """The hyperparameters that trained the best member's learner at each logged update, and whose they were.

    Walking back from the end: at a ready step where the current member copied another one (at the end of
    that update), the learner came from that other member, so the walk follows it from that update on back."""
    current = best
    owner = [0] * len(updates)
    for j in range(len(updates) - 1, -1, -1):
        par = parents[current, j]
        if np.isfinite(par) and int(par) != current:
            current = int(par)
        owner[j] = current
    schedule = {f: np.asarray([v[owner[j], j] for j in range(len(updates))]) for f, v in hps.items()}
    return schedule, owner


def best_member(run_dir: str | os.PathLike) -> int:
    """The index (run/seed index of the folder) of the member with the highest final score: pass it to
    `load_policy(run_dir, seed_index=...)` or `purejaxppo render --seed-index`."""
    return int(pbt_report(run_dir)["best"])


# ------------------------------------------------------------------------------------------ files


def _markdown(rep: dict, images: list[str], note: str | None) -> str:
    fields = rep["fields"]
    lines = [
        f"# Population-based training: {rep['env']}",
        "",
        f"{rep['population']} members, exploit/explore every {rep['ready_every']} updates "
        f"(truncation {rep['truncation']:g}: the bottom copy the top; perturb "
        + ", ".join(f"x{x:g}" for x in rep["perturb"])
        + f" or resample with probability {rep['resample_prob']:g}); explored: "
        + ", ".join(f"`{f}` {r}" for f, r in rep["ranges"].items())
        + f". Update {rep['update']} of {rep['num_updates']} ({rep['status']}).",
        "",
        "Final score: a member's mean episode return over its last "
        f"{rep['ready_every']} updates (95% bootstrap CI over those updates).",
        "",
        f"Population mean of the final scores: {num(rep['population_final']['mean'])} "
        f"(95% CI {num(rep['population_final']['ci'][0])} .. {num(rep['population_final']['ci'][1])}).",
        "",
        "| rank | member | final score | 95% CI | " + " | ".join(f"`{f}`" for f in fields) + " |",
        "|---:|---:|---:|---|" + "---:|" * len(fields),
    ]
    for e in sorted(rep["final"], key=lambda e: e["rank"]):
        lines.append(
            f"| {e['rank']} | {e['member']} | {num(e['score'])} | {num(e['ci'][0])} .. {num(e['ci'][1])} | "
            + " | ".join(f"{e['hparams'][f]:.4g}" for f in fields)
            + " |"
        )
    best = rep["best"]
    lines += [
        "",
        f"## The best member ({best}): its hyperparameter schedule",
        "",
        "The values its learner trained with, following its lineage back (member = whose learner it was then). "
        f"Load it with `load_policy(run_dir, seed_index={best})`; `purejaxppo render RUN` draws it.",
        "",
        "| update | member | " + " | ".join(f"`{f}`" for f in fields) + " |",
        "|---:|---:|" + "---:|" * len(fields),
    ]
    k = rep["ready_every"]
    for j, u in enumerate(rep["updates"]):
        if u % k == 0 or j == len(rep["updates"]) - 1:
            vals = [rep["best_schedule"][f][j] for f in fields]
            lines.append(
                f"| {u} | {rep['best_ancestry'][j]} | "
                + " | ".join("" if v is None else f"{v:.4g}" for v in vals)
                + " |"
            )
    lines += ["", "## Lineage: who copied whom", ""]
    if not rep["lineage"]:
        lines.append("No member was replaced.")
    else:
        lines += ["| update | member | copied | its score | parent's score |", "|---:|---:|---:|---:|---:|"]
        for e in rep["lineage"][-MAX_LINEAGE_ROWS:]:
            lines.append(
                f"| {e['update']} | {e['member']} | {e['parent']} | {num(e['score'])} | {num(e['parent_score'])} |"
            )
        if len(rep["lineage"]) > MAX_LINEAGE_ROWS:
            lines.append(f"\n(the last {MAX_LINEAGE_ROWS} of {len(rep['lineage'])}; pbt.json holds all)")
    lines += ["", "## Divergences", ""]
    if not rep.get("divergences"):
        lines.append("No member diverged.")
    for e in rep.get("divergences") or []:
        lines.append(
            f"- member {e['member']} diverged at update {e['diverged_at_update']}; "
            + (
                "still diverged at the end (frozen at its last finite parameters)."
                if e["replaced_at_update"] is None
                else f"replaced at update {e['replaced_at_update']} by member {e['parent']}'s learner."
            )
        )
    lines.append("")
    if note:
        lines += [note, ""]
    lines += [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def _plots(rep: dict, run_dir: Path) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(rep["updates"])
    best = rep["best"]

    def arr(rows):
        return np.asarray([[np.nan if v is None else v for v in row] for row in rows], float)

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for m, row in enumerate(arr(rep["curves"])):
        ax.plot(x, row, lw=2.0 if m == best else 0.8, alpha=1.0 if m == best else 0.6, label=f"member {m}")
    for e in rep["lineage"]:
        ax.axvline(e["update"], color="grey", lw=0.3, alpha=0.3)
    ax.set_xlabel("update")
    ax.set_ylabel("episode return")
    ax.set_title(f"Every member's return (best: {best}; grey: exploit steps)")
    ax.grid(alpha=0.3)
    if rep["population"] <= 12:
        ax.legend(fontsize="small")
    curves = run_dir / "pbt_curves.png"
    fig.savefig(curves, format="png", dpi=100)

    fields = rep["fields"]
    fig = Figure(figsize=(7, 2.8 * len(fields)), layout="constrained")
    FigureCanvasAgg(fig)
    for i, f in enumerate(fields):
        ax = fig.add_subplot(len(fields), 1, i + 1)
        for row in arr(rep["hparams"][f]):
            ax.plot(x, row, lw=0.8, alpha=0.5, drawstyle="steps-post")
        sched = np.asarray([np.nan if v is None else v for v in rep["best_schedule"][f]], float)
        ax.plot(x, sched, color="black", lw=2.0, drawstyle="steps-post", label=f"best member's schedule ({best})")
        if rep["ranges"][f].startswith("log"):
            ax.set_yscale("log")
        ax.set_ylabel(f)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    ax.set_xlabel("update")
    hparams = run_dir / "pbt_hparams.png"
    fig.savefig(hparams, format="png", dpi=100)
    return [curves, hparams]


def write_pbt_report(run_dir: str | os.PathLike) -> tuple[dict, list[Path]]:
    """Write pbt.json, pbt.md and (with matplotlib) the plots into the run folder; returns (report, paths)."""
    run_dir = Path(run_dir)
    rep = pbt_report(run_dir)
    pngs, note = (_plots(rep, run_dir), None) if have_matplotlib() else ([], NO_MATPLOTLIB)
    (run_dir / "pbt.json").write_text(json.dumps(rep, indent=1) + "\n")
    (run_dir / "pbt.md").write_text(_markdown(rep, [p.name for p in pngs], note))
    return rep, [run_dir / "pbt.md", run_dir / "pbt.json", *pngs]
