"""Actor-critic networks with orthogonal initialization.

A network is any flax module whose `__call__(obs)` takes a batch of
observations (an array `[B, *obs_shape]`, or a pytree whose leaves are
`[B, ...]`) and returns `(dist, value)`: a distribution from
`purejaxppo.core.distributions` with batch shape `[B]` and a value `[B]`.
`purejaxppo.core.agent.FeedForwardAgent` turns one into an agent.

`make_train(..., network_factory=f)` accepts a user's own factory
`f(obs_spec, action_spec) -> nn.Module`; `make_network(obs_spec, action_spec,
**options)` is the default, with `network_options(config)` as its options.
Their building blocks (`orthogonal`, `dense`, the action head, `MLP`,
`ObsEncoder`) and the Nature CNN (`network='nature_cnn'`) live in
`purejaxppo.core.network_layers`, the heads' observation keys (`select_obs`) in
`purejaxppo.core.obs_keys`; all are importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.core.config import PPOConfig
from purejaxppo.core.network_layers import (  # noqa: F401 (re-exported: purejaxppo.core.networks.orthogonal, ...)
    ACTIVATIONS,
    MLP,
    NATURE_MIN_SIZE,
    ConvTorso,
    HeadOptions,
    NatureActorCritic,
    ObsEncoder,
    action_distribution,
    dense,
    flatten_obs,
    frames_channels_first,
    frames_hw,
    hidden_layer,
    is_atari_frames,
    is_image_leaf,
    make_nature_cnn,
    orthogonal,
    policy_head,
)
from purejaxppo.core.obs_keys import (  # noqa: F401 (re-exported: purejaxppo.core.networks.select_obs, ...)
    ObsKeys,
    check_obs_keys,
    network_obs_keys,
    select_obs,
)
from purejaxppo.core.rnn_cells import FusedGRUCell, FusedLSTMCell
from purejaxppo.envs.spaces import ActionSpec  # noqa: F401 (re-exported: purejaxppo.core.networks.ActionSpec)
from purejaxppo.errors import ConfigError


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs on flattened observations (each on its own entries of a dict observation
    when `actor_keys` / `critic_keys` are set).

    obs `[B, *obs_shape]` -> (Categorical, DiagGaussian or TanhGaussian with batch `[B]`, value `[B]`).
    """

    action_spec: ActionSpec
    actor_hidden: Sequence[int] = (64, 64)
    critic_hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    init_log_std: float = 0.0
    squash: bool = False
    layer_norm: bool = False
    actor_keys: ObsKeys = None  # the entries of a dict observation each head reads (select_obs); None: all
    critic_keys: ObsKeys = None

    @nn.compact
    def __call__(self, obs):
        xa = flatten_obs(select_obs(obs, self.actor_keys))
        xc = xa if self.critic_keys == self.actor_keys else flatten_obs(select_obs(obs, self.critic_keys))
        spec = self.action_spec
        head = MLP(self.actor_hidden, spec.size, 0.01, self.activation, self.layer_norm, name="actor")(xa)
        value = MLP(self.critic_hidden, 1, 1.0, self.activation, self.layer_norm, name="critic")(xc)[:, 0]
        return policy_head(self, head, spec, xa.shape[0], self.init_log_std, self.squash), value


class ConvActorCritic(nn.Module):
    """CNN for image observations `[B, H, W, C]` (e.g. MinAtar), then actor/critic MLPs.

    A pytree observation goes through `ObsEncoder`: its image leaves through
    conv layers, the other leaves flattened, all concatenated.
    shared_torso: one conv torso feeds both heads; otherwise each has its own.
    """

    action_spec: ActionSpec
    channels: Sequence[int] = (16,)
    actor_hidden: Sequence[int] = (128,)
    critic_hidden: Sequence[int] = (128,)
    activation: str = "relu"
    init_log_std: float = 0.0
    squash: bool = False
    shared_torso: bool = False
    conv_impl: str = "patches"
    layer_norm: bool = False
    actor_keys: ObsKeys = None  # the entries of a dict observation each head reads (select_obs); None: all
    critic_keys: ObsKeys = None

    def _torso(self, obs, name: str) -> jax.Array:
        """An image observation through conv layers, a pytree one through `ObsEncoder`, another array flattened."""
        if hasattr(obs, "ndim") and not is_image_leaf(obs):  # a head reading only a vector entry
            return flatten_obs(obs)
        if hasattr(obs, "ndim"):
            return ConvTorso(self.channels, self.conv_impl, self.layer_norm, name=name)(obs.astype(jnp.float32))
        return ObsEncoder(self.channels, self.conv_impl, self.layer_norm, name=name)(obs)

    @nn.compact
    def __call__(self, obs):
        spec = self.action_spec
        if self.shared_torso:  # make_network refuses shared_torso with different keys
            xa = xc = self._torso(select_obs(obs, self.actor_keys), "torso")
        else:
            xa = self._torso(select_obs(obs, self.actor_keys), "actor_torso")
            xc = self._torso(select_obs(obs, self.critic_keys), "critic_torso")
        head = MLP(self.actor_hidden, spec.size, 0.01, self.activation, self.layer_norm, name="actor")(xa)
        value = MLP(self.critic_hidden, 1, 1.0, self.activation, self.layer_norm, name="critic")(xc)[:, 0]
        batch = jax.tree.leaves(obs)[0].shape[0]
        return policy_head(self, head, spec, batch, self.init_log_std, self.squash), value


