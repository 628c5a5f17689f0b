"""`train_run`: train into a locked run folder chunk by chunk, checkpointing after each; new runs and resumes.

After every chunk the chunk's metric rows are written (metrics.jsonl fsynced
first), then a full-state checkpoint, then run.json. A resume continues from a
checkpoint and gives bit-identical metrics and parameters to an uninterrupted
run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.core.config import PPOConfig
from purejaxppo.errors import PureJaxPPOError
from purejaxppo.parallel import gather
from purejaxppo.runs.axis import RunAxis
from purejaxppo.runs.checkpoints import (
    CheckpointError,
    CheckpointManager,
    atomic_write_bytes,
    read_checkpoint,
    unflatten_state,
)
from purejaxppo.runs.chunks import _state_template, _strong, check_run_fits, compiled_chunk, jitted_init
from purejaxppo.runs.files import (
    RunWriteError,
    _checkpoint_meta,
    _describe_diff,
    _exists_error,
    _note_edited_config_file,
    _now,
    _save_info,
    _write_error,
    _write_json,
    config_diff,
    device_info,
    versions,
)
from purejaxppo.runs.folder import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    RUN_FILE,
    RunError,
    RunLock,
    claim_new_run_dir,
    is_empty_but_lock,
    make_head,
    read_run_info,
    remove_owned,
    remove_stale_temp_files,
    split_metrics,
)
from purejaxppo.runs.identity import (
    RUN_ID,
    check_checkpoint,
    check_config_file,
    check_metrics,
    config_yaml_text,
    folder_id,
    new_run_id,
)
from purejaxppo.runs.mesh import (
    Peers,
    follow_run,
    place_hparams,
    place_run,
    replicated,
    resolve_mesh_shape,
    to_canonical,
)
from purejaxppo.runs.progress import ProgressReporter
from purejaxppo.runs.writers import JsonlWriter, TensorBoardWriter, WandbWriter, _rows

if TYPE_CHECKING:
    from purejaxppo.core.train import Train

ON_DIVERGE = ("stop", "continue")

# Fields that only change what is logged, never the training computation: may differ on resume silently.
LOGGING_FIELDS = ("log_every", "eval_every", "eval_episodes")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during `train_run`; says which folder and which checkpoint (if any) to continue from."""

    def __init__(self, run_dir: Path, checkpoint: Path | None, update: int | None):
        super().__init__()
        self.run_dir, self.checkpoint, self.update = run_dir, checkpoint, update


def default_checkpoint_every(num_updates: int) -> int:
    """About ten checkpoints per run."""
    return max(1, math.ceil(num_updates / 10))


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    config: PPOConfig
    state: Any
    update: int
    finished: bool
    compile_s: float
    wall_s: float
    env_steps_per_s: float
    progress_calls: int = 0  # host callbacks received by the progress reporter
    progress_reports: list = dataclasses.field(default_factory=list)  # [(update, {metric: values over seeds})]
    status: str = "finished"  # finished | stopped | diverged | nothing to do
    diverged_seeds: list = dataclasses.field(default_factory=list)
    diverged_at_update: int | None = None  # the first update at which a seed diverged


# ------------------------------------------------------------------ where a run starts


@dataclasses.dataclass
class _Start:
    """Where a run starts: its config, train function, state and bookkeeping (new or resumed)."""

    config: PPOConfig
    train: Train
    state: Any
    start: int
    num_seeds: int
    seed: int
    checkpoint_every: int
    run_info: dict
    runs: RunAxis | None = None  # a sweep group's runs (num_seeds is then runs.num_runs)
    hp: Any = None  # the traced hyperparameters: the config's, or `[S]` fields from `runs`


def _hparams(config: PPOConfig, runs: RunAxis | None):
    return config.hparams() if runs is None else runs.hp()


def _new_start(train, num_seeds, seed, checkpoint_every, run_dir, overwrite, log, runs=None) -> _Start:
    config = train.config
    if not is_empty_but_lock(run_dir):
        if not overwrite:
            raise _exists_error(run_dir)
        removed = remove_owned(run_dir)
        log(f"--overwrite: removed the previous run's files in {run_dir}: {', '.join(removed) or 'none'}")
    keys = jax.random.split(jax.random.key(seed), num_seeds) if runs is None else runs.keys(seed)
    hp = _hparams(config, runs)
    state = _strong(jitted_init(train, num_seeds, runs is not None)(keys, hp))
    every = checkpoint_every or default_checkpoint_every(config.num_updates)
    return _Start(config, train, state, 0, num_seeds, seed, every, {RUN_ID: new_run_id()}, runs, hp)


