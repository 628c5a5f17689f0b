"""Reading a sweep folder back for its report: every setting's learning curves from its group's metrics.jsonl."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from purejaxppo.errors import RunError
from purejaxppo.sweep.folder import GROUPS_DIR, SPEC_FILE, group_state, read_saved
from purejaxppo.sweep.report import compute_report, write_report
from purejaxppo.sweep.scores import SettingRuns
from purejaxppo.sweep.spec import SweepSpec, plan_sweep


def load_setting_runs(
    sweep_dir: str | os.PathLike, metric: str = "episode_return"
) -> tuple[list[SettingRuns], list[str], SweepSpec]:
    """([SettingRuns], varied fields, SweepSpec) of a sweep folder whose groups have all finished.

    Each setting's `returns[s, t]` is `metric` of its seed s at the t-th logged update; `diverged[s]` is true
    when the run's "diverged" flag was ever on.
    """
    from purejaxppo.runs.loading import read_metrics  # JAX: only when a report is made

    sweep_dir = Path(sweep_dir)
    spec, saved = read_saved(sweep_dir)
    plan = plan_sweep(spec, check_memory=False)
    out = []
    for g in plan.groups:
        gdir = sweep_dir / GROUPS_DIR / g.dir_name
        status, update = group_state(gdir)
        if update < g.config.num_updates:
            raise RunError(
                f"sweep {sweep_dir} is not finished: program {g.id} ({gdir}) is at update {update} of "
                f"{g.config.num_updates}; continue it with: purejaxppo sweep --resume {sweep_dir}"
            )
        rows = read_metrics(gdir)
        by_setting: dict[int, dict[int, dict[int, tuple]]] = {}
        for r in rows:
            by_setting.setdefault(r["setting"], {}).setdefault(r["seed"], {})[r["env_steps"]] = (
                r.get(metric),
                r.get("diverged"),
            )
        for st in g.settings:
            seeds = by_setting.get(st.id)
            if not seeds or len(seeds) != spec.seeds:
                raise RunError(
                    f"{gdir}/metrics.jsonl has no rows for setting {st.id} x {spec.seeds} seeds; "
                    "the folder was changed by hand?"
                )
            steps = sorted(set().union(*(set(v) for v in seeds.values())))
            returns = np.array(
                [
                    [np.nan if seeds[s].get(x, (None,))[0] is None else seeds[s][x][0] for x in steps]
                    for s in range(spec.seeds)
                ],
                np.float64,
            )
            diverged = np.array([any((v[1] or 0) > 0 for v in seeds[s].values()) for s in range(spec.seeds)])
            out.append(
                SettingRuns(
                    id=st.id,
                    values=dict(st.values),
                    env=g.config.env,
                    steps=np.asarray(steps, np.float64),
                    returns=returns,
                    diverged=diverged,
                )
            )
    saved_ids = [s["id"] for s in saved.get("settings", [])]
    if saved_ids and saved_ids != [s.id for s in plan.settings]:
        raise RunError(f"{sweep_dir}/{SPEC_FILE}: its settings no longer match the spec (edited by hand?)")
    return sorted(out, key=lambda r: r.id), spec.varied, spec


def make_report(
    sweep_dir: str | os.PathLike, *, log: Callable[[str], None] = print, reps: int = 2000, score: str | None = None
) -> tuple[dict, list[Path]]:
    """Compute and write the report of a finished sweep folder (sweep.md, sweep.json, PNGs); returns
    (the sweep.json dict, the written paths)."""
    runs, varied, spec = load_setting_runs(sweep_dir)
    report = compute_report(runs, varied, score=score or spec.score, reference_scores=spec.reference_scores, reps=reps)
    title = f"Sweep: {', '.join(varied)} on {', '.join(sorted({r.env for r in runs}))}"
    return report, write_report(report, runs, sweep_dir, title=title)
