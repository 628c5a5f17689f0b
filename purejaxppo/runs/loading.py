"""Reading a run back: its config, train function and restored state (`load_run`), a jitted policy
(`load_policy`), and its metric rows and learning curves (`read_metrics`, `learning_curves`)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.core.agent import ActingState, is_recurrent, make_policy
from purejaxppo.core.config import PPOConfig
from purejaxppo.core.config_checks import parse_obs_keys
from purejaxppo.core.precision import matmul_precision
from purejaxppo.core.train import Train
from purejaxppo.envs.spaces import ACTION_MASK_KEY, is_array_spec
from purejaxppo.errors import BuildError, CheckpointError, ConfigError, RunError
from purejaxppo.runs.build import FROM_BUILDER, TrainSource, build_train
from purejaxppo.runs.checkpoints import CheckpointManager, read_checkpoint, unflatten_state
from purejaxppo.runs.chunks import state_template
from purejaxppo.runs.folder import CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, RUN_FILE
from purejaxppo.runs.identity import check_checkpoint, folder_id

if TYPE_CHECKING:
    from purejaxppo.core.agent import Agent
    from purejaxppo.envs.spaces import ActionSpec


@dataclasses.dataclass
class LoadedRun:
    run_dir: Path
    checkpoint: Path
    config: PPOConfig
    train: Train
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


def load_run(run: str | os.PathLike, *, build: str | None = None, train: Train | None = None) -> LoadedRun:
    """Config, train function and restored state of a run folder (newest checkpoint) or a checkpoint file.

    The Train is rebuilt the way the run was made (its config, or the builder recorded in the checkpoint,
    purejaxppo.runs.build); `build` names another builder, `train` hands in the Train itself (needed for a run
    trained from a Train object without a builder). A Train whose state does not fit the checkpoint is an error
    naming the builder."""
    run_dir, ck = resolve_checkpoint(run)
    if ck is None:
        ck, meta, leaves, keys = CheckpointManager(run_dir / CHECKPOINT_DIR).read_latest()
    else:
        meta, leaves, keys = read_checkpoint(ck)
    if (run_dir / RUN_FILE).exists() or (run_dir / CONFIG_FILE).exists():  # in a run folder (not a lone file):
        check_checkpoint(run_dir, folder_id(run_dir), meta, ck)  # the folder's own checkpoint, not another run's
    try:
        config = PPOConfig.from_dict(meta["config"], source=f"checkpoint {ck}")
        num_seeds, seed = int(meta["num_seeds"]), int(meta["seed"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {ck} has incomplete metadata ({e})") from None
    source = TrainSource.from_json(meta)
    if build is not None:
        source = TrainSource(FROM_BUILDER, build, source.pbt)
    built = build_train(config, source, train, what=f"run {run_dir}")
    try:
        state = unflatten_state(state_template(built, num_seeds, seed), leaves, keys, source=f"checkpoint {ck}")
    except CheckpointError as e:
        if source.build and train is None:
            raise BuildError(f"--build {source.build}: the Train it builds does not fit checkpoint {ck}; {e}") from None
        raise
    return LoadedRun(run_dir, ck, config, built, state, meta)


class LoadedPolicy(Protocol):
    """What `load_policy` returns: the function `act(obs, key=None, deterministic=True, done=None) -> action`
    with these attributes set on it (see `load_policy`)."""

    step: Callable[..., tuple[Any, Any]]  # (carry, obs, done=None, key=None, deterministic=True) -> (carry, action)
    reset: Callable[[], None]
    initial_carry: Callable[[int], Any]
    carry: Any
    recurrent: bool
    acting: ActingState
    params: Any
    obs_norm: Any
    config: PPOConfig
    action_spec: ActionSpec
    network: Any
    agent: Agent
    obs_spec: Any
    obs_shape: tuple[int, ...] | None

    def __call__(self, obs: Any, key: Any = None, deterministic: bool = True, done: Any = None) -> Any: ...


def load_policy(
    run: str | os.PathLike, seed_index: int = 0, *, build: str | None = None, train: Train | None = None
) -> LoadedPolicy:
    """A jitted `act(obs, key=None, deterministic=True, done=None)` for the policy of one seed of a run.

    obs: one observation or a batch (every leaf `[*leaf_shape]` or
    `[B, *leaf_shape]`; raw, as the env returns it: the run's observation
    normalization is applied). Returns env actions (int32 for discrete spaces;
    for Box spaces training's transform: clipped to the box, or tanh-squashed),
    unbatched for an unbatched obs. A dict observation needs only the entries the actor reads
    (`actor_obs_keys`): the others (a privileged critic's) may be left out. `deterministic=False` samples and needs
    `key`. It acts through `purejaxppo.core.agent.make_policy`, as evaluation and
    rendering do.

    Recurrent policies (network='gru'/'lstm'): `act` is stateful. It keeps the
    hidden state of the B envs it is acting in (`act.carry`) from call to call,
    starting from the initial carry. Pass `done` (bool, `[B]` or a scalar for
    one obs) to mark envs whose previous step ended an episode: their hidden
    state is reset before they see this observation, as in training. Call
    `act.reset()` to forget every hidden state (e.g. before a new batch of
    episodes); a call with a different batch size than the carried state
    needs one. For a feed-forward policy the carry is empty and all of this is
    a no-op. The pure form is `act.step(carry, obs, done=None, key=None,
    deterministic=True) -> (carry, action)` with `act.initial_carry(B)`.

    Attributes: `acting` (ActingState: params and obs normalizer), `params`,
    `obs_norm`, `config`, `action_spec`, `network`, `agent`, `obs_spec`,
    `obs_shape` (single-array observations), `recurrent`, `carry`.

    build, train: as in `load_run` (the Train is rebuilt the way the run was made by default).
    """

    loaded = load_run(run, build=build, train=train)
    if not 0 <= seed_index < loaded.num_seeds:
        raise RunError(f"seed_index {seed_index} out of range: the run has {loaded.num_seeds} seed(s)")
    acting = jax.tree.map(lambda x: x[seed_index], ActingState(loaded.state.params, loaded.state.obs_norm))
    built = loaded.train
    agent, spec = built.agent, built.obs_spec
    step = _policy_step(built, acting, jnp.float32(loaded.config.obs_clip))

    def act(obs, key=None, deterministic: bool = True, done=None):
        out.carry, action = step(out.carry, obs, done, key, deterministic)
        return action

    def reset():
        """Forget the carried hidden state: the next call starts every env from the initial carry."""
        out.carry = None

    out = cast(LoadedPolicy, act)  # `act` itself, seen with the attributes set on it here
    out.step, out.reset, out.initial_carry, out.carry = step, reset, agent.initial_carry, None
    out.recurrent = is_recurrent(agent)
    out.acting, out.params, out.obs_norm, out.config = acting, acting.params, acting.obs_norm, loaded.config
    out.action_spec, out.network, out.agent, out.obs_spec = built.action_spec, built.network, agent, spec
    out.obs_shape = tuple(spec.shape) if is_array_spec(spec) else None
    return out


def _check_obs(obs, spec) -> tuple[bool, int]:
    """(single observation?, batch size) of `obs` against the run's observation spec; ConfigError otherwise."""
    try:
        ranks = jax.tree.map(lambda o, s: o.ndim - len(s.shape), obs, spec)
        ok = (
            all(r in (0, 1) for r in jax.tree.leaves(ranks))
            and len(set(jax.tree.leaves(ranks))) == 1
            and all(
                tuple(o.shape[o.ndim - len(s.shape) :]) == tuple(s.shape)
                for o, s in zip(jax.tree.leaves(obs), jax.tree.leaves(spec), strict=True)
            )
        )
    except ValueError:  # a different pytree structure
        ok = False
    if not ok:
        want = tuple(spec.shape) if is_array_spec(spec) else jax.tree.map(lambda s: tuple(s.shape), spec)
        got = jax.tree.map(lambda o: tuple(o.shape), obs)
        raise ConfigError(f"act: obs must have shape {want} or a batch [B, ...] of it, got {got}")
    single = jax.tree.leaves(ranks)[0] == 0
    return single, 1 if single else jax.tree.leaves(obs)[0].shape[0]


def _fill_unread(obs, spec, config: PPOConfig):
    """A dict observation with only the actor's entries (`actor_obs_keys`), completed with zeros for the entries
    the actor does not read (a privileged critic's: their values change nothing the policy does); else `obs`."""
    actor_keys = parse_obs_keys(config.actor_obs_keys)
    if actor_keys is None or not isinstance(spec, dict) or not isinstance(obs, dict) or set(obs) >= set(spec):
        return obs
    unread = [k for k in spec if k not in obs and k not in actor_keys and k != ACTION_MASK_KEY]
    given = [k for k in obs if k in spec]
    if not given:
        return obs
    lead = jax.tree.leaves(obs[given[0]])[0]
    batch = lead.shape[: lead.ndim - len(jax.tree.leaves(spec[given[0]])[0].shape)]
    zeros = {k: jax.tree.map(lambda s: jnp.zeros((*batch, *s.shape), s.dtype), spec[k]) for k in unread}
    return {**obs, **zeros}


def _done_flags(done, n: int):
    if done is None:
        return jnp.zeros((n,), bool)
    done = jnp.asarray(done)
    if done.size != n:
        raise ConfigError(f"act: done must hold one flag per observation ({n}), got shape {done.shape}")
    return done.reshape((n,)).astype(bool)


def _policy_step(train: Train, acting, obs_clip) -> Callable:
    """The pure `step(carry, obs, done=None, key=None, deterministic=True) -> (carry, action)` of a loaded policy."""
    agent, spec = train.agent, train.obs_spec
    policy = make_policy(agent, train.to_env_action)

    def _act(acting, carry, obs, done, key, deterministic: bool, single: bool):
        batch = jax.tree.map(lambda x: x[None], obs) if single else obs
        floats = jax.tree.map(lambda x: x.astype(jnp.float32), batch)
        with matmul_precision(train.config):
            carry, a = policy(acting, carry, floats, done, key, deterministic, obs_clip)
        return carry, (a[0] if single else a)

    act_jit = jax.jit(_act, static_argnums=(5, 6))

    def step(carry, obs, done=None, key=None, deterministic: bool = True):
        """Pure: `(carry, action)` for obs (one or a batch `[B]`) from `carry` (`act.initial_carry(B)`; None
        starts from it)."""
        obs = _fill_unread(jax.tree.map(jnp.asarray, obs), spec, train.config)
        single, n = _check_obs(obs, spec)
        carry = agent.initial_carry(n) if carry is None else carry
        carried = jax.tree.leaves(carry)
        if carried and carried[0].shape[0] != n:
            raise ConfigError(
                f"act: got {n} observation(s) but the carried hidden state is for {carried[0].shape[0]} "
                "env(s); call act.reset() before acting in a new batch of envs"
            )
        if not deterministic and key is None:
            raise ConfigError("act: deterministic=False samples an action and needs key=jax.random.key(...)")
        if key is None:
            key = jax.random.key(0)  # unused by the mode
        return act_jit(acting, carry, obs, _done_flags(done, n), key, bool(deterministic), bool(single))

    return step


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


def metric_table(
    rows: list[dict], metric: str, key: str = "run", x: str = "update", num_rows: int | None = None
) -> tuple[list[int], np.ndarray]:
    """(the logged values of column `x` `[T]`, `metric` `[R, T]`) from metrics.jsonl rows: row `r[key]` (a run's or
    seed's index; R = `num_rows`, default the largest index + 1), every logged `x`, NaN where a row has no value
    (unlike `learning_curves`, which drops an update unless every seed has one)."""
    xs = sorted({int(r[x]) for r in rows})
    col = {v: j for j, v in enumerate(xs)}
    n = num_rows if num_rows is not None else max((int(r[key]) for r in rows), default=-1) + 1
    out = np.full((n, len(xs)), np.nan)
    for r in rows:
        v = r.get(metric)
        if v is not None:
            out[int(r[key]), col[int(r[x])]] = float(v)
    return xs, out


def learning_curves(run_dir: str | os.PathLike, metric: str = "episode_return") -> tuple[np.ndarray, np.ndarray]:
    """(env_steps [T], values [num_seeds, T]) of one metric from metrics.jsonl (updates where every seed has a value).

    Rows of a sweep group are keyed by their "run" (index in the state) instead of their seed."""
    rows = read_metrics(run_dir)
    if not rows:
        raise RunError(f"{run_dir}/{METRICS_FILE} is empty")
    if metric not in rows[0]:
        known = [k for k in rows[0] if k not in ("update", "env_steps", "seed", "run", "setting")]
        raise RunError(f"metric {metric!r} is not in {run_dir}/{METRICS_FILE}; it has: {', '.join(known)}")
    key = "run" if "run" in rows[0] else "seed"
    seeds = sorted({r[key] for r in rows})
    by_step: dict[int, dict[int, float | None]] = {}
    for r in rows:
        by_step.setdefault(r["env_steps"], {})[r[key]] = r.get(metric)
    steps = [s for s in sorted(by_step) if all(by_step[s].get(k) is not None for k in seeds)]
    if not steps:
        raise RunError(f"metric {metric!r} has no value for all seeds at any logged update in {run_dir}")
    values = np.array([[by_step[s][k] for s in steps] for k in seeds], np.float64)
    return np.asarray(steps, np.float64), values
