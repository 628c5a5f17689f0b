"""The seams: masked-safe distributions, pytree observations end to end, the Train object, the objective
registry (with a metric of its own), the agent protocol and the one acting path (evaluation, episode rollout)."""

import dataclasses

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces as gspaces

from purejaxppo import PPOConfig, make_train
from purejaxppo.core.agent import ActingState, Agent, FeedForwardAgent, make_policy, reset_carry
from purejaxppo.core.distributions import Categorical, DiagGaussian, Distribution
from purejaxppo.core.evaluate import build_evaluate, make_episode_rollout, make_evaluate
from purejaxppo.core.objectives import Objective, clipped_surrogate, get_objective, objective_names, register_objective
from purejaxppo.core.train import Train

TINY = dict(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2, total_timesteps=4 * 16 * 3)


# ------------------------------------------------------------------ distributions


def test_masked_categorical_is_finite_and_correct():
    logits = jnp.array([[1.0, -jnp.inf, 0.5, -jnp.inf], [0.0, 2.0, -jnp.inf, 1.0]])
    d = Categorical(logits)
    legal = Categorical(jnp.array([[1.0, 0.5], [0.0, 2.0]]))  # the same rows without masked entries (row 1: 3 legal)
    ent = d.entropy()
    assert np.all(np.isfinite(ent))
    np.testing.assert_allclose(ent[0], legal.entropy()[0], rtol=1e-6)
    np.testing.assert_allclose(ent[1], Categorical(jnp.array([0.0, 2.0, 1.0])).entropy(), rtol=1e-6)
    other = Categorical(jnp.array([[0.0, -jnp.inf, 1.0, -jnp.inf], [1.0, 0.0, -jnp.inf, 0.0]]))
    kl = d.kl(other)
    assert np.all(np.isfinite(kl)) and np.all(kl >= 0)
    p = jax.nn.softmax(jnp.array([1.0, 0.5]))
    q = jax.nn.softmax(jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(kl[0], jnp.sum(p * (jnp.log(p) - jnp.log(q))), rtol=1e-5)
    np.testing.assert_allclose(d.kl(d), 0.0, atol=1e-7)
    assert np.isneginf(d.log_prob(jnp.array([1, 2]))).all()
    np.testing.assert_allclose(d.log_prob(jnp.array([0, 1])), [jax.nn.log_softmax(jnp.array([1.0, 0.5]))[0],
                                                               jax.nn.log_softmax(jnp.array([0.0, 2.0, 1.0]))[1]],
                               rtol=1e-6)
    # Gradients of entropy and KL are finite too (no 0 * inf in the backward pass).
    g = jax.grad(lambda l: Categorical(l).entropy().sum() + Categorical(l).kl(other).sum())(logits)
    assert np.all(np.isfinite(g))
    # A masked action is never sampled nor the mode.
    samples = jax.vmap(d.sample)(jax.random.split(jax.random.key(0), 2000))
    assert not np.isin(np.asarray(samples[:, 0]), [1, 3]).any() and not (np.asarray(samples[:, 1]) == 2).any()
    assert d.mode().tolist() == [0, 1]
    assert isinstance(d, Distribution) and isinstance(DiagGaussian(jnp.zeros(2), jnp.zeros(2)), Distribution)


# ------------------------------------------------------------------ pytree observations


class DictObsCartPole:
    """CartPole whose observation is {"pos": [x, theta], "vel": [x_dot, theta_dot]} (a Dict space)."""

    def __init__(self):
        self.inner, self.default_params = gymnax.make("CartPole-v1")

    @staticmethod
    def split(o):
        return {"pos": o[..., jnp.array([0, 2])], "vel": o[..., jnp.array([1, 3])]}

    def reset(self, key, params):
        obs, state = self.inner.reset(key, params)
        return self.split(obs), state

    def step(self, key, state, action, params):
        obs, state, r, term, trunc, info = self.inner.step(key, state, action, params)
        info = dict(info, final_observation=self.split(info["final_observation"]))
        return self.split(obs), state, r, term, trunc, info

    def observation_space(self, params):
        box = gspaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32)
        return gspaces.Dict({"pos": box, "vel": box})

    def action_space(self, params):
        return self.inner.action_space(params)


