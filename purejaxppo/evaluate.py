"""Policy evaluation: pure, jittable, vmappable.

`make_evaluate(train)` (or `build_evaluate(env, env_params, apply_fn,
action_spec)`) returns

    evaluate(params, obs_norm, key, num_episodes, deterministic=True) -> returns [num_episodes]

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
be turned into a `select` that runs the evaluation every update.

`make_episode_rollout(train)` rolls out one episode and keeps every env state
(for rendering).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.envs import make_action_transform
from purejaxppo.networks import ActionSpec


def max_episode_steps(env: Any, env_params: Any, max_steps: int | None = None) -> int:
    """The step cap: `max_steps` if given, else the env params' `max_steps_in_episode`."""
    if max_steps is None:
        max_steps = getattr(env_params, "max_steps_in_episode", None)
    if max_steps is None:
        raise ValueError(
            f"evaluation needs a step cap: {type(env).__name__}'s params have no max_steps_in_episode; "
            "pass max_steps=... explicitly"
        )
    max_steps = int(max_steps)
    if max_steps <= 0:
        raise ValueError(f"evaluation step cap must be positive, got {max_steps}")
    return max_steps


def make_act_fn(apply_fn: Callable, action_spec: ActionSpec, to_env_action: Callable | None = None) -> Callable:
    """`act(params, obs_norm, obs[B, ...], key, deterministic, obs_clip) -> env actions [B, ...]`.

    Normalizes with `obs_norm` (if not None), takes the mode or a sample, and
    maps it to the env's action with `to_env_action` (training's transform:
    `train.to_env_action`; default: clip continuous actions to the box).
    `deterministic` must be a Python bool.
    """
    if to_env_action is None:
        to_env_action = make_action_transform(action_spec, "clip")

    def act(params, obs_norm, obs, key, deterministic: bool, obs_clip):
        if obs_norm is not None:
            obs = obs_norm.normalize(obs, obs_clip)
        dist, _ = apply_fn(params, obs)
        action = dist.mode() if deterministic else dist.sample(key)
        return to_env_action(action)

    return act


def build_evaluate(
    env: Any,
    env_params: Any,
    apply_fn: Callable,
    action_spec: ActionSpec,
    *,
    obs_clip: float = 10.0,
    max_steps: int | None = None,
    to_env_action: Callable | None = None,
) -> Callable:
    """Build `evaluate(params, obs_norm, key, num_episodes, deterministic=True, *, obs_clip=..., enabled=True)`.

    `num_episodes` and `deterministic` are static (Python int / bool); params,
    obs_norm, key, obs_clip and enabled may be traced. Returns the undiscounted
    return of each episode, float32 `[num_episodes]` (zeros when `enabled` is False).
    """
    cap = max_episode_steps(env, env_params, max_steps)
    act = make_act_fn(apply_fn, action_spec, to_env_action)
    default_clip = obs_clip

    def evaluate(params, obs_norm, key, num_episodes: int, deterministic: bool = True, *, obs_clip=None, enabled=True):
        if not isinstance(num_episodes, (int, np.integer)) or num_episodes <= 0:
            raise ValueError(f"evaluate: num_episodes must be a positive int (static), got {num_episodes!r}")
        n = int(num_episodes)
        clip = default_clip if obs_clip is None else obs_clip
        k_reset, k_loop = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, n), env_params)
        step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))

        def cond(c):
            t, _, _, _, _, finished = c
            return jnp.logical_and(jnp.asarray(enabled), jnp.logical_and(t < cap, jnp.logical_not(jnp.all(finished))))

        def body(c):
            t, env_state, obs, key, ret, finished = c
            key, k_act, k_env = jax.random.split(key, 3)
            action = act(params, obs_norm, obs, k_act, deterministic, clip)
            obs, env_state, reward, terminated, truncated, _ = step_env(
                jax.random.split(k_env, n), env_state, action, env_params
            )
            reward = jnp.reshape(reward, (n,)).astype(jnp.float32)
            done = jnp.logical_or(jnp.reshape(terminated, (n,)), jnp.reshape(truncated, (n,)))
            ret = ret + jnp.where(finished, 0.0, reward)
            return t + 1, env_state, obs, key, ret, jnp.logical_or(finished, done)

        init = (jnp.zeros((), jnp.int32), env_state, obs, k_loop, jnp.zeros((n,), jnp.float32), jnp.zeros((n,), bool))
        _, _, _, _, returns, _ = jax.lax.while_loop(cond, body, init)
        return returns

    evaluate.max_steps = cap
    return evaluate


def make_evaluate(train: Callable, *, max_steps: int | None = None) -> Callable:
    """`evaluate` for the env, network and action space of a `make_train` result."""
    return build_evaluate(
        train.env, train.env_params, train.network.apply, train.action_spec,
        obs_clip=train.config.obs_clip, max_steps=max_steps, to_env_action=train.to_env_action,
    )


class Episode(NamedTuple):
    """One rolled-out episode, time-major, `length` valid steps (the rest is padding).

    env_states[t] is the state the action at step t was taken in; rewards[t]
    the reward it earned.
    """

    env_states: Any
    rewards: jax.Array
    dones: jax.Array
    length: jax.Array


def make_episode_rollout(train: Callable, *, max_steps: int | None = None) -> Callable:
    """`rollout(params, obs_norm, key, deterministic=True) -> Episode` for one env (jittable).

    Runs a fixed `max_steps` scan (the env's max_steps_in_episode by default)
    and reports where the first episode ended.
    """
    env, env_params = train.env, train.env_params
    cap = max_episode_steps(env, env_params, max_steps)
    act = make_act_fn(train.network.apply, train.action_spec, train.to_env_action)
    obs_clip = train.config.obs_clip

    def rollout(params, obs_norm, key, deterministic: bool = True) -> Episode:
        k_reset, k_loop = jax.random.split(key)
        obs, env_state = env.reset(k_reset, env_params)

        def step(c, k):
            env_state, obs, finished = c
            k_act, k_env = jax.random.split(k)
            action = act(params, obs_norm, obs[None], k_act, deterministic, obs_clip)[0]
            obs2, env_state2, reward, terminated, truncated, _ = env.step(k_env, env_state, action, env_params)
            done = jnp.logical_or(jnp.reshape(terminated, ()), jnp.reshape(truncated, ()))
            out = (env_state, jnp.reshape(reward, ()).astype(jnp.float32), done, finished)
            return (env_state2, obs2, jnp.logical_or(finished, done)), out

        _, (states, rewards, dones, was_finished) = jax.lax.scan(
            step, (env_state, obs, jnp.asarray(False)), jax.random.split(k_loop, cap)
        )
        length = jnp.sum(jnp.logical_not(was_finished).astype(jnp.int32))
        return Episode(states, rewards, dones, length)

    rollout.max_steps = cap
    return rollout
