"""Run folders: chunked training with checkpoints, metric logs, resume, and loading a run back.

`train_run(config, out_dir, ...)` trains `num_seeds` vmapped seeds in jitted
chunks of `checkpoint_every` updates. One program is compiled per run (the
number of updates in a chunk is a runtime argument, so a shorter last chunk
reuses it). After every chunk it appends the chunk's metrics to
`metrics.jsonl` (fsynced), saves a full-state checkpoint and refreshes
`run.json`. `train_run(..., resume=True)` continues from the newest
checkpoint and gives bit-identical metrics and parameters to an
uninterrupted run. The folder itself — unique names, the lock, owned files,
old-checkpoint resumes — is `purejaxppo.run_folder`.

Run folder::

    runs/NAME/
      config.yaml        the resolved PPOConfig
      run.json           versions, device, seeds, chunking, compile/wall time, status, sessions
      metrics.jsonl      {"update", "env_steps", "seed", <every metric>} per logged update per seed
      checkpoints/ckpt-00000098.msgpack   the newest two full-state checkpoints
      .lock              held (flock) while a process trains into the folder

`load_run(run_dir)` returns the config, the `make_train` result and the
restored state; `load_policy(run_dir)` returns a jitted `act` function.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.checkpoint import CheckpointError, CheckpointManager, atomic_write_bytes, read_checkpoint, unflatten_state
from purejaxppo.config import PPOConfig
from purejaxppo.progress import ProgressReporter, with_progress
from purejaxppo.run_folder import (  # noqa: F401  (re-exported names)
    CHECKPOINT_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    RUN_FILE,
    RUN_FILES,
    RunError,
    RunLock,
    claim_new_run_dir,
    is_empty_but_lock,
    make_head,
    read_run_info,
    remove_owned,
    remove_stale_temp_files,
    safe_name,
    stamp,
)

AXIS = "seed"
ON_DIVERGE = ("stop", "continue")

# Fields that only change what is logged, never the training computation: may differ on resume silently.
LOGGING_FIELDS = ("log_every", "eval_every", "eval_episodes")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during `train_run`; says which folder and which checkpoint (if any) to continue from."""

    def __init__(self, run_dir: Path, checkpoint: Path | None, update: int | None):
        super().__init__()
        self.run_dir, self.checkpoint, self.update = run_dir, checkpoint, update


class RunWriteError(RunError):
    """Writing a run file failed (disk full, read-only, permissions); says what is intact and how to continue."""


# ------------------------------------------------------------------------ helpers


