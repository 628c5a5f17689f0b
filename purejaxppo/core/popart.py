"""PopArt value normalization (`PPOConfig.value_normalization: popart`; van Hasselt et al. 2016, Hessel et al. 2019).

The critic learns normalized values: the network's value output `n(s)` stands for `V(s) = sigma * n(s) + mu`,
where mu and sigma are running statistics of the value targets. Each update, after the advantages are
computed (with unnormalized values), the statistics absorb the batch's targets (`update_stats`), and the
critic's output layer is rescaled (`preserve_outputs`) so that every unnormalized prediction stays what it was
(Pop: Preserving Outputs Precisely); the value loss is then taken between normalized predictions and
normalized targets (Art: Adaptively Rescaling Targets). The statistics live in `TrainState.value_norm`, so
they are vmapped, checkpointed and resumed with the rest.

Statistics: exponential moving averages of the batch's mean and mean square of the targets, with step size
max(beta, 1 / (k + 1)) at the k-th statistics update (k = 0, 1, ...), so the first update takes the batch's own
statistics and the average is unbiased until 1 / (k + 1) falls below beta (`PPOConfig.popart_beta`, traced).
With `data_axis` (data-parallel training) the batch is the union of every device's.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from purejaxppo.core import collectives
from purejaxppo.errors import ConfigError

STD_MIN, STD_MAX = 1e-4, 1e6  # sigma is kept within these (Hessel et al.'s bounds): no division by ~0


@struct.dataclass
class PopArtStats:
    """Running statistics of the value targets: mean mu, mean square nu (scalars, float32) and the number of
    statistics updates so far (float32). Starts at mu = 0, nu = 1 (sigma = 1: the identity)."""

    mean: jax.Array
    mean_square: jax.Array
    count: jax.Array

    @classmethod
    def create(cls) -> PopArtStats:
        return cls(jnp.zeros((), jnp.float32), jnp.ones((), jnp.float32), jnp.zeros((), jnp.float32))

    @property
    def std(self) -> jax.Array:
        """sigma = sqrt(nu - mu^2), within [STD_MIN, STD_MAX]."""
        return jnp.clip(jnp.sqrt(jnp.maximum(self.mean_square - jnp.square(self.mean), 0.0)), STD_MIN, STD_MAX)

    def normalize(self, x: jax.Array) -> jax.Array:
        """(x - mu) / sigma."""
        return (x - self.mean) / self.std

    def denormalize(self, n: jax.Array) -> jax.Array:
        """sigma * n + mu."""
        return n * self.std + self.mean


def update_stats(stats: PopArtStats, targets: jax.Array, beta: jax.Array, axis: collectives.Axis = None):
    """The statistics after one batch of value targets (any shape; over every device on `axis`)."""
    flat = jnp.ravel(targets).astype(jnp.float32)
    batch_mean = collectives.mean(jnp.mean(flat), axis)
    batch_square = collectives.mean(jnp.mean(jnp.square(flat)), axis)
    step = jnp.maximum(beta, 1.0 / (stats.count + 1.0))
    return PopArtStats(
        mean=(1.0 - step) * stats.mean + step * batch_mean,
        mean_square=(1.0 - step) * stats.mean_square + step * batch_square,
        count=stats.count + 1.0,
    )


def value_head(params: Any) -> dict:
    """The critic's output layer `{"kernel": [F, 1], "bias": [1]}` in a built-in network's params: the dense layer
    `params["params"]["critic"]` itself (nature_cnn) or the last `Dense_k` of the critic MLP in it."""
    node = params.get("params", {}).get("critic") if isinstance(params, dict) else None
    if isinstance(node, dict) and "kernel" not in node:
        dense = [k for k in node if k.startswith("Dense_")]
        node = node[max(dense, key=lambda k: int(k.split("_")[1]))] if dense else None
    if not isinstance(node, dict) or "kernel" not in node or "bias" not in node or node["kernel"].shape[-1] != 1:
        raise ConfigError(
            "PPOConfig.value_normalization: 'popart' rescales the critic's output layer, a dense layer of one "
            "unit at params['params']['critic'] (or the last Dense_k under it), as the built-in networks have; "
            "this network has none: use value_normalization 'none', or name your value layer so"
        )
    return node


def preserve_outputs(params: Any, old: PopArtStats, new: PopArtStats) -> Any:
    """`params` with the critic's output layer rescaled so that new.denormalize(value) equals
    old.denormalize(value) for every input: W' = W sigma / sigma', b' = (sigma b + mu - mu') / sigma'."""
    head = value_head(params)
    ratio = old.std / new.std
    rescaled = {
        **head,
        "kernel": head["kernel"] * ratio,
        "bias": (old.std * head["bias"] + old.mean - new.mean) / new.std,
    }
    return _replace_head(params, head, rescaled)


def _replace_head(params: Any, head: dict, rescaled: dict) -> Any:
    """A copy of `params` (nested dicts) with the dict `head` (found by identity) replaced by `rescaled`."""

    def walk(node):
        if node is head:
            return rescaled
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return node

    return walk(params)
