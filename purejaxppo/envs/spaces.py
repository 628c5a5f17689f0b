"""What an env's spaces tell the rest of the library: the action spec and the observation spec.

This module sits below both `envs` (which reads gymnax spaces into these specs)
and `networks` (which builds a policy for them), so neither imports the other.

* `ActionSpec`: what the policy must output (a Categorical over `num_actions`,
  a product of Categoricals for a multi-discrete space, or a diagonal
  Gaussian of `shape` with box bounds).
* `MultiDiscrete(nvec)`: the action space of K discrete choices taken
  together (gymnax has none): action `int32[K]`, entry k in `[0, nvec[k])`.
* Action masks: an env with illegal actions returns a dict observation with
  the key `ACTION_MASK_KEY` ("action_mask"), a bool `[num_actions]` (or
  `[sum(nvec)]` for a multi-discrete space, the sub-action masks
  concatenated) that is True where an action is legal. The agent applies it
  to the policy's logits (purejaxppo.core.agent), so a masked action is never
  sampled, and log-probs, entropy and KL count the legal actions only.
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

from purejaxppo.errors import ConfigError

#: The observation-dict key under which an env gives its legal-action mask (module docstring).
ACTION_MASK_KEY = "action_mask"


class MultiDiscrete:
    """K discrete sub-actions taken together: action `int32[K]`, entry k in `[0, nvec[k])`.

    Duck-types a gymnax space (`shape`, `dtype`, `sample`, `contains`); `nvec`
    is a tuple of ints, so the space is hashable.
    """

    def __init__(self, nvec):
        self.nvec = tuple(int(n) for n in np.asarray(nvec).reshape(-1))
        if not self.nvec or min(self.nvec) < 1:
            raise ConfigError(f"MultiDiscrete: nvec must be a non-empty list of positive ints, got {nvec!r}")
        self.shape = (len(self.nvec),)
        self.dtype = jnp.int32

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, self.shape, 0, jnp.asarray(self.nvec, jnp.int32), jnp.int32)

    def contains(self, x) -> jax.Array:
        x = jnp.asarray(x)
        return jnp.logical_and(jnp.all(x >= 0), jnp.all(x < jnp.asarray(self.nvec)))

    def __repr__(self) -> str:
        return f"MultiDiscrete({list(self.nvec)})"

    def __eq__(self, other) -> bool:
        return isinstance(other, MultiDiscrete) and other.nvec == self.nvec

    def __hash__(self) -> int:
        return hash(("MultiDiscrete", self.nvec))


class ActionSpec(NamedTuple):
    """What the policy must output, read from the env's action space.

    discrete: Categorical over `num_actions` if True (or, with `nvec`, one
    Categorical per sub-action: a multi-discrete space, `num_actions` =
    sum(nvec), `shape` = (K,)), else diagonal Gaussian of `shape` with bounds
    `low`/`high` (flat tuples of floats, used to clip env actions). Hashable,
    so modules holding it stay hashable.
    """

    discrete: bool
    num_actions: int
    shape: tuple[int, ...]
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    nvec: tuple[int, ...] | None = None

    @property
    def size(self) -> int:
        """Width of the actor's output: logits (all sub-actions' together) or Gaussian means."""
        return self.num_actions if self.discrete else int(np.prod(self.shape))

    @property
    def multi_discrete(self) -> bool:
        return self.nvec is not None


def action_spec_from_space(space: Any) -> ActionSpec:
    """ActionSpec for a gymnax `Discrete` or `Box` action space, or a `MultiDiscrete` one (duck-typed)."""
    if hasattr(space, "nvec"):
        nvec = tuple(int(n) for n in np.asarray(space.nvec).reshape(-1))
        return ActionSpec(discrete=True, num_actions=sum(nvec), shape=(len(nvec),), nvec=nvec)
    if hasattr(space, "n") and not hasattr(space, "low"):
        return ActionSpec(discrete=True, num_actions=int(space.n), shape=())
    if hasattr(space, "low") and hasattr(space, "shape"):
        shape = tuple(int(s) for s in space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape).reshape(-1)
        return ActionSpec(
            discrete=False,
            num_actions=0,
            shape=shape,
            low=tuple(float(v) for v in low),
            high=tuple(float(v) for v in high),
        )
    raise ConfigError(
        f"action space {space!r} is not supported: purejaxppo handles Discrete (Categorical policy), "
        "MultiDiscrete (purejaxppo.envs.spaces.MultiDiscrete: a product of Categoricals) "
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
        raise ConfigError(
            f"observation space {space!r} has no shape: purejaxppo needs array (Box), Dict or Tuple observation spaces"
        )
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
    """The shape of a single-array observation spec (ConfigError for a pytree one)."""
    if not is_array_spec(spec):
        raise ConfigError(f"expected a single-array observation, got a pytree of {len(jax.tree.leaves(spec))} arrays")
    return tuple(spec.shape)


def obs_size(spec: Any) -> int:
    """Number of scalars in one observation (all leaves)."""
    return sum(int(math.prod(leaf.shape)) for leaf in jax.tree.leaves(spec))


def zeros_obs(spec: Any, batch: tuple[int, ...] = (1,)) -> Any:
    """A dummy batch of observations for network.init: every leaf `[*batch, *leaf.shape]`, float32 zeros, except
    bool leaves (an action mask), which are all True (every action legal)."""

    def leaf(s):
        shape = tuple(batch) + tuple(s.shape)
        return jnp.ones(shape, bool) if jnp.dtype(s.dtype) == jnp.bool_ else jnp.zeros(shape, jnp.float32)

    return jax.tree.map(leaf, spec)
