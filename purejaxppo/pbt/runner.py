"""`pbt_run`: a population-based training as one run folder, whose run axis is the population.

Member i is run i of the folder: key `jax.random.split(jax.random.key(seed), P)[i]`, initial hyperparameters
drawn in the ranges from `pbt_seed` (`purejaxppo.core.pbt.initial_hparams`), metrics.jsonl rows labelled
`"member": i`. The run is purejaxppo.runs' own (train_run with `RunOptions(runs=..., pbt=...)`): one compiled
chunk program for the whole run, checkpoints holding every member's state and hyperparameters, resume
bit-identical, `--mesh seed=S` and `--processes` over the population. Divergence never stops it
(`on_diverge="continue"`): a diverged member ranks last and is replaced at the next ready step. So the run's
status (run.json, the result) is "diverged" only while a member is still diverged at the end of a session
(also when every member diverged: nobody healthy to copy); run.json's `pbt_divergences` records every
divergence and the ready step that replaced it (`record_divergences`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxppo.core.pbt import initial_hparams
from purejaxppo.errors import ConfigError
from purejaxppo.pbt.spec import PBTSpec
from purejaxppo.runs import RUN_FILE, RunOptions, RunResult, read_metrics, train_run
from purejaxppo.runs.axis import RunAxis
from purejaxppo.runs.files import save_info


@dataclasses.dataclass
class PBTResult:
    """What `pbt_run` returns: the run's own result, the report (None unless finished) and its files."""

    run: RunResult
    report: dict | None
    paths: list[Path]

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def status(self) -> str:
        return self.run.status


def population_axis(spec: PBTSpec) -> RunAxis:
    """The run axis of the population: member i uses seed key i and the i-th initial draw of the ranges."""
    p = spec.pbt.population
    hp = jax.device_get(initial_hparams(jax.random.key(spec.pbt.seed), spec.base.hparams(), spec.pbt))
    rows = [{n: float(np.asarray(getattr(hp, n))[i]) for n in hp.__dataclass_fields__} for i in range(p)]
    return RunAxis.build(p, range(p), rows, [{"member": i} for i in range(p)])


def is_pbt_run(run_dir: str | os.PathLike) -> bool:
    """Whether the folder's run.json records population-based training."""
    path = Path(run_dir) / RUN_FILE
    try:
        return json.loads(path.read_text()).get("pbt") is not None
    except (OSError, ValueError):
        return False


def pbt_run(
    spec: PBTSpec | None,
    out_dir: str | os.PathLike | None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int | None = None,
    stop_after: int | None = None,
    progress: str = "off",
    mesh: Any = None,
    build: str | None = None,
    command: Any = None,
    log=print,
    progress_file: Any = None,
    report: bool = True,
) -> PBTResult | None:
    """Train a population (new from `spec`, or `resume=True` continuing the one in `out_dir`), then write its
    report (pbt.md, pbt.json, plots) if the run finished. The other keywords are `train_run`'s. Under
    jax.distributed the processes other than the leader (0) return None."""
    common = dict(
        checkpoint_every=checkpoint_every,
        stop_after=stop_after,
        progress=progress,
        mesh=mesh,
        command=command,
        log=log,
        progress_file=progress_file,
        on_diverge="continue",
    )
    if resume:
        if spec is not None:
            raise ConfigError("pbt_run: resume continues the population saved in its folder; pass spec=None")
        if out_dir is None or not is_pbt_run(out_dir):
            raise ConfigError(
                f"pbt_run: {out_dir} is not a population-based training run folder (its run.json names no pbt); "
                "continue a plain run with purejaxppo train --resume"
            )
        result = train_run(None, out_dir, build=build, options=RunOptions(resume=True, **common))
    else:
        if not isinstance(spec, PBTSpec):
            raise ConfigError(f"pbt_run: spec must be a PBTSpec (purejaxppo.pbt.build_pbt_spec), got {spec!r:.60}")
        options = RunOptions(runs=population_axis(spec), pbt=spec.pbt, seed=spec.seed, overwrite=overwrite, **common)
        result = train_run(spec.base, out_dir, build=build or spec.build, options=options)
    if result is None:  # a follower process: the leader writes the folder and the report
        return None
    result = record_divergences(result, log)
    if not (report and result.finished):
        return PBTResult(result, None, [])
    from purejaxppo.pbt.report import write_pbt_report

    rep, paths = write_pbt_report(result.run_dir)
    return PBTResult(result, rep, paths)


def record_divergences(result: RunResult, log=print) -> RunResult:
    """The session's status as PBT sees it: the run layer calls a run "diverged" once any member diverged,
    but a PBT member that diverged and was replaced at a later ready step trains on. From the folder's
    metrics.jsonl (purejaxppo.pbt.report.divergences): status "diverged" with `diverged_seeds` the members
    still diverged, else "finished" or "stopped" as the run got to its end or not; run.json (its status, its
    last session's, `pbt_divergences`) and the returned result say so."""
    from purejaxppo.pbt.report import divergences, still_diverged

    if result.status not in ("diverged", "finished", "stopped"):
        return result
    events = divergences(read_metrics(result.run_dir))
    if not events and result.status != "diverged":
        return result
    still = still_diverged(events)
    status = "diverged" if still else "finished" if result.finished else "stopped"
    path = result.run_dir / RUN_FILE
    info = json.loads(path.read_text())
    first = min((e["diverged_at_update"] for e in events if e["member"] in still), default=None)
    info.update(status=status, pbt_divergences=events)
    if still:
        info.update(diverged_seeds=still, diverged_at_update=first)
    else:
        info.pop("diverged_seeds", None)
        info.pop("diverged_at_update", None)
    if info.get("sessions"):
        info["sessions"][-1]["status"] = status
    save_info(path, info, log)
    for e in events:
        log(
            f"member {e['member']} diverged at update {e['diverged_at_update']} and "
            + (
                "is still diverged"
                if e["replaced_at_update"] is None
                else f"was replaced at update {e['replaced_at_update']} (it copied member {e['parent']}'s learner)"
            )
        )
    log(f"status: {status}" + (f" (member(s) {still} still diverged)" if still else ""))
    return dataclasses.replace(result, status=status, diverged_seeds=still, diverged_at_update=first)
