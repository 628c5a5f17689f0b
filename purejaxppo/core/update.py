"""The building blocks of one PPO update (purejaxppo.core.train composes them into `Train.update`).

After the rollout (purejaxppo.core.rollout): `advantages` (bootstrap values
from the pre-reset observations, then GAE) -> `rollout_batch` -> `run_epochs`
(K epochs of `minibatches`, each shuffled with `permutation`, one optimizer
step from `make_optimizer` per minibatch, optional target-KL early stop).
`explained_variance` and `all_finite` serve the per-update metrics and the
divergence guard. Each is a pure function of arrays, testable on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from purejaxppo.core import collectives
from purejaxppo.core.agent import Agent
from purejaxppo.core.gae import compute_gae
from purejaxppo.core.hparams import HParams
from purejaxppo.core.losses import Batch
from purejaxppo.core.rollout import Transition


def make_optimizer(hp: HParams, learning_rate: jax.Array) -> optax.GradientTransformation:
    """Global-norm gradient clipping then Adam, built from traced hyperparameters.

    Its state structure does not depend on the values, so it can be rebuilt
    inside each traced update with that update's learning rate.
    """
    return optax.chain(
        optax.clip_by_global_norm(hp.max_grad_norm),
        optax.scale_by_adam(eps=hp.adam_eps),
        optax.scale(-learning_rate),
    )


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A uniformly random permutation of `range(n)`, int32 `[n]`, by sorting packed random keys.

    Each round sorts one uint32 array whose high bits are random and whose low
    ceil(log2 n) bits hold the index, then reads the indices back from the low
    bits. That is one single-operand sort instead of the key-value sort of
    `jax.random.permutation` (about 10% of the update at 64 vmapped seeds on a
    2-core CPU). Equal random keys keep their index order, so rounds (each
    re-shuffling the last) are added until there are at least 2 * log2(n)
    random bits in all: then the expected number of index pairs tied in every
    round is below 1/2. `jax.random.permutation` applies the same kind of rule
    with its own margin.
    """
    index_bits = max(1, (n - 1).bit_length())
    random_bits = 32 - index_bits
    if random_bits < 8:
        return jax.random.permutation(key, n)  # n >= 2^24: the packing leaves too few random bits
    rounds = -(-2 * index_bits // random_bits)
    perm = None
    for k in jax.random.split(key, rounds):
        packed = (jax.random.bits(k, (n,), jnp.uint32) << index_bits) | jnp.arange(n, dtype=jnp.uint32)
        order = (jnp.sort(packed) & ((1 << index_bits) - 1)).astype(jnp.int32)
        perm = order if perm is None else perm[order]
    assert perm is not None  # rounds >= 1 (index_bits >= 1)
    return perm


def explained_variance(values: jax.Array, targets: jax.Array, data_axis: collectives.Axis = None) -> jax.Array:
    """1 - Var[target - V] / Var[target] (0 when the targets have no variance), over every device on data_axis."""
    return collectives.explained_variance(values, targets, data_axis)


def all_finite(tree) -> jax.Array:
    """Whether every float leaf of `tree` is finite everywhere (a bool scalar; True for no float leaves)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def advantages(
    agent: Agent,
    params: Any,
    traj: Transition,
    hp: HParams,
    *,
    truncation_as_termination: bool = False,
    denormalize: Callable | None = None,
) -> tuple[jax.Array, jax.Array]:
    """GAE advantages and value targets `[T, N]` of a rollout.

    The bootstrap value of step t is V(final_obs_t), the observation its step
    reached before any auto-reset, evaluated from traj.carry[t], the agent's
    carry after it saw obs_t (for a recurrent agent: the hidden state that
    would have seen final_obs_t, not the reset one). All T * N bootstrap values
    come from one batched agent step. At a truncation GAE bootstraps from it;
    at a termination it does not (`truncation_as_termination` treats both as
    terminations). `denormalize` maps the network's value output to values (PopArt,
    purejaxppo.core.popart; traj.value must already be in values).
    """
    next_values = bootstrap_values(agent, params, traj)
    if denormalize is not None:
        next_values = denormalize(next_values)
    terminated = traj.terminated
    if truncation_as_termination:
        terminated = jnp.logical_or(terminated, traj.truncated)
    return compute_gae(traj.reward, traj.value, next_values, terminated, traj.truncated, hp.gamma, hp.gae_lambda)


def bootstrap_values(agent: Agent, params: Any, traj: Transition) -> jax.Array:
    """V(final_obs_t) `[T, N]` from the carry after step t (traj.carry; `()` for a feed-forward agent)."""
    t, n = traj.reward.shape
    flat = lambda x: x.reshape((t * n,) + x.shape[2:])  # noqa: E731
    _, _, value = agent.step(params, jax.tree.map(flat, traj.carry), jax.tree.map(flat, traj.final_obs), None)
    return value.reshape((t, n))


def rollout_batch(traj: Transition, adv: jax.Array, targets: jax.Array) -> Batch:
    """The update's batch: the rollout's `[T, N]` fields with advantages and targets, plus the segment-start
    carry `[N, ...]` and the reset mask `first` `[T, N]` a recurrent agent replays the segment with."""
    return Batch(traj.obs, traj.action, traj.log_prob, traj.value, adv, targets, traj.dist, traj.carry0, traj.first)


def minibatches(batch: Batch, key: jax.Array, num_minibatches: int, *, sequences: bool) -> Batch:
    """Shuffle a rollout batch `[T, N]` into num_minibatches minibatches: leaves `[num_minibatches, T', B', ...]`.

    sequences=False (feed-forward): the T * N transitions are shuffled one by
    one, T' = 1 and B' = T * N / num_minibatches. sequences=True (recurrent):
    whole env sequences are shuffled (env indices permuted, time order kept),
    T' = T and B' = N / num_minibatches, each with its env's segment-start
    carry (carry0 `[num_minibatches, B', ...]`) and reset mask, so the agent
    replays it exactly as the rollout ran.
    """
    if not sequences:  # T * N sequences of length 1
        one_step = lambda x: x.reshape((1, -1) + x.shape[2:])  # noqa: E731
        batch = batch._replace(**{f: jax.tree.map(one_step, getattr(batch, f)) for f in Batch._fields if f != "carry0"})
    n = batch.log_prob.shape[1]
    perm = permutation(key, n)

    def split_envs(x):  # [T', n, ...] -> [num_minibatches, T', n / num_minibatches, ...]
        x = x[:, perm].reshape((x.shape[0], num_minibatches, n // num_minibatches) + x.shape[2:])
        return jnp.swapaxes(x, 0, 1)

    carry0 = jax.tree.map(lambda c: c[perm].reshape((num_minibatches, -1) + c.shape[1:]), batch.carry0)
    return batch._replace(
        **{f: jax.tree.map(split_envs, getattr(batch, f)) for f in Batch._fields if f != "carry0"}, carry0=carry0
    )


def run_epochs(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    batch: Batch,
    key: jax.Array,
    hp: HParams,
    *,
    update_epochs: int,
    num_minibatches: int,
    use_target_kl: bool,
    sequences: bool = False,
    data_axis: collectives.Axis = None,
):
    """K epochs of shuffled minibatch gradient steps on one rollout batch (`rollout_batch`: leaves `[T, N, ...]`).

    Each epoch reshuffles the batch with `minibatches` (single transitions, or
    whole env sequences when `sequences`).

    loss_fn(params, minibatch) -> (loss, metrics dict of scalars). With
    use_target_kl, once an epoch's mean approx KL exceeds hp.target_kl the
    remaining epochs are skipped (`lax.cond`). Returns (params, opt_state,
    metrics averaged over the epochs that ran, plus grad_norm and
    epochs_completed).

    Data-parallel (`data_axis`, the batch is this device's shard): each device
    shuffles its own shard with its own key (`collectives.device_key`) into
    num_minibatches local minibatches; step j's gradient and metrics are
    averaged over the devices, i.e. they are those of the union of the
    devices' j-th minibatches, and every device applies the same update.
    """
    key = collectives.device_key(key, data_axis)

    def minibatch_step(carry, mb):
        params, opt_state = carry
        (_, m), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, mb)
        grads, m = collectives.pmean((grads, m), data_axis)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        m["grad_norm"] = optax.tree_utils.tree_norm(grads)
        return (optax.apply_updates(params, updates), opt_state), m

    def run_epoch(params, opt_state, epoch):
        shuffled = minibatches(batch, jax.random.fold_in(key, epoch), num_minibatches, sequences=sequences)
        (params, opt_state), m = jax.lax.scan(minibatch_step, (params, opt_state), shuffled)
        return params, opt_state, jax.tree.map(jnp.mean, m)

    def epoch_step(carry, epoch):
        params, opt_state, stopped = carry
        if use_target_kl:
            # Early stop: once stopped, the remaining epochs are no-ops (their metrics' schema from eval_shape).
            def skip(p, o, e):
                shapes = jax.eval_shape(run_epoch, p, o, e)[2]
                return p, o, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

            params, opt_state, m = jax.lax.cond(stopped, skip, run_epoch, params, opt_state, epoch)
            ran = jnp.logical_not(stopped)
            stopped = jnp.logical_or(stopped, m["approx_kl"] > hp.target_kl)
        else:
            params, opt_state, m = run_epoch(params, opt_state, epoch)
            ran = jnp.asarray(True)
        return (params, opt_state, stopped), (m, ran)

    (params, opt_state, _), (epoch_metrics, ran) = jax.lax.scan(
        epoch_step, (params, opt_state, jnp.asarray(False)), jnp.arange(update_epochs)
    )
    ran = ran.astype(jnp.float32)
    epochs_completed = ran.sum()
    metrics = {k: jnp.sum(v * ran) / jnp.maximum(epochs_completed, 1.0) for k, v in epoch_metrics.items()}
    metrics["epochs_completed"] = epochs_completed
    return params, opt_state, metrics
