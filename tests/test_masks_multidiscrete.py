"""Action masks, multi-discrete actions and dict observations in the core (tiny envs: tests/masked_envs.py)."""

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.core.agent import ActingState, apply_action_mask, as_agent, make_policy
from purejaxppo.core.distributions import Categorical, DiagGaussian, MultiCategorical, mask_logits
from purejaxppo.envs import action_spec_from_space, obs_spec_from_space
from purejaxppo.core.networks import ConvActorCritic, make_network
from purejaxppo.core.normalization import create_obs_norm, normalize_obs, update_obs_norm
from purejaxppo.envs.spaces import ActionSpec, MultiDiscrete, zeros_obs
from tests.masked_envs import ChoiceEnv


def _random_mask(key, shape, nvec):
    """A random mask with at least one legal choice per sub-action."""
    mask = jax.random.bernoulli(key, 0.3, shape)
    bounds = np.cumsum((0,) + tuple(nvec))
    first = np.zeros(shape[-1], bool)
    first[bounds[:-1]] = True
    return mask | jnp.asarray(first)


# ------------------------------------------------------------------ distributions


def test_masked_action_is_never_sampled_even_when_its_logit_is_largest():
    key = jax.random.key(0)
    mask = _random_mask(key, (256, 7), (7,))
    logits = jnp.where(mask, 0.0, 50.0)  # the illegal actions are the network's favourites
    dist = Categorical(logits).masked(mask)
    for i in range(20):
        a = dist.sample(jax.random.fold_in(key, i))
        assert bool(jnp.all(jnp.take_along_axis(mask, a[:, None], 1)))
    assert bool(jnp.all(jnp.take_along_axis(mask, dist.mode()[:, None], 1)))


def test_entropy_counts_only_the_legal_actions():
    mask = _random_mask(jax.random.key(1), (64, 6), (6,))
    dist = Categorical(jnp.zeros((64, 6))).masked(mask)
    np.testing.assert_allclose(dist.entropy(), np.log(np.sum(np.asarray(mask), -1)), rtol=1e-6)
    nvec = (3, 4)
    mmask = _random_mask(jax.random.key(2), (64, 7), nvec)
    mdist = MultiCategorical(jnp.zeros((64, 7)), nvec).masked(mmask)
    m = np.asarray(mmask)
    want = np.log(m[:, :3].sum(-1)) + np.log(m[:, 3:].sum(-1))
    np.testing.assert_allclose(mdist.entropy(), want, rtol=1e-6)


def test_masked_log_prob_kl_and_gradients_are_finite():
    nvec = (3, 4)
    mask = _random_mask(jax.random.key(3), (32, 7), nvec)
    logits = jax.random.normal(jax.random.key(4), (32, 7))
    dist = MultiCategorical(logits, nvec).masked(mask)
    action = dist.sample(jax.random.key(5))

    def loss(lg):
        p = MultiCategorical(lg, nvec).masked(mask)
        return jnp.sum(p.log_prob(action)) + jnp.sum(p.entropy()) + jnp.sum(dist.kl(p)) + jnp.sum(p.kl(dist))

    val, grad = jax.value_and_grad(loss)(logits)
    assert np.isfinite(val) and np.all(np.isfinite(grad))
    assert np.all(np.asarray(grad)[~np.asarray(mask)] == 0.0)  # illegal logits get no gradient
    np.testing.assert_allclose(dist.kl(dist), 0.0, atol=1e-6)


def test_a_row_with_no_legal_action_falls_back_to_uniform():
    logits = mask_logits(jnp.zeros((2, 3)), jnp.array([[False] * 3, [True, False, False]]))
    np.testing.assert_allclose(Categorical(logits).entropy(), [math.log(3), 0.0], atol=1e-6)