def _resume_start(
    config, overrides, num_seeds, checkpoint_every, run_dir, resume, explicit_config, log
) -> tuple[_Start, Path]:
    from purejaxppo.core.train import make_train

    manager = CheckpointManager(run_dir / CHECKPOINT_DIR)
    if resume is True:
        ck_path, meta, leaves, keys = manager.read_latest()
    else:
        ck_path = Path(resume)
        meta, leaves, keys = read_checkpoint(ck_path)
    # Identity first, before anything in the folder changes: the checkpoint, config.yaml and the metrics rows
    # this resume keeps must be this run's (purejaxppo.runs.identity).
    run_id = folder_id(run_dir)
    check_checkpoint(run_dir, run_id, meta, ck_path)
    check_config_file(run_dir, run_id)
    if "update" in meta:
        check_metrics(run_dir, meta, split_metrics(run_dir / METRICS_FILE, int(meta["update"]))[0], ck_path)
    gone = remove_stale_temp_files(run_dir)
    if gone:
        log(f"removed {len(gone)} temp file(s) left by an interrupted write: {', '.join(gone)}")
    try:
        saved = PPOConfig.from_dict(meta["config"], source=f"checkpoint {ck_path}")
        saved_seeds, seed = int(meta["num_seeds"]), int(meta["seed"])
        start = int(meta["update"])
        runs = RunAxis.from_json(meta.get("runs"), source=f"checkpoint {ck_path}")
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {ck_path} has incomplete metadata (missing {e})") from None
    if num_seeds is not None and num_seeds != saved_seeds:
        raise RunError(f"cannot resume with --seeds {num_seeds}: the checkpoint {ck_path} holds {saved_seeds} seed(s)")
    _note_edited_config_file(run_dir, saved, explicit_config, log)
    config = (config or saved).replace(**overrides)
    diff = config_diff(saved, config)
    train = make_train(config)
    template = _state_template(train, saved_seeds, seed)
    try:
        state = unflatten_state(template, leaves, keys, source=f"checkpoint {ck_path}")
    except CheckpointError as e:
        raise RunError(
            f"cannot resume with this config, it changes the shapes of the saved state "
            f"({_describe_diff(diff) or 'no field differs'}); {e}"
        ) from None
    behavioural = {k: v for k, v in diff.items() if k not in LOGGING_FIELDS}
    if behavioural:
        log(
            f"warning: resuming with changed fields {_describe_diff(behavioural)}; "
            "the result will differ from an uninterrupted run"
        )
    every = checkpoint_every or int(meta.get("checkpoint_every") or default_checkpoint_every(config.num_updates))
    run_info = read_run_info(run_dir, log)
    if run_id is not None:
        run_info[RUN_ID] = run_id  # also when run.json was corrupt: config.yaml and the checkpoint still name it
    return _Start(
        config, train, state, start, saved_seeds, seed, every, run_info, runs, _hparams(config, runs)
    ), ck_path


# ------------------------------------------------------------------------ train_run


class _DeferredInterrupt:
    """The leader of a multi-process run takes Ctrl-C at the next chunk boundary, where every follower waits
    for the leader's plan: it tells them the run is over (plan 0), then raises KeyboardInterrupt. An interrupt
    taken anywhere else could leave one process inside a collective the other never joins. Only the leader
    gets the signal (the launcher passes Ctrl-C to worker 0 alone). Single-process runs stop at once as before.
    """

    def __init__(self, active: bool, say: Callable[[str], None]):
        self.requested, self.say, self.old = False, say, None
        if active and threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._note)

    def _note(self, signum, frame):
        if not self.requested:
            self.say("interrupt: stopping every process after this chunk (its checkpoint is kept)")
        self.requested = True

    def check(self, peers: Peers) -> None:
        if self.requested:
            peers.plan(0)
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            self.old = None


