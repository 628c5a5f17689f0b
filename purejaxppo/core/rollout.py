"""Collecting a rollout of T steps from N vectorized envs with `lax.scan`, and the env step it shares.

`step_envs` is the one place that steps a batch of gymnax-API envs and puts
reward / terminated / truncated into shape `[N]` (e.g. Pendulum's `(1,)`
rewards); the training rollout here, evaluation and episode rendering
(purejaxppo.core.evaluate) all step through it. Observations may be pytrees: they
are stored, normalized and reshaped leaf by leaf.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.core import collectives
from purejaxppo.core.agent import is_recurrent
from purejaxppo.core.normalization import ObsNorm, RewardScaler, normalize_obs, update_obs_norm
from purejaxppo.core.randomization import redraw


class Transition(NamedTuple):
    """One rollout, time-major `[T, N, ...]`.

    obs / final_obs are what the network saw (normalized if normalize_obs);
    final_obs is the observation reached by the step before auto-reset
    (info["final_observation"]); reward is the (possibly scaled) training reward.
    first[t] marks envs whose previous step ended an episode (the agent reset
    their carry before step t); carry0 is the agent's carry `[N, ...]` at the
    start of the segment (`()` for feed-forward agents), so the update can
    replay the segment. dist / log_prob / value are the acting policy's: a
    recurrent agent's come from the rollout's own steps, a feed-forward
    agent's from one batched pass over the T * N observations afterwards.
    carry[t] `[T, N, ...]` is the agent's carry after it saw
    obs[t], before any reset: the state final_obs[t] is evaluated from for the
    time-limit bootstrap.
    """

    obs: Any
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: Any
    dist: Any
    first: jax.Array
    carry0: Any
    carry: Any = ()


class EnvCarry(NamedTuple):
    """Per-env state carried across rollouts. obs is the raw (unnormalized) observation `[N, ...]` (a pytree
    for dict observations); agent_carry the agent's acting state `[N, ...]`; done `[N]` whether each env's
    last step ended its episode (so the agent resets that env's carry before its next observation)."""

    env_state: Any
    obs: Any
    episode_return: jax.Array  # [N] undiscounted raw return of the running episode
    episode_length: jax.Array  # [N]
    agent_carry: Any = ()
    done: Any = None
    env_params: Any = None  # per-env params [N, ...] with domain randomization (purejaxppo.core.randomization)


class EnvStep(NamedTuple):
    """One step of N envs: reward, terminated, truncated are `[N]`; final_obs is the pre-reset observation.

    score and episode_end `[N]` are what the episode statistics count: the env's `info["score"]` and
    `info["episode_end"]` where it gives them (EnvPool Atari: the unclipped game reward, and the end of the game
    rather than of a life), else the reward and terminated | truncated.
    """

    obs: Any
    env_state: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: Any
    score: jax.Array
    episode_end: jax.Array


def step_envs(env, env_params, keys: jax.Array, env_state: Any, action: jax.Array, params_axis=None) -> EnvStep:
    """Step N envs (keys `[N]`) with env actions `[N, ...]`; rewards float32 `[N]`, flags bool `[N]`.
    params_axis=0: `env_params` holds one set per env (leaves `[N, ...]`, domain randomization)."""
    n = keys.shape[0]
    obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, params_axis))(
        keys, env_state, action, env_params
    )
    reward = jnp.reshape(reward, (n,)).astype(jnp.float32)
    terminated = jnp.reshape(terminated, (n,)).astype(bool)
    truncated = jnp.reshape(truncated, (n,)).astype(bool)
    extra = info if isinstance(info, dict) else {}
    score = extra.get("score", reward)
    end = extra.get("episode_end", terminated | truncated)
    return EnvStep(
        obs,
        env_state,
        reward,
        terminated,
        truncated,
        info["final_observation"],
        jnp.reshape(score, (n,)).astype(jnp.float32),
        jnp.reshape(end, (n,)).astype(bool),
    )


class EpisodeStats(NamedTuple):
    """Sums over episodes completed during one rollout (scalars)."""

    return_sum: jax.Array
    length_sum: jax.Array
    count: jax.Array  # type: ignore[assignment]  # a NamedTuple field may shadow tuple.count()


