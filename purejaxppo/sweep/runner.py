"""`sweep_run`: a sweep into one folder: every program (group) a run folder of its own, then the report.

Sweep folder::

    runs/NAME/
      sweep.yaml        the spec (base config in full, grid, ranges, seeds) and every setting's values and group
      run.json          status, programs (groups) with their status, sessions
      groups/g0/        one run folder per program (purejaxppo.runs): config.yaml, run.json, checkpoints/,
                        metrics.jsonl with "run", "setting" and "seed" on every row
      sweep.md  sweep.json  curves.png  sensitivity_<field>.png      the report (purejaxppo.sweep.report)
      .lock

Each group trains through `purejaxppo.runs.train_run` with a `RunAxis` (all
its settings x seeds in one vmapped, chunked, checkpointed program), so a
group resumes bit-identically, and a resumed sweep skips finished groups.
Diverged runs never stop a sweep (`on_diverge="continue"`): they are frozen
and counted in the report.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from purejaxppo.errors import RunError
from purejaxppo.runs.files import _now, _save_info, _write_json
from purejaxppo.runs.folder import RunLock, claim_new_run_dir, is_empty_but_lock
from purejaxppo.sweep.folder import GROUPS_DIR, REPORT_FILES, RUN_FILE, SPEC_FILE, group_state, read_saved
from purejaxppo.sweep.report_io import make_report
from purejaxppo.sweep.spec import SweepPlan, SweepSpec, plan_sweep


@dataclasses.dataclass
class SweepResult:
    sweep_dir: Path
    plan: SweepPlan
    status: str  # finished | stopped | nothing to do
    group_results: list = dataclasses.field(default_factory=list)  # RunResult per group run this session
    report: dict | None = None
    wall_s: float = 0.0
    compile_s: float = 0.0


class SweepInterrupted(KeyboardInterrupt):
    def __init__(self, sweep_dir: Path, group_dir: Path | None, checkpoint: Path | None):
        super().__init__()
        self.sweep_dir, self.group_dir, self.checkpoint = sweep_dir, group_dir, checkpoint


def read_spec(sweep_dir: str | os.PathLike) -> SweepSpec:
    """The spec saved in a sweep folder."""
    return read_saved(sweep_dir)[0]


def _owned(sweep_dir: Path) -> list[Path]:
    """What a sweep wrote into its folder (by exact name), for --overwrite."""
    out = [sweep_dir / n for n in (SPEC_FILE, RUN_FILE) + REPORT_FILES if (sweep_dir / n).is_file()]
    out += sorted(p for p in sweep_dir.glob("*.png") if p.name.startswith(("curves", "sensitivity_")))
    groups = sweep_dir / GROUPS_DIR
    if groups.is_dir():
        out.append(groups)
    return out


def _remove_owned(sweep_dir: Path) -> list[str]:
    from purejaxppo.runs.folder import remove_owned

    removed = []
    for p in _owned(sweep_dir):
        if p.name == GROUPS_DIR:
            for g in sorted(p.iterdir()):
                if g.is_dir() and g.name.startswith("g"):
                    remove_owned(g)
                    (g / ".lock").unlink(missing_ok=True)
                    if (g / "checkpoints").is_dir():
                        (g / "checkpoints").rmdir()
                    g.rmdir()  # fails (OSError) if a user put other files there: nothing of theirs is lost
            p.rmdir()
        else:
            p.unlink()
        removed.append(p.name)
    return removed


def _save_spec(sweep_dir: Path, plan: SweepPlan) -> None:
    import yaml

    from purejaxppo.runs.checkpoints import atomic_write_bytes

    data = {
        "spec": plan.spec.to_dict(),
        "settings": [
            {
                "id": s.id,
                "group": s.group,
                "values": {k: list(v) if isinstance(v, tuple) else v for k, v in s.values.items()},
            }
            for s in plan.settings
        ],
        "groups": [
            {
                "id": g.id,
                "dir": f"{GROUPS_DIR}/{g.dir_name}",
                "static": {k: list(v) if isinstance(v, tuple) else v for k, v in g.static.items()},
                "settings": [s.id for s in g.settings],
            }
            for g in plan.groups
        ],
    }
    atomic_write_bytes(sweep_dir / SPEC_FILE, yaml.safe_dump(data, sort_keys=False).encode())


def sweep_run(
    spec: SweepSpec | None,
    out_dir: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int | None = None,
    stop_after: int | None = None,
    progress: str = "off",
    mesh: dict | str | None = None,
    report: bool = True,
    log: Callable[[str], None] = print,
    progress_file=None,
    command: Sequence[str] | None = None,
    runs_root: str | os.PathLike = "runs",
) -> SweepResult:
    """Run a sweep (new, or continued with `resume` from `out_dir`'s sweep.yaml) and write its report.

    spec: the sweep (None on resume). Checked completely, every group's memory estimated, before any folder
      is made or anything compiled (`plan_sweep`).
    out_dir: the sweep folder; None claims `runs_root/sweep-<env>-<stamp>`.
    checkpoint_every, stop_after, progress, mesh: as in `train_run`, for every group (`stop_after`: each group
      stops after that many updates; continue with `resume`). One progress bar counts all runs of all groups.
    report: write sweep.md / sweep.json / PNGs once every group has finished.
    """
    from purejaxppo.cpu import configure as configure_cpu
    from purejaxppo.parallel import parse_mesh

    configure_cpu()
    t0 = time.perf_counter()
    if isinstance(mesh, str):
        mesh = parse_mesh(mesh)
    if resume:
        if out_dir is None or not Path(out_dir).is_dir():
            raise RunError(f"cannot resume: sweep folder {out_dir} does not exist")
        if spec is not None:
            raise RunError("--resume continues the sweep saved in its folder; do not pass a new config or grid")
        spec = read_spec(out_dir)
    elif spec is None:
        raise RunError("sweep_run: a new sweep needs a spec")
    plan = plan_sweep(spec, mesh=mesh)  # every error before any folder or program exists
    claimed = False
    if out_dir is None:
        env = spec.base.env if "env" not in spec.grid else "multi"
        sweep_dir, claimed = claim_new_run_dir(runs_root, f"sweep-{env}"), True
    else:
        sweep_dir = Path(out_dir)
        if sweep_dir.exists() and not sweep_dir.is_dir():
            raise RunError(f"output path {sweep_dir} exists and is not a folder")
        if not resume and sweep_dir.is_dir() and not overwrite and not is_empty_but_lock(sweep_dir):
            raise RunLock.busy_error(sweep_dir) or RunError(
                f"sweep folder {sweep_dir} already exists and is not empty; continue it with --resume {sweep_dir}, "
                "replace it with --overwrite, or choose another --out"
            )
        sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(sweep_dir, list(command) if command else None).acquire()
    try:
        if not resume and not is_empty_but_lock(sweep_dir):
            removed = _remove_owned(sweep_dir)
            log(f"--overwrite: removed the previous sweep's files in {sweep_dir}: {', '.join(removed) or 'none'}")
        if not resume:
            _save_spec(sweep_dir, plan)
        return _run_groups(
            plan,
            sweep_dir,
            resume,
            checkpoint_every,
            stop_after,
            progress,
            mesh,
            report,
            log,
            progress_file,
            command,
            t0,
        )
    except BaseException:
        if claimed and is_empty_but_lock(sweep_dir):
            (sweep_dir / ".lock").unlink(missing_ok=True)
            sweep_dir.rmdir()
        raise
    finally:
        lock.release()


def _run_groups(
    plan, sweep_dir, resume, checkpoint_every, stop_after, progress, mesh, report, log, progress_file, command, t0
) -> SweepResult:
    from purejaxppo.runs import RunInterrupted, train_run
    from purejaxppo.runs.progress import ProgressReporter

    spec = plan.spec
    info = {}
    if resume and (sweep_dir / RUN_FILE).is_file():
        try:
            info = json.loads((sweep_dir / RUN_FILE).read_text())
        except ValueError:
            info = {}
    session: dict[str, Any] = {"started": _now(), "command": list(command) if command else None}  # a JSON record
    info.update(
        kind="sweep",
        status="running",
        num_settings=len(plan.settings),
        seeds=spec.seeds,
        num_runs=plan.num_runs,
        varied=spec.varied,
    )
    info.setdefault("sessions", []).append(session)
    states = [group_state(sweep_dir / GROUPS_DIR / g.dir_name) for g in plan.groups]
    info["groups"] = [
        {
            "id": g.id,
            "dir": f"{GROUPS_DIR}/{g.dir_name}",
            "static": {k: str(v) for k, v in g.static.items()},
            "settings": len(g.settings),
            "runs": len(g.settings) * spec.seeds,
            "status": s[0],
        }
        for g, s in zip(plan.groups, states, strict=True)
    ]
    _write_json(sweep_dir / RUN_FILE, info)

    n_groups = len(plan.groups)
    bar = None
    use_bar = progress != "off" and all(g.config.log_every > 0 for g in plan.groups)
    if use_bar:
        total = sum(g.config.num_updates * g.config.batch_size * len(g.settings) * spec.seeds for g in plan.groups)
        bar = ProgressReporter(
            plan.groups[0].config.num_updates,
            plan.groups[0].config.batch_size,
            len(plan.groups[0].settings) * spec.seeds,
            style=progress,
            desc="sweep",
            file=progress_file,
            bar_total_steps=total,
        )
    say = bar.write if bar is not None else log
    result = SweepResult(sweep_dir, plan, "running")
    status = "interrupted"
    try:
        if bar is not None:
            bar.start()
        for g, (gstatus, done) in zip(plan.groups, states, strict=True):
            gdir = sweep_dir / GROUPS_DIR / g.dir_name
            runs = len(g.settings) * spec.seeds
            desc = "sweep" if n_groups == 1 else f"sweep {g.id + 1}/{n_groups}"
            target = g.config.num_updates if stop_after is None else min(stop_after, g.config.num_updates)
            if bar is not None:
                bar.stage(
                    g.config.num_updates,
                    g.config.batch_size,
                    runs,
                    initial_update=done,
                    desc=desc,
                    done_steps=done * g.config.batch_size * runs,
                )
            if done >= target:
                info["groups"][g.id]["status"] = gstatus
                continue
            what = ", ".join(f"{k}={v}" for k, v in g.static.items())
            say(
                f"program {g.id + 1}/{n_groups}{' (' + what + ')' if what else ''}: {len(g.settings)} setting(s) x "
                f"{spec.seeds} seed(s) = {runs} runs, {g.config.num_updates} updates"
                + (f" (continuing from update {done})" if done else "")
            )
            gdir.parent.mkdir(exist_ok=True)
            kwargs = dict(
                checkpoint_every=checkpoint_every,
                progress=progress,
                stop_after=stop_after,
                on_diverge="continue",
                command=command,
                log=say,
                progress_file=progress_file,
                mesh=mesh,
                reporter=bar,
            )
            try:
                if done:
                    res = train_run(None, gdir, resume=True, **kwargs)
                else:
                    res = train_run(g.config, gdir, runs=g.run_axis(spec.seeds), overwrite=True, **kwargs)
            except RunInterrupted as e:
                raise SweepInterrupted(sweep_dir, gdir, e.checkpoint) from None
            # train_run returns None only on a follower process of jax.distributed, which never runs a sweep here
            assert res is not None
            result.group_results.append(res)
            result.compile_s += res.compile_s
            info["groups"][g.id]["status"] = res.status
            if res.diverged_seeds:
                info["groups"][g.id]["diverged_runs"] = res.diverged_seeds
            _write_json(sweep_dir / RUN_FILE, info)
        finished = all(gr["status"] == "finished" for gr in info["groups"])
        status = "finished" if finished else "stopped"
    except BaseException as e:
        if not isinstance(e, KeyboardInterrupt):
            status = "failed"
            info["error"] = " ".join(str(e).split())[:500] or type(e).__name__
        raise
    finally:
        if bar is not None:
            bar.close()
        result.wall_s = time.perf_counter() - t0
        session.update(
            ended=_now(), status=status, wall_time_s=round(result.wall_s, 3), compile_time_s=round(result.compile_s, 3)
        )
        info["status"] = status
        _save_info(sweep_dir / RUN_FILE, info, log)
    result.status = status
    if status == "finished" and report:
        result.report, paths = make_report(sweep_dir, log=say)
        log(f"report: {', '.join(str(p) for p in paths)}")
    return result
