"""Where a session of a run starts: a new run's first state, or a checkpoint read back (checked to be this
run's own, with a Train rebuilt the way the run was made)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxppo.core.config import PPOConfig
from purejaxppo.core.train import Train
from purejaxppo.errors import BuildError, CheckpointError, RunError
from purejaxppo.runs.axis import RunAxis
from purejaxppo.runs.build import FROM_BUILDER, TrainSource, build_train, cache_token
from purejaxppo.runs.checkpoints import CheckpointManager, read_checkpoint, unflatten_state
from purejaxppo.runs.chunks import ProgramCache, host_state, state_template
from purejaxppo.runs.files import config_diff, describe_diff, exists_error, note_edited_config_file
from purejaxppo.runs.folder import (
    CHECKPOINT_DIR,
    METRICS_FILE,
    is_empty_but_lock,
    read_run_info,
    remove_owned,
    remove_stale_temp_files,
    split_metrics,
)
from purejaxppo.runs.identity import RUN_ID, check_checkpoint, check_config_file, check_metrics, folder_id, new_run_id
from purejaxppo.runs.options import RunOptions

# Fields that only change what is logged, never the training computation: may differ on resume silently.
LOGGING_FIELDS = ("log_every", "eval_every", "eval_episodes")


def default_checkpoint_every(num_updates: int) -> int:
    """About ten checkpoints per run."""
    return max(1, math.ceil(num_updates / 10))


@dataclasses.dataclass
class Start:
    """Where a session starts: the run's config, Train and how it is rebuilt, its state and bookkeeping."""

    config: PPOConfig
    train: Train
    source: TrainSource
    state: Any
    start: int  # updates already done
    num_seeds: int  # runs in the state (a sweep group's runs.num_runs)
    seed: int
    checkpoint_every: int
    run_info: dict  # run.json's content
    runs: RunAxis | None = None  # a sweep group's runs
    hp: Any = None  # the traced hyperparameters: the config's, or `[S]` fields from `runs`
    checkpoint: Path | None = None  # the checkpoint a resume starts from


def restart_outside_envs(train: Train, state):
    """Envs whose state lives outside JAX (an env with `restart`, e.g. purejaxppo.envs.envpool) cannot be
    checkpointed: a resumed state gets fresh envs, new episodes (the running returns and lengths zeroed, every
    env marked done so recurrent carries reset); parameters, optimizer and normalizers continue exactly."""
    restart = getattr(train.env, "restart", None)
    if restart is None:
        return state
    obs, env_state = restart(state.env.env_state)
    carry = state.env._replace(
        env_state=env_state,
        obs=obs,
        episode_return=np.zeros_like(state.env.episode_return),
        episode_length=np.zeros_like(state.env.episode_length),
        done=None if state.env.done is None else np.ones_like(state.env.done),
    )
    return state.replace(env=carry)


def hparams_of(config: PPOConfig, runs: RunAxis | None):
    return config.hparams() if runs is None else runs.hp()


def new_start(train: Train, source: TrainSource, options: RunOptions, run_dir: Path, cache: ProgramCache) -> Start:
    """A new run's first state (an --overwrite clears the folder's own files first)."""
    config = train.config
    if not is_empty_but_lock(run_dir):
        if not options.overwrite:
            raise exists_error(run_dir)
        removed = remove_owned(run_dir)
        options.log(f"--overwrite: removed the previous run's files in {run_dir}: {', '.join(removed) or 'none'}")
    runs, num_seeds, seed = options.runs, options.seeds_of_new_run(), options.seed
    keys = jax.random.split(jax.random.key(seed), num_seeds) if runs is None else runs.keys(seed)
    hp = hparams_of(config, runs)
    init = cache.init(train, cache_token(train, source), num_seeds, runs is not None)
    state = host_state(init(keys, hp))
    every = options.checkpoint_every or default_checkpoint_every(config.num_updates)
    run_info = {RUN_ID: new_run_id(), **source.to_json()}
    return Start(config, train, source, state, 0, num_seeds, seed, every, run_info, runs, hp)


def _read_resume_checkpoint(run_dir: Path, resume) -> tuple[Path, dict, dict, dict]:
    manager = CheckpointManager(run_dir / CHECKPOINT_DIR)
    if resume is True:
        return manager.read_latest()
    path = Path(resume)
    return (path, *read_checkpoint(path))


