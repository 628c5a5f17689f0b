"""Running statistics kept inside jit: observation normalization and reward scaling.

Both are `flax.struct` pytrees living in the train state, so they are carried
through `lax.scan`, vmapped over seeds and checkpointed with everything else.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
from flax import struct

from purejaxppo.core import collectives

_EPS = 1e-8


@struct.dataclass
class RunningMeanStd:
    """Mean/variance over every sample seen, merged batch by batch (Chan et al. parallel update).

    mean, var: `[*shape]`; count: scalar float32 (starts at a tiny value so the
    first merge is well defined and equals the batch statistics).
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: tuple[int, ...]) -> RunningMeanStd:
        return cls(
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
            count=jnp.asarray(1e-4, jnp.float32),
        )

    def update(self, batch: jax.Array, axis: collectives.Axis = None) -> RunningMeanStd:
        """batch: `[B, *shape]` -> statistics over all samples seen so far plus these B.

        With `axis` (data-parallel training) the B samples of every device on
        that axis are merged, so all devices keep the same statistics.
        """
        batch = batch.astype(jnp.float32)
        b_mean, b_var = collectives.mean_var(batch, axis, along=0)
        b_count = jnp.asarray(batch.shape[0] * collectives.axis_size(axis), jnp.float32)
        return self.merge(b_mean, b_var, b_count)

    def merge(self, b_mean: jax.Array, b_var: jax.Array, b_count: jax.Array) -> RunningMeanStd:
        delta = b_mean - self.mean
        total = self.count + b_count
        mean = self.mean + delta * (b_count / total)
        m2 = self.var * self.count + b_var * b_count + jnp.square(delta) * (self.count * b_count / total)
        return RunningMeanStd(mean=mean, var=m2 / total, count=total)

    def normalize(self, x: jax.Array, clip: jax.Array) -> jax.Array:
        """(x - mean) / sqrt(var + eps), clipped to [-clip, clip]."""
        return jnp.clip((x - self.mean) / jnp.sqrt(self.var + _EPS), -clip, clip)


@struct.dataclass
class RewardScaler:
    """Scales rewards by the running std of the per-env discounted return.

    returns: `[N]` discounted return of the running episode of each env;
    stats: scalar `RunningMeanStd` over all those returns seen.
    """

    returns: jax.Array
    stats: RunningMeanStd

    @classmethod
    def create(cls, num_envs: int) -> RewardScaler:
        return cls(returns=jnp.zeros((num_envs,), jnp.float32), stats=RunningMeanStd.create(()))

    def step(
        self, reward: jax.Array, done: jax.Array, gamma: jax.Array, clip: jax.Array, axis: collectives.Axis = None
    ):
        """reward, done: `[N]` -> (new scaler, scaled reward `[N]`).

        G <- gamma * G + r; stats absorb G (of every device on `axis`); r / sqrt(var(G) + eps) clipped;
        G <- 0 where done.
        """
        returns = self.returns * gamma + reward
        stats = self.stats.update(returns, axis)
        scaled = jnp.clip(reward / jnp.sqrt(stats.var + _EPS), -clip, clip)
        returns = jnp.where(done, 0.0, returns)
        return RewardScaler(returns=returns, stats=stats), scaled


# ------------------------------------------------------------------ observations (pytrees of arrays)


#: An observation normalizer: one RunningMeanStd per observation leaf (None for a bool leaf), in the pytree
#: structure of the observation (a single RunningMeanStd for an array one). A pytree of arbitrary structure has
#: no precise static type (JAX itself types pytrees as Any).
ObsNorm: TypeAlias = Any


def _is_rms(x) -> bool:
    return x is None or isinstance(x, RunningMeanStd)


def create_obs_norm(obs_spec) -> ObsNorm:
    """One RunningMeanStd per observation leaf, shaped like the obs spec (a single one for array observations).

    Bool leaves (an action mask) are not normalized: their entry is None.
    """
    return jax.tree.map(
        lambda s: None if jnp.dtype(s.dtype) == jnp.bool_ else RunningMeanStd.create(tuple(s.shape)), obs_spec
    )


def update_obs_norm(obs_norm, obs, axis: collectives.Axis = None):
    """Merge a batch of raw observations (leaves `[B, ...]`, of every device on `axis`) into the per-leaf statistics."""
    return jax.tree.map(lambda n, o: None if n is None else n.update(o, axis), obs_norm, obs, is_leaf=_is_rms)


def normalize_obs(obs_norm, obs, clip):
    """Normalize every observation leaf with its statistics (identity when obs_norm is None)."""
    if obs_norm is None:
        return obs
    return jax.tree.map(lambda n, o: o if n is None else n.normalize(o, clip), obs_norm, obs, is_leaf=_is_rms)
