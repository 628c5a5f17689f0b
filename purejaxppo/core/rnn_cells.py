"""GRU and LSTM cells with fused gates, the input projection apart from the time loop, and a hand-written backward
pass over a whole sequence.

Each cell has three methods:

    gx = cell.project(x)              x [..., in] -> the gates' input projections, a tuple of G arrays [..., H]:
                                      ONE matmul [in, G * H] on any batch shape (G = 3 for the GRU, 4 for the LSTM)
    carry, y = cell(carry, gx)        one time step: ONE matmul of the hidden state [B, H] x [H, G * H] and the gates
    y = cell.sequence(carry0, gx, first)
                                      T steps (gx leaves [T, B, H]), the carry reset to zeros where first [T, B]:
                                      y [T, B, H]

so a segment `[T, B, in]` is projected in one matmul before the time loop, and the loop body does only the hidden
matmul and the gate arithmetic (`purejaxppo.core.networks.RecurrentActorCritic.embed` / `core_sequence`).

`sequence` has its own backward pass (`jax.custom_vjp`): the reverse loop does one matmul per step (the hidden
state's gradient, [B, G * H] x [G * H, H]); the hidden kernel's gradient, which autodiff of `lax.scan` would
accumulate inside the loop (a matmul and an add of [H, G * H] per step), is one matmul over all T * B steps after
it. The forward loop keeps the gate activations, so the backward loop evaluates no sigmoid or tanh. The gates are
passed as separate `[.., H]` arrays, not slices of one `[.., G * H]` array: XLA:CPU runs the gate arithmetic several
times slower when it slices the minor dimension of a loop's dynamic slice.

The cells compute the same functions as flax's `nn.GRUCell` and `nn.OptimizedLSTMCell` (the same gate equations,
biases and order of operations; the matmuls' sums may round differently) and keep flax's parameter tree: the same
names, shapes and initializers (`ir`, `iz`, `in`, `hr`, `hz`, `hn` for the GRU, `ii`, `if`, `ig`, `io`, `hi`, `hf`,
`hg`, `ho` for the LSTM, each with `kernel` and flax's biases), so checkpoints of runs trained with flax's cells
load. The per-gate kernels are concatenated once per call, outside the time loop.

GRU (flax's `GRUCell`), with x the input and h the previous hidden state:

    r = sigmoid(W_ir x + b_ir + W_hr h)
    z = sigmoid(W_iz x + b_iz + W_hz h)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

LSTM (flax's `OptimizedLSTMCell`, carry (c, h)): each gate's pre-activation is (W_h h + b_h) + W_i x, then
c' = sigmoid(f) * c + sigmoid(i) * tanh(g) and h' = sigmoid(o) * tanh(c').
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_GRU_GATES = "rzn"
_LSTM_GATES = "ifgo"


class GateParams(nn.Module):
    """The parameters of one gate's `flax.linen.Dense` (`kernel` [in, features], then `bias` [features] when
    `use_bias`), without applying them: the same names and initialization as the Dense it replaces."""

    features: int
    use_bias: bool
    kernel_init: Callable
    bias_init: Callable

    @nn.compact
    def __call__(self, inputs: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        kernel = self.param("kernel", self.kernel_init, (inputs.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32) if self.use_bias else None
        return kernel, bias


def _fused(gates: Sequence[GateParams], inputs: jax.Array) -> tuple[jax.Array, list]:
    """The gates' kernels concatenated `[in, G * H]`, and their biases (None for a gate without one)."""
    params = [gate(inputs) for gate in gates]
    return jnp.concatenate([k for k, _ in params], axis=-1), [b for _, b in params]


def _split(y: jax.Array, gates: int) -> tuple[jax.Array, ...]:
    return tuple(jnp.split(y, gates, axis=-1))


def _reset(x: jax.Array, first: jax.Array) -> jax.Array:
    """x `[B, H]` with the rows of `first` `[B]` zeroed."""
    return jnp.where(first[:, None], 0.0, x)


def _step_inputs(x0: jax.Array, xs: jax.Array, first: jax.Array) -> jax.Array:
    """The state each step of a sequence started from, after its reset: `[T, B, H]` from the initial state `[B, H]`,
    the states after each step `[T, B, H]` and the reset mask `[T, B]`."""
    return jnp.where(first[..., None], 0.0, jnp.concatenate([x0[None], xs[:-1]]))


def _kernel_grad(h_in: jax.Array, d_gates: Sequence[jax.Array]) -> jax.Array:
    """sum over steps t and rows b of h_in[t, b]^T dG[t, b]: the hidden kernel's gradient `[H, G * H]`, one matmul."""
    n_h = h_in.shape[-1]
    d = jnp.concatenate([g.reshape(-1, n_h) for g in d_gates], axis=-1)
    return jnp.dot(h_in.reshape(-1, n_h).T, d)


# ------------------------------------------------------------------ GRU


