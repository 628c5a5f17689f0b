"""What an env's spaces tell the rest of the library: the action spec and the observation spec.

This module sits below both `envs` (which reads gymnax spaces into these specs)
and `networks` (which builds a policy for them), so neither imports the other.

* `ActionSpec`: what the policy must output (a Categorical over `num_actions`,
  or a diagonal Gaussian of `shape` with box bounds).
* An observation spec is a pytree of `jax.ShapeDtypeStruct`, one leaf per
  observation array of ONE env step: a single `ShapeDtypeStruct((4,), float32)`
  for CartPole, `{"board": SDS((8, 8, 3)), "mask": SDS((4,), bool)}` for a
  dict observation. Batched observations add leading axes to every leaf
  (`[B, *leaf.shape]`), and everything that handles observations (network
  input, normalizers, rollout storage, reshapes) maps over the leaves.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class ActionSpec(NamedTuple):
    """What the policy must output, read from the env's action space.

    discrete: Categorical over `num_actions` if True, else diagonal Gaussian of
    `shape` with bounds `low`/`high` (flat tuples of floats, used to clip env
    actions). Hashable, so modules holding it stay hashable.
    """

    discrete: bool
    num_actions: int
    shape: tuple[int, ...]
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    @property
    def size(self) -> int:
        return self.num_actions if self.discrete else int(np.prod(self.shape))


def action_spec_from_space(space: Any) -> ActionSpec:
    """ActionSpec for a gymnax `Discrete` or `Box` action space (duck-typed)."""
    if hasattr(space, "n") and not hasattr(space, "low"):
        return ActionSpec(discrete=True, num_actions=int(space.n), shape=())
    if hasattr(space, "low") and hasattr(space, "shape"):
        shape = tuple(int(s) for s in space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape).reshape(-1)
        return ActionSpec(discrete=False, num_actions=0, shape=shape,
                          low=tuple(float(v) for v in low), high=tuple(float(v) for v in high))
    raise ValueError(
        f"action space {space!r} is not supported: purejaxppo handles Discrete (Categorical policy) "
        "and Box (diagonal Gaussian policy) action spaces"
    )


def obs_spec_from_space(space: Any) -> Any:
    """Observation spec (pytree of ShapeDtypeStruct) of a gymnax space: Box/Discrete -> one leaf,
    Dict (`.spaces` mapping) -> a dict, Tuple (`.spaces` sequence) -> a tuple, recursively."""
    inner = getattr(space, "spaces", None)
    if isinstance(inner, dict):
        return {k: obs_spec_from_space(v) for k, v in inner.items()}
    if isinstance(inner, (tuple, list)):
        return tuple(obs_spec_from_space(v) for v in inner)
    if not hasattr(space, "shape"):
        raise ValueError(f"observation space {space!r} has no shape: purejaxppo needs array (Box), Dict or Tuple "
                         "observation spaces")
    dtype = getattr(space, "dtype", jnp.float32)
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        dtype = jnp.dtype(jnp.float32)
    return jax.ShapeDtypeStruct(tuple(int(s) for s in space.shape), dtype)


def is_array_spec(spec: Any) -> bool:
    """True when the observation is one array (not a dict/tuple of arrays)."""
    return isinstance(spec, jax.ShapeDtypeStruct)


def obs_shape(spec: Any) -> tuple[int, ...]:
    """The shape of a single-array observation spec (ValueError for a pytree one)."""
    if not is_array_spec(spec):
        raise ValueError(f"expected a single-array observation, got a pytree of {len(jax.tree.leaves(spec))} arrays")
    return tuple(spec.shape)


def obs_size(spec: Any) -> int:
    """Number of scalars in one observation (all leaves)."""
    return sum(int(math.prod(leaf.shape)) for leaf in jax.tree.leaves(spec))


def zeros_obs(spec: Any, batch: tuple[int, ...] = (1,)) -> Any:
    """float32 zeros shaped like a batch of observations: every leaf `[*batch, *leaf.shape]` (for network.init)."""
    return jax.tree.map(lambda s: jnp.zeros(tuple(batch) + tuple(s.shape), jnp.float32), spec)
