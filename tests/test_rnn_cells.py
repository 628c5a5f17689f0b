"""The fused GRU and LSTM cells (purejaxppo.core.rnn_cells) against flax's nn.GRUCell and nn.OptimizedLSTMCell:
the same parameter tree and initial values, the same outputs and gradients step by step and over sequences with
resets (their hand-written backward pass against autodiff of a scan of flax's cell), under vmap too; the default
recurrent network against the same network built on flax's cells (a checkpoint of either loads into the other);
and a short masked-CartPole training with each, which ends at the same parameters within float tolerance."""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.core.agent import RecurrentAgent
from purejaxppo.core.network_layers import orthogonal
from purejaxppo.core.networks import MLP, RecurrentActorCritic, Torso
from purejaxppo.core.rnn_cells import FusedGRUCell, FusedLSTMCell

H, IN, B, T = 8, 5, 3, 7
TOL = dict(rtol=1e-5, atol=1e-5)
CELLS = {"gru": (FusedGRUCell, nn.GRUCell), "lstm": (FusedLSTMCell, nn.OptimizedLSTMCell)}


def _carry(kind, key, batch=B):
    """A nonzero carry [batch, H] (a (c, h) pair for the LSTM)."""
    k1, k2 = jax.random.split(key)
    h = jax.random.normal(k1, (batch, H))
    return h if kind == "gru" else (jax.random.normal(k2, (batch, H)), h)


def _cells(kind):
    fused, flax_cell = CELLS[kind]
    return fused(H, recurrent_kernel_init=orthogonal()), flax_cell(H, recurrent_kernel_init=orthogonal())


def _fused_step(cell):
    return lambda p, carry, x: cell.apply(p, carry, x, method=lambda m, c, x: m(c, m.project(x)))


def _reset(carry, first):
    return jax.tree.map(lambda c: jnp.where(first[:, None], 0.0, c), carry)


def _flax_sequence(flax_cell, p, carry0, xs, first):
    """flax's cell scanned over xs [T, B, IN], the carry zeroed where first [T, B]: h [T, B, H] (autodiff)."""

    def body(carry, inp):
        x, f = inp
        return flax_cell.apply(p, _reset(carry, f), x)

    return jax.lax.scan(body, carry0, (xs, first))[1]


def _fused_sequence(cell, p, carry0, xs, first):
    return cell.apply(p, carry0, xs, first, method=lambda m, c, x, f: m.sequence(c, m.project(x), f))


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_parameters_and_initial_values_are_flax_s(kind):
    """Same names, shapes and values from the same key: flax's cell initializes its Dense layers by path."""
    fused, flax_cell = _cells(kind)
    carry, x = _carry(kind, jax.random.key(0)), jnp.ones((B, IN))
    p_fused = fused.init(jax.random.key(1), carry, x, method=lambda m, c, x: m(c, m.project(x)))
    p_flax = flax_cell.init(jax.random.key(1), carry, x)
    assert jax.tree.structure(p_fused) == jax.tree.structure(p_flax)
    chex.assert_trees_all_equal(p_fused, p_flax)
    names = set(p_flax["params"])
    assert names == ({"ir", "iz", "in", "hr", "hz", "hn"} if kind == "gru" else
                     {"ii", "if", "ig", "io", "hi", "hf", "hg", "ho"})


def _random_params(flax_cell, kind, key):
    """flax's parameters with every leaf (biases too, zero at init) drawn at random, so every term is tested."""
    p = flax_cell.init(key, _carry(kind, key), jnp.ones((B, IN)))
    leaves, tree = jax.tree.flatten(p)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    return jax.tree.unflatten(tree, [0.5 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)])


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_one_step_equals_flax_s_cell_with_gradients(kind):
    fused, flax_cell = _cells(kind)
    p = _random_params(flax_cell, kind, jax.random.key(2))
    carry, x = _carry(kind, jax.random.key(3)), jax.random.normal(jax.random.key(4), (B, IN))
    w = jax.random.normal(jax.random.key(5), (B, H))
    step = _fused_step(fused)
    chex.assert_trees_all_close(step(p, carry, x), flax_cell.apply(p, carry, x), **TOL)

    def loss(apply):  # through the new carry and the output
        return lambda p, c, x: jnp.sum(jnp.tanh(apply(p, c, x)[1]) * w) + sum(
            jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(apply(p, c, x)[0]))

    got = jax.grad(loss(step), argnums=(0, 1, 2))(p, carry, x)
    want = jax.grad(loss(flax_cell.apply), argnums=(0, 1, 2))(p, carry, x)
    chex.assert_trees_all_close(got, want, **TOL)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_sequence_with_resets_equals_scanned_flax_cell_with_gradients(kind):
    """`sequence` (its own backward pass) against autodiff of flax's cell in a lax.scan: outputs and the gradients
    of the parameters, the inputs and the initial carry, with resets at t = 0, mid-sequence and at the last step."""
    fused, flax_cell = _cells(kind)
    p = _random_params(flax_cell, kind, jax.random.key(6))
    carry0 = _carry(kind, jax.random.key(7))
    xs = jax.random.normal(jax.random.key(8), (T, B, IN))
    first = jnp.zeros((T, B), bool).at[0, 0].set(True).at[3, 1].set(True).at[4, :].set(True).at[T - 1, 2].set(True)
    w = jax.random.normal(jax.random.key(9), (T, B, H))
    got = _fused_sequence(fused, p, carry0, xs, first)
    want = _flax_sequence(flax_cell, p, carry0, xs, first)
    chex.assert_trees_all_close(got, want, **TOL)
    fresh = _flax_sequence(flax_cell, p, jax.tree.map(jnp.zeros_like, carry0), xs[4:], first[4:])
    chex.assert_trees_all_close(got[4:], fresh, **TOL)  # a reset forgets everything before it

    def loss(seq):
        return lambda p, c, x: jnp.sum(jnp.tanh(seq(p, c, x, first)) * w)

    g_fused = jax.grad(loss(lambda *a: _fused_sequence(fused, *a)), argnums=(0, 1, 2))(p, carry0, xs)
    g_flax = jax.grad(loss(lambda *a: _flax_sequence(flax_cell, *a)), argnums=(0, 1, 2))(p, carry0, xs)
    chex.assert_trees_all_close(g_fused, g_flax, **TOL)
    # Row 0 was reset at t = 0: the initial carry cannot reach the loss through it.
    assert all(np.all(np.asarray(leaf[0]) == 0.0) for leaf in jax.tree.leaves(g_fused[1]))

    # vmapped over two parameter sets (seeds), as training runs it
    ps = jax.tree.map(lambda a, b: jnp.stack([a, b]), p, _random_params(flax_cell, kind, jax.random.key(10)))
    g_v = jax.vmap(jax.grad(loss(lambda *a: _fused_sequence(fused, *a))), in_axes=(0, None, None))(ps, carry0, xs)
    g_r = jax.vmap(jax.grad(loss(lambda *a: _flax_sequence(flax_cell, *a))), in_axes=(0, None, None))(ps, carry0, xs)
    chex.assert_trees_all_close(g_v, g_r, **TOL)


