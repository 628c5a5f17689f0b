"""Run folders: chunked training with checkpoints, metric logs, resume, and loading a run back.

`train_run(config, out_dir, ...)` trains `num_seeds` vmapped seeds in jitted
chunks of `checkpoint_every` updates. One program is compiled per run (the
number of updates in a chunk is a runtime argument, so a shorter last chunk
reuses it). After every chunk it appends the chunk's metrics to
`metrics.jsonl`, saves a full-state checkpoint and refreshes `run.json`.
`train_run(..., resume=True)` continues from the newest checkpoint and gives
bit-identical metrics and parameters to an uninterrupted run.

Run folder::

    runs/NAME/
      config.yaml        the resolved PPOConfig
      run.json           versions, device, seeds, chunking, compile/wall time, status, sessions
      metrics.jsonl      {"update", "env_steps", "seed", <every metric>} per logged update per seed
      checkpoints/ckpt-00000098.msgpack   the newest two full-state checkpoints

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
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.checkpoint import CheckpointError, CheckpointManager, atomic_write_bytes, read_checkpoint, unflatten_state
from purejaxppo.config import PPOConfig
from purejaxppo.progress import ProgressReporter, with_progress

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
RUN_FILES = (CONFIG_FILE, RUN_FILE, METRICS_FILE)
AXIS = "seed"

# Fields that only change what is logged, never the training computation: may differ on resume silently.
LOGGING_FIELDS = ("log_every", "eval_every", "eval_episodes")


class RunError(ValueError):
    """A user-facing problem with a run folder (exists, missing, mismatched)."""


# ------------------------------------------------------------------------ helpers


def default_run_dir(config: PPOConfig, root: str | os.PathLike = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{config.env}-{stamp}"


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


# ------------------------------------------------------------------------ writers


class JsonlWriter:
    """metrics.jsonl: one JSON object per logged update per seed."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, rows: list[dict]) -> None:
        with open(self.path, "a") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
            fh.flush()

    def truncate_after(self, update: int) -> None:
        """Drop rows past `update` (written after the checkpoint a resume starts from)."""
        if not self.path.exists():
            return
        keep = []
        with open(self.path) as fh:
            for line in fh:
                try:
                    if json.loads(line)["update"] <= update:
                        keep.append(line if line.endswith("\n") else line + "\n")
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn last line from a crash
        atomic_write_bytes(self.path, "".join(keep).encode())

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
    """`chunk(states[S], hp, n) -> (states, metrics[S, chunk_len])`, jitted, vmapped over seeds (axis "seed").

    Runs `n <= chunk_len` updates (n is traced; the remaining iterations are
    skipped by a `cond` on an unbatched predicate, so every chunk length reuses
    one compiled program) with the progress callback compiled in iff
    `reporter` is given and `log_every > 0`.
    """
    config = train.config
    update = train.update
    if reporter is not None and log_every > 0:
        update = with_progress(update, log_every, reporter, total_updates=config.num_updates, axis_name=AXIS)

    def chunk(state, hp, n):
        metric_shapes = jax.eval_shape(train.update, state, hp)[1]
        blank = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), metric_shapes)

        def body(s, i):
            return jax.lax.cond(i < n, lambda s: update(s, hp), lambda s: (s, blank), s)

        return jax.lax.scan(body, state, jnp.arange(chunk_len))

    return jax.jit(jax.vmap(chunk, in_axes=(0, None, None), axis_name=AXIS))


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


def _prepare_new_dir(out_dir: Path, overwrite: bool, log: Callable) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"output path {out_dir} exists and is not a folder")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise RunError(f"output folder {out_dir} already exists and is not empty; pass --overwrite to replace "
                           f"its run files, --resume {out_dir} to continue it, or choose another --out")
        removed = []
        for name in RUN_FILES:
            p = out_dir / name
            if p.exists():
                p.unlink()
                removed.append(name)
        ckdir = out_dir / CHECKPOINT_DIR
        if ckdir.is_dir():
            for p in ckdir.iterdir():
                if p.is_file() and (p.suffix == ".msgpack" or p.name.endswith(".tmp")):
                    p.unlink()
                    removed.append(f"{CHECKPOINT_DIR}/{p.name}")
        log(f"--overwrite: removed the previous run's files in {out_dir}: {', '.join(removed) or 'none'}")
    out_dir.mkdir(parents=True, exist_ok=True)


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


