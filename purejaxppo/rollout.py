"""Collecting a rollout of T steps from N vectorized envs with `lax.scan`."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.normalization import RewardScaler, RunningMeanStd


class Transition(NamedTuple):
    """One rollout, time-major `[T, N, ...]`.

    obs / final_obs are what the network saw (normalized if normalize_obs);
    final_obs is the observation reached by the step before auto-reset
    (info["final_observation"]); reward is the (possibly scaled) training reward.
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    dist: Any


class EnvCarry(NamedTuple):
    """Per-env state carried across rollouts. obs is the raw (unnormalized) observation `[N, ...]`."""

    env_state: Any
    obs: jax.Array
    episode_return: jax.Array  # [N] undiscounted raw return of the running episode
    episode_length: jax.Array  # [N]


class EpisodeStats(NamedTuple):
    """Sums over episodes completed during one rollout (scalars)."""

    return_sum: jax.Array
    length_sum: jax.Array
    count: jax.Array


def collect(
    key: jax.Array,
    carry: EnvCarry,
    params: Any,
    apply_fn,
    env,
    env_params,
    *,
    num_steps: int,
    to_env_action,
    obs_norm: RunningMeanStd | None,
    reward_scaler: RewardScaler | None,
    gamma: jax.Array,
    obs_clip: jax.Array,
    reward_clip: jax.Array,
) -> tuple[EnvCarry, RunningMeanStd | None, RewardScaler | None, Transition, EpisodeStats]:
    """Run the policy for `num_steps` in every env.

    With `obs_norm`, each step first merges the raw observations `[N, ...]`
    into the running statistics and then normalizes with them; the normalized
    obs (and final_obs, with the same statistics) are what the transition
    stores, so the update sees exactly what the rollout saw. The stored action
    is the policy's sample (for Box spaces: unclipped, or pre-squash for the
    tanh policy; its log-prob is of that sample); `to_env_action` maps it to
    what the env receives (identity, clip to the box, or tanh squash).

    Returns (carry, obs_norm, reward_scaler, transitions `[T, N]`, episode stats).
    """
    num_envs = carry.episode_return.shape[0]
    step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def step(state, key):
        carry, obs_norm, scaler, stats = state
        k_act, k_env = jax.random.split(key)
        if obs_norm is not None:
            obs_norm = obs_norm.update(carry.obs)
            norm = lambda o: obs_norm.normalize(o, obs_clip)  # noqa: E731
        else:
            norm = lambda o: o  # noqa: E731
        obs_in = norm(carry.obs)
        dist, value = apply_fn(params, obs_in)
        action = dist.sample(k_act)
        log_prob = dist.log_prob(action)
        env_action = to_env_action(action)

        obs, env_state, reward, terminated, truncated, info = step_env(
            jax.random.split(k_env, num_envs), carry.env_state, env_action, env_params
        )
        reward = jnp.reshape(reward, (num_envs,)).astype(jnp.float32)  # e.g. Pendulum's (1,) rewards
        terminated = jnp.reshape(terminated, (num_envs,)).astype(bool)
        truncated = jnp.reshape(truncated, (num_envs,)).astype(bool)
        done = jnp.logical_or(terminated, truncated)

        # Episode statistics on the raw reward.
        ep_ret = carry.episode_return + reward
        ep_len = carry.episode_length + 1
        stats = EpisodeStats(
            return_sum=stats.return_sum + jnp.sum(jnp.where(done, ep_ret, 0.0)),
            length_sum=stats.length_sum + jnp.sum(jnp.where(done, ep_len, 0)).astype(jnp.float32),
            count=stats.count + jnp.sum(done).astype(jnp.float32),
        )

        train_reward = reward
        if scaler is not None:
            scaler, train_reward = scaler.step(reward, done, gamma, reward_clip)

        transition = Transition(
            obs=obs_in,
            action=action,
            log_prob=log_prob,
            value=value,
            reward=train_reward,
            terminated=terminated,
            truncated=truncated,
            final_obs=norm(info["final_observation"]),
            dist=dist,
        )
        carry = EnvCarry(
            env_state=env_state,
            obs=obs,
            episode_return=jnp.where(done, 0.0, ep_ret),
            episode_length=jnp.where(done, 0, ep_len),
        )
        return (carry, obs_norm, scaler, stats), transition

    zero = jnp.zeros((), jnp.float32)
    (carry, obs_norm, reward_scaler, stats), traj = jax.lax.scan(
        step, (carry, obs_norm, reward_scaler, EpisodeStats(zero, zero, zero)), jax.random.split(key, num_steps)
    )
    return carry, obs_norm, reward_scaler, traj, stats
