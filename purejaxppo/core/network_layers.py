"""Building blocks of the default networks (`purejaxppo.core.networks`), and the Nature CNN.

`orthogonal` is flax's orthogonal initializer made safe to vmap on CPU (use it in your own networks too),
`dense` a linear layer with it, `policy_head` / `action_distribution` turn an actor's output into the action
distribution. `MLP`, `ConvTorso` and `ObsEncoder` (image leaves through conv layers, the others flattened) are
the torsos and heads the actor-critics of `networks` stack. `NatureActorCritic` is `network='nature_cnn'`: the
CNN of Mnih et al. (2015) that the PPO paper (Schulman et al. 2017) used for Atari, one torso shared by a policy
head and a value head; `make_nature_cnn` builds it for `networks.make_network`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypedDict

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.core.conv import conv_layer
from purejaxppo.core.distributions import Categorical, DiagGaussian, MultiCategorical, TanhGaussian
from purejaxppo.envs.spaces import ActionSpec
from purejaxppo.errors import ConfigError

ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}


def orthogonal(scale: float = 1.0) -> Callable:
    """`flax.linen.initializers.orthogonal(scale)`, the same numbers, but safe to vmap on CPU.

    Under `jax.vmap` (seeds, a sweep) flax's initializer becomes one batched QR per layer. jaxlib 0.10.2's CPU
    LAPACK kernels split a batch over XLA's intra-op thread pool and block until the pieces are done; when as
    many batched QRs run at once as the pool has threads (2 on a 2-core machine: the actor's and the critic's
    layers are independent), every pool thread waits on work queued behind it, and the process hangs at 0% CPU.
    Here a batch of keys is drawn one matrix after another (`lax.map`), so every QR is unbatched and runs
    inline. Init runs once per run, so the lost parallelism costs nothing measurable.
    """
    base = nn.initializers.orthogonal(scale)

    def init(key, shape, dtype=jnp.float32):
        shape = tuple(shape)

        @jax.custom_batching.custom_vmap
        def draw(k):
            return base(k, shape, dtype)

        @draw.def_vmap
        def _draw_batched(axis_size, in_batched, k):
            if not in_batched[0]:
                return draw(k), False
            return jax.lax.map(draw, k), True

        return draw(key)

    return init


def dense(features: int, scale: float, name: str | None = None) -> nn.Dense:
    """A dense layer with orthogonal kernel init of gain `scale` and zero bias."""
    return nn.Dense(features, kernel_init=orthogonal(scale), bias_init=nn.initializers.zeros, name=name)


def policy_head(mod: nn.Module, head: jax.Array, spec: ActionSpec, batch: int, init_log_std: float, squash: bool):
    """Turn the actor's output `[B, size]` into the action distribution (a compact module's own log_std)."""
    log_std = None if spec.discrete else mod.param("log_std", nn.initializers.constant(init_log_std), (spec.size,))
    return action_distribution(head, spec, batch, log_std, squash)


def action_distribution(head: jax.Array, spec: ActionSpec, batch: int, log_std: jax.Array | None, squash: bool):
    """The action distribution of the actor's output `[B, size]` (and the state-independent log_std `[size]`)."""
    if spec.discrete:
        return MultiCategorical(logits=head, nvec=tuple(spec.nvec)) if spec.nvec else Categorical(logits=head)
    mean = head.reshape((batch,) + tuple(spec.shape))
    assert log_std is not None  # both callers pass the log_std parameter of a continuous action space
    log_std = jnp.broadcast_to(log_std.reshape(spec.shape), mean.shape)
    if squash:
        assert spec.low is not None and spec.high is not None, "a Box ActionSpec needs low and high"
        return TanhGaussian(mean=mean, log_std=log_std, low=spec.low, high=spec.high)
    return DiagGaussian(mean=mean, log_std=log_std)


def flatten_obs(obs) -> jax.Array:
    """A batch of observations (array `[B, ...]` or pytree of `[B, ...]` leaves) -> float32 `[B, features]`:
    every leaf flattened per sample and concatenated in pytree order (dicts by sorted key)."""
    leaves = jax.tree.leaves(obs)
    flat = [leaf.reshape(leaf.shape[0], -1).astype(jnp.float32) for leaf in leaves]
    return flat[0] if len(flat) == 1 else jnp.concatenate(flat, axis=-1)


