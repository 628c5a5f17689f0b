"""Environments by name, networks (MLP / CNN / user factory), tanh-squashed Gaussian."""

import math

import flax.linen as nn
import gymnax
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.core.distributions import Categorical, TanhGaussian
from purejaxppo.core.networks import ActionSpec, ConvActorCritic, make_network, network_options

NEEDS_DOWNLOAD = {"MNISTBandit-bsuite"}  # fetches MNIST over the network when made
# network="mlp": every env's dynamics and spaces are what this checks; the CNN that 'auto' picks for MinAtar costs
# ~15 s of compile per env and is tested on its own (test_cnn_chosen_for_minatar..., tests/test_golden.py breakout_cnn).
TINY = dict(num_envs=2, num_steps=8, num_minibatches=1, update_epochs=1, total_timesteps=2 * 8 * 2, network="mlp")


@pytest.mark.parametrize("name", [n for n in gymnax.registered_envs if n not in NEEDS_DOWNLOAD])
def test_every_gymnax_env_trains(name):
    train = make_train(PPOConfig(env=name, **TINY))
    out = jax.jit(train)(jax.random.key(0))
    for k, v in out.metrics.items():
        if k != "eval_return":
            assert np.all(np.isfinite(np.asarray(v))), (name, k)
    assert int(out.state.update_step) == 2


def test_cnn_chosen_for_minatar_and_output_shapes():
    cfg = PPOConfig(env="Breakout-MinAtar", actor_hidden=(32,), critic_hidden=(32,), cnn_channels=(8, 4))
    env, params = gymnax.make("Breakout-MinAtar")
    obs_shape = env.observation_space(params).shape
    assert len(obs_shape) == 3 and obs_shape[:2] == (10, 10)
    spec = ActionSpec(True, env.num_actions, ())
    for shared in (False, True):
        net = make_network(obs_shape, spec, **network_options(cfg.replace(cnn_shared_torso=shared)))
        assert isinstance(net, ConvActorCritic)
        obs = jnp.zeros((5,) + obs_shape)
        variables = net.init(jax.random.key(0), obs)
        dist, value = net.apply(variables, obs)
        assert dist.logits.shape == (5, env.num_actions) and value.shape == (5,)
        names = set(variables["params"])
        assert names == ({"torso", "actor", "critic"} if shared else {"actor_torso", "critic_torso", "actor", "critic"})
        # Conv kernels: 3x3, channels as configured.
        torso = variables["params"]["torso" if shared else "actor_torso"]
        assert torso["Conv_0"]["kernel"].shape == (3, 3, obs_shape[2], 8)
        assert torso["Conv_1"]["kernel"].shape == (3, 3, 8, 4)
    with pytest.raises(ValueError, match="PPOConfig.network"):
        make_network((4,), spec, **network_options(cfg.replace(network="cnn")))


def test_mlp_depth_width_activation():
    spec = ActionSpec(True, 3, ())
    net = make_network((4,), spec, **network_options(PPOConfig(actor_hidden=(7, 5, 3), critic_hidden=(9,), activation="relu")))
    p = net.init(jax.random.key(0), jnp.zeros((1, 4)))["params"]
    assert [p["actor"][f"Dense_{i}"]["kernel"].shape for i in range(4)] == [(4, 7), (7, 5), (5, 3), (3, 3)]
    assert [p["critic"][f"Dense_{i}"]["kernel"].shape for i in range(2)] == [(4, 9), (9, 1)]
    # Orthogonal init: hidden kernels have orthogonal columns scaled by sqrt(2); actor head by 0.01.
    k = np.asarray(p["actor"]["Dense_1"]["kernel"])
    np.testing.assert_allclose(k.T @ k, 2.0 * np.eye(5), atol=1e-5)
    h = np.asarray(p["actor"]["Dense_3"]["kernel"])
    np.testing.assert_allclose(h.T @ h, 1e-4 * np.eye(3), atol=1e-8)


