"""Actor-critic networks with orthogonal initialization.

A network is any flax module whose `__call__(obs)` takes a batch of
observations `[B, *obs_shape]` and returns `(dist, value)`: a distribution from
`purejaxppo.distributions` with batch shape `[B]` and a value `[B]`.

`make_train(..., network_factory=f)` accepts a user's own factory
`f(config, obs_shape, action_spec) -> nn.Module`; `make_network` is the default.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import PPOConfig
from purejaxppo.distributions import Categorical, DiagGaussian

_ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}


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


def _dense(features: int, scale: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale), bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    """Hidden layers (orthogonal init, gain sqrt 2) and a linear head with gain `out_scale`."""

    hidden: Sequence[int]
    out_dim: int
    out_scale: float
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(_dense(width, np.sqrt(2.0))(x))
        return _dense(self.out_dim, self.out_scale)(x)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs on flattened observations.

    obs `[B, *obs_shape]` -> (Categorical or DiagGaussian with batch `[B]`, value `[B]`).
    """

    action_spec: ActionSpec
    actor_hidden: Sequence[int] = (64, 64)
    critic_hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    init_log_std: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array):
        x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
        spec = self.action_spec
        head = MLP(self.actor_hidden, spec.size, 0.01, self.activation, name="actor")(x)
        value = MLP(self.critic_hidden, 1, 1.0, self.activation, name="critic")(x)[:, 0]
        if spec.discrete:
            return Categorical(logits=head), value
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (spec.size,))
        mean = head.reshape((obs.shape[0],) + tuple(spec.shape))
        log_std = jnp.broadcast_to(log_std.reshape(spec.shape), mean.shape)
        return DiagGaussian(mean=mean, log_std=log_std), value


def make_network(config: PPOConfig, obs_shape: tuple[int, ...], action_spec: ActionSpec) -> nn.Module:
    """Default network factory: `ActorCritic` sized from the config."""
    del obs_shape
    return ActorCritic(
        action_spec=action_spec,
        actor_hidden=config.actor_hidden,
        critic_hidden=config.critic_hidden,
        activation=config.activation,
        init_log_std=config.init_log_std,
    )