def _check_identity(run_dir: Path, meta: dict, ck_path: Path) -> str | None:
    """The checkpoint, config.yaml and the metric rows a resume keeps must be this run's
    (purejaxppo.runs.identity): checked before anything in the folder changes. Returns the run id."""
    run_id = folder_id(run_dir)
    check_checkpoint(run_dir, run_id, meta, ck_path)
    check_config_file(run_dir, run_id)
    if "update" in meta:
        check_metrics(run_dir, meta, split_metrics(run_dir / METRICS_FILE, int(meta["update"]))[0], ck_path)
    return run_id


def _resume_source(saved: TrainSource, build: str | None, log) -> TrainSource:
    if build is None or build == saved.build:
        return saved
    if saved.build is not None:
        log(f"warning: resuming with --build {build}; the run was started with --build {saved.build}")
    return TrainSource(FROM_BUILDER, build, saved.pbt)


def resume_start(
    config: PPOConfig | None,
    given: Train | None,
    build: str | None,
    overrides: dict,
    options: RunOptions,
    run_dir: Path,
) -> Start:
    """A session continuing from `options.resume` (True: the newest checkpoint; or a checkpoint file).

    The Train is `given`, else rebuilt as the run was made (`build` overrides the recorded builder). The config
    is the checkpoint's with `overrides` (or `config`): fields that change the state's shapes are an error,
    other changes a warning (they break bit-identity), except LOGGING_FIELDS."""
    log = options.log
    ck_path, meta, leaves, keys = _read_resume_checkpoint(run_dir, options.resume)
    run_id = _check_identity(run_dir, meta, ck_path)
    gone = remove_stale_temp_files(run_dir)
    if gone:
        log(f"removed {len(gone)} temp file(s) left by an interrupted write: {', '.join(gone)}")
    try:
        saved = PPOConfig.from_dict(meta["config"], source=f"checkpoint {ck_path}")
        saved_seeds, seed, start = int(meta["num_seeds"]), int(meta["seed"]), int(meta["update"])
        runs = RunAxis.from_json(meta.get("runs"), source=f"checkpoint {ck_path}")
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {ck_path} has incomplete metadata (missing {e})") from None
    if options.num_seeds is not None and options.num_seeds != saved_seeds:
        raise RunError(
            f"cannot resume with --seeds {options.num_seeds}: the checkpoint {ck_path} holds {saved_seeds} seed(s)"
        )
    note_edited_config_file(run_dir, saved, config is not None or given is not None, log)
    config = given.config if given is not None else (config or saved).replace(**overrides)
    source = _resume_source(TrainSource.from_json(meta), build, log)
    train = build_train(config, source, given, what=f"run {run_dir}")
    diff = config_diff(saved, config)
    try:
        state = unflatten_state(state_template(train, saved_seeds, seed), leaves, keys, source=f"checkpoint {ck_path}")
    except CheckpointError as e:
        if source.build and not diff:
            raise BuildError(
                f"--build {source.build}: the Train it builds has state shapes that differ from the checkpoint "
                f"{ck_path}'s (same config); {e}"
            ) from None
        by = f" (with the Train built by --build {source.build})" if source.build else ""
        raise RunError(
            f"cannot resume with this config{by}, it changes the shapes of the saved state "
            f"({describe_diff(diff) or 'no field differs'}); {e}"
        ) from None
    state = restart_outside_envs(train, state)
    behavioural = {k: v for k, v in diff.items() if k not in LOGGING_FIELDS}
    if behavioural:
        log(
            f"warning: resuming with changed fields {describe_diff(behavioural)}; "
            "the result will differ from an uninterrupted run"
        )
    every = options.checkpoint_every or int(
        meta.get("checkpoint_every") or default_checkpoint_every(config.num_updates)
    )
    run_info = read_run_info(run_dir, log)
    if run_id is not None:
        run_info[RUN_ID] = run_id  # also when run.json was corrupt: config.yaml and the checkpoint still name it
    run_info.update(source.to_json())
    hp = hparams_of(config, runs)
    return Start(config, train, source, state, start, saved_seeds, seed, every, run_info, runs, hp, ck_path)