def train_run(
    config: PPOConfig | None,
    out_dir: str | os.PathLike,
    *,
    overrides: dict[str, Any] | None = None,
    num_seeds: int | None = None,
    seed: int = 0,
    checkpoint_every: int | None = None,
    resume: bool | str | os.PathLike = False,
    overwrite: bool = False,
    progress: str = "off",
    stop_after: int | None = None,
    tensorboard: bool = False,
    wandb_project: str | None = None,
    command: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    progress_file=None,
) -> RunResult:
    """Train into a run folder (new, or continued with `resume`).

    config: the config (default `PPOConfig()`; on resume, default the checkpoint's),
      with `overrides` (field -> value) applied on top. On resume the result is
      compared with the checkpoint's config: fields that change the state's
      shapes are an error; other changes are applied with a warning (they break
      bit-identity), except the logging-only fields in LOGGING_FIELDS.
    num_seeds, seed: runs use `jax.random.split(jax.random.key(seed), num_seeds)`
      (default 1 seed; on resume the checkpoint's, and a different number is an error).
    checkpoint_every: updates per jitted chunk / checkpoint (default ~10 per run).
    resume: False, True (the newest checkpoint in out_dir) or a checkpoint file path.
    progress: "bar", "lines" or "off" (and off when config.log_every == 0).
    stop_after: stop (after checkpointing) once this many updates are done in total.
    """
    run_dir = Path(out_dir)
    overrides = dict(overrides or {})
    t_start = time.perf_counter()
    if num_seeds is not None and num_seeds < 1:
        raise RunError(f"--seeds must be >= 1, got {num_seeds}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise RunError(f"--checkpoint-every must be >= 1, got {checkpoint_every}")
    if stop_after is not None and stop_after < 1:
        raise RunError(f"--stop-after must be >= 1, got {stop_after}")
    # Optional writers: fail before anything is written if their package is missing.
    import importlib.util

    for wanted, module, extra in ((tensorboard, "tensorboardX", "tensorboard"), (wandb_project, "wandb", "wandb")):
        if wanted and importlib.util.find_spec(module) is None:
            raise RunError(f"--{extra} needs the {module} package: pip install 'purejaxppo[{extra}]'")

    from purejaxppo.train import make_train

    manager = CheckpointManager(run_dir / CHECKPOINT_DIR)
    run_info: dict[str, Any]
    if resume:
        if not run_dir.is_dir():
            raise RunError(f"cannot resume: run folder {run_dir} does not exist")
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
        num_seeds = saved_seeds
        config = (config or saved).replace(**overrides)
        diff = config_diff(saved, config)
        train = make_train(config)
        template = _state_template(train, num_seeds, seed)
        try:
            state = unflatten_state(template, leaves, keys, source=f"checkpoint {ck_path}")
        except CheckpointError as e:
            changed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise RunError(f"cannot resume with this config, it changes the shapes of the saved state "
                           f"({changed or 'no field differs'}); {e}") from None
        behavioural = {k: v for k, v in diff.items() if k not in LOGGING_FIELDS}
        if behavioural:
            log("warning: resuming with changed fields " + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in behavioural.items())
                + "; the result will differ from an uninterrupted run")
        if checkpoint_every is None:
            checkpoint_every = int(meta.get("checkpoint_every") or default_checkpoint_every(config.num_updates))
        try:
            run_info = json.loads((run_dir / RUN_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            run_info = {}
        JsonlWriter(run_dir / METRICS_FILE).truncate_after(start)
        log(f"resuming {run_dir} from {ck_path.name} (update {start}/{config.num_updates}, {num_seeds} seed(s))")
    else:
        config = (config or PPOConfig()).replace(**overrides)
        num_seeds = 1 if num_seeds is None else num_seeds
        train = make_train(config)  # validates the env name before anything is written
        _prepare_new_dir(run_dir, overwrite, log)
        keys_ = jax.random.split(jax.random.key(seed), num_seeds)
        init_key = ("init", config, num_seeds)
        init_fn = _COMPILED.get(init_key) or jax.jit(jax.vmap(train.init, in_axes=(0, None)))
        _COMPILED[init_key] = init_fn
        state = _strong(init_fn(keys_, config.hparams()))
        start = 0
        if checkpoint_every is None:
            checkpoint_every = default_checkpoint_every(config.num_updates)
        run_info = {}
    config.to_yaml(run_dir / CONFIG_FILE)

    log_every = config.log_every
    num_updates = config.num_updates
    target = num_updates if stop_after is None else min(num_updates, stop_after)
    chunk_len = max(1, min(checkpoint_every, num_updates))
    hp = config.hparams()
    session = {"started": _now(), "start_update": start, "command": list(command) if command else None}
    run_info.update(
        versions=versions(), device=device_info(), env=config.env, num_seeds=num_seeds, seed=seed,
        seed_keys=f"jax.random.split(jax.random.key({seed}), {num_seeds})",
        num_updates=num_updates, batch_size=config.batch_size, checkpoint_every=chunk_len, log_every=log_every,
        status="running",
    )
    run_info.setdefault("sessions", []).append(session)
    _write_json(run_dir / RUN_FILE, run_info)

    jsonl = JsonlWriter(run_dir / METRICS_FILE)
    writers: list[Any] = [jsonl]
    if tensorboard:
        writers.append(TensorBoardWriter(run_dir / "tensorboard"))
    if wandb_project:
        writers.append(WandbWriter(wandb_project, run_dir, config, bool(resume)))

    if start >= target:
        log(f"nothing to do: {run_dir} is already at update {start} of {num_updates}")
        for w in writers:
            w.close()
        return RunResult(run_dir, config, state, start, start >= num_updates, 0.0, 0.0, 0.0)

    use_progress = progress != "off" and log_every > 0
    t_compile = time.perf_counter()
    cache_key = (config, chunk_len, num_seeds, use_progress)
    entry = _COMPILED.pop(cache_key, None)
    if entry is None:
        relay = _Relay() if use_progress else None
        chunk_fn = make_chunk_fn(train, chunk_len, relay, log_every)
        entry = (chunk_fn.lower(state, hp, jnp.int32(chunk_len)).compile(), relay)
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
    status = "interrupted"
    try:
        if reporter is not None:
            reporter.start()
        while done < target:
            n = min(chunk_len, target - done)
            t0 = time.perf_counter()
            state, metrics = compiled(state, hp, jnp.int32(n))
            metrics = jax.device_get(metrics)
            if relay is not None:
                jax.effects_barrier()  # this chunk's progress reports are printed before its checkpoint line
            run_s += time.perf_counter() - t0
            rows = _rows(metrics, done, n, log_every, num_updates, config.batch_size)
            for w in writers:
                w.write(rows)
            done += n
            meta = {
                "purejaxppo": versions()["purejaxppo"], "config": config.to_dict(), "update": done,
                "num_updates": num_updates, "env_steps": done * config.batch_size, "num_seeds": num_seeds,
                "seed": seed, "checkpoint_every": chunk_len, "saved": _now(),
            }
            path = manager.save(state, meta, done)
            diverged = np.asarray(metrics["diverged"])[:, :n].max(axis=1) > 0
            ret = np.asarray(metrics["episode_return"])[:, n - 1]
            if reporter is not None and reporter.style == "bar":
                reporter.set_note(f"ckpt {done}")  # shown in the bar instead of a line per checkpoint
            else:
                say(f"checkpoint {path.name}: update {done}/{num_updates}, return {ret.mean():.1f}"
                    + (f" [{ret.min():.1f}, {ret.max():.1f}]" if num_seeds > 1 else "")
                    + (f", DIVERGED seeds {np.flatnonzero(diverged).tolist()}" if diverged.any() else ""))
            session.update(end_update=done)
            run_info.update(status="running", last_checkpoint=path.name)
            _write_json(run_dir / RUN_FILE, run_info)
        status = "finished" if done >= num_updates else "stopped"
    finally:
        if relay is not None:
            jax.effects_barrier()
            relay.target = None
        if reporter is not None:
            reporter.close()
        for w in writers:
            w.close()
        wall = time.perf_counter() - t_start
        sps = (done - start) * config.batch_size * num_seeds / run_s if run_s > 0 else 0.0
        session.update(ended=_now(), end_update=done, status=status, wall_time_s=round(wall, 3),
                       compile_time_s=round(compile_s, 3), run_time_s=round(run_s, 3), env_steps_per_s=round(sps, 1))
        run_info.update(status=status, update=done,
                        wall_time_s=round(sum(s.get("wall_time_s", 0.0) for s in run_info["sessions"]), 3),
                        compile_time_s=round(sum(s.get("compile_time_s", 0.0) for s in run_info["sessions"]), 3))
        _write_json(run_dir / RUN_FILE, run_info)
    return RunResult(run_dir, config, state, done, done >= num_updates, compile_s, wall, sps,
                     reporter.calls if reporter is not None else 0, reporter.reports if reporter is not None else [])


def _rows(metrics: dict, done: int, n: int, log_every: int, num_updates: int, batch_size: int) -> list[dict]:
    from purejaxppo.train import METRIC_NAMES

    names = [k for k in METRIC_NAMES if k in metrics] + sorted(k for k in metrics if k not in METRIC_NAMES)
    arrays = {k: np.asarray(v) for k, v in metrics.items()}
    num_seeds = arrays[names[0]].shape[0]
    rows = []
    for u in logged_updates(done, done + n, log_every, num_updates):
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

    obs: one observation `[*obs_shape]` or a batch `[B, *obs_shape]` (raw, as
    the env returns it: the run's observation normalization is applied).
    Returns env actions (int32 for discrete spaces; float32 clipped to the
    action box for continuous ones), unbatched for an unbatched obs.
    `deterministic=False` samples and needs `key`. The function has attributes
    `params`, `obs_norm`, `config`, `action_spec`, `network`, `obs_shape`.
    """
    from purejaxppo.evaluate import make_act_fn

    run = load_run(run)
    if not 0 <= seed_index < run.num_seeds:
        raise RunError(f"seed_index {seed_index} out of range: the run has {run.num_seeds} seed(s)")
    params = jax.tree.map(lambda x: x[seed_index], run.state.params)
    obs_norm = None if run.state.obs_norm is None else jax.tree.map(lambda x: x[seed_index], run.state.obs_norm)
    train = run.train
    obs_shape = tuple(run.state.env.obs.shape[2:])
    act_batch = make_act_fn(train.network.apply, train.action_spec, train.to_env_action)
    obs_clip = jnp.float32(run.config.obs_clip)

    def _act(params, obs_norm, obs, key, deterministic: bool):
        single = obs.ndim == len(obs_shape)
        batch = obs[None] if single else obs
        a = act_batch(params, obs_norm, batch.astype(jnp.float32), key, deterministic, obs_clip)
        return a[0] if single else a

    _act_jit = jax.jit(_act, static_argnums=4)

    def act(obs, key=None, deterministic: bool = True):
        obs = jnp.asarray(obs)
        if tuple(obs.shape[-len(obs_shape):] if obs_shape else ()) != obs_shape or obs.ndim not in (len(obs_shape), len(obs_shape) + 1):
            raise ValueError(f"act: obs must have shape {obs_shape} or [B, *{obs_shape}], got {tuple(obs.shape)}")
        if not deterministic and key is None:
            raise ValueError("act: deterministic=False samples an action and needs key=jax.random.key(...)")
        if key is None:
            key = jax.random.key(0)  # unused by the mode
        return _act_jit(params, obs_norm, obs, key, bool(deterministic))

    act.params, act.obs_norm, act.config = params, obs_norm, run.config
    act.action_spec, act.network, act.obs_shape = train.action_spec, train.network, obs_shape
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
