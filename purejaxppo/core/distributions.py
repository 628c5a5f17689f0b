"""Small action distributions: sample, log_prob, entropy, exact KL, mode.

All are `flax.struct` pytrees, so they can be stored in a rollout and sliced
into minibatches like any other array. Batch shapes are leading axes `[...]`.
`Distribution` is the protocol the library relies on; a user's own
distribution (returned by their network) needs the methods marked required.

`Categorical` accepts masked logits: an entry of `-inf` is an illegal action.
It is never sampled nor the mode (unless every entry is masked), has log-prob
`-inf`, and contributes exactly 0 to the entropy and the KL — no NaN from
`0 * -inf` in any method or gradient (-inf logits are raised to the lowest
finite float before those products; finite logits are untouched).
`MultiCategorical` is a product of independent Categoricals (a multi-discrete
action space), with the same masking rules per sub-action. `masked(mask)`
returns the distribution with the illegal actions' logits set to `-inf`.
"""

from __future__ import annotations

import math
from typing import Protocol, cast, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

_LOG_2PI = math.log(2.0 * math.pi)


@runtime_checkable
class Distribution(Protocol):
    """What the library calls on a policy's distribution (batch shape `[...]`).

    Required: `sample(key) -> action[...]`, `log_prob(action) -> [...]`,
    `entropy() -> [...]`, `kl(other) -> [...]` (exact KL(self || other)),
    `mode() -> action[...]` (deterministic evaluation).
    Optional, for faster rollouts on CPU: `noise_shape` (property),
    `noise(key, shape, dtype)` (static) and `sample_from_noise(noise)`: the
    rollout then draws the noise of all T steps at once before its scan.
    """

    def sample(self, key: jax.Array) -> jax.Array: ...

    def log_prob(self, action: jax.Array) -> jax.Array: ...

    def entropy(self) -> jax.Array: ...

    def kl(self, other) -> jax.Array: ...

    def mode(self) -> jax.Array: ...


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
        return self.sample_from_noise(self.noise(key, self.noise_shape, self.logits.dtype))

    # Sampling from pre-drawn noise: the rollout draws the noise of all T steps at once, outside its
    # scan, because on CPU each random draw inside the loop is a separate threefry kernel chain.
    @property
    def noise_shape(self) -> tuple[int, ...]:
        return tuple(self.logits.shape)

    @staticmethod
    def noise(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        """Standard Gumbel noise of `shape`."""
        return jax.random.gumbel(key, shape, dtype)

    def sample_from_noise(self, noise: jax.Array) -> jax.Array:
        """Gumbel-max: argmax(logits + noise), noise standard Gumbel `[..., A]` -> int32 `[...]`."""
        return jnp.argmax(self.logits + noise, axis=-1).astype(jnp.int32)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """action: int `[...]` -> `[...]`."""
        lp = self.log_probs
        return jnp.take_along_axis(lp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

    @property
    def _finite_log_probs(self) -> jax.Array:
        """log_probs with -inf (masked) entries raised to the lowest float: exp() of them is still exactly 0,
        and 0 * lowest is 0, not NaN. Finite entries are unchanged (max(x, lowest) == x)."""
        logits = jnp.maximum(self.logits, jnp.finfo(self.logits.dtype).min)
        return jax.nn.log_softmax(logits, axis=-1)

    def entropy(self) -> jax.Array:
        """Entropy over the legal actions (masked, -inf entries add 0), `[...]`."""
        lp = self._finite_log_probs
        return -jnp.sum(jnp.exp(lp) * lp, axis=-1)

    def kl(self, other: Categorical) -> jax.Array:
        """Exact KL(self || other), `[...]`; actions masked in self add 0."""
        lp, lq = self._finite_log_probs, other._finite_log_probs
        return jnp.sum(jnp.exp(lp) * (lp - lq), axis=-1)

    def masked(self, mask: jax.Array) -> Categorical:
        """This distribution restricted to the legal actions: mask bool `[..., A]` (mask_logits)."""
        return self.replace(logits=mask_logits(self.logits, mask))  # type: ignore[attr-defined]  # flax adds replace()


def mask_logits(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """logits `[..., A]` with the entries where `mask` `[..., A]` is False set to -inf.

    A row with no legal action at all keeps its logits (a uniform fallback
    instead of NaN); envs should never produce one.
    """
    mask = jnp.asarray(mask, bool)
    mask = jnp.logical_or(mask, jnp.logical_not(jnp.any(mask, axis=-1, keepdims=True)))
    return jnp.where(mask, logits, -jnp.inf)


@struct.dataclass
class MultiCategorical:
    """K independent Categoricals, one per sub-action of a multi-discrete space.

    logits: `[..., sum(nvec)]`, the sub-actions' logits concatenated; nvec: static
    tuple of the K sizes. Actions are int32 `[..., K]`; log-prob, entropy and KL
    are sums over the K sub-actions. A mask `[..., sum(nvec)]` masks each
    sub-action's choices (a sub-action with none legal falls back to uniform).
    """

    logits: jax.Array
    nvec: tuple = struct.field(pytree_node=False, default=())

    def _parts(self) -> list[Categorical]:
        bounds = np.cumsum((0,) + tuple(self.nvec))
        return [Categorical(self.logits[..., lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    def masked(self, mask: jax.Array) -> MultiCategorical:
        bounds = np.cumsum((0,) + tuple(self.nvec))
        parts = [
            mask_logits(self.logits[..., lo:hi], mask[..., lo:hi])
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        return self.replace(logits=jnp.concatenate(parts, axis=-1))  # type: ignore[attr-defined]  # flax adds replace()

    def sample(self, key: jax.Array) -> jax.Array:
        """int32 `[..., K]`."""
        return self.sample_from_noise(self.noise(key, self.noise_shape, self.logits.dtype))

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return tuple(self.logits.shape)

    noise = staticmethod(Categorical.noise)

    def sample_from_noise(self, noise: jax.Array) -> jax.Array:
        """Gumbel-max per sub-action; noise standard Gumbel `[..., sum(nvec)]` -> int32 `[..., K]`."""
        bounds = np.cumsum((0,) + tuple(self.nvec))
        return jnp.stack(
            [
                part.sample_from_noise(noise[..., lo:hi])
                for part, lo, hi in zip(self._parts(), bounds[:-1], bounds[1:], strict=True)
            ],
            axis=-1,
        )

    def mode(self) -> jax.Array:
        return jnp.stack([part.mode() for part in self._parts()], axis=-1)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """action: int `[..., K]` -> `[...]`."""
        # sum() of a non-empty sequence of Arrays is an Array (its int start 0 only shows for an empty nvec)
        return cast(jax.Array, sum(part.log_prob(action[..., k]) for k, part in enumerate(self._parts())))

    def entropy(self) -> jax.Array:
        return cast(jax.Array, sum(part.entropy() for part in self._parts()))

    def kl(self, other: MultiCategorical) -> jax.Array:
        return cast(jax.Array, sum(p.kl(q) for p, q in zip(self._parts(), other._parts(), strict=True)))


@struct.dataclass
class DiagGaussian:
    """Diagonal Gaussian. mean, log_std: `[..., D]` (log_std broadcast to mean's shape)."""

    mean: jax.Array
    log_std: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        return self.sample_from_noise(self.noise(key, self.noise_shape, self.mean.dtype))

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return tuple(self.mean.shape)

    @staticmethod
    def noise(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        """Standard normal noise of `shape`."""
        return jax.random.normal(key, shape, dtype)

    def sample_from_noise(self, noise: jax.Array) -> jax.Array:
        """mean + std * noise, noise standard normal `[..., D]`."""
        return self.mean + jnp.exp(self.log_std) * noise

    def mode(self) -> jax.Array:
        return self.mean

    def log_prob(self, action: jax.Array) -> jax.Array:
        """action: `[..., D]` -> `[...]` (sum over dimensions)."""
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z * z - self.log_std - 0.5 * _LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        return jnp.sum(self.log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)

    def kl(self, other: DiagGaussian) -> jax.Array:
        """Exact KL(self || other), `[...]`."""
        var_ratio = jnp.exp(2.0 * (self.log_std - other.log_std))
        mean_term = jnp.square((self.mean - other.mean) * jnp.exp(-other.log_std))
        return jnp.sum(other.log_std - self.log_std + 0.5 * (var_ratio + mean_term - 1.0), axis=-1)


# Gauss-Hermite nodes/weights for E_{z~N(0,1)}[f(z)] = sum_i w_i f(sqrt(2) x_i) / sqrt(pi).
# NumPy constants, not jnp arrays: importing purejaxppo must not start a JAX backend (purejaxppo.cpu.configure
# sets XLA flags that only take effect before it starts).
_GH_X, _GH_W = (np.asarray(a, np.float32) for a in np.polynomial.hermite.hermgauss(16))


def _log_one_minus_tanh_sq(u: jax.Array) -> jax.Array:
    """log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|."""
    return 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))


@struct.dataclass
class TanhGaussian:
    """Diagonal Gaussian on u, squashed into a box: a = low + (tanh(u) + 1) / 2 * (high - low).

    The rollout stores the *pre-squash* sample u as the action; `squash(u)` is
    what the env receives. Densities are of a (change of variables):

        log pi(a) = log N(u; mean, std) - sum_d log |da_d / du_d|,
        da/du = scale (1 - tanh(u)^2), scale = (high - low) / 2.

    The KL between two such distributions equals the KL of their Gaussians
    (an invertible map preserves KL). The entropy has no closed form: it is
    H(N) + E_u[sum log |da/du|], with the expectation by 16-point Gauss-Hermite
    quadrature per dimension (deterministic, no key needed).

    mean, log_std: `[..., D]`; low/high: static tuples of length D.
    """

    mean: jax.Array
    log_std: jax.Array
    low: tuple = struct.field(pytree_node=False, default=None)
    high: tuple = struct.field(pytree_node=False, default=None)

    @property
    def base(self) -> DiagGaussian:
        return DiagGaussian(self.mean, self.log_std)

    def _bounds(self):
        low = jnp.asarray(self.low, jnp.float32).reshape(self.mean.shape[-1:])
        high = jnp.asarray(self.high, jnp.float32).reshape(self.mean.shape[-1:])
        return low, high

    def squash(self, u: jax.Array) -> jax.Array:
        """Pre-squash sample `[..., D]` -> action in the box."""
        low, high = self._bounds()
        return low + (jnp.tanh(u) + 1.0) * 0.5 * (high - low)

    def log_det_jacobian(self, u: jax.Array) -> jax.Array:
        """sum_d log |da_d/du_d|, `[...]`."""
        low, high = self._bounds()
        return jnp.sum(jnp.log(0.5 * (high - low)) + _log_one_minus_tanh_sq(u), axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        """Pre-squash sample u `[..., D]`."""
        return self.base.sample(key)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return self.base.noise_shape

    noise = staticmethod(DiagGaussian.noise)

    def sample_from_noise(self, noise: jax.Array) -> jax.Array:
        """Pre-squash sample u = mean + std * noise `[..., D]`."""
        return self.base.sample_from_noise(noise)

    def mode(self) -> jax.Array:
        """Pre-squash mode (the Gaussian mean; squash() of it is the deterministic action)."""
        return self.mean

    def log_prob(self, u: jax.Array) -> jax.Array:
        """Log-density of the squashed action a = squash(u), given the pre-squash u. `[...]`."""
        return self.base.log_prob(u) - self.log_det_jacobian(u)

    def entropy(self) -> jax.Array:
        std = jnp.exp(self.log_std)
        u = self.mean[..., None] + std[..., None] * (math.sqrt(2.0) * _GH_X)  # [..., D, 16]
        e_log_tanh = jnp.sum(_GH_W * _log_one_minus_tanh_sq(u), axis=-1) / math.sqrt(math.pi)  # [..., D]
        low, high = self._bounds()
        return self.base.entropy() + jnp.sum(jnp.log(0.5 * (high - low)) + e_log_tanh, axis=-1)

    def kl(self, other: TanhGaussian) -> jax.Array:
        return self.base.kl(other.base)