def test_user_network_factory_output_is_used():
    class Recognizable(nn.Module):
        @nn.compact
        def __call__(self, obs):
            w = self.param("w", nn.initializers.zeros, (obs.shape[-1], 2))
            logits = obs @ w + jnp.array([5.0, -5.0])  # almost always action 0
            return Categorical(logits), jnp.full((obs.shape[0],), 123.0) + jnp.sum(w)

    train = make_train(PPOConfig(**TINY), network_factory=lambda o, a: Recognizable())
    state = train.init(jax.random.key(0))
    dist, value = train.network.apply(state.params, jnp.zeros((3, 4)))
    np.testing.assert_allclose(value, 123.0)
    out = jax.jit(train)(jax.random.key(0))
    assert float(out.metrics["entropy"][0]) < 0.01  # the factory's policy, not the default one


def test_tanh_gaussian_log_prob_change_of_variables():
    low, high = (-2.0, 0.0), (2.0, 1.0)
    d = TanhGaussian(jnp.array([0.3, -0.5]), jnp.array([-0.2, 0.4]), low, high)
    u = jnp.array([0.7, -1.1])
    a = d.squash(u)
    assert np.all(np.asarray(a) > np.array(low)) and np.all(np.asarray(a) < np.array(high))
    # Numerical Jacobian of the squash (diagonal), then p_A(a) = p_U(u) / |det J|.
    jac = jax.jacfwd(d.squash)(u)
    np.testing.assert_allclose(jac - np.diag(np.diag(jac)), 0.0, atol=1e-7)
    expected = float(d.base.log_prob(u)) - float(np.sum(np.log(np.diag(jac))))
    assert float(d.log_prob(u)) == pytest.approx(expected, rel=1e-5)
    # 1-D: the density of a integrates to 1 over the box, and the entropy matches numeric integration.
    d1 = TanhGaussian(jnp.array([0.3]), jnp.array([-0.2]), (-2.0,), (2.0,))
    a_grid = np.linspace(-2 + 1e-6, 2 - 1e-6, 200001)
    u_grid = np.arctanh(a_grid / 2.0).astype(np.float32)
    p = np.exp(np.asarray(jax.vmap(lambda x: d1.log_prob(x[None]))(jnp.asarray(u_grid))))
    assert np.trapezoid(p, a_grid) == pytest.approx(1.0, abs=1e-4)
    ent = -np.trapezoid(p * np.log(np.maximum(p, 1e-30)), a_grid)
    assert float(d1.entropy()) == pytest.approx(ent, abs=1e-3)
    # KL of the squashed distributions is the KL of the Gaussians.
    d2 = TanhGaussian(jnp.array([-0.1]), jnp.array([0.1]), (-2.0,), (2.0,))
    assert float(d1.kl(d2)) == pytest.approx(float(d1.base.kl(d2.base)))
    assert math.isfinite(float(d1.log_prob(jnp.array([30.0]))))  # stable far in the tails


def test_tanh_policy_trains_and_env_actions_stay_in_box():
    cfg = PPOConfig(env="Pendulum-v1", action_handling="tanh", num_envs=4, num_steps=32, num_minibatches=2,
                    update_epochs=2, total_timesteps=4 * 32 * 3, init_log_std=2.0)
    train = make_train(cfg)
    out = jax.jit(train)(jax.random.key(0))
    assert np.all(np.isfinite(np.asarray(out.metrics["policy_loss"])))
    u = jnp.linspace(-50, 50, 101)[:, None]
    a = train.to_env_action(u)
    assert float(a.min()) >= -2.0 and float(a.max()) <= 2.0
    # Evaluation / load_policy act through the same transform: deterministic action = squash(mean).
    from purejaxppo.core.agent import ActingState, make_policy

    policy = make_policy(train.agent, train.to_env_action)
    obs = jnp.array([[1.0, 0.0, 0.5], [0.0, 1.0, -3.0]])
    dist, _ = train.network.apply(out.state.params, obs)
    _, action = policy(ActingState(out.state.params, None), (), obs, None, None, True, 10.0)
    np.testing.assert_allclose(action, dist.squash(dist.mean), rtol=1e-6)
    with pytest.raises(ValueError, match="action_handling"):
        PPOConfig(action_handling="squash")


