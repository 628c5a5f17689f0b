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


def _init_apply(net, key, obs):
    """(variables, net.apply(variables, obs)) of net.init(key, obs), in one jitted program: eager flax runs (and
    compiles) every op of the init and the forward pass on its own, seconds per network on 2 cores."""

    @jax.jit
    def f(key, obs):
        variables = net.init(key, obs)
        return variables, net.apply(variables, obs)

    return f(key, obs)


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
        # shapes and names only: traced, nothing compiled or run
        variables, (dist, value) = jax.eval_shape(lambda k, o: _init_apply(net, k, o), jax.random.key(0), obs)
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


ATARI = jax.ShapeDtypeStruct((4, 84, 84), jnp.uint8)  # EnvPool Atari: 4 stacked grayscale frames, channels first
NATURE_TORSO_PARAMS = (4 * 8 * 8 * 32 + 32) + (32 * 4 * 4 * 64 + 64) + (64 * 3 * 3 * 64 + 64) + (3136 * 512 + 512)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def nature_variables():
    """NatureActorCritic(6 discrete actions, channels first).init from key 0, built once for the Nature tests and
    jitted (eagerly, flax compiles every op of the init on its own and runs the 3136 x 512 orthogonal QR op by op;
    the parameters depend on the key and the shapes only, not on the frames' batch or values)."""
    from purejaxppo.core.networks import NatureActorCritic

    net = NatureActorCritic(ActionSpec(True, 6, ()), channels_first=True)
    return jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 4, 84, 84), jnp.uint8))


def test_nature_cnn_chosen_for_atari_frames_shapes_and_parameter_count(nature_variables):
    from purejaxppo.core.networks import ActorCritic, NatureActorCritic

    spec = ActionSpec(True, 6, ())
    net = make_network(ATARI, spec, **network_options(PPOConfig()))  # network='auto'
    assert isinstance(net, NatureActorCritic) and net.channels_first
    assert make_network(ATARI, spec, **network_options(PPOConfig(network="nature_cnn"))) == net
    assert net == NatureActorCritic(spec, channels_first=True)  # the network nature_variables initialized
    obs = jnp.zeros((5, 4, 84, 84), jnp.uint8)
    variables = nature_variables
    dist, value = jax.eval_shape(net.apply, variables, obs)  # output shapes: traced, nothing compiled or run
    assert dist.logits.shape == (5, 6) and value.shape == (5,)
    p = variables["params"]
    assert set(p) == {"torso", "actor", "critic"}  # one torso shared by both heads
    t = p["torso"]
    assert [t[f"Conv_{i}"]["kernel"].shape for i in range(3)] == [(8, 8, 4, 32), (4, 4, 32, 64), (3, 3, 64, 64)]
    assert t["Dense_0"]["kernel"].shape == (3136, 512)
    assert p["actor"]["kernel"].shape == (512, 6) and p["critic"]["kernel"].shape == (512, 1)
    assert NATURE_TORSO_PARAMS == 1_684_128 and _count(t) == NATURE_TORSO_PARAMS
    assert _count(p) == NATURE_TORSO_PARAMS + (512 * 6 + 6) + (512 + 1)
    # Orthogonal init: actor head gain 0.01, value head gain 1, biases zero.
    a = np.asarray(p["actor"]["kernel"])
    np.testing.assert_allclose(a.T @ a, 1e-4 * np.eye(6), atol=1e-8)
    assert not np.any(np.asarray(t["Conv_0"]["bias"]))
    # 'auto' keeps today's choices for everything else: MinAtar's float [10, 10, C] and float or channels-last
    # frames get the 3x3 CNN; vectors the MLP.
    for other in ((10, 10, 4), jax.ShapeDtypeStruct((4, 84, 84), jnp.float32),
                  jax.ShapeDtypeStruct((84, 84, 4), jnp.uint8), jax.ShapeDtypeStruct((4, 20, 20), jnp.uint8)):
        assert isinstance(make_network(other, spec, **network_options(PPOConfig())), ConvActorCritic), other
    assert isinstance(make_network((8,), spec, **network_options(PPOConfig())), ActorCritic)
    # Explicit nature_cnn: channels-last frames too; errors name the field.
    hwc = make_network(jax.ShapeDtypeStruct((84, 84, 4), jnp.uint8), spec, network="nature_cnn")
    assert isinstance(hwc, NatureActorCritic) and not hwc.channels_first
    for bad in ((4,), jax.ShapeDtypeStruct((4, 20, 20), jnp.uint8), {"a": ATARI}):
        with pytest.raises(ValueError, match="PPOConfig.network: 'nature_cnn'"):
            make_network(bad, spec, network="nature_cnn")


