"""PPO losses: value loss, entropy, diagnostics, and the total loss around a policy objective.

Small pure functions on per-sample arrays `[M]`, composed by `ppo_loss`. The
policy objectives themselves (clip, adaptive/fixed KL penalty, none) are
`purejaxppo.core.objectives.Objective`s, selected by name.

Total loss minimized: -L^policy + c1 L^VF - c2 entropy.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.core import collectives
from purejaxppo.core.config import HParams
from purejaxppo.core.objectives import Objective, adapt_kl_beta, clipped_surrogate, get_objective  # noqa: F401 (re-exported)


class Batch(NamedTuple):
    """Rollout data: a minibatch `[M]`, or in the update's layout `[T, B]` (purejaxppo.core.train.rollout_batch).

    old_dist is the behaviour policy's distribution (for exact KL). carry0
    `[B, ...]` (the agent's carry at the segment start, `()` for feed-forward
    agents) and first `[T, B]` (the reset mask) let a recurrent agent replay
    the sequences.
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    old_dist: Any
    carry0: Any = ()
    first: Any = None


def normalize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Zero mean, unit std over all elements."""
    return collectives.normalize(x, None, eps)


def value_loss(value: jax.Array, old_value: jax.Array, target: jax.Array, clip_eps: jax.Array, clip: bool) -> jax.Array:
    """0.5 E[(V - target)^2], or with clipping 0.5 E[max((V - t)^2, (V_clipped - t)^2)]

    where V_clipped = old_value + clip(V - old_value, -eps, eps). Scalar.
    """
    unclipped = jnp.square(value - target)
    if not clip:
        return 0.5 * unclipped.mean()
    v_clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    return 0.5 * jnp.maximum(unclipped, jnp.square(v_clipped - target)).mean()


def approx_kl(log_ratio: jax.Array) -> jax.Array:
    """Unbiased low-variance estimator E[(r - 1) - log r] of KL(pi_old || pi) (Schulman's k3)."""
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)


def clip_fraction(ratio: jax.Array, clip_eps: jax.Array) -> jax.Array:
    """Fraction of samples with |r - 1| > eps."""
    return jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))


def ppo_loss(
    params: Any,
    apply_fn,
    batch: Batch,
    hp: HParams,
    objective_state: Any = (),
    *,
    objective: str | Objective = "clip",
    clip_value_loss: bool = True,
    normalize_advantages: bool = True,
    data_axis: collectives.Axis = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total loss -L^policy + c1 L^VF - c2 H on one minibatch, and diagnostics.

    apply_fn(params, obs `[M, ...]`) -> (dist `[M]`, value `[M]`) (or any batch shape, e.g. `[T, B]`).
    objective: a registered name or an `Objective`; objective_state: its state
      (for kl_adaptive the current beta).
    Advantages are treated as constants (no gradient flows into them); with
    normalize_advantages they are normalized within this minibatch: with
    `data_axis` (data-parallel training) within the union of the devices'
    minibatches. The loss and metrics stay the local means; `run_epochs`
    averages them (and the gradients) over the axis.
    """
    objective = get_objective(objective)
    dist, value = apply_fn(params, batch.obs)
    # Per-sample quantities as flat vectors [M] (a sequence minibatch [T, B] has M = T * B samples).
    flat = jnp.ravel
    log_ratio = flat(dist.log_prob(batch.action)) - flat(batch.log_prob)
    ratio = jnp.exp(log_ratio)
    adv = jax.lax.stop_gradient(flat(batch.advantage))
    if normalize_advantages:
        adv = collectives.normalize(adv, data_axis)
    kl = flat(batch.old_dist.kl(dist)) if objective.uses_kl else None

    pg_objective = objective.surrogate(ratio, adv, kl, hp, objective_state)
    v_loss = value_loss(flat(value), flat(batch.value), flat(batch.target), hp.vf_clip_eps, clip_value_loss)
    entropy = flat(dist.entropy()).mean()
    loss = -pg_objective + hp.vf_coef * v_loss - hp.ent_coef * entropy

    log_ratio = jax.lax.stop_gradient(log_ratio)
    metrics = {
        "policy_loss": -pg_objective,
        "value_loss": v_loss,
        "entropy": entropy,
        "approx_kl": approx_kl(log_ratio),
        "clip_fraction": clip_fraction(jnp.exp(log_ratio), hp.clip_eps),
    }
    return loss, metrics