class Torso(nn.Module):
    """Observation -> features `[B, F]`: conv layers for an image `[B, H, W, C]` (when `cnn_channels`), else the
    flattened observation, then dense layers of `hidden` widths with the activation (orthogonal init, gain sqrt 2)."""

    hidden: Sequence[int] = (128,)
    activation: str = "tanh"
    cnn_channels: Sequence[int] | None = None
    conv_impl: str = "patches"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs) -> jax.Array:
        if self.cnn_channels is not None and hasattr(obs, "ndim") and is_image_leaf(obs):
            x = ConvTorso(self.cnn_channels, self.conv_impl, self.layer_norm)(obs.astype(jnp.float32))
        elif self.cnn_channels is not None and not hasattr(obs, "ndim"):
            x = ObsEncoder(self.cnn_channels, self.conv_impl, self.layer_norm)(obs)
        else:
            x = flatten_obs(obs)
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = hidden_layer(x, dense(width, np.sqrt(2.0)), act, self.layer_norm)
        return x


class RecurrentActorCritic(nn.Module):
    """Torso -> GRU or LSTM cell -> actor and critic heads: the default recurrent network (`network='gru'/'lstm'`).

    `purejaxppo.core.agent.RecurrentAgent` trains it (and any module with the same four methods):

        carry = module.initial_carry(B)        zeros; no params needed (a tuple, one entry per core)
        x = module.embed(obs)                  obs leaves [B, ...] -> the torso's features projected to the gates
                                               (run on T * B at once: one matmul)
        carry, y = module.core(carry, x)       one step of the recurrent cell(s), [B, ...]
        dist, value = module.heads(y)          dist batch [B], value [B] (run on T * B at once)

    and the optional `core_sequence(carry, x, first)`: `core` over a segment (hand-written backward pass).
    The cells (`purejaxppo.core.rnn_cells`) compute flax's GRUCell / OptimizedLSTMCell and keep their parameters.

    `shared_core=True`: one torso and cell feed both heads; otherwise the actor
    and the critic each have their own (the carry then holds two cells' states).

    `actor_keys` / `critic_keys` (`select_obs`): the entries of a dict observation each head reads. When they
    differ, with `shared_core` the critic is feed-forward: its inputs, encoded without a cell (flattened, image
    entries through conv layers), go straight to the critic MLP, passed through `core` beside the cell's output
    (the common privileged critic of a recurrent actor); without `shared_core` each head's torso and cell read
    its own inputs.
    """

    action_spec: ActionSpec
    cell: str = "gru"
    rnn_size: int = 128
    torso_hidden: Sequence[int] = (128,)
    actor_hidden: Sequence[int] = (128,)
    critic_hidden: Sequence[int] = (128,)
    activation: str = "tanh"
    init_log_std: float = 0.0
    squash: bool = False
    shared_core: bool = True
    cnn_channels: Sequence[int] | None = None
    conv_impl: str = "patches"
    layer_norm: bool = False
    actor_keys: ObsKeys = None
    critic_keys: ObsKeys = None

    @property
    def feedforward_critic(self) -> bool:
        """Whether the critic reads its own inputs without a cell (different keys and a shared core)."""
        return self.shared_core and self.actor_keys != self.critic_keys

    def setup(self):
        if self.cell not in ("gru", "lstm"):
            raise ConfigError(f"RecurrentActorCritic.cell: {self.cell!r} is not 'gru' or 'lstm'")
        cores = 1 if self.shared_core else 2
        if self.feedforward_critic:
            self.critic_encoder = Torso((), self.activation, self.cnn_channels, self.conv_impl, self.layer_norm)
        cell = FusedGRUCell if self.cell == "gru" else FusedLSTMCell
        self.torsos = [
            Torso(self.torso_hidden, self.activation, self.cnn_channels, self.conv_impl, self.layer_norm)
            for _ in range(cores)
        ]
        self.cells = [cell(self.rnn_size, recurrent_kernel_init=orthogonal()) for _ in range(cores)]
        spec = self.action_spec
        self.actor = MLP(self.actor_hidden, spec.size, 0.01, self.activation, self.layer_norm)
        self.critic = MLP(self.critic_hidden, 1, 1.0, self.activation, self.layer_norm)
        if not spec.discrete:
            self.log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (spec.size,))

    @nn.nowrap
    def initial_carry(self, batch: int):
        zeros = jnp.zeros((batch, self.rnn_size), jnp.float32)
        one = zeros if self.cell == "gru" else (zeros, zeros)  # LSTM: (c, h), flax's order
        return tuple(one for _ in range(1 if self.shared_core else 2))

    def embed(self, obs):
        inputs = [select_obs(obs, k) for k in (self.actor_keys, self.critic_keys)[: len(self.cells)]]
        x: tuple = tuple(cell.project(torso(o)) for torso, cell, o in zip(self.torsos, self.cells, inputs, strict=True))
        if self.feedforward_critic:  # the critic's features ride along, past the cell
            x = (*x, self.critic_encoder(select_obs(obs, self.critic_keys)))
        return x

    def core(self, carry, x):
        n = len(self.cells)
        out = [cell(c, xi) for cell, c, xi in zip(self.cells, carry, x[:n], strict=True)]
        return tuple(c for c, _ in out), (*(y for _, y in out), *x[n:])

    def core_sequence(self, carry, x, first):
        """`core` over T steps (x leaves [T, B, ...]), each cell reset to zeros (initial_carry) where first [T, B]."""
        n = len(self.cells)
        ys = tuple(cell.sequence(c, xi, first) for cell, c, xi in zip(self.cells, carry, x[:n], strict=True))
        return (*ys, *x[n:])

    def heads(self, y):
        spec = self.action_spec
        head = self.actor(y[0])
        value = self.critic(y[-1])[:, 0]
        log_std = None if spec.discrete else self.log_std
        return action_distribution(head, spec, head.shape[0], log_std, self.squash), value

    def __call__(self, carry, obs):
        """One step (what `init` traces): (carry, dist, value)."""
        carry, y = self.core(carry, self.embed(obs))
        return (carry, *self.heads(y))


