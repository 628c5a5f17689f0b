"""2-D convolutions that `jax.vmap` turns into batched matmuls (`conv_impl='patches'`, the default).

Seeds and sweep points are vmapped over their own parameters. Under that vmap XLA's convolution
(`lax.conv_general_dilated`, what `flax.linen.Conv` calls) becomes a grouped convolution (`feature_group_count`
= the number of parameter sets) and its kernel gradient a `batch_group_count` convolution, forms XLA:CPU runs
far slower than one plain convolution per set. `PatchConv` computes the same convolution with no convolution
primitive at all: the input's patches are gathered by static strided slices (one per kernel offset), and one
matmul with the kernel reshaped to `[kh * kw * C, F]` gives the output. Under vmap that matmul is a batched
matmul, its gradients are matmuls, and the slices' gradients are pads; nothing becomes a grouped convolution.

`PatchConv` is a drop-in for the `flax.linen.Conv` layers the library builds: the same parameters (`kernel`
`[kh, kw, C, F]`, `bias` `[F]`, drawn from the same initializers under the same names, so checkpoints of either
implementation load in the other), strides, and 'SAME' / 'VALID' padding exactly as XLA pads. `conv_layer`
builds either implementation, by the config's `conv_impl` name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from jax import lax

from purejaxppo.core.config import CONV_IMPLS
from purejaxppo.errors import ConfigError


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    """An int or a pair -> a pair (height, width)."""
    h, w = (v, v) if isinstance(v, int) else tuple(v)
    return int(h), int(w)


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """XLA's 'SAME' padding of one spatial dimension: (low, high) so the output is ceil(size / stride) long;
    the total max((ceil(size / stride) - 1) * stride + kernel - size, 0), the odd pixel on the high side."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def spatial_pads(
    hw: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int], padding: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    """((low, high) of the height, (low, high) of the width) for padding 'SAME' or 'VALID'."""
    if padding == "VALID":
        return (0, 0), (0, 0)
    if padding == "SAME":
        return same_pads(hw[0], kernel[0], strides[0]), same_pads(hw[1], kernel[1], strides[1])
    raise ConfigError(f"PatchConv.padding: {padding!r} is not 'SAME' or 'VALID'")


def extract_patches(x: jax.Array, kernel: tuple[int, int], strides: tuple[int, int], padding: str) -> jax.Array:
    """Input `[B, H, W, C]` -> patches `[B, OH, OW, kh * kw * C]`, no convolution primitive.

    For each kernel offset (i, j), row-major, one strided static slice of the padded input `[B, OH, OW, C]`;
    concatenated on the last axis, so feature `(i * kw + j) * C + c` of a patch is input channel c at offset
    (i, j): the order of a kernel `[kh, kw, C, F]` reshaped to `[kh * kw * C, F]`.
    """
    (kh, kw), (sh, sw) = kernel, strides
    (top, bottom), (left, right) = spatial_pads((x.shape[1], x.shape[2]), kernel, strides, padding)
    if top or bottom or left or right:
        x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    b, h, w, c = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ConfigError(
            f"PatchConv: a {kh}x{kw} kernel does not fit the (padded) {h}x{w} input; use a larger observation, "
            "a smaller kernel or padding='SAME'"
        )
    pieces = [
        lax.slice(x, (0, i, j, 0), (b, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c), (1, sh, sw, 1))
        for i in range(kh)
        for j in range(kw)
    ]
    return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=-1)


def patch_conv(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None,
    strides: tuple[int, int] = (1, 1),
    padding: str = "SAME",
) -> jax.Array:
    """The convolution of `flax.linen.Conv` as patches and one matmul: `[..., H, W, C]` with kernel
    `[kh, kw, C, F]` (and bias `[F]`) -> `[..., OH, OW, F]`. Leading dims beyond one batch dim are flattened
    into it and restored, as flax does."""
    lead = x.shape[:-3]
    x = x.reshape((math.prod(lead), *x.shape[-3:]))
    kh, kw, c, f = kernel.shape
    patches = extract_patches(x, (kh, kw), strides, padding)
    y = jnp.einsum("bhwp,pf->bhwf", patches, kernel.reshape(kh * kw * c, f))
    if bias is not None:
        y = y + bias
    return y.reshape((*lead, *y.shape[1:]))


class PatchConv(nn.Module):
    """`flax.linen.Conv` for channels-last images `[..., H, W, C]` -> `[..., OH, OW, features]`, computed as
    patches and one matmul (`patch_conv`). The same parameters as `nn.Conv`: `kernel` `[kh, kw, C, features]`
    from `kernel_init`, `bias` `[features]` from `bias_init`."""

    features: int
    kernel_size: int | Sequence[int]
    strides: int | Sequence[int] = 1
    padding: str = "SAME"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()  # nn.Conv's default
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = _pair(self.kernel_size)
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32) if self.use_bias else None
        x, kernel, bias = promote_dtype(x, kernel, bias)
        return patch_conv(x, kernel, bias, _pair(self.strides), self.padding)


def conv_layer(
    impl: str,
    features: int,
    kernel_size: int,
    *,
    strides: int = 1,
    padding: str = "SAME",
    kernel_init: Callable,
    bias_init: Callable = nn.initializers.zeros,
    name: str,
) -> nn.Module:
    """A conv layer of implementation `impl` (`PPOConfig.conv_impl`): 'patches' (`PatchConv`) or 'xla'
    (`flax.linen.Conv`). Give the name flax would give `nn.Conv` (`Conv_0`, ...): both then hold their
    parameters under the same path."""
    size, step = _pair(kernel_size), _pair(strides)
    if impl == "patches":
        return PatchConv(
            features, size, strides=step, padding=padding, kernel_init=kernel_init, bias_init=bias_init, name=name
        )
    if impl == "xla":
        return nn.Conv(
            features, size, strides=step, padding=padding, kernel_init=kernel_init, bias_init=bias_init, name=name
        )
    raise ConfigError(f"PPOConfig.conv_impl: {impl!r} is not one of {CONV_IMPLS}")