def gru_step(kernel: jax.Array, bias_n: jax.Array, h: jax.Array, gx: Sequence[jax.Array]):
    """One GRU step: h `[B, H]`, gx = (r, z, n) input projections with their biases `[B, H]`, kernel `[H, 3H]`
    (hr | hz | hn), bias_n `[H]` -> (h', (r, z, n, W_hn h + b_hn))."""
    n_h = h.shape[-1]
    gh = jnp.dot(h, kernel)
    gx_r, gx_z, gx_n = gx
    r = nn.sigmoid(gx_r + gh[..., :n_h])
    z = nn.sigmoid(gx_z + gh[..., n_h : 2 * n_h])
    hn = gh[..., 2 * n_h :] + bias_n
    n = jnp.tanh(gx_n + r * hn)
    return (1.0 - z) * n + z * h, (r, z, n, hn)


@jax.custom_vjp
def gru_sequence(kernel: jax.Array, bias_n: jax.Array, gx, h0: jax.Array, first: jax.Array) -> jax.Array:
    """`gru_step` over T steps from h0 `[B, H]` (gx leaves `[T, B, H]`), h reset to zeros where first `[T, B]`:
    the hidden states `[T, B, H]`. Its backward pass is `_gru_backward`."""
    return _gru_forward(kernel, bias_n, gx, h0, first)[0]


def _gru_forward(kernel, bias_n, gx, h0, first):
    def step(h, xs):
        gx_t, first_t = xs
        h, (r, z, n, hn) = gru_step(kernel, bias_n, _reset(h, first_t), gx_t)
        return h, (h, r, z, n, hn)

    _, (hs, r, z, n, hn) = jax.lax.scan(step, h0, (tuple(gx), first))
    return hs, (kernel, h0, first, hs, r, z, n, hn)


def _gru_backward(res, d_hs):
    kernel, h0, first, hs, r, z, n, hn = res
    h_in = _step_inputs(h0, hs, first)
    kernel_t = kernel.T

    def step(dh_next, xs):
        dh_out, h_t, r_t, z_t, n_t, hn_t, first_t = xs
        dh = dh_out + dh_next
        d_n = dh * (1.0 - z_t) * (1.0 - n_t * n_t)  # n's pre-activation (= the input projection's n part)
        d_z = dh * (h_t - n_t) * z_t * (1.0 - z_t)
        d_hn = d_n * r_t
        d_r = d_n * hn_t * r_t * (1.0 - r_t)
        dh_in = dh * z_t + jnp.dot(jnp.concatenate([d_r, d_z, d_hn], axis=-1), kernel_t)
        return _reset(dh_in, first_t), (d_r, d_z, d_n, d_hn)

    xs = (d_hs, h_in, r, z, n, hn, first)
    dh0, (d_r, d_z, d_n, d_hn) = jax.lax.scan(step, jnp.zeros_like(h0), xs, reverse=True)
    return _kernel_grad(h_in, (d_r, d_z, d_hn)), d_hn.sum(axis=(0, 1)), (d_r, d_z, d_n), dh0, None


gru_sequence.defvjp(_gru_forward, _gru_backward)


