"""Generalized Advantage Estimation with terminated and truncated kept apart."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: jax.Array,
    gae_lambda: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """GAE(gamma, lambda) by a reverse `lax.scan` over time.

    All inputs are time-major `[T, B]`:
      rewards:     r_t
      values:      V(s_t)
      next_values: V(s'_t), the value of the observation *reached* by step t,
                   before any auto-reset (i.e. V(info["final_observation"])).
      terminated:  s'_t is terminal: no bootstrap, delta_t = r_t - V(s_t).
      truncated:   the episode was cut by a time limit at s'_t: bootstrap from
                   V(s'_t), but do not propagate advantages across the reset.

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - (terminated_t | truncated_t)) * A_{t+1}

    Returns (advantages `[T, B]`, value targets `[T, B]` = advantages + values).
    """
    chex.assert_equal_shape([rewards, values, next_values, terminated, truncated])
    chex.assert_rank(rewards, 2)
    not_term = 1.0 - terminated.astype(jnp.float32)
    not_done = 1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32)
    deltas = rewards + gamma * not_term * next_values - values
    decay = gamma * gae_lambda * not_done

    def step(next_adv, xs):
        delta, dec = xs
        adv = delta + dec * next_adv
        return adv, adv

    _, advantages = jax.lax.scan(step, jnp.zeros_like(deltas[0]), (deltas, decay), reverse=True)
    return advantages, advantages + values