def collect(
    key: jax.Array,
    carry: EnvCarry,
    params: Any,
    agent,
    env,
    env_params,
    *,
    num_steps: int,
    to_env_action,
    obs_norm: ObsNorm | None,
    reward_scaler: RewardScaler | None,
    gamma: jax.Array,
    obs_clip: jax.Array,
    reward_clip: jax.Array,
    data_axis=None,
    randomize=None,
) -> tuple[EnvCarry, ObsNorm | None, RewardScaler | None, Transition, EpisodeStats]:
    """Run the agent's policy for `num_steps` in every env (agent: purejaxppo.core.agent.Agent).

    With `obs_norm`, each step first merges the raw observations `[N, ...]`
    into the running statistics and then normalizes with them; the normalized
    obs (and final_obs, with the same statistics) are what the transition
    stores, so the update sees exactly what the rollout saw. The stored action
    is the policy's sample (for Box spaces: unclipped, or pre-squash for the
    tanh policy; its log-prob is of that sample); `to_env_action` maps it to
    what the env receives (identity, clip to the box, or tanh squash).

    With `data_axis` (data-parallel training: these N envs are one device's
    shard) the normalizers' statistics merge the observations and returns of
    all devices on the axis, and the episode statistics are summed over it.

    With `randomize` (domain randomization, purejaxppo.core.randomization) the envs step with their own params
    (`carry.env_params`), and every env whose episode ends draws new ones from `env_params`, the base params.

    Returns (carry, obs_norm, reward_scaler, transitions `[T, N]`, episode stats).
    """
    num_envs = carry.episode_return.shape[0]
    done0 = jnp.zeros((num_envs,), bool) if carry.done is None else carry.done

    # All randomness of the T steps is drawn here, in two batched calls, not once per step inside the
    # scan: on CPU every random draw in the loop body is its own chain of small kernels.
    k_env, k_act = jax.random.split(key)
    env_keys = jax.random.split(k_env, (num_steps, num_envs))  # [T, N]
    act_xs, sample = _action_noise(k_act, num_steps, agent, params, carry, done0)

    step = _step_fn(
        agent, params, env, env_params, to_env_action, sample, gamma, obs_clip, reward_clip, data_axis, randomize
    )
    zero = jnp.zeros((), jnp.float32)
    carry = carry._replace(done=done0)
    carry0 = carry.agent_carry
    (carry, obs_norm, reward_scaler, stats), stepped = jax.lax.scan(
        step, (carry, obs_norm, reward_scaler, EpisodeStats(zero, zero, zero)), (env_keys, act_xs)
    )
    traj = _replay(agent, params, carry0, stepped)
    return carry, obs_norm, reward_scaler, traj, collectives.psum(stats, data_axis)


def _step_fn(
    agent, params, env, env_params, to_env_action, sample, gamma, obs_clip, reward_clip, data_axis, randomize=None
):
    """The scan body of `collect`: one policy step and env step of the N envs.

    (carry, obs_norm, reward_scaler, stats), (env keys `[N]`, action noise) -> (the same, advanced), `_Stepped`.
    A recurrent agent's step also records its distribution, log-prob and value (`_Acting`).
    """
    keep_acting = is_recurrent(agent)

    def step(state, xs):
        carry, obs_norm, scaler, stats = state
        keys, act_x = xs
        if obs_norm is not None:
            obs_norm = update_obs_norm(obs_norm, carry.obs, data_axis)
        norm = lambda o: normalize_obs(obs_norm, o, obs_clip)  # noqa: E731
        obs_in = norm(carry.obs)
        # Feed-forward: only the policy runs per step; values and log-probs are computed for all T steps at
        # once afterwards (`_replay`; the unused value head is dead code here and XLA drops it). Recurrent: the
        # step's own distribution, log-prob and value are kept, so the segment is not replayed through the cell.
        agent_carry, dist, value = agent.step(params, carry.agent_carry, obs_in, carry.done)
        action = sample(dist, act_x)
        acting = _Acting(dist, dist.log_prob(action), value) if keep_acting else None
        if randomize is None:
            out = step_envs(env, env_params, keys, carry.env_state, to_env_action(action))
        else:
            out = step_envs(env, carry.env_params, keys, carry.env_state, to_env_action(action), params_axis=0)
        reward, terminated, truncated = out.reward, out.terminated, out.truncated
        done = jnp.logical_or(terminated, truncated)
        env_params_next = carry.env_params
        if randomize is not None:  # a new episode, new params (keys of their own, folded from the step's)
            param_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0xD0))(keys)
            env_params_next = redraw(randomize, env_params, carry.env_params, param_keys, done)

        # Episode statistics on the raw reward (or the env's score: EnvStep).
        ep_ret = carry.episode_return + out.score
        ep_len = carry.episode_length + 1
        stats = _add_finished_episodes(stats, out.episode_end, ep_ret, ep_len)

        train_reward = reward
        if scaler is not None:
            scaler, train_reward = scaler.step(reward, done, gamma, reward_clip, data_axis)

        new_carry = EnvCarry(
            env_state=out.env_state,
            obs=out.obs,
            episode_return=jnp.where(out.episode_end, 0.0, ep_ret),
            episode_length=jnp.where(out.episode_end, 0, ep_len),
            agent_carry=agent_carry,
            done=done,
            env_params=env_params_next,
        )
        stepped = _Stepped(
            obs_in, action, train_reward, terminated, truncated, norm(out.final_obs), carry.done, agent_carry, acting
        )
        return (new_carry, obs_norm, scaler, stats), stepped

    return step