def test_multicategorical_is_the_product_of_its_categoricals():
    nvec = (2, 3, 4)
    logits = jax.random.normal(jax.random.key(6), (5, 9))
    d = MultiCategorical(logits, nvec)
    parts = [Categorical(logits[:, :2]), Categorical(logits[:, 2:5]), Categorical(logits[:, 5:])]
    a = d.sample(jax.random.key(7))
    assert a.shape == (5, 3) and a.dtype == jnp.int32
    assert np.all(np.asarray(a) < np.asarray(nvec))
    np.testing.assert_allclose(d.log_prob(a), sum(p.log_prob(a[:, k]) for k, p in enumerate(parts)), rtol=1e-6)
    np.testing.assert_allclose(d.entropy(), sum(p.entropy() for p in parts), rtol=1e-6)
    np.testing.assert_array_equal(d.mode(), np.stack([p.mode() for p in parts], -1))
    # Sample frequencies of one sub-action match its softmax.
    big = MultiCategorical(jnp.broadcast_to(logits[:1], (20000, 9)), nvec).sample(jax.random.key(8))
    freq = np.bincount(np.asarray(big[:, 2]), minlength=4) / 20000
    np.testing.assert_allclose(freq, jax.nn.softmax(logits[0, 5:]), atol=0.015)


def test_agent_mask_errors_name_the_problem():
    obs = {"x": jnp.zeros((2, 3)), "action_mask": jnp.ones((2, 4), bool)}
    with pytest.raises(ValueError, match="action_mask.*shape"):
        apply_action_mask(Categorical(jnp.zeros((2, 5))), obs)
    with pytest.raises(ValueError, match="cannot be masked"):
        apply_action_mask(DiagGaussian(jnp.zeros((2, 4)), jnp.zeros((2, 4))), obs)
    assert isinstance(apply_action_mask(Categorical(jnp.zeros((2, 4))), {"x": obs["x"]}), Categorical)


# ------------------------------------------------------------------ spaces, networks, normalizers


def test_multidiscrete_space_and_spec():
    space = MultiDiscrete([3, 4])
    spec = action_spec_from_space(space)
    assert spec == ActionSpec(True, 7, (2,), nvec=(3, 4)) and spec.multi_discrete and spec.size == 7
    assert bool(space.contains(space.sample(jax.random.key(0))))
    assert hash(space) == hash(MultiDiscrete((3, 4)))
    with pytest.raises(ValueError, match="nvec"):
        MultiDiscrete([3, 0])


def test_dict_observation_with_an_image_leaf_goes_through_conv_layers():
    env = ChoiceEnv((3, 4), image=True)
    obs_spec = obs_spec_from_space(env.observation_space(env.default_params))
    net = make_network(obs_spec, action_spec_from_space(env.action_space(env.default_params)))
    assert isinstance(net, ConvActorCritic)
    params = net.init(jax.random.key(0), zeros_obs(obs_spec))
    convs = [k for k in params["params"]["actor_torso"] if k.startswith("conv_")]
    assert len(convs) == 1  # only the [5, 5, 2] board leaf is an image
    dist, value = net.apply(params, zeros_obs(obs_spec, (3,)))
    assert isinstance(dist, MultiCategorical) and dist.logits.shape == (3, 7) and value.shape == (3,)
    # Without an image leaf the default is the MLP; forcing the CNN is a clear error.
    flat_spec = obs_spec_from_space(ChoiceEnv((3, 4)).observation_space(None))
    assert not isinstance(make_network(flat_spec, ActionSpec(True, 7, (2,), nvec=(3, 4))), ConvActorCritic)
    with pytest.raises(ValueError, match="PPOConfig.network"):
        make_network(flat_spec, ActionSpec(True, 7, (2,), nvec=(3, 4)), network="cnn")


def test_observation_normalizer_skips_the_mask_and_keeps_the_rest_per_leaf():
    env = ChoiceEnv((6,), image=True)
    spec = obs_spec_from_space(env.observation_space(None))
    norm = create_obs_norm(spec)
    assert norm["action_mask"] is None and norm["board"].mean.shape == (5, 5, 2)
    obs = jax.vmap(lambda k: env.reset(k, env.default_params)[0])(jax.random.split(jax.random.key(0), 64))
    norm = update_obs_norm(norm, obs)
    out = normalize_obs(norm, obs, 10.0)
    assert out["action_mask"].dtype == jnp.bool_
    np.testing.assert_array_equal(out["action_mask"], obs["action_mask"])
    np.testing.assert_allclose(np.mean(np.asarray(out["board"]), 0), 0.0, atol=1e-4)


