"""PPO losses: the paper's policy objectives, value loss, entropy, diagnostics.

Small pure functions on per-sample arrays `[M]`, composed by `ppo_loss`.
Objectives (Schulman et al. 2017, Sec. 3-4):

* ``clip``:        L = E[min(r A, clip(r, 1-eps, 1+eps) A)]
* ``kl_adaptive``: L = E[r A - beta KL(pi_old || pi)], beta adapted between updates
* ``kl_fixed``:    the same with constant beta
* ``none``:        L = E[r A] (no clipping, no penalty)

Total loss minimized: -L^policy + c1 L^VF - c2 entropy.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import HParams


class Batch(NamedTuple):
    """A minibatch of rollout data, leading axis `[M]`.

    old_dist is the behaviour policy's distribution (for exact KL).
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    old_dist: Any


def normalize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Zero mean, unit std over all elements."""
    return (x - x.mean()) / (x.std() + eps)


def clipped_surrogate(ratio: jax.Array, adv: jax.Array, clip_eps: jax.Array) -> jax.Array:
    """Per-sample L^CLIP = min(r A, clip(r, 1-eps, 1+eps) A), `[M]`."""
    return jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv)


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


def policy_objective(objective: str, ratio: jax.Array, adv: jax.Array, kl: jax.Array, hp: HParams, kl_beta: jax.Array) -> jax.Array:
    """Mean policy objective L^policy (to be maximized) for a static `objective`."""
    if objective == "clip":
        return clipped_surrogate(ratio, adv, hp.clip_eps).mean()
    if objective in ("kl_adaptive", "kl_fixed"):
        return (ratio * adv - kl_beta * kl).mean()
    if objective == "none":
        return (ratio * adv).mean()
    raise ValueError(f"PPOConfig.objective: unknown objective {objective!r}")


def ppo_loss(
    params: Any,
    apply_fn,
    batch: Batch,
    hp: HParams,
    kl_beta: jax.Array,
    *,
    objective: str = "clip",
    clip_value_loss: bool = True,
    normalize_advantages: bool = True,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total loss -L^policy + c1 L^VF - c2 H on one minibatch, and diagnostics.

    apply_fn(params, obs `[M, ...]`) -> (dist `[M]`, value `[M]`).
    kl_beta: current penalty coefficient (used by the kl_* objectives).
    Advantages are treated as constants (no gradient flows into them).
    """
    dist, value = apply_fn(params, batch.obs)
    log_prob = dist.log_prob(batch.action)
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    adv = jax.lax.stop_gradient(batch.advantage)
    if normalize_advantages:
        adv = normalize(adv)
    kl = batch.old_dist.kl(dist) if objective in ("kl_adaptive", "kl_fixed") else jnp.zeros_like(ratio)

    pg_objective = policy_objective(objective, ratio, adv, kl, hp, kl_beta)
    v_loss = value_loss(value, batch.value, batch.target, hp.vf_clip_eps, clip_value_loss)
    entropy = dist.entropy().mean()
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


def adapt_kl_beta(
    kl_beta: jax.Array, kl: jax.Array, kl_target: jax.Array, beta_min: jax.Array, beta_max: jax.Array
) -> jax.Array:
    """The paper's adaptive-KL rule, then a clip of beta into [beta_min, beta_max].

    Rule (Schulman et al. 2017, Sec. 4), with d the mean KL(pi_old || pi) of the
    update just made: beta / 2 if d < d_targ / 1.5; 2 beta if d > 1.5 d_targ;
    else unchanged.

    The bounds (`kl_beta_min`, `kl_beta_max`) never bind in normal runs; they
    stop float underflow: about 126 halvings in a row take a float32 beta below
    the smallest normal number, XLA:CPU flushes it to exactly 0, and 0 doubles
    back to 0 forever, which silently turns kl_adaptive into objective='none'.
    Works elementwise on batched (vmapped) arrays.
    """
    halved_or_doubled = jnp.where(
        kl < kl_target / 1.5, kl_beta / 2.0, jnp.where(kl > kl_target * 1.5, kl_beta * 2.0, kl_beta)
    )
    return jnp.clip(halved_or_doubled, beta_min, beta_max)