def hidden_layer(x: jax.Array, layer: nn.Module, activation: Callable, layer_norm: bool) -> jax.Array:
    """activation(layer(x)), with a LayerNorm (`nn.LayerNorm`, over the last axis) between them when `layer_norm`.

    Called inside a compact module: the LayerNorm gets flax's next automatic name (LayerNorm_0, ...), so the
    layers' own names (Dense_0, Conv_0, ...) are the same with and without it."""
    h = layer(x)
    return activation(nn.LayerNorm()(h) if layer_norm else h)


class MLP(nn.Module):
    """Hidden layers (orthogonal init, gain sqrt 2; each followed by a LayerNorm when `layer_norm`) and a linear head
    with gain `out_scale`."""

    hidden: Sequence[int]
    out_dim: int
    out_scale: float
    activation: str = "tanh"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = hidden_layer(x, dense(width, np.sqrt(2.0)), act, self.layer_norm)
        return dense(self.out_dim, self.out_scale)(x)


class ConvTorso(nn.Module):
    """3x3 stride-1 'SAME' convolutions with ReLU, flattened: `[B, H, W, C]` -> `[B, H * W * channels[-1]]`.
    conv_impl: `PPOConfig.conv_impl` ('patches' or 'xla', `purejaxppo.core.conv`); the same parameters either way."""

    channels: Sequence[int] = (16,)
    conv_impl: str = "patches"
    layer_norm: bool = False  # a LayerNorm over the channels after each conv, before its ReLU

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for k, c in enumerate(self.channels):
            conv = conv_layer(
                self.conv_impl, c, 3, padding="SAME", kernel_init=orthogonal(np.sqrt(2.0)), name=f"Conv_{k}"
            )
            x = hidden_layer(x, conv, nn.relu, self.layer_norm)
        return x.reshape(x.shape[0], -1)


def is_image_leaf(x) -> bool:
    """Whether a batched observation leaf `[B, H, W, C]` is an image (what the conv layers take)."""
    return x.ndim == 4 and x.shape[1] > 1 and x.shape[2] > 1


class ObsEncoder(nn.Module):
    """A pytree of observation leaves `[B, ...]` -> features `[B, F]`: each image leaf `[B, H, W, C]` through its own
    conv torso (`channels`), every other leaf (vectors, an action mask) flattened; all concatenated in pytree order."""

    channels: Sequence[int] = (16,)
    conv_impl: str = "patches"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs) -> jax.Array:
        feats = []
        for i, leaf in enumerate(jax.tree.leaves(obs)):
            if is_image_leaf(leaf):
                torso = ConvTorso(self.channels, self.conv_impl, self.layer_norm, name=f"conv_{i}")
                feats.append(torso(leaf.astype(jnp.float32)))
            else:
                feats.append(leaf.reshape(leaf.shape[0], -1).astype(jnp.float32))
        return feats[0] if len(feats) == 1 else jnp.concatenate(feats, axis=-1)


NATURE_MIN_SIZE = 36  # the smallest height and width the three VALID convolutions leave at least 1x1 of
NATURE_MAX_CHANNELS = 4  # a first dim up to this (with large last two) reads as channels-first frames [C, H, W]


def frames_channels_first(shape: tuple[int, ...]) -> bool:
    """Whether a rank-3 observation shape reads as channels-first frames `[C, H, W]` (EnvPool's `[4, 84, 84]`):
    a small first dim (<= 4) and a last dim that is not; anything else is channels-last `[H, W, C]`."""
    return len(shape) == 3 and shape[0] <= NATURE_MAX_CHANNELS < shape[2]


def frames_hw(shape: tuple[int, ...]) -> tuple[int, int]:
    """(height, width) of a rank-3 frame observation shape in the layout `frames_channels_first` reads."""
    return (shape[1], shape[2]) if frames_channels_first(shape) else (shape[0], shape[1])


def is_atari_frames(spec) -> bool:
    """What `network='auto'` gives the Nature CNN: one uint8 observation `[C, H, W]` of a few stacked frames
    (C <= 4, H and W >= 36, e.g. EnvPool Atari's `[4, 84, 84]`). Float images (MinAtar's `[10, 10, C]`) are not."""
    if not isinstance(spec, jax.ShapeDtypeStruct) or spec.dtype != jnp.uint8 or len(spec.shape) != 3:
        return False
    return frames_channels_first(spec.shape) and min(spec.shape[1:]) >= NATURE_MIN_SIZE


