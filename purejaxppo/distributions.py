"""Small action distributions: sample, log_prob, entropy, exact KL, mode.

Both are `flax.struct` pytrees, so they can be stored in a rollout and sliced
into minibatches like any other array. Batch shapes are leading axes `[...]`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

_LOG_2PI = math.log(2.0 * math.pi)


@struct.dataclass
class Categorical:
    """Categorical over the last axis. logits: `[..., A]`."""

    logits: jax.Array

    @property
    def log_probs(self) -> jax.Array:
        """Normalized log-probabilities `[..., A]`."""
        return jax.nn.log_softmax(self.logits, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        """int32 `[...]`."""
        return jax.random.categorical(key, self.logits, axis=-1).astype(jnp.int32)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """action: int `[...]` -> `[...]`."""
        lp = self.log_probs
        return jnp.take_along_axis(lp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self) -> jax.Array:
        lp = self.log_probs
        return -jnp.sum(jnp.exp(lp) * lp, axis=-1)

    def kl(self, other: "Categorical") -> jax.Array:
        """Exact KL(self || other), `[...]`."""
        lp, lq = self.log_probs, other.log_probs
        return jnp.sum(jnp.exp(lp) * (lp - lq), axis=-1)


@struct.dataclass
class DiagGaussian:
    """Diagonal Gaussian. mean, log_std: `[..., D]` (log_std broadcast to mean's shape)."""

    mean: jax.Array
    log_std: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, self.mean.shape, self.mean.dtype)

    def mode(self) -> jax.Array:
        return self.mean

    def log_prob(self, action: jax.Array) -> jax.Array:
        """action: `[..., D]` -> `[...]` (sum over dimensions)."""
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z * z - self.log_std - 0.5 * _LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        return jnp.sum(self.log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)

    def kl(self, other: "DiagGaussian") -> jax.Array:
        """Exact KL(self || other), `[...]`."""
        var_ratio = jnp.exp(2.0 * (self.log_std - other.log_std))
        mean_term = jnp.square((self.mean - other.mean) * jnp.exp(-other.log_std))
        return jnp.sum(other.log_std - self.log_std + 0.5 * (var_ratio + mean_term - 1.0), axis=-1)