def _intact_note(run_dir: Path, found: list | None) -> str:
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


def train_run(
    config: PPOConfig | None,
    out_dir: str | os.PathLike | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    num_seeds: int | None = None,
    seed: int = 0,
    checkpoint_every: int | None = None,
    resume: bool | str | os.PathLike = False,
    overwrite: bool = False,
    progress: str = "off",
    stop_after: int | None = None,
    on_diverge: str = "stop",
    tensorboard: bool = False,
    wandb_project: str | None = None,
    command: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    progress_file=None,
    runs_root: str | os.PathLike = "runs",
    mesh: dict | str | None = None,
    runs: RunAxis | None = None,
    reporter: ProgressReporter | None = None,
) -> RunResult | None:
    """Train into a run folder (new, or continued with `resume`).

    config: the config (default `PPOConfig()`; on resume, default the checkpoint's),
      with `overrides` (field -> value) applied on top. On resume the result is
      compared with the checkpoint's config: fields that change the state's
      shapes are an error; other changes are applied with a warning (they break
      bit-identity), except the logging-only fields in LOGGING_FIELDS.
    out_dir: the run folder; None claims a new unique `runs_root/<env>-<stamp>[-k]`.
      The folder is locked while training: a second process gets a RunError.
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
      jax.distributed (purejaxppo.parallel.distributed) every process calls train_run: process 0 (the leader) does
      everything described here; the others return None after taking part in every chunk
      (purejaxppo.runs.mesh). Checkpoints are the single-device layout: resume on any topology.
    runs: a sweep group (purejaxppo.runs.axis.RunAxis): the state's runs are `runs.num_runs` settings x seeds,
      each with its own key and traced hyperparameters; `num_seeds` must be None. Saved in the checkpoints,
      so a resume takes it from there. Used by purejaxppo.sweep.
    reporter: a ProgressReporter made by the caller (a sweep's one bar over all its programs): this run
      points it at itself with `stage` and leaves it open.
    """
    from purejaxppo.cpu import configure as configure_cpu

    configure_cpu()  # the CLI's CPU settings, before any JAX computation (docs: CPU notes); once per process
    if jax.process_count() > 1 and jax.process_index() != 0:
        code = follow_run()
        if code:
            raise RunError("the leader process (0) failed; see its output")
        return None
    peers = Peers()
    try:
        return _train_run(
            config,
            out_dir,
            overrides,
            num_seeds,
            seed,
            checkpoint_every,
            resume,
            overwrite,
            progress,
            stop_after,
            on_diverge,
            tensorboard,
            wandb_project,
            command,
            log,
            progress_file,
            runs_root,
            mesh,
            peers,
            runs,
            reporter,
        )
    except KeyboardInterrupt:  # every process got the interrupt (the launcher passes it on)
        raise
    except BaseException:
        peers.abort()
        raise