class FlaxCellsActorCritic(RecurrentActorCritic):
    """RecurrentActorCritic as it was built before the fused cells: flax's GRUCell / OptimizedLSTMCell stepped by
    RecurrentAgent's own scan (no core_sequence), the torso's features fed to the cell step by step."""

    core_sequence = None

    def setup(self):
        cores = 1 if self.shared_core else 2
        cell = nn.GRUCell if self.cell == "gru" else nn.OptimizedLSTMCell
        self.torsos = [Torso(self.torso_hidden, self.activation, self.cnn_channels, self.conv_impl)
                       for _ in range(cores)]
        self.cells = [cell(self.rnn_size, recurrent_kernel_init=orthogonal()) for _ in range(cores)]
        self.actor = MLP(self.actor_hidden, self.action_spec.size, 0.01, self.activation)
        self.critic = MLP(self.critic_hidden, 1, 1.0, self.activation)

    def embed(self, obs):
        return tuple(torso(obs) for torso in self.torsos)


def _flax_cells_twin(network: RecurrentActorCritic) -> FlaxCellsActorCritic:
    fields = {f: getattr(network, f) for f in network.__dataclass_fields__ if f not in ("parent", "name")}
    return FlaxCellsActorCritic(**fields)


TINY = dict(env="masked/CartPole-v1", num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2, rnn_size=16,
            rnn_torso=(16,), actor_hidden=(16,), critic_hidden=(16,))


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("shared", [True, False])
def test_network_equals_the_network_on_flax_cells(kind, shared):
    """The default recurrent network and its twin on flax's cells: identical parameters from init (so checkpoints
    of runs trained before load), the same acting steps, and the same sequence outputs and gradients."""
    train = make_train(PPOConfig(network=kind, rnn_shared_core=shared, **TINY))
    agent, twin = train.agent, RecurrentAgent(_flax_cells_twin(train.network))
    obs = jax.random.normal(jax.random.key(0), (T, B, 2))
    params = agent.init(jax.random.key(1), obs[0])
    chex.assert_trees_all_equal(params, twin.init(jax.random.key(1), obs[0]))
    carry0 = jax.tree.map(lambda c: c + 0.3, agent.initial_carry(B))
    first = jnp.zeros((T, B), bool).at[2, 1].set(True).at[5, :].set(True)
    carry = twin_carry = carry0
    for t in range(T):
        carry, dist, value = agent.step(params, carry, obs[t], first[t])
        twin_carry, twin_dist, twin_value = twin.step(params, twin_carry, obs[t], first[t])
        chex.assert_trees_all_close((carry, dist.logits, value), (twin_carry, twin_dist.logits, twin_value), **TOL)

    def loss(a):
        def f(p):
            dist, value = a.sequence(p, carry0, obs, first)
            return jnp.sum(jnp.tanh(value)) + jnp.sum(dist.log_prob(jnp.zeros((T, B), jnp.int32)))
        return f

    chex.assert_trees_all_close(agent.sequence(params, carry0, obs, first), twin.sequence(params, carry0, obs, first),
                                **TOL)
    chex.assert_trees_all_close(jax.grad(loss(agent))(params), jax.grad(loss(twin))(params), **TOL)


def test_training_equals_training_on_flax_cells():
    """Three updates of masked CartPole with a GRU, 2 seeds: the fused cells and flax's end at the same parameters
    and metrics within float tolerance (the changes are exact up to the rounding of the matmuls' sums)."""
    cfg = PPOConfig(**{**TINY, "num_envs": 8, "num_minibatches": 4}, network="gru", total_timesteps=8 * 16 * 3,
                    normalize_obs=True)
    train = make_train(cfg)
    assert isinstance(train.network, RecurrentActorCritic)
    twin = make_train(cfg, network_factory=lambda o, a: _flax_cells_twin(train.network))
    keys = jax.random.split(jax.random.key(0), 2)
    got, want = jax.jit(jax.vmap(train))(keys), jax.jit(jax.vmap(twin))(keys)
    chex.assert_trees_all_close(got.state.params, want.state.params, rtol=1e-4, atol=1e-6)
    for name in ("policy_loss", "value_loss", "entropy", "kl", "grad_norm", "episode_return"):
        chex.assert_trees_all_close(got.metrics[name], want.metrics[name], rtol=1e-4, atol=1e-6)