class FusedGRUCell(nn.Module):
    """flax's `nn.GRUCell` (same function, parameters and initializers) with its six matmuls fused into two, the input
    one (`project`) apart from the time step, and `sequence` (module doc). Carry: h `[B, H]`."""

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()
    recurrent_kernel_init: Callable = nn.initializers.orthogonal()
    bias_init: Callable = nn.initializers.zeros_init()

    def setup(self):
        h = self.features
        self.input_gates = [GateParams(h, True, self.kernel_init, self.bias_init, name=f"i{g}") for g in _GRU_GATES]
        # Only the candidate's hidden projection has a bias (it is multiplied by r before the sum).
        self.hidden_gates = [
            GateParams(h, g == "n", self.recurrent_kernel_init, self.bias_init, name=f"h{g}") for g in _GRU_GATES
        ]

    def project(self, x: jax.Array) -> tuple[jax.Array, ...]:
        """x `[..., in]` -> the (r, z, n) input projections with their biases, each `[..., H]`."""
        kernel, biases = _fused(self.input_gates, x)
        return _split(jnp.dot(x, kernel) + jnp.concatenate(biases), 3)

    def __call__(self, h: jax.Array, gx: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
        """One step from h `[B, H]` and `project(x)` -> (h', h')."""
        kernel, (_, _, bias_n) = _fused(self.hidden_gates, h)
        h, _ = gru_step(kernel, bias_n, h, gx)
        return h, h

    def sequence(self, h0: jax.Array, gx: Sequence[jax.Array], first: jax.Array) -> jax.Array:
        """T steps from h0 `[B, H]` (gx = `project(x)` of `[T, B, in]`), h reset to zeros where first `[T, B]`."""
        kernel, (_, _, bias_n) = _fused(self.hidden_gates, h0)
        return gru_sequence(kernel, bias_n, tuple(gx), h0, first)


# ------------------------------------------------------------------ LSTM


def lstm_step(kernel: jax.Array, bias: jax.Array, carry, gx: Sequence[jax.Array]):
    """One LSTM step: carry (c, h) `[B, H]`, gx = (i, f, g, o) input projections `[B, H]`, kernel `[H, 4H]`, bias
    `[4H]` -> ((c', h'), (i, f, g, o activations, tanh(c')))."""
    c, h = carry
    n_h = h.shape[-1]
    gh = jnp.dot(h, kernel) + bias
    gx_i, gx_f, gx_g, gx_o = gx
    i = nn.sigmoid(gh[..., :n_h] + gx_i)
    f = nn.sigmoid(gh[..., n_h : 2 * n_h] + gx_f)
    g = jnp.tanh(gh[..., 2 * n_h : 3 * n_h] + gx_g)
    o = nn.sigmoid(gh[..., 3 * n_h :] + gx_o)
    new_c = f * c + i * g
    tanh_c = jnp.tanh(new_c)
    return (new_c, o * tanh_c), (i, f, g, o, tanh_c)


@jax.custom_vjp
def lstm_sequence(kernel: jax.Array, bias: jax.Array, gx, carry0, first: jax.Array) -> jax.Array:
    """`lstm_step` over T steps from carry0 = (c0, h0) `[B, H]` (gx leaves `[T, B, H]`), the carry reset to zeros
    where first `[T, B]`: the hidden states h `[T, B, H]`. Its backward pass is `_lstm_backward`."""
    return _lstm_forward(kernel, bias, gx, carry0, first)[0]


def _lstm_forward(kernel, bias, gx, carry0, first):
    def step(carry, xs):
        gx_t, first_t = xs
        c, h = carry
        (c, h), acts = lstm_step(kernel, bias, (_reset(c, first_t), _reset(h, first_t)), gx_t)
        return (c, h), (c, h, acts)

    _, (cs, hs, acts) = jax.lax.scan(step, carry0, (tuple(gx), first))
    return hs, (kernel, carry0, first, cs, hs, acts)


def _lstm_backward(res, d_hs):
    kernel, (c0, h0), first, cs, hs, acts = res
    c_in, h_in = _step_inputs(c0, cs, first), _step_inputs(h0, hs, first)
    kernel_t = kernel.T

    def step(carry, xs):
        dc_next, dh_next = carry
        dh_out, c_t, (i, f, g, o, tanh_c), first_t = xs
        dh = dh_out + dh_next
        dc = dc_next + dh * o * (1.0 - tanh_c * tanh_c)
        d_i, d_f = dc * g * i * (1.0 - i), dc * c_t * f * (1.0 - f)
        d_gates = (d_i, d_f, dc * i * (1.0 - g * g), dh * tanh_c * o * (1.0 - o))
        dh_in = jnp.dot(jnp.concatenate(d_gates, axis=-1), kernel_t)
        return (_reset(dc * f, first_t), _reset(dh_in, first_t)), d_gates

    zeros = jnp.zeros_like(h0)
    d_carry0, d_gates = jax.lax.scan(step, (zeros, zeros), (d_hs, c_in, acts, first), reverse=True)
    d_bias = jnp.concatenate([d.sum(axis=(0, 1)) for d in d_gates])
    return _kernel_grad(h_in, d_gates), d_bias, d_gates, d_carry0, None


lstm_sequence.defvjp(_lstm_forward, _lstm_backward)


class FusedLSTMCell(nn.Module):
    """flax's `nn.OptimizedLSTMCell` (same function, parameters and initializers) with the input matmul (`project`)
    apart from the time step, and `sequence` (module doc). Carry: (c, h), each `[B, H]`."""

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()
    recurrent_kernel_init: Callable = nn.initializers.orthogonal()
    bias_init: Callable = nn.initializers.zeros_init()

    def setup(self):
        h = self.features
        self.input_gates = [GateParams(h, False, self.kernel_init, self.bias_init, name=f"i{g}") for g in _LSTM_GATES]
        self.hidden_gates = [
            GateParams(h, True, self.recurrent_kernel_init, self.bias_init, name=f"h{g}") for g in _LSTM_GATES
        ]

    def project(self, x: jax.Array) -> tuple[jax.Array, ...]:
        """x `[..., in]` -> the (i, f, g, o) input projections, each `[..., H]` (no bias: flax's)."""
        kernel, _ = _fused(self.input_gates, x)
        return _split(jnp.dot(x, kernel), 4)

    def __call__(self, carry: tuple[jax.Array, jax.Array], gx: Sequence[jax.Array]):
        """One step from (c, h) and `project(x)` -> ((c', h'), h')."""
        kernel, biases = _fused(self.hidden_gates, carry[1])
        carry, _ = lstm_step(kernel, jnp.concatenate(biases), carry, gx)
        return carry, carry[1]

    def sequence(self, carry0, gx: Sequence[jax.Array], first: jax.Array) -> jax.Array:
        """T steps from (c0, h0) (gx = `project(x)` of `[T, B, in]`), the carry reset to zeros where first `[T, B]`."""
        kernel, biases = _fused(self.hidden_gates, carry0[1])
        return lstm_sequence(kernel, jnp.concatenate(biases), tuple(gx), tuple(carry0), first)
