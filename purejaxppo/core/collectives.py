"""Reductions over the data-parallel axis: one run's envs split over devices.

Every statistic of the PPO update that spans environments goes through these
helpers. With `axis=None` (one device, `make_train`) they are the plain local
reductions, so the single-device program is unchanged; with an axis name
(inside `shard_map` over the mesh's "data" axis, or `jax.vmap(...,
axis_name=...)` in tests) they average over the devices, which hold equal-sized
shards, so the result is the statistic of the union of the shards and every
device holds the same value. Population statistics throughout (ddof=0), as
`jnp.var`/`jnp.std`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Axis = str | tuple[str, ...] | None


def pmean(tree: Any, axis: Axis) -> Any:
    """Mean of each leaf over `axis` (identity when axis is None)."""
    return tree if axis is None else jax.lax.pmean(tree, axis)


def psum(tree: Any, axis: Axis) -> Any:
    """Sum of each leaf over `axis` (identity when axis is None)."""
    return tree if axis is None else jax.lax.psum(tree, axis)


def all_true(x: jax.Array, axis: Axis) -> jax.Array:
    """True iff `x` is True on every device of `axis`."""
    return x if axis is None else jax.lax.pmin(x.astype(jnp.int32), axis) > 0


def mean(x: jax.Array, axis: Axis, along=None) -> jax.Array:
    """Mean over `along` (all elements by default) of the union of the shards of `x`."""
    return pmean(jnp.mean(x, axis=along), axis)


def mean_var(x: jax.Array, axis: Axis, along=None) -> tuple[jax.Array, jax.Array]:
    """(mean, population variance) over `along` of the union of the equal-sized shards of `x`.

    Two passes (the global mean first), so it matches `jnp.var` of the
    concatenated data to float rounding, without the cancellation of E[x^2] - E[x]^2.
    """
    if axis is None:  # exactly the single-device expressions (the golden tests pin them bit for bit)
        return jnp.mean(x, axis=along), jnp.var(x, axis=along)
    m = mean(x, axis, along)
    centred = x - (m if along is None else jnp.expand_dims(m, along))
    return m, mean(jnp.square(centred), axis, along)


def normalize(x: jax.Array, axis: Axis, eps: float = 1e-8) -> jax.Array:
    """Zero mean, unit std over all elements of the union of the shards."""
    if axis is None:
        return (x - x.mean()) / (x.std() + eps)
    m, v = mean_var(x, axis)
    return (x - m) / (jnp.sqrt(v) + eps)


def explained_variance(values: jax.Array, targets: jax.Array, axis: Axis = None) -> jax.Array:
    """1 - Var[target - V] / Var[target] over the union of the shards (0 when the targets have no variance)."""
    var_t = mean_var(targets, axis)[1]
    var_r = mean_var(targets - values, axis)[1]
    return jnp.where(var_t > 0, 1.0 - var_r / jnp.where(var_t > 0, var_t, 1.0), 0.0)


def axis_size(axis: Axis) -> int:
    """Number of devices along `axis` (1 when None)."""
    return 1 if axis is None else jax.lax.axis_size(axis)


def axis_index(axis: Axis) -> jax.Array:
    """This device's index along `axis` (0 when None)."""
    return jnp.zeros((), jnp.int32) if axis is None else jax.lax.axis_index(axis)


def device_key(key: jax.Array, axis: Axis) -> jax.Array:
    """A PRNG key of this device's own along `axis` (the key itself on a single device, so one-device
    data-parallel training draws exactly what `make_train` draws)."""
    return key if axis_size(axis) == 1 else jax.random.fold_in(key, axis_index(axis))