def _action_noise(key: jax.Array, num_steps: int, agent, params: Any, carry: EnvCarry, done0: jax.Array):
    """(xs, sample): the policy's randomness for all T steps, drawn up front, and `sample(dist, x)` using one of it.

    Our distributions sample from noise drawn in one batched call; a user's distribution with only
    `sample(key)` gets one key per step.
    """
    proto = jax.eval_shape(lambda p, c, o, d: agent.step(p, c, o, d)[1], params, carry.agent_carry, carry.obs, done0)
    if hasattr(proto, "sample_from_noise"):
        xs = type(proto).noise(key, (num_steps,) + tuple(proto.noise_shape))
        return xs, lambda dist, noise: dist.sample_from_noise(noise)
    return jax.random.split(key, num_steps), lambda dist, k: dist.sample(k)


def _add_finished_episodes(stats: EpisodeStats, done: jax.Array, ep_ret: jax.Array, ep_len: jax.Array):
    """`stats` plus the return, length and count of the episodes that ended this step (done `[N]`)."""
    return EpisodeStats(
        return_sum=stats.return_sum + jnp.sum(jnp.where(done, ep_ret, 0.0)),
        length_sum=stats.length_sum + jnp.sum(jnp.where(done, ep_len, 0)).astype(jnp.float32),
        count=stats.count + jnp.sum(done).astype(jnp.float32),
    )


class _Acting(NamedTuple):
    """A recurrent agent's policy outputs at one rollout step `[N]`: its distribution, the sample's log-prob
    and the value."""

    dist: Any
    log_prob: jax.Array
    value: jax.Array


class _Stepped(NamedTuple):
    """What each step of the rollout's scan records (stacked to `[T, N, ...]`): the Transition's fields that
    come from stepping, and for a recurrent agent its `_Acting` outputs (else None: `_replay` computes them)."""

    obs: Any
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: Any
    first: jax.Array
    carry: Any
    acting: _Acting | None = None


def _replay(agent, params: Any, carry0: Any, s: _Stepped) -> Transition:
    """The rollout's `Transition` `[T, N]`, with the policy's distribution, log-probs and values of all T * N
    steps: a recurrent agent's as its steps computed them (`s.acting`), a feed-forward agent's from one batched
    pass.

    Params are fixed during the rollout and obs are stored as the network saw them, so replaying the segment
    from carry0 with the same resets, as the update does, gives the same numbers (up to float rounding: the
    update's first minibatches reproduce the stored log-probs and values, tests/test_recurrent.py).
    """
    if s.acting is not None:
        dist, log_prob, value = s.acting
    else:
        dist, value = agent.sequence(params, carry0, s.obs, s.first)
        num_steps, num_envs = s.first.shape
        flat = lambda x: x.reshape((num_steps * num_envs,) + x.shape[2:])  # noqa: E731
        log_prob = jax.tree.map(flat, dist).log_prob(flat(s.action)).reshape((num_steps, num_envs))
    return Transition(
        obs=s.obs,
        action=s.action,
        log_prob=log_prob,
        value=value,
        reward=s.reward,
        terminated=s.terminated,
        truncated=s.truncated,
        final_obs=s.final_obs,
        dist=dist,
        first=s.first,
        carry0=carry0,
        carry=s.carry,
    )