def _train_run(
    config,
    out_dir,
    overrides,
    num_seeds,
    seed,
    checkpoint_every,
    resume,
    overwrite,
    progress,
    stop_after,
    on_diverge,
    tensorboard,
    wandb_project,
    command,
    log,
    progress_file,
    runs_root,
    mesh,
    peers,
    runs,
    reporter,
):
    from purejaxppo.parallel import parse_mesh

    if isinstance(mesh, str):
        mesh = parse_mesh(mesh)
    overrides = dict(overrides or {})
    t_start = time.perf_counter()
    if num_seeds is not None and num_seeds < 1:
        raise RunError(f"--seeds must be >= 1, got {num_seeds}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise RunError(f"--checkpoint-every must be >= 1, got {checkpoint_every}")
    if stop_after is not None and stop_after < 1:
        raise RunError(f"--stop-after must be >= 1, got {stop_after}")
    if on_diverge not in ON_DIVERGE:
        raise RunError(f"--on-diverge must be one of {ON_DIVERGE}, got {on_diverge!r}")
    # Optional writers: fail before anything is written if their package is missing.
    import importlib.util

    for wanted, module, extra in ((tensorboard, "tensorboardX", "tensorboard"), (wandb_project, "wandb", "wandb")):
        if wanted and importlib.util.find_spec(module) is None:
            raise RunError(f"--{extra} needs the {module} package: pip install 'purejaxppo[{extra}]'")

    claimed, new_train = False, None
    if resume:
        if out_dir is None:
            raise RunError("resume needs the run folder (out_dir)")
        run_dir = Path(out_dir)
        if not run_dir.is_dir():
            raise RunError(f"cannot resume: run folder {run_dir} does not exist")
    else:
        # Validate the config, the env and the memory it needs before any folder is made.
        from purejaxppo.core.train import make_train

        config = (config or PPOConfig()).replace(**overrides)
        if runs is not None:
            if num_seeds is not None:
                raise RunError("train_run: pass either num_seeds or runs (a sweep group's runs), not both")
            num_seeds = runs.num_runs
        num_seeds = 1 if num_seeds is None else num_seeds
        new_train = make_train(config)
        check_run_fits(new_train, num_seeds)
        resolve_mesh_shape(
            mesh, num_seeds=num_seeds, config=config, device_count=jax.device_count(), process_count=jax.process_count()
        )  # a mesh that cannot run: before any folder exists
        if out_dir is None:
            run_dir, claimed = claim_new_run_dir(runs_root, config.env), True
        else:
            run_dir = Path(out_dir)
            if run_dir.exists() and not run_dir.is_dir():
                raise RunError(f"output path {run_dir} exists and is not a folder")
            if run_dir.is_dir() and not overwrite and not is_empty_but_lock(run_dir):
                # Refuse without touching the folder (checked again under the lock): busy, or just not empty.
                raise RunLock.busy_error(run_dir) or _exists_error(run_dir)

    try:
        lock = RunLock(run_dir, list(command) if command else None).acquire()
    except OSError as e:
        raise RunWriteError(
            f"cannot write to run folder {run_dir} ({e.strerror or e}); check its permissions or choose another --out"
        ) from None
    try:
        return _train_locked(
            config if resume else new_train,
            run_dir,
            overrides,
            num_seeds,
            seed,
            checkpoint_every,
            resume,
            overwrite,
            progress,
            stop_after,
            on_diverge,
            tensorboard,
            wandb_project,
            command,
            log,
            progress_file,
            t_start,
            mesh,
            peers,
            runs,
            reporter,
        )
    except BaseException as e:
        removed = claimed and is_empty_but_lock(run_dir)
        if removed:  # nothing was written: leave no empty folder behind
            (run_dir / ".lock").unlink(missing_ok=True)
            run_dir.rmdir()
        if isinstance(e, Exception) and not isinstance(e, PureJaxPPOError):  # a bug: say what the folder holds
            e.add_note(_intact_note(run_dir, None if removed else CheckpointManager(run_dir / CHECKPOINT_DIR).list()))
        raise
    finally:
        lock.release()


def _train_locked(
    config_or_train,
    run_dir,
    overrides,
    num_seeds,
    seed,
    checkpoint_every,
    resume,
    overwrite,
    progress,
    stop_after,
    on_diverge,
    tensorboard,
    wandb_project,
    command,
    log,
    progress_file,
    t_start,
    mesh_request,
    peers,
    runs,
    external_reporter,
) -> RunResult:
    manager = CheckpointManager(run_dir / CHECKPOINT_DIR)
    if resume:
        st, ck_path = _resume_start(
            config_or_train,
            overrides,
            num_seeds,
            checkpoint_every,
            run_dir,
            resume,
            explicit_config=config_or_train is not None,
            log=log,
        )
    else:
        st = _new_start(config_or_train, num_seeds, seed, checkpoint_every, run_dir, overwrite, log, runs)
    config, start, num_seeds = st.config, st.start, st.num_seeds
    num_updates, log_every = config.num_updates, config.log_every
    target = num_updates if stop_after is None else min(num_updates, stop_after)
    mesh_shape = resolve_mesh_shape(
        mesh_request,
        num_seeds=num_seeds,
        config=config,
        device_count=jax.device_count(),
        process_count=jax.process_count(),
    )
    if resume and start >= target:  # leave run.json (status, sessions) exactly as it is
        why = f" (--stop-after {stop_after})" if stop_after is not None and stop_after < num_updates else ""
        log(f"nothing to do: {run_dir} is already at update {start} of {num_updates}{why}")
        peers.nothing_to_do()
        return RunResult(run_dir, config, st.state, start, start >= num_updates, 0.0, 0.0, 0.0, status="nothing to do")
    if resume:
        make_head(run_dir, start, manager.list(), log, atomic_write_bytes)
        log(f"resuming {run_dir} from {ck_path.name} (update {start}/{num_updates}, {num_seeds} seed(s))")

    chunk_len = max(1, min(st.checkpoint_every, num_updates))
    session = _open_session(st, run_dir, chunk_len, command, mesh_shape)
    hp = st.hp
    writers = _open_writers(run_dir, config, tensorboard, wandb_project, bool(resume))

    use_progress = progress != "off" and log_every > 0
    header = dict(
        config=config.to_dict(),
        num_seeds=num_seeds,
        seed=st.seed,
        chunk_len=chunk_len,
        use_progress=use_progress,
        stop_on_diverge=on_diverge == "stop",
        mesh=mesh_shape,
        runs=None if st.runs is None else st.runs.to_json(),
    )
    peers.send_header(header, st.state)
    train, state, mesh = st.train, st.state, None
    stop_flag = jnp.asarray(on_diverge == "stop")
    if mesh_shape is not None:  # the same chunk on every device of the mesh (purejaxppo.runs.mesh)
        train, mesh, state = place_run(st.train, header, st.state)
        hp, stop_flag = place_hparams(mesh, hp), replicated(mesh, np.asarray(on_diverge == "stop"))
    t_compile = time.perf_counter()
    compiled, relay = compiled_chunk(train, chunk_len, num_seeds, use_progress, state, hp, mesh)
    compile_s = time.perf_counter() - t_compile
    where = (
        ""
        if mesh is None or mesh_shape is None  # (a mesh is placed exactly when mesh_shape is given)
        else (
            f" on a mesh of seed={mesh_shape['seed']} x data={mesh_shape['data']} devices"
            f" ({jax.process_count()} process(es))"
        )
    )
    log(f"compiled one chunk of {chunk_len} updates x {num_seeds} seed(s){where} in {compile_s:.1f}s")

    # The bar starts after compiling, so its clock and steps/s cover training only.
    reporter = None
    if use_progress and external_reporter is not None:
        reporter = external_reporter
        reporter.stage(num_updates, config.batch_size, num_seeds, initial_update=start)
    elif use_progress:
        reporter = ProgressReporter(
            num_updates,
            config.batch_size,
            num_seeds,
            initial_update=start,
            style=progress,
            desc=config.env,
            file=progress_file,
        )
    if relay is not None:
        relay.target = reporter
    say = reporter.write if reporter is not None else log

    run = _Progress(
        state,
        start,
        np.flatnonzero(np.asarray(st.state.diverged)).tolist(),
        np.asarray(st.state.diverged),
        host=st.state,
        mesh=mesh,
    )
    status, error = "interrupted", None
    interrupt = _DeferredInterrupt(peers.count > 1, say)
    try:
        if reporter is not None:
            reporter.start()
        while run.done < target and not (run.diverged_seeds and on_diverge == "stop"):
            n = min(chunk_len, target - run.done)
            interrupt.check(peers)
            peers.plan(n)
            metrics, ran = _run_chunk(compiled, relay, run, hp, n, stop_flag)
            path = _save_chunk(run, metrics, ran, writers, manager, st, chunk_len, run_dir)
            ret = np.asarray(metrics["episode_return"])[:, ran - 1]
            diverged = _note_divergence(run, metrics, ran, st.run_info, on_diverge, say)
            if reporter is not None and reporter.style == "bar":
                reporter.set_note(f"ckpt {run.done}")  # shown in the bar instead of a line per checkpoint
            else:
                say(
                    f"checkpoint {path.name}: update {run.done}/{num_updates}, return {ret.mean():.1f}"
                    + (f" [{ret.min():.1f}, {ret.max():.1f}]" if num_seeds > 1 else "")
                    + (f", DIVERGED seeds {np.flatnonzero(diverged).tolist()}" if diverged.any() else "")
                )
            # Wall time so far, so a session killed without cleanup (SIGKILL, a lost node) still counts up to
            # its last checkpoint; the finally below overwrites it with the session's full time.
            session.update(end_update=run.done, wall_time_s=round(time.perf_counter() - t_start, 3))
            st.run_info.update(status="running", last_checkpoint=path.name)
            try:
                _write_json(run_dir / RUN_FILE, st.run_info)
            except OSError as e:
                raise _write_error(e, run_dir, manager) from None
        peers.plan(0)
        status = "diverged" if run.diverged_seeds else "finished" if run.done >= num_updates else "stopped"
    except KeyboardInterrupt:
        interrupt.restore()
        found = manager.list()
        raise RunInterrupted(run_dir, found[-1][1] if found else None, found[-1][0] if found else None) from None
    except BaseException as e:
        status, error = "failed", " ".join(str(e).split())[:500] or type(e).__name__
        raise
    finally:
        interrupt.restore()
        _close(relay, reporter if reporter is not external_reporter else None, writers, log)
        wall = time.perf_counter() - t_start
        sps = (run.done - start) * config.batch_size * num_seeds / run.run_s if run.run_s > 0 else 0.0
        session.update(
            ended=_now(),
            end_update=run.done,
            status=status,
            wall_time_s=round(wall, 3),
            compile_time_s=round(compile_s, 3),
            run_time_s=round(run.run_s, 3),
            env_steps_per_s=round(sps, 1),
        )
        _finish_info(run_dir, st.run_info, status, run.done, error, log)
    return RunResult(
        run_dir,
        config,
        run.host,
        run.done,
        run.done >= num_updates,
        compile_s,
        wall,
        sps,
        reporter.calls if reporter is not None else 0,
        reporter.reports if reporter is not None else [],
        status=status,
        diverged_seeds=run.diverged_seeds,
        diverged_at_update=st.run_info.get("diverged_at_update"),
    )


# ------------------------------------------------------------- pieces of _train_locked


@dataclasses.dataclass
class _Progress:
    """What the chunk loop carries from one chunk to the next."""

    state: Any
    done: int  # updates done (and checkpointed)
    diverged_seeds: list
    prev_diverged: np.ndarray  # the seeds' diverged flags before the next chunk
    host: Any = None  # the state in the single-device layout [S, ...] (what checkpoints hold); `state` itself
    # off a mesh, else purejaxppo.runs.mesh.to_canonical(state)
    mesh: Any = None
    run_s: float = 0.0  # seconds spent running chunks (not compiling, not writing)


def _open_session(st: _Start, run_dir: Path, chunk_len: int, command, mesh_shape: dict | None = None) -> dict:
    """Write config.yaml and run.json (with a new session appended, status running); returns that session."""
    import yaml

    config = st.config
    body = yaml.safe_dump(config.to_dict(), sort_keys=False)
    atomic_write_bytes(run_dir / CONFIG_FILE, config_yaml_text(body, st.run_info.get(RUN_ID)).encode())
    session = {"started": _now(), "start_update": st.start, "command": list(command) if command else None}
    st.run_info.update(
        versions=versions(),
        device=device_info(),
        env=config.env,
        num_seeds=st.num_seeds,
        seed=st.seed,
        seed_keys=f"jax.random.split(jax.random.key({st.seed}), {st.num_seeds})",
        num_updates=config.num_updates,
        batch_size=config.batch_size,
        checkpoint_every=chunk_len,
        log_every=config.log_every,
        status="running",
        mesh=mesh_shape,
        processes=jax.process_count(),
    )
    st.run_info.pop("error", None)
    st.run_info.setdefault("sessions", []).append(session)
    _write_json(run_dir / RUN_FILE, st.run_info)
    return session


def _open_writers(run_dir: Path, config: PPOConfig, tensorboard: bool, wandb_project: str | None, resume: bool) -> list:
    writers: list[Any] = [JsonlWriter(run_dir / METRICS_FILE)]
    if tensorboard:
        writers.append(TensorBoardWriter(run_dir / "tensorboard"))
    if wandb_project:
        writers.append(WandbWriter(wandb_project, run_dir, config, resume))
    return writers


def _run_chunk(compiled, relay, run: _Progress, hp, n: int, stop_flag) -> tuple[dict, int]:
    """Run up to `n` updates; returns the chunk's metrics (on the host) and how many updates ran
    (fewer than `n` when stopped at a divergence)."""
    t0 = time.perf_counter()
    if run.mesh is None:
        run.state, metrics = compiled(run.state, hp, jnp.int32(n), stop_flag)
        metrics = jax.device_get(metrics)
        run.host = run.state
    else:  # the followers run the same two collectives after the chunk (purejaxppo.runs.mesh.follow_run)
        run.state, metrics = compiled(run.state, hp, replicated(run.mesh, np.int32(n)), stop_flag)
        metrics = gather(metrics)
        run.host = to_canonical(run.state)
    if relay is not None:
        jax.effects_barrier()  # this chunk's progress reports are printed before its checkpoint line
    run.run_s += time.perf_counter() - t0
    return metrics, int(np.max(np.asarray(run.host.update_step))) - run.done


def _save_chunk(
    run: _Progress,
    metrics: dict,
    ran: int,
    writers: list,
    manager: CheckpointManager,
    st: _Start,
    chunk_len: int,
    run_dir: Path,
) -> Path:
    """The chunk's metric rows to every writer, then the checkpoint that covers them; returns its path.
    A failed write is a RunWriteError that says what is intact."""
    config = st.config
    rows = _rows(
        metrics,
        run.done,
        ran,
        config.log_every,
        config.num_updates,
        config.batch_size,
        run.prev_diverged,
        None if st.runs is None else st.runs.labels,
    )
    run.prev_diverged = np.asarray(run.host.diverged)
    try:
        for w in writers:
            w.write(rows)
        run.done += ran
        jsonl = next(w for w in writers if isinstance(w, JsonlWriter))
        meta = _checkpoint_meta(
            config,
            run.done,
            st.num_seeds,
            st.seed,
            chunk_len,
            st.runs,
            run_id=st.run_info.get(RUN_ID),
            metrics_sha256=jsonl.hexdigest(),
        )
        return manager.save(run.host, meta, run.done)
    except OSError as e:
        raise _write_error(e, run_dir, manager) from None


def _note_divergence(run: _Progress, metrics: dict, ran: int, run_info: dict, on_diverge: str, say) -> np.ndarray:
    """Record (and on the first one, announce) seeds that diverged in the chunk; returns the chunk's flags [S]."""
    diverged = np.asarray(metrics["diverged"])[:, :ran].max(axis=1) > 0
    if diverged.any() and not run.diverged_seeds:
        first = int(np.argmax(np.asarray(metrics["diverged"])[:, :ran].max(axis=0) > 0)) + run.done - ran + 1
        run.diverged_seeds = np.flatnonzero(diverged).tolist()
        run_info.update(diverged_seeds=run.diverged_seeds, diverged_at_update=first)
        say(
            f"DIVERGED: seed(s) {run.diverged_seeds} produced non-finite numbers at update {first}; their "
            "parameters are frozen at the last finite values"
            + (
                " — stopping (checkpointed; --on-diverge continue trains the other seeds on)"
                if on_diverge == "stop"
                else " — continuing (--on-diverge continue)"
            )
        )
    elif diverged.any():
        run.diverged_seeds = sorted(set(run.diverged_seeds) | set(np.flatnonzero(diverged).tolist()))
        run_info.update(diverged_seeds=run.diverged_seeds)
    return diverged


def _close(relay, reporter, writers: list, log) -> None:
    """Flush and detach the progress callback, close the bar and every writer (a writer's failure only warns)."""
    if relay is not None:
        jax.effects_barrier()
        relay.target = None
    if reporter is not None:
        reporter.close()
    for w in writers:
        try:
            w.close()
        except Exception as e:  # a writer's own failure must not hide the run's
            log(f"warning: closing a metrics writer failed ({type(e).__name__}: {e})")


def _finish_info(run_dir: Path, run_info: dict, status: str, done: int, error: str | None, log) -> None:
    """run.json at the end of a session: status, update, totals over all sessions, the error if any."""
    run_info.update(
        status=status,
        update=done,
        wall_time_s=round(sum(s.get("wall_time_s", 0.0) for s in run_info["sessions"]), 3),
        compile_time_s=round(sum(s.get("compile_time_s", 0.0) for s in run_info["sessions"]), 3),
    )
    if error:
        run_info["error"] = error
    _save_info(run_dir / RUN_FILE, run_info, log)