class NatureCNN(nn.Module):
    """Mnih et al. (2015)'s torso: conv 32 8x8 stride 4, conv 64 4x4 stride 2, conv 64 3x3 stride 1 ('VALID'),
    dense 512, ReLU after each; orthogonal init of gain sqrt 2, zero biases. `[B, 84, 84, 4]` -> `[B, 512]`.

    uint8 frames are cast to float32 and divided by 255 here; other dtypes (normalized observations) go in as
    they are. channels_first: the input is `[B, C, H, W]` (EnvPool), transposed to `[B, H, W, C]` first.
    conv_impl: `PPOConfig.conv_impl` ('patches' or 'xla', `purejaxppo.core.conv`); the same parameters either way.
    """

    channels_first: bool = False
    conv_impl: str = "patches"
    layer_norm: bool = False  # a LayerNorm after each conv (over the channels) and the dense layer, before the ReLU

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)
        if self.channels_first:
            x = jnp.transpose(x, (0, 2, 3, 1))
        gain = np.sqrt(2.0)
        for k, (features, kernel, stride) in enumerate(((32, 8, 4), (64, 4, 2), (64, 3, 1))):
            conv = conv_layer(
                self.conv_impl,
                features,
                kernel,
                strides=stride,
                padding="VALID",
                kernel_init=orthogonal(gain),
                name=f"Conv_{k}",
            )
            x = conv(x)
            x = nn.relu(nn.LayerNorm()(x) if self.layer_norm else x)
        x = dense(512, gain)(x.reshape(x.shape[0], -1))
        return nn.relu(nn.LayerNorm()(x) if self.layer_norm else x)


class NatureActorCritic(nn.Module):
    """`network='nature_cnn'`: one `NatureCNN` torso shared by two linear heads, the policy's (gain 0.01:
    logits, or the Gaussian mean with a state-independent log_std for Box actions) and the value's (gain 1).

    obs `[B, C, H, W]` (channels_first) or `[B, H, W, C]` -> (distribution with batch `[B]`, value `[B]`).
    """

    action_spec: ActionSpec
    channels_first: bool = False
    init_log_std: float = 0.0
    squash: bool = False
    conv_impl: str = "patches"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs):
        spec = self.action_spec
        x = NatureCNN(self.channels_first, self.conv_impl, self.layer_norm, name="torso")(obs)
        head = dense(spec.size, 0.01, name="actor")(x)
        value = dense(1, 1.0, name="critic")(x)[:, 0]
        return policy_head(self, head, spec, x.shape[0], self.init_log_std, self.squash), value


class HeadOptions(TypedDict):
    """The keyword arguments every actor-critic of `make_network` takes."""

    action_spec: ActionSpec
    actor_hidden: tuple[int, ...]
    critic_hidden: tuple[int, ...]
    activation: str
    init_log_std: float
    squash: bool
    layer_norm: bool


def make_nature_cnn(obs_spec, common: HeadOptions, conv_impl: str) -> NatureActorCritic:
    """`network='nature_cnn'`: one rank-3 array observation, frames channels-first `[C, H, W]` (C <= 4) or
    channels-last `[H, W, C]`, at least 36x36; actor_hidden, critic_hidden and activation do not apply."""
    shape = tuple(obs_spec.shape) if isinstance(obs_spec, jax.ShapeDtypeStruct) else None
    if shape is None or len(shape) != 3 or min(frames_hw(shape)) < NATURE_MIN_SIZE:
        raise ConfigError(
            "PPOConfig.network: 'nature_cnn' needs one image observation, frames [C, H, W] (C <= 4) or [H, W, C] "
            f"with H, W >= 36, got {shape if shape is not None else 'a pytree'}; use 'cnn' or 'mlp'"
        )
    return NatureActorCritic(
        action_spec=common["action_spec"],
        channels_first=frames_channels_first(shape),
        init_log_std=common["init_log_std"],
        squash=common["squash"],
        conv_impl=conv_impl,
        layer_norm=common["layer_norm"],
    )
