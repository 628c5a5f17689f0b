"""Policy evaluation: pure, jittable, vmappable.

`make_evaluate(train)` (or `build_evaluate(env, env_params, agent,
action_spec)`) returns

    evaluate(acting, key, num_episodes, deterministic=True) -> returns [num_episodes]

with `acting = purejaxppo.core.agent.ActingState(params, obs_norm)` (e.g.
`ActingState(state.params, state.obs_norm)` of a train state), which
which resets `num_episodes` envs at once and steps them in parallel (a
`lax.while_loop`) until every one has finished its first episode, or until a
step cap (the env's `max_steps_in_episode`), whichever comes first. Episodes
that finish early stop accumulating; the loop stops as soon as the last one
ends. Observations are normalized with the *frozen* training statistics
(`obs_norm`, or None) and continuous actions are clipped to the action box,
exactly as during training. `deterministic=True` acts with the distribution's
mode (argmax / Gaussian mean); False samples.

The same function serves `purejaxppo eval` (vmapped over seeds) and the
in-training evaluation hook (`PPOConfig.eval_every`): there it is called with
`enabled=<is this an evaluation update>`. Because the loop condition includes
`enabled`, a skipped evaluation costs one env reset and zero loop iterations,
also under `vmap` over seeds, where a `lax.cond` on a batched predicate would
be turned into a `select` that runs the evaluation every update. Under `vmap`
the loop's predicate is made unbatched (`any_in_batch`: it runs while any
vmapped evaluation runs, each one's return masked by its own `enabled`), so the
loop may step envs stepped by a host callback (purejaxppo.envs.envpool), which
JAX refuses in a `while_loop` with a batched predicate; the returns are the same.
An env whose state lives outside JAX (it has `release(env_state, x) -> x`, e.g.
EnvPool's pools) is reset only when some vmapped evaluation is enabled (a skipped
one costs nothing), and `release` frees its envs once the returns are computed.

`make_episode_rollout(train)` rolls out one episode and keeps every env state
(for rendering). Both act through `purejaxppo.core.agent.make_policy` (the same
acting function `load_policy` uses) and step through
`purejaxppo.core.rollout.step_envs` (the same env step as training), carrying the
agent's carry and resetting it at episode boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching

from purejaxppo.core.agent import ActingState, Agent, as_agent, make_policy
from purejaxppo.core.precision import matmul_precision
from purejaxppo.core.rollout import step_envs
from purejaxppo.envs import make_action_transform
from purejaxppo.envs.spaces import ActionSpec
from purejaxppo.errors import ConfigError

if TYPE_CHECKING:
    from purejaxppo.core.train import Train


def max_episode_steps(env: Any, env_params: Any, max_steps: int | None = None) -> int:
    """The step cap: `max_steps` if given, else the env params' `max_steps_in_episode`."""
    if max_steps is None:
        max_steps = getattr(env_params, "max_steps_in_episode", None)
    if max_steps is None:
        raise ConfigError(
            f"evaluation needs a step cap: {type(env).__name__}'s params have no max_steps_in_episode; "
            "pass max_steps=... explicitly"
        )
    max_steps = int(max_steps)
    if max_steps <= 0:
        raise ConfigError(f"evaluation step cap must be positive, got {max_steps}")
    return max_steps


@custom_batching.custom_vmap
def any_in_batch(x: jax.Array) -> jax.Array:
    """`x` (a bool scalar); under `vmap`, whether it is true for any vmapped element, *unbatched* (at every vmap
    level). The evaluation loop's predicate: a `while_loop` with a batched predicate runs its body for every
    element and selects, which JAX refuses for a body with IO effects (an env stepped by `io_callback`)."""
    return x


@any_in_batch.def_vmap
def _any_in_batch_vmap(axis_size, in_batched, x):
    return any_in_batch(jnp.any(x, axis=0) if in_batched[0] else x), False


