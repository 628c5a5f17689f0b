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
from purejaxppo.parallel import parse_mesh
from purejaxppo.runs.build import check_build_spec
from purejaxppo.runs.files import now, save_info, write_json
from purejaxppo.runs.folder import RunLock, claim_new_run_dir, is_empty_but_lock
from purejaxppo.runs.options import RunOptions
from purejaxppo.runs.progress import ProgressReporter
from purejaxppo.runs.result import RunInterrupted, RunResult
from purejaxppo.runs.run import train_run
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
    build: str | None = None,
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
    build: `"module:function"`, the builder of every program's Train (purejaxppo.runs.build); saved with the
      spec, so a resume and every group's run folder use it.
    checkpoint_every, stop_after, progress, mesh: as in `train_run`, for every group (`stop_after`: each group
      stops after that many updates; continue with `resume`). One progress bar counts all runs of all groups.
    report: write sweep.md / sweep.json / PNGs once every group has finished.
    Changes no process-wide setting (the command line calls purejaxppo.cpu.configure()).
    """
    t0 = time.perf_counter()
    if isinstance(mesh, str):
        mesh = parse_mesh(mesh)
    spec = _the_spec(spec, out_dir, resume, build)
    plan = plan_sweep(spec, mesh=mesh)  # every error before any folder or program exists
    sweep_dir, claimed = _sweep_dir(spec, out_dir, resume, overwrite, runs_root)
    lock = RunLock(sweep_dir, list(command) if command else None).acquire()
    try:
        if not resume and not is_empty_but_lock(sweep_dir):
            removed = _remove_owned(sweep_dir)
            log(f"--overwrite: removed the previous sweep's files in {sweep_dir}: {', '.join(removed) or 'none'}")
        if not resume:
            _save_spec(sweep_dir, plan)
        options = RunOptions(
            checkpoint_every=checkpoint_every,
            progress=progress,
            stop_after=stop_after,
            on_diverge="continue",
            command=command,
            log=log,
            progress_file=progress_file,
            mesh=mesh,
        )
        return _run_groups(plan, sweep_dir, resume, options, report, t0)
    except BaseException:
        if claimed and is_empty_but_lock(sweep_dir):
            (sweep_dir / ".lock").unlink(missing_ok=True)
            sweep_dir.rmdir()
        raise
    finally:
        lock.release()


def _the_spec(spec: SweepSpec | None, out_dir, resume: bool, build: str | None) -> SweepSpec:
    """The sweep to run: the one given (with its builder), or on resume the one saved in the folder."""
    if resume:
        if out_dir is None or not Path(out_dir).is_dir():
            raise RunError(f"cannot resume: sweep folder {out_dir} does not exist")
        if spec is not None:
            raise RunError("--resume continues the sweep saved in its folder; do not pass a new config or grid")
        saved = read_spec(out_dir)
        if build is not None and build != saved.build:
            raise RunError(
                f"--resume continues the sweep saved in {out_dir} with its builder ({saved.build}); "
                f"do not pass --build {build}"
            )
        return saved
    if spec is None:
        raise RunError("sweep_run: a new sweep needs a spec")
    if build is not None:
        check_build_spec(build)
        spec = dataclasses.replace(spec, build=build)
    return spec


def _sweep_dir(spec: SweepSpec, out_dir, resume: bool, overwrite: bool, runs_root) -> tuple[Path, bool]:
    """(the sweep folder, whether it was claimed here)."""
    if out_dir is None:
        env = spec.base.env if "env" not in spec.varied else "multi"
        return claim_new_run_dir(runs_root, f"sweep-{env}"), True
    sweep_dir = Path(out_dir)
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise RunError(f"output path {sweep_dir} exists and is not a folder")
    if not resume and sweep_dir.is_dir() and not overwrite and not is_empty_but_lock(sweep_dir):
        raise RunLock.busy_error(sweep_dir) or RunError(
            f"sweep folder {sweep_dir} already exists and is not empty; continue it with --resume {sweep_dir}, "
            "replace it with --overwrite, or choose another --out"
        )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    return sweep_dir, False


def _open_info(plan, sweep_dir: Path, resume: bool, command) -> tuple[dict, dict, list]:
    """run.json of the sweep with a new session (status running): (info, the session, each group's state)."""
    spec = plan.spec
    info = {}
    if resume and (sweep_dir / RUN_FILE).is_file():
        try:
            info = json.loads((sweep_dir / RUN_FILE).read_text())
        except ValueError:
            info = {}
    session: dict[str, Any] = {"started": now(), "command": list(command) if command else None}  # a JSON record
    info.update(
        kind="sweep",
        status="running",
        num_settings=len(plan.settings),
        seeds=spec.seeds,
        num_runs=plan.num_runs,
        varied=spec.varied,
        build=spec.build,
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
    write_json(sweep_dir / RUN_FILE, info)
    return info, session, states


def _sweep_bar(plan, options: RunOptions) -> ProgressReporter | None:
    """One progress bar over every run of every program (None when progress is off)."""
    if options.progress == "off" or not all(g.config.log_every > 0 for g in plan.groups):
        return None
    seeds, first = plan.spec.seeds, plan.groups[0]
    total = sum(g.config.num_updates * g.config.batch_size * len(g.settings) * seeds for g in plan.groups)
    return ProgressReporter(
        first.config.num_updates,
        first.config.batch_size,
        len(first.settings) * seeds,
        style=options.progress,
        desc="sweep",
        file=options.progress_file,
        bar_total_steps=total,
    )


def _run_group(g, done: int, sweep_dir: Path, plan, options: RunOptions, bar, say) -> RunResult | None:
    """Train (or continue) one program's runs; None when it is already at its target."""
    spec, n_groups = plan.spec, len(plan.groups)
    gdir = sweep_dir / GROUPS_DIR / g.dir_name
    runs = len(g.settings) * spec.seeds
    stop_after = options.stop_after
    target = g.config.num_updates if stop_after is None else min(stop_after, g.config.num_updates)
    if bar is not None:
        desc = "sweep" if n_groups == 1 else f"sweep {g.id + 1}/{n_groups}"
        done_steps = done * g.config.batch_size * runs
        bar.stage(
            g.config.num_updates, g.config.batch_size, runs, initial_update=done, desc=desc, done_steps=done_steps
        )
    if done >= target:
        return None
    what = ", ".join(f"{k}={v}" for k, v in g.static.items())
    say(
        f"program {g.id + 1}/{n_groups}{' (' + what + ')' if what else ''}: {len(g.settings)} setting(s) x "
        f"{spec.seeds} seed(s) = {runs} runs, {g.config.num_updates} updates"
        + (f" (continuing from update {done})" if done else "")
    )
    gdir.parent.mkdir(exist_ok=True)
    try:
        if done:
            group = dataclasses.replace(options, resume=True, log=say, reporter=bar)
            res = train_run(None, gdir, options=group)
        else:
            group = dataclasses.replace(options, runs=g.run_axis(spec.seeds), overwrite=True, log=say, reporter=bar)
            res = train_run(g.config, gdir, build=spec.build, options=group)
    except RunInterrupted as e:
        raise SweepInterrupted(sweep_dir, gdir, e.checkpoint) from None
    # train_run returns None only on a follower process of jax.distributed, which never runs a sweep here
    assert res is not None
    return res


def _run_groups(plan, sweep_dir: Path, resume: bool, options: RunOptions, report: bool, t0: float) -> SweepResult:
    info, session, states = _open_info(plan, sweep_dir, resume, options.command)
    bar = _sweep_bar(plan, options)
    say = bar.write if bar is not None else options.log
    result = SweepResult(sweep_dir, plan, "running")
    status = "interrupted"
    try:
        if bar is not None:
            bar.start()
        for g, (gstatus, done) in zip(plan.groups, states, strict=True):
            res = _run_group(g, done, sweep_dir, plan, options, bar, say)
            if res is None:
                info["groups"][g.id]["status"] = gstatus
                continue
            result.group_results.append(res)
            result.compile_s += res.compile_s
            info["groups"][g.id]["status"] = res.status
            if res.diverged_seeds:
                info["groups"][g.id]["diverged_runs"] = res.diverged_seeds
            write_json(sweep_dir / RUN_FILE, info)
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
            ended=now(), status=status, wall_time_s=round(result.wall_s, 3), compile_time_s=round(result.compile_s, 3)
        )
        info["status"] = status
        save_info(sweep_dir / RUN_FILE, info, options.log)
    result.status = status
    if status == "finished" and report:
        result.report, paths = make_report(sweep_dir, log=say)
        options.log(f"report: {', '.join(str(p) for p in paths)}")
    return result