def test_dict_observations_train_with_per_leaf_normalizers_and_evaluate():
    cfg = PPOConfig(**TINY, normalize_obs=True, eval_every=2, eval_episodes=2)
    train = make_train(cfg, env=DictObsCartPole())
    assert set(train.obs_spec) == {"pos", "vel"} and train.obs_spec["pos"].shape == (2,)
    out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 2))
    assert set(out.state.obs_norm) == {"pos", "vel"} and out.state.obs_norm["vel"].mean.shape == (2, 2)
    for k, v in out.metrics.items():
        if k != "eval_return":
            assert np.all(np.isfinite(np.asarray(v))), k
    assert np.isfinite(np.asarray(out.metrics["eval_return"])[:, -1]).all()
    assert out.state.env.obs["pos"].shape == (2, cfg.num_envs, 2)
    # The flattened MLP input equals the array env's, so the policy's first step acts the same way.
    array_train = make_train(cfg)
    p_dict = train.init(jax.random.key(1))
    p_arr = array_train.init(jax.random.key(1))
    jax.tree.map(np.testing.assert_array_equal, p_dict.params, p_arr.params)


# ------------------------------------------------------------------ the Train object


def test_train_is_a_frozen_object_that_jits_and_vmaps():
    train = make_train(PPOConfig(**TINY))
    assert isinstance(train, Train) and isinstance(train.agent, FeedForwardAgent)
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.config = None  # type: ignore[misc]
    for name in ("init", "update", "config", "env", "env_params", "network", "agent", "obs_spec", "action_spec",
                 "objective", "to_env_action"):
        assert hasattr(train, name), name
    assert train.obs_shape == (4,) and train.objective is get_objective("clip")
    one = jax.jit(train)(jax.random.key(3))
    many = jax.jit(jax.vmap(train))(jnp.stack([jax.random.key(3), jax.random.key(4)]))
    np.testing.assert_array_equal(one.metrics["episode_return"], many.metrics["episode_return"][0])
    dist, value = train.network.apply(one.state.params, jnp.zeros((5, 4)))  # as the README says
    assert value.shape == (5,) and dist.logits.shape == (5, 2)


def test_a_stateful_agent_from_the_factory_is_trained_on_sequences():
    """An object implementing the Agent protocol itself (here: a RecurrentAgent around a GRU module, built by
    the user's factory) is trained by make_train with sequence minibatches, its carry in the train state."""
    from purejaxppo.core.agent import RecurrentAgent
    from purejaxppo.core.networks import make_network

    def factory(obs_spec, action_spec):
        return RecurrentAgent(make_network(obs_spec, action_spec, network="gru", rnn_size=8, rnn_torso=(8,)))

    train = make_train(PPOConfig(**TINY), network_factory=factory)
    assert train.recurrent and isinstance(train.agent, RecurrentAgent)
    out = jax.jit(train)(jax.random.key(0))
    assert out.state.env.agent_carry[0].shape == (TINY["num_envs"], 8)
    assert np.all(np.isfinite(np.asarray(out.metrics["value_loss"])))


# ------------------------------------------------------------------ the objective seam


def test_a_new_objective_is_one_registration_with_its_own_state_and_metrics():
    def surrogate(ratio, adv, kl, hp, state):
        return clipped_surrogate(ratio, adv, hp.clip_eps).mean()

    counting = Objective(
        "clip_counting", surrogate,
        init=lambda hp: jnp.zeros((), jnp.float32),
        after_update=lambda n, kl, hp: n + 1.0,
        metrics=lambda n, hp: {"updates_seen": n, "kl_beta": hp.kl_beta},
    )
    register_objective(counting, replace=True)
    assert "clip_counting" in objective_names()
    cfg = PPOConfig(**TINY, objective="clip_counting")
    out = jax.jit(make_train(cfg))(jax.random.key(0))
    np.testing.assert_array_equal(out.metrics["updates_seen"], [0.0, 1.0, 2.0])  # a metric of its own, not dropped
    assert float(out.state.objective_state) == 3.0
    # Same surrogate as clip, so the same training.
    ref = jax.jit(make_train(PPOConfig(**TINY)))(jax.random.key(0))
    np.testing.assert_array_equal(out.metrics["episode_return"], ref.metrics["episode_return"])
    with pytest.raises(ValueError, match="already registered"):
        register_objective(Objective("clip_counting", surrogate))
    with pytest.raises(ValueError, match="not one of"):
        make_train(PPOConfig(**TINY, objective="no_such_objective"))