def _reset(env: Any, env_params: Any, keys: jax.Array, enabled: Any, on: jax.Array) -> tuple[Any, Any]:
    """The evaluation's `env.reset` of every env (keys `[n]`). An env stepped outside JAX (with `release`) is
    reset only when `on` (under vmap: for any vmapped element), else its observations and state are zeros:
    making a host env (a new EnvPool) costs seconds for some tasks, and a skipped evaluation never steps it.
    The conditional is a `while_loop` run at most once: JAX cannot vmap a `cond` whose branches have IO effects,
    but a `while_loop` whose predicate is unbatched (`any_in_batch`) it can."""
    reset = jax.vmap(env.reset, in_axes=(0, None))
    if getattr(env, "release", None) is None or enabled is True:
        return reset(keys, env_params)
    blank = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(reset, keys, env_params))
    todo = any_in_batch(on)
    _, obs, env_state = jax.lax.while_loop(
        lambda c: c[0], lambda c: (jnp.zeros_like(todo), *reset(keys, env_params)), (todo, *blank)
    )
    return obs, env_state


class Evaluate(Protocol):
    """What `build_evaluate` returns: the evaluation function, with its step cap as `max_steps`."""

    max_steps: int

    def __call__(
        self,
        acting: ActingState,
        key: jax.Array,
        num_episodes: int,
        deterministic: bool = True,
        *,
        obs_clip: Any = None,
        enabled: Any = True,
    ) -> Any: ...


class EpisodeRollout(Protocol):
    """What `make_episode_rollout` returns: `rollout(acting, key, deterministic=True) -> Episode`, with its step
    cap as `max_steps`."""

    max_steps: int

    def __call__(self, acting: ActingState, key: jax.Array, deterministic: bool = True) -> Episode: ...


def build_evaluate(
    env: Any,
    env_params: Any,
    agent: Agent,
    action_spec: ActionSpec,
    *,
    obs_clip: float = 10.0,
    max_steps: int | None = None,
    to_env_action: Callable | None = None,
) -> Evaluate:
    """Build `evaluate(acting, key, num_episodes, deterministic=True, *, obs_clip=..., enabled=True)`.

    agent: a purejaxppo.core.agent.Agent (a flax module is wrapped as a feed-forward one).
    `num_episodes` and `deterministic` are static (Python int / bool); acting
    (an ActingState), key, obs_clip and enabled may be traced. Returns the
    undiscounted return of each episode, float32 `[num_episodes]` (zeros when
    `enabled` is False).
    """
    cap = max_episode_steps(env, env_params, max_steps)
    agent = as_agent(agent)
    policy = make_policy(agent, to_env_action or make_action_transform(action_spec, "clip"))
    default_clip = obs_clip

    def evaluate(
        acting: ActingState, key, num_episodes: int, deterministic: bool = True, *, obs_clip=None, enabled=True
    ):
        if not isinstance(acting, ActingState):
            raise ConfigError(
                "evaluate: the first argument is an ActingState(params, obs_norm) "
                f"(purejaxppo.core.agent), got {type(acting).__name__}"
            )
        if not isinstance(num_episodes, (int, np.integer)) or num_episodes <= 0:
            raise ConfigError(f"evaluate: num_episodes must be a positive int (static), got {num_episodes!r}")
        n = int(num_episodes)
        clip = default_clip if obs_clip is None else obs_clip
        k_reset, k_loop = jax.random.split(key)
        on = jnp.asarray(enabled)
        obs, env_state = _reset(env, env_params, jax.random.split(k_reset, n), enabled, on)

        def cond(c):
            t, _, _, _, _, _, finished, _ = c
            return any_in_batch(jnp.logical_and(on, jnp.logical_and(t < cap, jnp.logical_not(jnp.all(finished)))))

        def body(c):  # under vmap, also run for an element whose loop is over: its `ret` no longer changes
            t, env_state, obs, carry, key, ret, finished, done = c
            key, k_act, k_env = jax.random.split(key, 3)
            carry, action = policy(acting, carry, obs, done, k_act, deterministic, clip)
            out = step_envs(env, env_params, jax.random.split(k_env, n), env_state, action)
            done = jnp.logical_or(out.terminated, out.truncated)  # resets the agent's carry
            ret = ret + jnp.where(jnp.logical_or(finished, jnp.logical_not(on)), 0.0, out.score)
            return t + 1, out.env_state, out.obs, carry, key, ret, jnp.logical_or(finished, out.episode_end), done

        no = jnp.zeros((n,), bool)
        init = (
            jnp.zeros((), jnp.int32),
            env_state,
            obs,
            agent.initial_carry(n),
            k_loop,
            jnp.zeros((n,), jnp.float32),
            no,
            no,
        )
        out = jax.lax.while_loop(cond, body, init)
        release = getattr(env, "release", None)
        return out[5] if release is None else release(out[1], out[5])

    out = cast(Evaluate, evaluate)  # `evaluate` itself, seen with the attribute set on it here
    out.max_steps = cap
    return out