def test_user_distribution_with_only_sample_key_works():
    """A user's distribution without `sample_from_noise` is sampled per step with a key (the fallback path)."""
    from flax import struct

    @struct.dataclass
    class KeyOnlyCategorical:
        logits: jax.Array

        def sample(self, key):
            return jax.random.categorical(key, self.logits).astype(jnp.int32)

        def log_prob(self, a):
            return Categorical(self.logits).log_prob(a)

        def entropy(self):
            return Categorical(self.logits).entropy()

        def kl(self, other):
            return Categorical(self.logits).kl(Categorical(other.logits))

    class Net(nn.Module):
        @nn.compact
        def __call__(self, obs):
            logits = nn.Dense(2)(obs)
            return KeyOnlyCategorical(logits), nn.Dense(1)(obs)[:, 0]

    train = make_train(PPOConfig(**dict(TINY, total_timesteps=2 * 8 * 16)), network_factory=lambda o, a: Net())
    out = jax.jit(train)(jax.random.key(0))
    assert np.all(np.isfinite(np.asarray(out.metrics["policy_loss"])))
    assert float(out.metrics["episodes_completed"].sum()) > 0


def test_sample_from_noise_matches_the_distribution():
    """Gumbel-max and mean + std * noise sample the right distributions (what the rollout uses)."""
    from purejaxppo.core.distributions import DiagGaussian

    logits = jnp.log(jnp.array([0.1, 0.6, 0.3]))
    d = Categorical(jnp.broadcast_to(logits, (50_000, 3)))
    a = np.asarray(d.sample_from_noise(Categorical.noise(jax.random.key(1), d.noise_shape)))
    np.testing.assert_allclose(np.bincount(a, minlength=3) / a.size, [0.1, 0.6, 0.3], atol=0.01)
    g = DiagGaussian(jnp.full((50_000, 1), 2.0), jnp.full((50_000, 1), np.log(0.5)))
    x = np.asarray(g.sample_from_noise(DiagGaussian.noise(jax.random.key(2), g.noise_shape)))
    assert abs(x.mean() - 2.0) < 0.01 and abs(x.std() - 0.5) < 0.01


def _qr_operand_shapes(jaxpr) -> list[tuple[int, ...]]:
    """Shape of the matrix operand of every QR-like primitive in a jaxpr, sub-jaxprs (scan, cond, jit, custom
    rules) included."""
    shapes = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("qr", "geqrf", "geqp3", "householder_product"):
            shapes.append(tuple(eqn.invars[0].aval.shape))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            shapes += _qr_operand_shapes(sub)
    return shapes


def test_orthogonal_init_is_flax_s_and_vmapped_training_never_batches_a_qr():
    """networks.orthogonal draws flax's numbers (jit, nested vmap), but under vmap one matrix at a time:
    jaxlib 0.10.2's batched CPU QR splits its batch over XLA's intra-op pool and blocks on it, which deadlocks
    a 2-core machine when two run at once (a vmapped Craftax-sized init hung 2 times in 3). So no QR in a
    vmapped train function -- MLP, CNN, GRU -- may have a batch dimension."""
    from purejaxppo.core.networks import orthogonal

    keys = jax.random.split(jax.random.key(3), 6).reshape(2, 3)
    for shape, scale in (((7, 5), 1.0), ((5, 7), 0.01), ((3, 3, 4, 8), math.sqrt(2))):
        ours, theirs = orthogonal(scale), nn.initializers.orthogonal(scale)
        for lift, arg in ((jax.jit, keys[0, 0]), (lambda f: jax.vmap(jax.vmap(f)), keys)):
            np.testing.assert_array_equal(lift(lambda k: ours(k, shape))(arg), lift(lambda k: theirs(k, shape))(arg))
    flax_shapes = _qr_operand_shapes(jax.make_jaxpr(jax.vmap(lambda k: nn.initializers.orthogonal()(k, (4, 4))))(
        keys[0]).jaxpr)
    assert flax_shapes and all(len(s) == 3 for s in flax_shapes)  # the check below can see a batched QR

    for extra in (dict(env="CartPole-v1", network="mlp"), dict(env="Breakout-MinAtar", network="cnn"),
                  dict(env="CartPole-v1", network="gru", rnn_size=8)):
        train = make_train(PPOConfig(**{**TINY, **extra}))
        shapes = _qr_operand_shapes(jax.make_jaxpr(jax.vmap(train))(keys[0]).jaxpr)
        assert shapes and all(len(s) == 2 for s in shapes), (extra, shapes)