# ------------------------------------------------------------------ rollouts and training


@pytest.mark.parametrize("nvec", [(6,), (3, 4)])
def test_policy_in_a_rollout_never_takes_a_masked_action(nvec):
    env = ChoiceEnv(nvec)
    params_env = env.default_params
    obs_spec = obs_spec_from_space(env.observation_space(params_env))
    agent = as_agent(make_network(obs_spec, action_spec_from_space(env.action_space(params_env))))
    # Push the untrained network towards one action everywhere, so masking has something to fight.
    params = agent.init(jax.random.key(0), zeros_obs(obs_spec))
    bias = params["params"]["actor"]["Dense_2"]["bias"]
    params["params"]["actor"]["Dense_2"]["bias"] = bias.at[0].set(20.0)
    policy = make_policy(agent, lambda a: a)

    def step(carry, key):
        state, obs = carry
        k1, k2 = jax.random.split(key)
        _, action = policy(ActingState(params), (), obs, None, k1, False, 10.0)
        legal = jnp.stack([obs["action_mask"][i, np.cumsum((0,) + nvec)[k] + action[i].reshape(-1)[k]]
                           for i in range(8) for k in range(len(nvec))])
        obs, state, reward, *_ = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(k2, 8), state, action,
                                                                     params_env)
        return (state, obs), (legal, reward)

    obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(jax.random.key(1), 8), params_env)
    _, (legal, reward) = jax.lax.scan(step, (state, obs), jax.random.split(jax.random.key(2), 100))
    assert bool(jnp.all(legal)) and float(jnp.min(reward)) >= 0.0


def _small(**kw):
    base = dict(num_envs=8, num_steps=16, num_minibatches=2, update_epochs=2, total_timesteps=8 * 16 * 40,
                learning_rate=3e-3, normalize_obs=True)
    base.update(kw)
    return PPOConfig(**base)


def test_masked_multidiscrete_training_learns_and_never_takes_an_illegal_action():
    env = ChoiceEnv((3, 4))
    out = jax.jit(make_train(_small(), env=env, env_params=env.default_params))(jax.random.key(0))
    ret, ent = np.asarray(out.metrics["episode_return"]), np.asarray(out.metrics["entropy"])
    assert ret.min() >= 0.0  # an illegal sub-action costs -100
    assert ret[:3].mean() < 1.5 and ret[-5:].mean() > 1.9  # of 2 (both sub-actions on target)
    assert ent[0] < math.log(3) + math.log(4)  # only the legal choices count from the start


@pytest.mark.parametrize("network", ["auto", "gru"])
def test_dict_obs_with_image_and_mask_trains_feed_forward_and_recurrent(network):
    env = ChoiceEnv((3, 4), image=True)
    cfg = _small(network=network, total_timesteps=8 * 16 * 4, rnn_size=16)
    out = jax.jit(make_train(cfg, env=env, env_params=env.default_params))(jax.random.key(0))
    assert all(np.all(np.isfinite(np.asarray(v))) for v in out.metrics.values())
    assert np.asarray(out.metrics["episode_return"]).min() >= 0.0


def test_masked_env_on_an_emulated_two_device_data_axis_stays_in_lockstep():
    env = ChoiceEnv((3, 4))
    cfg = _small(total_timesteps=8 * 16 * 4)
    per_device = dataclasses.replace(make_train(cfg, env=env, env_params=env.default_params), data_axis="data",
                                     data_shards=2)
    out = jax.jit(lambda key: jax.vmap(lambda _: per_device(key), axis_name="data")(jnp.arange(2)))(
        jax.random.key(0))
    for leaf in jax.tree.leaves((out.state.params, out.metrics)):
        assert np.array_equal(leaf[0], leaf[1])
    assert np.asarray(out.metrics["episode_return"]).min() >= 0.0
    chex.assert_shape(out.state.env.obs["action_mask"], (2, 4, 7))