def default_checkpoint_every(num_updates: int) -> int:
    """About ten checkpoints per run."""
    return max(1, math.ceil(num_updates / 10))


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("purejaxppo", "jax", "jaxlib", "flax", "optax", "gymnax", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def device_info() -> dict[str, Any]:
    d = jax.devices()[0]
    return {"backend": jax.default_backend(), "device": str(d), "device_kind": d.device_kind,
            "device_count": jax.device_count(), "platform": platform.platform()}


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def _json_value(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None  # NaN (e.g. eval_return on non-eval updates) -> null


def logged_updates(first: int, last: int, log_every: int, num_updates: int) -> list[int]:
    """Update counters in (first, last] that get a metrics.jsonl row."""
    every = max(1, log_every)
    return [u for u in range(first + 1, last + 1) if u % every == 0 or u == num_updates]


def config_diff(old: PPOConfig, new: PPOConfig) -> dict[str, tuple[Any, Any]]:
    a, b = old.to_dict(), new.to_dict()
    return {k: (a[k], b[k]) for k in a if a[k] != b.get(k)}


def _describe_diff(diff: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())


# ------------------------------------------------------------------------ writers


class JsonlWriter:
    """metrics.jsonl: one JSON object per logged update per seed, fsynced before the checkpoint that covers it."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, rows: list[dict]) -> None:
        with open(self.path, "a") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        pass


class TensorBoardWriter:
    """Scalars to TensorBoard (`pip install 'purejaxppo[tensorboard]'`, uses tensorboardX): mean over seeds and per seed."""

    def __init__(self, logdir: Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise RunError("--tensorboard needs the tensorboardX package: pip install 'purejaxppo[tensorboard]'") from None
        self._w = SummaryWriter(str(logdir))

    def write(self, rows: list[dict]) -> None:
        for step, group in _group_by_update(rows):
            for k, vals in group.items():
                vals = [v for v in vals if v is not None]
                if vals:
                    self._w.add_scalar(k, float(np.mean(vals)), step)

    def close(self) -> None:
        self._w.close()


class WandbWriter:
    """Weights & Biases logging (`pip install 'purejaxppo[wandb]'`): mean over seeds, x-axis env steps."""

    def __init__(self, project: str, run_dir: Path, config: PPOConfig, resume: bool):
        try:
            import wandb
        except ImportError:
            raise RunError("--wandb needs the wandb package: pip install 'purejaxppo[wandb]'") from None
        self._wandb = wandb
        self._run = wandb.init(project=project, name=run_dir.name, dir=str(run_dir), config=config.to_dict(),
                               resume="allow" if resume else None, id=run_dir.name if resume else None)

    def write(self, rows: list[dict]) -> None:
        for step, group in _group_by_update(rows):
            data = {k: float(np.mean([v for v in vals if v is not None])) for k, vals in group.items()
                    if any(v is not None for v in vals)}
            self._run.log(data, step=step)

    def close(self) -> None:
        self._run.finish()


def _group_by_update(rows: list[dict]):
    by: dict[int, dict[str, list]] = {}
    for r in rows:
        g = by.setdefault(r["env_steps"], {})
        for k, v in r.items():
            if k not in ("update", "env_steps", "seed"):
                g.setdefault(k, []).append(v)
    return sorted(by.items())


# --------------------------------------------------------------------- the loop


def make_chunk_fn(train: Callable, chunk_len: int, reporter: Callable | None, log_every: int) -> Callable:
    """`chunk(states[S], hp, n, stop_on_diverge) -> (states, metrics[S, chunk_len])`, jitted, vmapped over seeds.

    Runs `n <= chunk_len` updates (n is traced; the remaining iterations are
    skipped by a `cond` on an unbatched predicate, so every chunk length reuses
    one compiled program) with the progress callback compiled in iff
    `reporter` is given and `log_every > 0`. With `stop_on_diverge` (a traced
    bool) the remaining updates are also skipped once any seed has diverged
    (`lax.pmax` over the "seed" axis keeps the predicate unbatched); the
    state's `update_step` then says how many ran.
    """
    config = train.config
    update = train.update
    if reporter is not None and log_every > 0:
        update = with_progress(update, log_every, reporter, total_updates=config.num_updates, axis_name=AXIS)

    def chunk(state, hp, n, stop_on_diverge):
        metric_shapes = jax.eval_shape(train.update, state, hp)[1]
        blank = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), metric_shapes)

        def body(s, i):
            any_diverged = jax.lax.pmax(s.diverged.astype(jnp.int32), AXIS) > 0
            go = jnp.logical_and(i < n, jnp.logical_not(jnp.logical_and(stop_on_diverge, any_diverged)))
            return jax.lax.cond(go, lambda s: update(s, hp), lambda s: (s, blank), s)

        return jax.lax.scan(body, state, jnp.arange(chunk_len))

    return jax.jit(jax.vmap(chunk, in_axes=(0, None, None, None), axis_name=AXIS))


def _strong(state):
    """Host copies of the leaves without weak types (e.g. gymnax's `time=0`), like a restored checkpoint,
    so a fresh run and a resumed one lower to exactly the same program."""
    from purejaxppo.checkpoint import _is_key

    return jax.tree.map(lambda x: x if _is_key(x) else np.asarray(x), state)


class _Relay:
    """The host callback compiled into a cached chunk program; forwards to the current run's reporter."""

    def __init__(self):
        self.target = None

    def __call__(self, *args):
        if self.target is not None:
            self.target(*args)


# Compiled chunk programs (and jitted inits) of this process, by (config, chunk_len, num_seeds, progress on),
# so another train_run with the same settings (e.g. a resume in the same session) does not compile again.
_COMPILED: dict = {}
_COMPILED_MAX = 8


def _state_template(train: Callable, num_seeds: int, seed: int):
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    return jax.eval_shape(jax.vmap(train.init, in_axes=(0, None)), keys, train.config.hparams())


def check_run_fits(train: Callable, num_seeds: int) -> None:
    """ResourceError before compiling if `num_seeds` runs of `train` cannot fit the device's memory
    (the train state's size exact, from `jax.eval_shape`; the rollout and update estimated)."""
    from purejaxppo.resources import check_memory, tree_bytes

    state_bytes = tree_bytes(_state_template(train, num_seeds, 0)) // num_seeds
    check_memory(train.config, train.obs_spec, train.action_spec, num_seeds, state_bytes=state_bytes)


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


@dataclasses.dataclass
class _Start:
    """Where a run starts: its config, train function, state and bookkeeping (new or resumed)."""

    config: PPOConfig
    train: Callable
    state: Any
    start: int
    num_seeds: int
    seed: int
    checkpoint_every: int
    run_info: dict


def _exists_error(run_dir: Path) -> RunError:
    return RunError(f"output folder {run_dir} already exists and is not empty; pass --overwrite to replace "
                    f"its run files, --resume {run_dir} to continue it, or choose another --out")


def _new_start(train, num_seeds, seed, checkpoint_every, run_dir, overwrite, log) -> _Start:
    config = train.config
    if not is_empty_but_lock(run_dir):
        if not overwrite:
            raise _exists_error(run_dir)
        removed = remove_owned(run_dir)
        log(f"--overwrite: removed the previous run's files in {run_dir}: {', '.join(removed) or 'none'}")
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    init_key = ("init", config, num_seeds)
    init_fn = _COMPILED.get(init_key) or jax.jit(jax.vmap(train.init, in_axes=(0, None)))
    _COMPILED[init_key] = init_fn
    state = _strong(init_fn(keys, config.hparams()))
    every = checkpoint_every or default_checkpoint_every(config.num_updates)
    return _Start(config, train, state, 0, num_seeds, seed, every, {})


def _resume_start(config, overrides, num_seeds, checkpoint_every, run_dir, resume, explicit_config, log) -> tuple[_Start, Path]:
    from purejaxppo.train import make_train

    manager = CheckpointManager(run_dir / CHECKPOINT_DIR)
    gone = remove_stale_temp_files(run_dir)
    if gone:
        log(f"removed {len(gone)} temp file(s) left by an interrupted write: {', '.join(gone)}")
    if resume is True:
        ck_path, meta, leaves, keys = manager.read_latest()
    else:
        ck_path = Path(resume)
        meta, leaves, keys = read_checkpoint(ck_path)
    try:
        saved = PPOConfig.from_dict(meta["config"], source=f"checkpoint {ck_path}")
        saved_seeds, seed = int(meta["num_seeds"]), int(meta["seed"])
        start = int(meta["update"])
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
        raise RunError(f"cannot resume with this config, it changes the shapes of the saved state "
                       f"({_describe_diff(diff) or 'no field differs'}); {e}") from None
    behavioural = {k: v for k, v in diff.items() if k not in LOGGING_FIELDS}
    if behavioural:
        log(f"warning: resuming with changed fields {_describe_diff(behavioural)}; "
            "the result will differ from an uninterrupted run")
    every = checkpoint_every or int(meta.get("checkpoint_every") or default_checkpoint_every(config.num_updates))
    return _Start(config, train, state, start, saved_seeds, seed, every, read_run_info(run_dir, log)), ck_path


def _note_edited_config_file(run_dir: Path, saved: PPOConfig, explicit_config: bool, log) -> None:
    """Say so when RUN/config.yaml no longer matches the checkpoint's config (it is rewritten on resume)."""
    path = run_dir / CONFIG_FILE
    if explicit_config or not path.is_file():
        return
    try:
        on_disk = PPOConfig.from_yaml(path)
        changed = config_diff(saved, on_disk)
        what = f"differs from the checkpoint's config ({_describe_diff(changed)})" if changed else ""
    except Exception as e:  # unparsable or invalid: also an edit
        what = f"cannot be read ({' '.join(str(e).split())[:200]})"
    if not what:
        return
    keep = run_dir / f"{CONFIG_FILE}.edited-{stamp()}"
    keep.write_bytes(path.read_bytes())
    log(f"warning: {path} {what}; a resume uses the checkpoint's config, so the file is rewritten (your version "
        f"is kept as {keep.name}); to apply changes, pass them with --set FIELD=VALUE (or --config FILE)")


def _save_info(path: Path, info: dict, log) -> None:
    try:
        _write_json(path, info)
    except OSError as e:
        log(f"warning: could not update {path} ({e.strerror or e})")


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
) -> RunResult:
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
    """
    from purejaxppo.cpu import configure as configure_cpu

    configure_cpu()  # the CLI's CPU settings, before any JAX computation (README "CPU note"); once per process
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
        from purejaxppo.train import make_train

        config = (config or PPOConfig()).replace(**overrides)
        num_seeds = 1 if num_seeds is None else num_seeds
        new_train = make_train(config)
        check_run_fits(new_train, num_seeds)
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
        raise RunWriteError(f"cannot write to run folder {run_dir} ({e.strerror or e}); "
                            "check its permissions or choose another --out") from None
    try:
        return _train_locked(config if resume else new_train, run_dir, overrides, num_seeds, seed, checkpoint_every, resume, overwrite,
                             progress, stop_after, on_diverge, tensorboard, wandb_project, command, log,
                             progress_file, t_start)
    except BaseException:
        if claimed and is_empty_but_lock(run_dir):  # nothing was written: leave no empty folder behind
            (run_dir / ".lock").unlink(missing_ok=True)
            run_dir.rmdir()
        raise
    finally:
        lock.release()


def _train_locked(config_or_train, run_dir, overrides, num_seeds, seed, checkpoint_every, resume, overwrite, progress,
                  stop_after, on_diverge, tensorboard, wandb_project, command, log, progress_file, t_start) -> RunResult:
    manager = CheckpointManager(run_dir / CHECKPOINT_DIR)
    if resume:
        st, ck_path = _resume_start(config_or_train, overrides, num_seeds, checkpoint_every, run_dir, resume,
                                    explicit_config=config_or_train is not None, log=log)
    else:
        st = _new_start(config_or_train, num_seeds, seed, checkpoint_every, run_dir, overwrite, log)
    config, train, state, start, num_seeds, seed = st.config, st.train, st.state, st.start, st.num_seeds, st.seed
    num_updates, log_every = config.num_updates, config.log_every
    target = num_updates if stop_after is None else min(num_updates, stop_after)
    if resume and start >= target:  # leave run.json (status, sessions) exactly as it is
        why = f" (--stop-after {stop_after})" if stop_after is not None and stop_after < num_updates else ""
        log(f"nothing to do: {run_dir} is already at update {start} of {num_updates}{why}")
        return RunResult(run_dir, config, state, start, start >= num_updates, 0.0, 0.0, 0.0, status="nothing to do")
    if resume:
        make_head(run_dir, start, manager.list(), log, atomic_write_bytes)
        log(f"resuming {run_dir} from {ck_path.name} (update {start}/{num_updates}, {num_seeds} seed(s))")
    import yaml

    atomic_write_bytes(run_dir / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False).encode())

    chunk_len = max(1, min(st.checkpoint_every, num_updates))
    hp = config.hparams()
    run_info = st.run_info
    session = {"started": _now(), "start_update": start, "command": list(command) if command else None}
    run_info.update(
        versions=versions(), device=device_info(), env=config.env, num_seeds=num_seeds, seed=seed,
        seed_keys=f"jax.random.split(jax.random.key({seed}), {num_seeds})",
        num_updates=num_updates, batch_size=config.batch_size, checkpoint_every=chunk_len, log_every=log_every,
        status="running",
    )
    run_info.pop("error", None)
    run_info.setdefault("sessions", []).append(session)
    _write_json(run_dir / RUN_FILE, run_info)

    writers: list[Any] = [JsonlWriter(run_dir / METRICS_FILE)]
    if tensorboard:
        writers.append(TensorBoardWriter(run_dir / "tensorboard"))
    if wandb_project:
        writers.append(WandbWriter(wandb_project, run_dir, config, bool(resume)))

    use_progress = progress != "off" and log_every > 0
    t_compile = time.perf_counter()
    cache_key = (config, chunk_len, num_seeds, use_progress)
    entry = _COMPILED.pop(cache_key, None)
    if entry is None:
        relay = _Relay() if use_progress else None
        chunk_fn = make_chunk_fn(train, chunk_len, relay, log_every)
        entry = (chunk_fn.lower(state, hp, jnp.int32(chunk_len), jnp.asarray(True)).compile(), relay)
    _COMPILED[cache_key] = entry  # most recently used last
    while len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.pop(next(iter(_COMPILED)))
    compiled, relay = entry
    compile_s = time.perf_counter() - t_compile
    log(f"compiled one chunk of {chunk_len} updates x {num_seeds} seed(s) in {compile_s:.1f}s")

    # The bar starts after compiling, so its clock and steps/s cover training only.
    reporter = ProgressReporter(num_updates, config.batch_size, num_seeds, initial_update=start, style=progress,
                                desc=config.env, file=progress_file) if use_progress else None
    if relay is not None:
        relay.target = reporter
    say = reporter.write if reporter is not None else log

    done = start
    run_s = 0.0
    status, error = "interrupted", None
    diverged_seeds: list[int] = np.flatnonzero(np.asarray(state.diverged)).tolist()
    stop_flag = jnp.asarray(on_diverge == "stop")
    prev_diverged = np.asarray(state.diverged)
    try:
        if reporter is not None:
            reporter.start()
        while done < target and not (diverged_seeds and on_diverge == "stop"):
            n = min(chunk_len, target - done)
            t0 = time.perf_counter()
            state, metrics = compiled(state, hp, jnp.int32(n), stop_flag)
            metrics = jax.device_get(metrics)
            if relay is not None:
                jax.effects_barrier()  # this chunk's progress reports are printed before its checkpoint line
            run_s += time.perf_counter() - t0
            ran = int(np.max(np.asarray(state.update_step))) - done  # < n when stopped at a divergence
            rows = _rows(metrics, done, ran, log_every, num_updates, config.batch_size, prev_diverged)
            prev_diverged = np.asarray(state.diverged)
            try:
                for w in writers:
                    w.write(rows)
                done += ran
                path = manager.save(state, _checkpoint_meta(config, done, num_seeds, seed, chunk_len), done)
            except OSError as e:
                raise _write_error(e, run_dir, manager) from None
            diverged = np.asarray(metrics["diverged"])[:, :ran].max(axis=1) > 0
            ret = np.asarray(metrics["episode_return"])[:, ran - 1]
            if diverged.any() and not diverged_seeds:
                first = int(np.argmax(np.asarray(metrics["diverged"])[:, :ran].max(axis=0) > 0)) + done - ran + 1
                diverged_seeds = np.flatnonzero(diverged).tolist()
                run_info.update(diverged_seeds=diverged_seeds, diverged_at_update=first)
                say(f"DIVERGED: seed(s) {diverged_seeds} produced non-finite numbers at update {first}; their "
                    "parameters are frozen at the last finite values"
                    + (" — stopping (checkpointed; --on-diverge continue trains the other seeds on)"
                       if on_diverge == "stop" else " — continuing (--on-diverge continue)"))
            elif diverged.any():
                diverged_seeds = sorted(set(diverged_seeds) | set(np.flatnonzero(diverged).tolist()))
                run_info.update(diverged_seeds=diverged_seeds)
            if reporter is not None and reporter.style == "bar":
                reporter.set_note(f"ckpt {done}")  # shown in the bar instead of a line per checkpoint
            else:
                say(f"checkpoint {path.name}: update {done}/{num_updates}, return {ret.mean():.1f}"
                    + (f" [{ret.min():.1f}, {ret.max():.1f}]" if num_seeds > 1 else "")
                    + (f", DIVERGED seeds {np.flatnonzero(diverged).tolist()}" if diverged.any() else ""))
            session.update(end_update=done)
            run_info.update(status="running", last_checkpoint=path.name)
            try:
                _write_json(run_dir / RUN_FILE, run_info)
            except OSError as e:
                raise _write_error(e, run_dir, manager) from None
        status = "diverged" if diverged_seeds else "finished" if done >= num_updates else "stopped"
    except KeyboardInterrupt:
        found = manager.list()
        raise RunInterrupted(run_dir, found[-1][1] if found else None, found[-1][0] if found else None) from None
    except BaseException as e:
        status, error = "failed", " ".join(str(e).split())[:500] or type(e).__name__
        raise
    finally:
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
        wall = time.perf_counter() - t_start
        sps = (done - start) * config.batch_size * num_seeds / run_s if run_s > 0 else 0.0
        session.update(ended=_now(), end_update=done, status=status, wall_time_s=round(wall, 3),
                       compile_time_s=round(compile_s, 3), run_time_s=round(run_s, 3), env_steps_per_s=round(sps, 1))
        run_info.update(status=status, update=done,
                        wall_time_s=round(sum(s.get("wall_time_s", 0.0) for s in run_info["sessions"]), 3),
                        compile_time_s=round(sum(s.get("compile_time_s", 0.0) for s in run_info["sessions"]), 3))
        if error:
            run_info["error"] = error
        _save_info(run_dir / RUN_FILE, run_info, log)
    return RunResult(run_dir, config, state, done, done >= num_updates, compile_s, wall, sps,
                     reporter.calls if reporter is not None else 0, reporter.reports if reporter is not None else [],
                     status=status, diverged_seeds=diverged_seeds,
                     diverged_at_update=run_info.get("diverged_at_update"))


def _checkpoint_meta(config: PPOConfig, done: int, num_seeds: int, seed: int, chunk_len: int) -> dict:
    return {
        "purejaxppo": versions()["purejaxppo"], "config": config.to_dict(), "update": done,
        "num_updates": config.num_updates, "env_steps": done * config.batch_size, "num_seeds": num_seeds,
        "seed": seed, "checkpoint_every": chunk_len, "saved": _now(),
    }


def _write_error(e: OSError, run_dir: Path, manager: CheckpointManager) -> RunWriteError:
    what = e.filename or "a run file"
    latest = manager.latest()
    intact = (f"the newest checkpoint {latest.name} is intact" if latest is not None
              else "no checkpoint had been written yet")
    return RunWriteError(f"could not write {what} ({e.strerror or e}); {intact}. Free disk space (or fix the "
                         f"folder's permissions), then continue with: purejaxppo train --resume {run_dir}")


def _rows(metrics: dict, done: int, n: int, log_every: int, num_updates: int, batch_size: int,
          prev_diverged: np.ndarray | None = None) -> list[dict]:
    """metrics.jsonl rows of a chunk of `n` updates after update `done`: every log_every-th update, the
    last one, and the update at which a seed diverged (first non-finite update; `prev_diverged` [S] are
    the flags before the chunk)."""
    from purejaxppo.train import METRIC_NAMES

    names = [k for k in METRIC_NAMES if k in metrics] + sorted(k for k in metrics if k not in METRIC_NAMES)
    arrays = {k: np.asarray(v) for k, v in metrics.items()}
    num_seeds = arrays[names[0]].shape[0]
    updates = set(logged_updates(done, done + n, log_every, num_updates))
    flags = np.asarray(arrays["diverged"])[:, :n] > 0
    before = np.zeros(num_seeds, bool) if prev_diverged is None else np.asarray(prev_diverged, bool)
    turned_on = flags & ~np.concatenate([before[:, None], flags[:, :-1]], axis=1)
    updates |= {done + 1 + int(j) for j in np.flatnonzero(turned_on.any(axis=0))}
    rows = []
    for u in sorted(updates):
        j = u - done - 1
        for s in range(num_seeds):
            row = {"update": u, "env_steps": u * batch_size, "seed": s}
            row.update({k: _json_value(arrays[k][s, j]) for k in names})
            rows.append(row)
    return rows


# ------------------------------------------------------------------ loading runs


@dataclasses.dataclass
class LoadedRun:
    run_dir: Path
    checkpoint: Path
    config: PPOConfig
    train: Callable
    state: Any  # TrainState with a leading [num_seeds] axis
    meta: dict

    @property
    def num_seeds(self) -> int:
        return int(self.meta["num_seeds"])


def resolve_checkpoint(run: str | os.PathLike) -> tuple[Path, Path | None]:
    """(run folder, checkpoint file or None for 'newest') from a run folder or a checkpoint file path."""
    p = Path(run)
    if p.is_file():
        run_dir = p.parent.parent if p.parent.name == CHECKPOINT_DIR else p.parent
        return run_dir, p
    if not p.exists():
        raise RunError(f"run {p} does not exist")
    return p, None


def load_run(run: str | os.PathLike) -> LoadedRun:
    """Config, train function and restored state of a run folder (newest checkpoint) or a checkpoint file."""
    from purejaxppo.train import make_train

    run_dir, ck = resolve_checkpoint(run)
    if ck is None:
        ck, meta, leaves, keys = CheckpointManager(run_dir / CHECKPOINT_DIR).read_latest()
    else:
        meta, leaves, keys = read_checkpoint(ck)
    try:
        config = PPOConfig.from_dict(meta["config"], source=f"checkpoint {ck}")
        num_seeds, seed = int(meta["num_seeds"]), int(meta["seed"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {ck} has incomplete metadata ({e})") from None
    train = make_train(config)
    state = unflatten_state(_state_template(train, num_seeds, seed), leaves, keys, source=f"checkpoint {ck}")
    return LoadedRun(run_dir, ck, config, train, state, meta)


def load_policy(run: str | os.PathLike, seed_index: int = 0) -> Callable:
    """A jitted `act(obs, key=None, deterministic=True)` for the policy of one seed of a run.

    obs: one observation or a batch (every leaf `[*leaf_shape]` or
    `[B, *leaf_shape]`; raw, as the env returns it: the run's observation
    normalization is applied). Returns env actions (int32 for discrete spaces;
    for Box spaces training's transform: clipped to the box, or tanh-squashed),
    unbatched for an unbatched obs. `deterministic=False` samples and needs
    `key`. It acts through `purejaxppo.agent.make_policy`, as evaluation and
    rendering do. Attributes: `acting` (ActingState: params and obs
    normalizer), `params`, `obs_norm`, `config`, `action_spec`, `network`,
    `agent`, `obs_spec`, `obs_shape` (single-array observations).
    """
    from purejaxppo.agent import ActingState, make_policy
    from purejaxppo.spaces import is_array_spec

    run = load_run(run)
    if not 0 <= seed_index < run.num_seeds:
        raise RunError(f"seed_index {seed_index} out of range: the run has {run.num_seeds} seed(s)")
    acting = jax.tree.map(lambda x: x[seed_index], ActingState(run.state.params, run.state.obs_norm))
    train = run.train
    spec = train.obs_spec
    policy = make_policy(train.agent, train.to_env_action)
    obs_clip = jnp.float32(run.config.obs_clip)

    def _act(acting, obs, key, deterministic: bool, single: bool):
        batch = jax.tree.map(lambda x: x[None], obs) if single else obs
        n = jax.tree.leaves(batch)[0].shape[0]
        floats = jax.tree.map(lambda x: x.astype(jnp.float32), batch)
        _, a = policy(acting, train.agent.initial_carry(n), floats, jnp.zeros((n,), bool), key, deterministic,
                      obs_clip)
        return a[0] if single else a

    _act_jit = jax.jit(_act, static_argnums=(3, 4))

    def act(obs, key=None, deterministic: bool = True):
        obs = jax.tree.map(jnp.asarray, obs)
        try:
            ranks = jax.tree.map(lambda o, s: o.ndim - len(s.shape), obs, spec)
            ok = all(r in (0, 1) for r in jax.tree.leaves(ranks)) and len(set(jax.tree.leaves(ranks))) == 1 and all(
                tuple(o.shape[o.ndim - len(s.shape):]) == tuple(s.shape) for o, s in zip(jax.tree.leaves(obs), jax.tree.leaves(spec)))
        except ValueError:  # a different pytree structure
            ok = False
        if not ok:
            want = tuple(spec.shape) if is_array_spec(spec) else jax.tree.map(lambda s: tuple(s.shape), spec)
            got = jax.tree.map(lambda o: tuple(o.shape), obs)
            raise ValueError(f"act: obs must have shape {want} or a batch [B, ...] of it, got {got}")
        if not deterministic and key is None:
            raise ValueError("act: deterministic=False samples an action and needs key=jax.random.key(...)")
        if key is None:
            key = jax.random.key(0)  # unused by the mode
        single = jax.tree.leaves(ranks)[0] == 0
        return _act_jit(acting, obs, key, bool(deterministic), bool(single))

    act.acting, act.params, act.obs_norm, act.config = acting, acting.params, acting.obs_norm, run.config
    act.action_spec, act.network, act.agent, act.obs_spec = train.action_spec, train.network, train.agent, spec
    act.obs_shape = tuple(spec.shape) if is_array_spec(spec) else None
    return act


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise RunError(f"{run_dir} has no {METRICS_FILE} (is it a purejaxppo run folder?)")
    rows = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return rows


def learning_curves(run_dir: str | os.PathLike, metric: str = "episode_return") -> tuple[np.ndarray, np.ndarray]:
    """(env_steps [T], values [num_seeds, T]) of one metric from metrics.jsonl (updates where every seed has a value)."""
    rows = read_metrics(run_dir)
    if not rows:
        raise RunError(f"{run_dir}/{METRICS_FILE} is empty")
    if metric not in rows[0]:
        known = [k for k in rows[0] if k not in ("update", "env_steps", "seed")]
        raise RunError(f"metric {metric!r} is not in {run_dir}/{METRICS_FILE}; it has: {', '.join(known)}")
    seeds = sorted({r["seed"] for r in rows})
    by_step: dict[int, dict[int, float]] = {}
    for r in rows:
        by_step.setdefault(r["env_steps"], {})[r["seed"]] = r.get(metric)
    steps = [s for s in sorted(by_step) if all(by_step[s].get(k) is not None for k in seeds)]
    if not steps:
        raise RunError(f"metric {metric!r} has no value for all seeds at any logged update in {run_dir}")
    values = np.array([[by_step[s][k] for s in steps] for k in seeds], np.float64)
    return np.asarray(steps, np.float64), values