def _manual_nature_nhwc(p, x):
    """The Nature CNN by hand on NHWC float input: lax convolutions, then the dense layer and the two heads."""
    t = p["torso"]
    for i, stride in enumerate((4, 2, 1)):
        conv = t[f"Conv_{i}"]
        x = jax.lax.conv_general_dilated(x, conv["kernel"], (stride, stride), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jax.nn.relu(x + conv["bias"])
    x = jax.nn.relu(x.reshape(x.shape[0], -1) @ t["Dense_0"]["kernel"] + t["Dense_0"]["bias"])
    logits = x @ p["actor"]["kernel"] + p["actor"]["bias"]
    return logits, (x @ p["critic"]["kernel"] + p["critic"]["bias"])[:, 0]


def test_nature_cnn_scales_uint8_by_255_and_reads_channels_first(nature_variables):
    from purejaxppo.core.networks import NatureActorCritic

    spec = ActionSpec(True, 6, ())
    chw = NatureActorCritic(spec, channels_first=True)
    frames = jax.random.randint(jax.random.key(1), (3, 4, 84, 84), 0, 256).astype(jnp.uint8)
    variables = nature_variables
    # The scaling and the transpose happen in NatureCNN before its convolutions, whichever conv_impl: the exact
    # comparisons run on conv_impl='xla' (XLA compiles the default 'patches' Nature forward pass in ~3 s of CPU,
    # lax's in ~0.3 s; patches == lax convolution is tests/test_conv.py's), and the default network is checked
    # against the hand computation.
    xla = NatureActorCritic(spec, channels_first=True, conv_impl="xla")

    @jax.jit  # every forward pass below in one program (eagerly, each op of each pass compiles on its own)
    def forward(variables, frames):
        nhwc = jnp.transpose(frames, (0, 2, 3, 1))
        return dict(
            default=chw.apply(variables, frames),
            uint8=xla.apply(variables, frames),
            # uint8 is divided by 255 inside; a float observation goes in as it is.
            scaled=xla.apply(variables, frames.astype(jnp.float32) / 255.0),
            raw=xla.apply(variables, frames.astype(jnp.float32))[0],
            # Channels first = the same parameters on the NHWC frames: the channels-last network and by hand.
            last=NatureActorCritic(spec, conv_impl="xla").apply(variables, nhwc),
            manual=_manual_nature_nhwc(variables["params"], nhwc.astype(jnp.float32) / 255.0),
        )

    out = forward(variables, frames)
    logits_m, value_m = out["manual"]
    np.testing.assert_allclose(out["default"][0].logits, logits_m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["default"][1], value_m, rtol=1e-5, atol=1e-6)
    dist, value = out["uint8"]
    dist_f, value_f = out["scaled"]
    np.testing.assert_array_equal(dist.logits, dist_f.logits)
    np.testing.assert_array_equal(value, value_f)
    assert not np.allclose(out["raw"].logits, dist.logits)
    dist_l, value_l = out["last"]
    np.testing.assert_array_equal(dist.logits, dist_l.logits)
    np.testing.assert_array_equal(value, value_l)
    np.testing.assert_allclose(dist.logits, logits_m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, value_m, rtol=1e-5, atol=1e-6)
    # Box actions: Gaussian mean from the policy head, a state-independent log_std parameter. 36 x 36 frames (the
    # smallest the three VALID convolutions take: a 64-wide dense input instead of 3136): the heads are what is
    # checked here.
    box = ActionSpec(False, 2, (2,), (-1.0, -1.0), (1.0, 1.0))
    v, (g, _) = _init_apply(NatureActorCritic(box, channels_first=True, init_log_std=-0.5), jax.random.key(0),
                            frames[:, :, :36, :36])
    assert g.mean.shape == (3, 2) and v["params"]["log_std"].shape == (2,)
    assert v["params"]["torso"]["Dense_0"]["kernel"].shape == (64, 512)
    np.testing.assert_array_equal(g.log_std, np.full((3, 2), -0.5, np.float32))


def test_mlp_default_is_the_papers_mujoco_network():
    """PPO paper, MuJoCo: separate 64-64 tanh MLPs for the policy and the value (no shared layers), the policy a
    Gaussian whose log-std is a parameter, not a function of the state. The config's defaults are exactly that."""
    from purejaxppo.core.networks import ActorCritic

    cfg = PPOConfig(env="Pendulum-v1")
    assert (cfg.actor_hidden, cfg.critic_hidden, cfg.activation) == ((64, 64), (64, 64), "tanh")
    spec = ActionSpec(False, 3, (3,), (-1.0,) * 3, (1.0,) * 3)
    for network in ("mlp", "auto"):
        assert isinstance(make_network((11,), spec, **network_options(cfg.replace(network=network))), ActorCritic)
    net = make_network((11,), spec, **network_options(cfg.replace(network="mlp")))
    obs = jax.random.normal(jax.random.key(1), (4, 11))
    p = jax.jit(net.init)(jax.random.key(0), obs)["params"]
    assert set(p) == {"actor", "critic", "log_std"} and p["log_std"].shape == (3,)
    assert [p["actor"][f"Dense_{i}"]["kernel"].shape for i in range(3)] == [(11, 64), (64, 64), (64, 3)]
    assert [p["critic"][f"Dense_{i}"]["kernel"].shape for i in range(3)] == [(11, 64), (64, 64), (64, 1)]

    def mlp(q, x):
        for i in range(2):
            x = jnp.tanh(x @ q[f"Dense_{i}"]["kernel"] + q[f"Dense_{i}"]["bias"])
        return x @ q["Dense_2"]["kernel"] + q["Dense_2"]["bias"]

    @jax.jit  # one program (eagerly, every op of the passes and the gradients compiles on its own)
    def outputs(p, obs):
        return dict(
            net=net.apply({"params": p}, obs),
            by_hand=(mlp(p["actor"], obs), mlp(p["critic"], obs)[:, 0]),
            g_value=jax.grad(lambda q: net.apply({"params": q}, obs)[1].sum())(p),
            g_policy=jax.grad(lambda q: net.apply({"params": q}, obs)[0].log_prob(jnp.ones((4, 3))).sum())(p),
        )

    out = outputs(p, obs)
    dist, value = out["net"]
    np.testing.assert_allclose(dist.mean, out["by_hand"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, out["by_hand"][1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(dist.log_std, jnp.broadcast_to(p["log_std"], (4, 3)))  # the same for every state
    # No shared layers: the value's gradient has no actor part, the policy's none in the critic.
    g_value, g_policy = out["g_value"], out["g_policy"]
    assert not any(np.any(np.asarray(x)) for x in jax.tree.leaves(g_value["actor"]))
    assert not np.any(np.asarray(g_value["log_std"]))
    assert not any(np.any(np.asarray(x)) for x in jax.tree.leaves(g_policy["critic"]))


def test_one_update_on_envpool_pong_with_the_nature_cnn():
    pytest.importorskip("envpool")
    from purejaxppo.core.networks import NatureActorCritic

    cfg = PPOConfig(env="envpool/Pong-v5", num_envs=2, num_steps=8, num_minibatches=1, update_epochs=1,
                    total_timesteps=2 * 8)
    train = make_train(cfg)
    assert train.obs_spec == ATARI
    assert isinstance(train.network, NatureActorCritic) and train.network.channels_first
    state = train.init(jax.random.key(0))
    state, metrics = jax.jit(train.update)(state)
    assert int(state.update_step) == 1
    for k, v in metrics.items():
        if k != "eval_return":
            assert np.all(np.isfinite(np.asarray(v))), k
