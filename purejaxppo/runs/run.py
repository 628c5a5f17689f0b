"""`train_run`: the one-call form of a run. Claims and locks the folder, finds where the run starts (new or
resumed), and hands it to a `RunSession`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import jax

from purejaxppo.core.config import PPOConfig
from purejaxppo.core.train import Train
from purejaxppo.errors import PureJaxPPOError, RunError, RunWriteError
from purejaxppo.runs.build import TrainSource, build_train, source_of
from purejaxppo.runs.checkpoints import CheckpointManager
from purejaxppo.runs.chunks import PROCESS_CACHE, ProgramCache, check_run_fits
from purejaxppo.runs.files import exists_error
from purejaxppo.runs.folder import CHECKPOINT_DIR, RunLock, claim_new_run_dir, is_empty_but_lock
from purejaxppo.runs.follower import follow_run
from purejaxppo.runs.mesh import Peers, resolve_mesh_shape
from purejaxppo.runs.options import RunOptions
from purejaxppo.runs.result import RunResult
from purejaxppo.runs.session import RunSession
from purejaxppo.runs.start import new_start, resume_start


def train_run(
    train_or_config: Train | PPOConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    build: str | None = None,
    overrides: dict[str, Any] | None = None,
    options: RunOptions | None = None,
    cache: ProgramCache | None = None,
    **option_fields: Any,
) -> RunResult | None:
    """Train into a run folder (new, or continued with `resume`).

    train_or_config: what to train. A `PPOConfig` (default `PPOConfig()`; on
      resume, default the checkpoint's), or a `Train` built by
      `make_train(config, env=..., network_factory=..., objective=...)`.
      `overrides` (field -> value) apply on top of a config. On resume the
      result is compared with the checkpoint's config: fields that change the
      state's shapes are an error; other changes are applied with a warning
      (they break bit-identity), except the logging-only LOGGING_FIELDS.
    out_dir: the run folder; None claims a new unique `runs_root/<env>-<stamp>[-k]`.
      The folder is locked while training: a second process gets a RunError.
    build: `"module:function"`, a builder: `function(config)` returns the
      Train (purejaxppo.runs.build). Recorded in run.json and every checkpoint,
      so resume, `load_run`, `eval`, `render`, `--processes` workers and sweeps
      rebuild the same Train. A Train given without a builder must be given
      again to resume or load the run.
    options: a `RunOptions`, or its fields as keywords (`num_seeds=4,
      checkpoint_every=10, resume=True, progress="bar", ...`; see RunOptions):
      num_seeds, seed: runs use `jax.random.split(jax.random.key(seed), num_seeds)`
        (default 1 seed; on resume the checkpoint's, and a different number is an error).
      checkpoint_every: updates per jitted chunk / checkpoint (default ~10 per run).
      resume: False, True (the newest checkpoint in out_dir) or a checkpoint file
        path; an older checkpoint becomes the head of the run (later checkpoints
        and rows are moved to checkpoints/abandoned-<stamp>/).
      progress: "bar", "lines" or "off" (and off when config.log_every == 0).
      stop_after: stop (after checkpointing) once this many updates are done in total.
      on_diverge: "stop" (default: stop at the update where any seed diverged,
        checkpointed, status "diverged") or "continue" (diverged seeds stay frozen, the others train on).
      mesh: ("seed", "data") sizes, e.g. {"seed": 2} or "seed=2,data=1" (purejaxppo.parallel); default: the
        plain program on one device, every device (seeds first) when there are several. Under
        jax.distributed (purejaxppo.parallel.distributed) every process calls train_run with the same
        arguments: process 0 (the leader) does everything described here; the others return None after
        taking part in every chunk (purejaxppo.runs.follower). Checkpoints are the single-device layout:
        resume on any topology.
      runs: a sweep group (purejaxppo.runs.axis.RunAxis): the state's runs are `runs.num_runs` settings x
        seeds, each with its own key and traced hyperparameters; `num_seeds` must be None. Saved in the
        checkpoints, so a resume takes it from there. Used by purejaxppo.sweep.
      reporter: a ProgressReporter made by the caller (a sweep's one bar over all its programs): this run
        points it at itself with `stage` and leaves it open.
    cache: the compiled programs to reuse (default: this process's `PROCESS_CACHE`).

    Changes no process-wide setting: for purejaxppo's CPU settings call `purejaxppo.cpu.configure()` first
    (the command line does).
    """
    if options is not None and option_fields:
        raise RunError(f"train_run: pass either options= or its fields ({', '.join(option_fields)}), not both")
    options = options if options is not None else RunOptions(**option_fields)
    cache = PROCESS_CACHE if cache is None else cache
    given = train_or_config if isinstance(train_or_config, Train) else None
    if jax.process_count() > 1 and jax.process_index() != 0:
        if follow_run(given, cache):
            raise RunError("the leader process (0) failed; see its output")
        return None
    peers = Peers()
    try:
        return _run(train_or_config, out_dir, build, dict(overrides or {}), options, peers, cache)
    except KeyboardInterrupt:  # every process got the interrupt (the launcher passes it on)
        raise
    except BaseException:
        peers.abort()
        raise


def _run(train_or_config, out_dir, build, overrides: dict, options: RunOptions, peers: Peers, cache) -> RunResult:
    t_start = time.perf_counter()
    options.check_writers()  # fail before anything is written if a writer's package is missing
    given = train_or_config if isinstance(train_or_config, Train) else None
    if given is not None and overrides:
        raise RunError(
            "train_run: overrides apply to a config; a Train is already built (build it from config.replace(...))"
        )
    claimed, new_train, source = False, None, TrainSource()
    if options.resume:
        run_dir = _existing_run_dir(out_dir)
    else:  # validate the config, the env, the memory and the mesh before any folder is made
        new_train, source = _new_train(train_or_config, given, build, overrides, options)
        run_dir, claimed = _new_run_dir(out_dir, new_train.config, options)
    try:
        lock = RunLock(run_dir, list(options.command) if options.command else None).acquire()
    except OSError as e:
        raise RunWriteError(
            f"cannot write to run folder {run_dir} ({e.strerror or e}); check its permissions or choose another --out"
        ) from None
    try:
        if options.resume:
            config = None if given is not None else train_or_config
            st = resume_start(config, given, build, overrides, options, run_dir)
        else:
            assert new_train is not None
            st = new_start(new_train, source, options, run_dir, cache)
        return RunSession(st, run_dir, options, peers=peers, cache=cache, t_start=t_start).run()
    except BaseException as e:
        removed = claimed and is_empty_but_lock(run_dir)
        if removed:  # nothing was written: leave no empty folder behind
            (run_dir / ".lock").unlink(missing_ok=True)
            run_dir.rmdir()
        if isinstance(e, Exception) and not isinstance(e, PureJaxPPOError):  # a bug: say what the folder holds
            e.add_note(intact_note(run_dir, None if removed else CheckpointManager(run_dir / CHECKPOINT_DIR).list()))
        raise
    finally:
        lock.release()


def _new_train(train_or_config, given, build, overrides, options: RunOptions) -> tuple[Train, TrainSource]:
    config = given.config if given is not None else (train_or_config or PPOConfig()).replace(**overrides)
    source = source_of(train_or_config, build, options.pbt)
    train = build_train(config, source, given)
    num_seeds = options.seeds_of_new_run()
    check_run_fits(train, num_seeds)
    resolve_mesh_shape(
        options.mesh,
        num_seeds=num_seeds,
        config=config,
        device_count=jax.device_count(),
        process_count=jax.process_count(),
    )  # a mesh that cannot run: before any folder exists
    return train, source


def _existing_run_dir(out_dir) -> Path:
    if out_dir is None:
        raise RunError("resume needs the run folder (out_dir)")
    run_dir = Path(out_dir)
    if not run_dir.is_dir():
        raise RunError(f"cannot resume: run folder {run_dir} does not exist")
    return run_dir


def _new_run_dir(out_dir, config: PPOConfig, options: RunOptions) -> tuple[Path, bool]:
    """(the new run's folder, whether it was claimed here) without touching an existing folder."""
    if out_dir is None:
        return claim_new_run_dir(options.runs_root, config.env), True
    run_dir = Path(out_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"output path {run_dir} exists and is not a folder")
    if run_dir.is_dir() and not options.overwrite and not is_empty_but_lock(run_dir):
        # Refuse without touching the folder (checked again under the lock): busy, or just not empty.
        raise RunLock.busy_error(run_dir) or exists_error(run_dir)
    return run_dir, False


def intact_note(run_dir: Path, found: list | None) -> str:
    """What an unexpected error (a bug: not a PureJaxPPOError) leaves: checkpoints are written atomically, and
    metric rows after the newest one are dropped on resume, so the folder is intact up to that checkpoint.
    `found`: the folder's checkpoints, None when the empty folder was removed."""
    if found is None:
        return f"purejaxppo: unexpected error before anything was written; removed the empty folder {run_dir}"
    if not found:
        return (
            f"purejaxppo: unexpected error; the run folder {run_dir} holds no checkpoint yet "
            "(start again with --overwrite)"
        )
    update, path = found[-1]
    return (
        f"purejaxppo: unexpected error; the run folder {run_dir} is intact up to its newest checkpoint "
        f"{Path(path).name} (update {update}): continue with: purejaxppo train --resume {run_dir}"
    )