def make_evaluate(train: Train, *, max_steps: int | None = None) -> Evaluate:
    """`evaluate` for the env, agent and action space of a `make_train` result (traced at its config's
    matmul_precision)."""
    inner = build_evaluate(
        train.env,
        train.env_params,
        train.agent,
        train.action_spec,
        obs_clip=train.config.obs_clip,
        max_steps=max_steps,
        to_env_action=train.to_env_action,
    )
    if train.config.matmul_precision == "default":
        return inner

    def evaluate(*args, **kwargs):
        with matmul_precision(train.config):
            return inner(*args, **kwargs)

    out = cast(Evaluate, evaluate)
    out.max_steps = inner.max_steps
    return out


class Episode(NamedTuple):
    """One rolled-out episode, time-major, `length` valid steps (the rest is padding).

    env_states[t] is the state the action at step t was taken in; rewards[t]
    the reward it earned.
    """

    env_states: Any
    rewards: jax.Array
    dones: jax.Array
    length: jax.Array


def make_episode_rollout(train: Train, *, max_steps: int | None = None) -> EpisodeRollout:
    """`rollout(acting, key, deterministic=True) -> Episode` for one env (jittable).

    Runs a fixed `max_steps` scan (the env's max_steps_in_episode by default)
    and reports where the first episode ended.
    """
    env, env_params, agent = train.env, train.env_params, train.agent
    cap = max_episode_steps(env, env_params, max_steps)
    policy = make_policy(agent, train.to_env_action)
    obs_clip = train.config.obs_clip
    first = lambda x: x[0]  # noqa: E731  (the batch of one env)

    def rollout(acting: ActingState, key, deterministic: bool = True) -> Episode:
        with matmul_precision(train.config):
            return _rollout(acting, key, deterministic)

    def _rollout(acting: ActingState, key, deterministic: bool) -> Episode:
        k_reset, k_loop = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(k_reset[None], env_params)

        def step(c, k):
            env_state, obs, carry, finished, done = c
            k_act, k_env = jax.random.split(k)
            carry, action = policy(acting, carry, obs, done, k_act, deterministic, obs_clip)
            out = step_envs(env, env_params, k_env[None], env_state, action)
            done = jnp.logical_or(out.terminated, out.truncated)
            emitted = (jax.tree.map(first, env_state), out.reward[0], done[0], finished)
            return (out.env_state, out.obs, carry, jnp.logical_or(finished, done[0]), done), emitted

        init = (env_state, obs, agent.initial_carry(1), jnp.asarray(False), jnp.zeros((1,), bool))
        _, (states, rewards, dones, was_finished) = jax.lax.scan(step, init, jax.random.split(k_loop, cap))
        length = jnp.sum(jnp.logical_not(was_finished).astype(jnp.int32))
        return Episode(states, rewards, dones, length)

    out = cast(EpisodeRollout, rollout)  # `rollout` itself, seen with the attribute set on it here
    out.max_steps = cap
    return out