# ------------------------------------------------------------------ agents and the acting path


def test_reset_carry_replaces_only_finished_envs():
    class Counter:
        def initial_carry(self, batch):
            return jnp.zeros((batch, 2))

    carry = jnp.arange(6.0).reshape(3, 2)
    got = reset_carry(Counter(), carry, jnp.array([False, True, False]))
    np.testing.assert_array_equal(got, [[0, 1], [0, 0], [4, 5]])
    assert reset_carry(FeedForwardAgent(None), (), jnp.array([True])) == ()


class AlternatingAgent:
    """A stateful agent: the carry counts steps since the episode started; it pushes left on even counts,
    right on odd ones. Resetting the carry at episode starts is what makes every episode the same policy."""

    def init(self, key, obs):
        return {}

    def initial_carry(self, batch):
        return jnp.zeros((batch,), jnp.int32)

    def step(self, params, carry, obs, done):
        if done is not None:
            carry = jnp.where(done, 0, carry)
        logits = jnp.where((carry % 2 == 0)[:, None], jnp.array([10.0, -10.0]), jnp.array([-10.0, 10.0]))
        return carry + 1, Categorical(logits), jnp.zeros(carry.shape)

    def sequence(self, params, carry, obs, done):
        raise NotImplementedError




def test_evaluate_and_episode_rollout_act_through_the_agent_with_its_carry():
    env, params = gymnax.make("CartPole-v1")
    agent = AlternatingAgent()
    assert isinstance(agent, Agent)
    evaluate = jax.jit(build_evaluate(env, params, agent, make_train(PPOConfig(**TINY)).action_spec),
                       static_argnums=2)
    returns = np.asarray(evaluate(ActingState({}, None), jax.random.key(0), 8))
    assert returns.shape == (8,) and np.all(returns > 15) and returns.mean() > 25  # alternating outlasts a constant push
    # A policy that never resets its carry would still alternate; one that resets wrongly (every step) pushes
    # left forever and falls within ~10 steps. The carry must reach the policy:
    never_reset = AlternatingAgent()
    never_reset.step = lambda p, c, o, d: (c, Categorical(jnp.tile(jnp.array([10.0, -10.0]), (c.shape[0], 1))),
                                          jnp.zeros(c.shape))
    const = np.asarray(jax.jit(build_evaluate(env, params, never_reset, make_train(PPOConfig(**TINY)).action_spec),
                               static_argnums=2)(ActingState({}, None), jax.random.key(0), 8))
    assert np.all(const < 15)


def test_episode_rollout_matches_a_plain_python_loop():
    train = make_train(PPOConfig(**TINY))
    train = dataclasses.replace(train, agent=AlternatingAgent())
    rollout = jax.jit(make_episode_rollout(train), static_argnums=2)
    key = jax.random.key(5)
    ep = rollout(ActingState({}, None), key, True)
    length = int(ep.length)
    assert float(np.sum(ep.rewards[:length])) == length  # CartPole: +1 per step
    # The same episode step by step in Python: same keys as make_episode_rollout splits them.
    k_reset, k_loop = jax.random.split(key)
    step_keys = [jax.random.split(k)[1] for k in jax.random.split(k_loop, rollout.max_steps)]
    env, params = gymnax.make("CartPole-v1")
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(k_reset[None], params)
    state = jax.tree.map(lambda x: x[0], state)
    t = 0
    while True:
        _, state, _, term, trunc, _ = env.step(step_keys[t], state, t % 2, params)
        t += 1
        if bool(term) or bool(trunc):
            break
    assert length == t


def test_make_policy_normalizes_with_the_acting_state():
    train = make_train(PPOConfig(**TINY, normalize_obs=True))
    state = jax.jit(train)(jax.random.key(0)).state
    policy = make_policy(train.agent, train.to_env_action)
    obs = jnp.ones((3, 4))
    _, a = policy(ActingState(state.params, state.obs_norm), (), obs, None, jax.random.key(0), True, 10.0)
    dist, _ = train.agent.apply(state.params, state.obs_norm.normalize(obs, 10.0))
    np.testing.assert_array_equal(a, dist.mode())
    evaluate = make_evaluate(train)
    with pytest.raises(ValueError, match="ActingState"):
        evaluate(state.params, jax.random.key(0), 2)