def network_options(config: PPOConfig) -> dict:
    """The options of `make_network` a config sets (what a network needs, not the whole config)."""
    return dict(
        network=config.network,
        actor_hidden=config.actor_hidden,
        critic_hidden=config.critic_hidden,
        activation=config.activation,
        layer_norm=config.layer_norm,
        init_log_std=config.init_log_std,
        action_handling=config.action_handling,
        cnn_channels=config.cnn_channels,
        cnn_shared_torso=config.cnn_shared_torso,
        conv_impl=config.conv_impl,
        rnn_size=config.rnn_size,
        rnn_torso=config.rnn_torso,
        rnn_shared_core=config.rnn_shared_core,
        actor_obs_keys=config.actor_obs_keys,
        critic_obs_keys=config.critic_obs_keys,
    )


def make_network(
    obs_spec,
    action_spec: ActionSpec,
    *,
    network: str = "auto",
    actor_hidden: Sequence[int] = (64, 64),
    critic_hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    layer_norm: bool = False,
    init_log_std: float = 0.0,
    action_handling: str = "clip",
    cnn_channels: Sequence[int] = (16,),
    cnn_shared_torso: bool = False,
    conv_impl: str = "patches",
    rnn_size: int = 128,
    rnn_torso: Sequence[int] = (128,),
    rnn_shared_core: bool = True,
    actor_obs_keys: str = "all",
    critic_obs_keys: str = "all",
) -> nn.Module:
    """Default network factory: `ConvActorCritic` for image observations, else `ActorCritic`;
    `RecurrentActorCritic` for `network='gru'` or `'lstm'` (its torso has the conv layers for image observations);
    `NatureActorCritic` for `network='nature_cnn'` (Atari frames).

    obs_spec: the observation spec (a `jax.ShapeDtypeStruct`, or a pytree of
    them; a plain shape tuple is accepted too). `network='auto'` picks the
    Nature CNN for uint8 stacked frames `[C, H, W]` with C <= 4 and H, W >= 36
    (EnvPool Atari's `[4, 84, 84]`: `network_layers.is_atari_frames`), the CNN
    for any other image observation `[H, W, C]` (MinAtar's float `[10, 10, C]`),
    or for a pytree observation with an image leaf (image leaves through conv
    layers, the other leaves flattened: `ObsEncoder`); other observations go to
    the MLP (leaves flattened and concatenated). A config's options are
    `network_options(config)`: `make_network(obs_spec, action_spec, **network_options(config))`.
    conv_impl: how every conv layer is computed, 'patches' or 'xla' (`purejaxppo.core.conv`; same parameters).
    layer_norm: a LayerNorm after every hidden layer of the torsos, before its activation (`hidden_layer`).
    actor_obs_keys, critic_obs_keys: 'all' or comma-separated keys of a dict observation, what each head reads
    (`select_obs`; `PPOConfig.actor_obs_keys`); the keys are checked against obs_spec here.
    """
    obs_spec = _as_obs_spec(obs_spec)
    image = any(len(s.shape) == 3 and s.shape[0] > 1 and s.shape[1] > 1 for s in jax.tree.leaves(obs_spec))
    kind = network
    if kind == "auto":
        kind = "nature_cnn" if is_atari_frames(obs_spec) else "cnn" if image else "mlp"
    actor_keys, critic_keys = network_obs_keys(obs_spec, kind, actor_obs_keys, critic_obs_keys, cnn_shared_torso)
    common: HeadOptions = dict(
        action_spec=action_spec,
        actor_hidden=tuple(actor_hidden),
        critic_hidden=tuple(critic_hidden),
        activation=activation,
        init_log_std=init_log_std,
        squash=action_handling == "tanh" and not action_spec.discrete,
        layer_norm=layer_norm,
    )
    if kind in ("gru", "lstm"):
        return RecurrentActorCritic(
            cell=kind,
            rnn_size=rnn_size,
            torso_hidden=tuple(rnn_torso),
            shared_core=rnn_shared_core,
            cnn_channels=tuple(cnn_channels) if image else None,
            conv_impl=conv_impl,
            actor_keys=actor_keys,
            critic_keys=critic_keys,
            **common,
        )
    if kind == "nature_cnn":
        return make_nature_cnn(obs_spec, common, conv_impl)
    if kind == "cnn":
        return _conv_actor_critic(
            obs_spec, image, common, tuple(cnn_channels), cnn_shared_torso, conv_impl, actor_keys, critic_keys
        )
    return ActorCritic(actor_keys=actor_keys, critic_keys=critic_keys, **common)


