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

    # All randomness of the T steps is drawn here, in two batched calls, not once per step inside the
    # scan: on CPU every random draw in the loop body is its own chain of small kernels.
    k_env, k_act = jax.random.split(key)
    env_keys = jax.random.split(k_env, (num_steps, num_envs))  # [T, N]
    proto = jax.eval_shape(lambda p, o: apply_fn(p, o)[0], params, carry.obs)
    if hasattr(proto, "sample_from_noise"):  # our distributions: sample from noise drawn up front
        act_xs = type(proto).noise(k_act, (num_steps,) + tuple(proto.noise_shape))
        sample = lambda dist, noise: dist.sample_from_noise(noise)  # noqa: E731
    else:  # a user's distribution with only sample(key)
        act_xs = jax.random.split(k_act, num_steps)
        sample = lambda dist, k: dist.sample(k)  # noqa: E731

    def step(state, xs):
        carry, obs_norm, scaler, stats = state
        keys, act_x = xs
        if obs_norm is not None:
            obs_norm = obs_norm.update(carry.obs)
            norm = lambda o: obs_norm.normalize(o, obs_clip)  # noqa: E731
        else:
            norm = lambda o: o  # noqa: E731
        obs_in = norm(carry.obs)
        # Only the policy runs per step; values and log-probs are computed for all T steps at once below
        # (the unused value head is dead code here and XLA drops it).
        action = sample(apply_fn(params, obs_in)[0], act_x)
        env_action = to_env_action(action)

        obs, env_state, reward, terminated, truncated, info = step_env(keys, carry.env_state, env_action, env_params)
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

        carry = EnvCarry(
            env_state=env_state,
            obs=obs,
            episode_return=jnp.where(done, 0.0, ep_ret),
            episode_length=jnp.where(done, 0, ep_len),
        )
        return (carry, obs_norm, scaler, stats), (obs_in, action, train_reward, terminated, truncated,
                                                  norm(info["final_observation"]))

    zero = jnp.zeros((), jnp.float32)
    (carry, obs_norm, reward_scaler, stats), (obs, action, reward, terminated, truncated, final_obs) = jax.lax.scan(
        step, (carry, obs_norm, reward_scaler, EpisodeStats(zero, zero, zero)), (env_keys, act_xs)
    )

    # The policy's distribution, log-probs and values of all T * N steps in one batched forward pass
    # (params are fixed during the rollout, and obs are stored as the network saw them).
    batch = num_steps * num_envs
    dist, value = apply_fn(params, obs.reshape((batch,) + obs.shape[2:]))
    log_prob = dist.log_prob(action.reshape((batch,) + action.shape[2:]))
    unflat = lambda x: x.reshape((num_steps, num_envs) + x.shape[1:])  # noqa: E731
    traj = Transition(
        obs=obs,
        action=action,
        log_prob=unflat(log_prob),
        value=unflat(value),
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        final_obs=final_obs,
        dist=jax.tree.map(unflat, dist),
    )
    return carry, obs_norm, reward_scaler, traj, stats