def _as_obs_spec(obs_spec):
    """make_network's obs_spec with a plain shape tuple as a float32 `jax.ShapeDtypeStruct`; a ConfigError for a
    PPOConfig passed in its place (the call form of 0.1)."""
    if isinstance(obs_spec, PPOConfig):
        raise ConfigError(
            "make_network takes (obs_spec, action_spec, **options); for a config's options call "
            "make_network(obs_spec, action_spec, **network_options(config)) (the form make_network(config, "
            "obs_shape, action_spec) of 0.1 is gone)"
        )
    if isinstance(obs_spec, tuple) and all(isinstance(d, int) for d in obs_spec):
        obs_spec = jax.ShapeDtypeStruct(obs_spec, jnp.float32)
    return obs_spec


def _conv_actor_critic(
    obs_spec,
    image: bool,
    common: HeadOptions,
    channels: tuple[int, ...],
    shared_torso: bool,
    conv_impl: str,
    actor_keys: ObsKeys,
    critic_keys: ObsKeys,
) -> ConvActorCritic:
    """`network='cnn'`: a `ConvActorCritic`; a ConfigError unless the observation is (or has) an image."""
    if not image:
        shape = obs_spec.shape if isinstance(obs_spec, jax.ShapeDtypeStruct) else "a pytree without an image leaf"
        raise ConfigError(
            f"PPOConfig.network: 'cnn' needs image observations [H, W, C] (or a pytree with an "
            f"image leaf), got {shape}; use 'mlp'"
        )
    return ConvActorCritic(
        channels=channels,
        shared_torso=shared_torso,
        conv_impl=conv_impl,
        actor_keys=actor_keys,
        critic_keys=critic_keys,
        **common,
    )
