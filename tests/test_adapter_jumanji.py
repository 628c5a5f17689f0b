"""Jumanji adapter (purejaxppo.envs.jumanji, `env: jumanji/<id>[@flat]`); skipped without the extra.

Envs used, chosen for cheap compiles: Knapsack-v1 (Discrete + mask, no time limit in the library),
Snake-v1 (Discrete + mask, the library's time limit marked as a termination, which the adapter
turns into a truncation), Minesweeper-v0 (MultiDiscrete [10, 10] with a joint mask, and `@flat`).
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jumanji = pytest.importorskip("jumanji")

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.envs import jumanji as ja  # noqa: E402
from purejaxppo.envs import action_spec_from_space, make_env, obs_spec_from_space  # noqa: E402
from purejaxppo.envs.spaces import MultiDiscrete  # noqa: E402


def _legal_action(env, key, mask):
    """A uniformly random legal action from the adapter's mask (per sub-action for MultiDiscrete)."""
    logits = jnp.where(mask, 0.0, -jnp.inf)
    if env.flat or env._kind == "discrete":
        return jax.random.categorical(key, logits)
    bounds = np.cumsum((0,) + env.nvec)
    keys = jax.random.split(key, len(env.nvec))
    return jnp.stack([jax.random.categorical(keys[i], logits[bounds[i]:bounds[i + 1]]) for i in range(len(env.nvec))])


_ROLLOUTS = {}


def _rollout(env, params, steps, num_envs=4, seed=0):
    """`steps` vmapped steps with random legal actions; returns (obs0, stacked (obs, reward, term, trunc, final_obs,
    step_count)). Compiled once per (env, steps, num_envs): params are an argument."""
    if (id(env), steps, num_envs) not in _ROLLOUTS:
        _ROLLOUTS[id(env), steps, num_envs] = (env, _make_rollout(env, steps, num_envs))
    return _ROLLOUTS[id(env), steps, num_envs][1](jax.random.key(seed), params)


def _make_rollout(env, steps, num_envs):
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    @jax.jit
    def run(key, params):
        k0, k1 = jax.random.split(key)
        obs0, state = reset(jax.random.split(k0, num_envs), params)

        def body(carry, k):
            obs, state = carry
            ka, ks = jax.random.split(k)
            action = jax.vmap(_legal_action, (None, 0, 0))(env, jax.random.split(ka, num_envs), obs["action_mask"])
            obs, state, reward, term, trunc, info = step(jax.random.split(ks, num_envs), state, action, params)
            return (obs, state), (obs, reward, term, trunc, info["final_observation"], state.step_count)

        _, out = jax.lax.scan(body, (obs0, state), jax.random.split(k1, steps))
        return obs0, out

    return run


def _np(tree):
    return jax.tree.map(np.asarray, tree)


# ---------------------------------------------------------------- names and errors
def test_names_and_errors(monkeypatch):
    names = ja.env_names()
    assert {"Snake-v1", "Knapsack-v1", "Game2048-v1", "Minesweeper-v0", "BinPack-v2"} <= set(names)
    with pytest.raises(ValueError, match=r"unknown Jumanji environment 'Snake-v9'.*'jumanji/Snake-v1'.*Knapsack-v1"):
        make_env("jumanji/Snake-v9")
    with pytest.raises(ValueError, match="@flat"):
        make_env("jumanji/Minesweeper-v0@joint")
    with pytest.raises(ValueError, match="needs a multi-discrete env"):
        make_env("jumanji/Knapsack-v1@flat")
    monkeypatch.setitem(sys.modules, "jumanji", None)  # makes `import jumanji` raise ImportError
    with pytest.raises(ImportError, match=r"PPOConfig\.env.*'jumanji'.*pip install -e '\.\[jumanji\]'"):
        make_env("jumanji/Snake-v1")


# ---------------------------------------------------------------- terminated / truncated / final observation
def test_knapsack_terminates_on_its_own_and_truncates_on_a_forced_limit():
    env, params = make_env("jumanji/Knapsack-v1")
    assert env.rule == "task" and params.max_steps_in_episode == 50  # no time limit in the library
    assert env.action_space(params).n == 50
    space = env.observation_space(params).spaces
    assert space["action_mask"].dtype == jnp.bool_ and space["action_mask"].shape == (50,)
    assert space["packed_items"].dtype == jnp.float32  # a bool feature, as a float

    # A forced limit of 3 steps: 3 items never fill the budget (12.5; weights < 1), so truncation only.
    obs0, (obs, reward, term, trunc, final, count) = _np(_rollout(env, params.replace(max_steps_in_episode=3), 45))
    assert not term.any()
    np.testing.assert_array_equal(trunc, np.broadcast_to((np.arange(1, 46) % 3 == 0)[:, None], trunc.shape))
    b = 2  # the boundary step: the returned obs is a fresh reset, the final observation is not
    assert final["packed_items"][b].sum(-1).tolist() == [3.0] * 4 and obs["packed_items"][b].sum() == 0
    assert not np.array_equal(final["weights"][b], obs["weights"][b])
    np.testing.assert_array_equal(final["packed_items"][:b], obs["packed_items"][:b])  # no reset: the same
    assert reward.dtype == np.float32 and term.dtype == np.bool_ and trunc.dtype == np.bool_

    # The default limit: the task ends by itself (no item fits) before 50 steps: terminated, never truncated.
    _, (obs, reward, term, trunc, final, count) = _np(_rollout(env, params, 45, seed=1))
    assert term.any() and not trunc.any() and not (term & trunc).any()
    t, i = map(int, np.argwhere(term)[0])
    assert final["packed_items"][t, i].sum() > 0 and obs["packed_items"][t, i].sum() == 0 and count[t, i] == 0
    assert not final["action_mask"][t, i].any()  # ended because nothing more fits


def test_snake_library_time_limit_becomes_a_truncation():
    # Raw Jumanji ends a Snake episode at its time limit with discount 0, like a death.
    raw = jumanji.make("Snake-v1", time_limit=3)
    raw_step = jax.jit(raw.step)
    st, ts = jax.jit(raw.reset)(jax.random.PRNGKey(0))
    for _ in range(3):
        assert not bool(ts.last())
        a = jnp.argmax(ts.observation.action_mask)
        st, ts = raw_step(st, a)
    if bool(ts.last()):  # (a death on the way would also be LAST; the key above does not die)
        assert float(ts.discount) == 0.0
    # The adapter turns the library's limit off and applies it itself: truncated, not terminated.
    env = ja.JumanjiEnv(jumanji.make("Snake-v1", time_limit=3), name="snake3")
    params = env.default_params
    assert env.rule == "library" and params.max_steps_in_episode == 3 and env.env.time_limit == 2**31 - 1
    obs0, (obs, reward, term, trunc, final, count) = _np(_rollout(env, params, 9, num_envs=8))
    assert not (term & trunc).any() and trunc.any()
    # Every truncation is on the 3rd step of an episode; every episode end resets the counter.
    ends = term | trunc
    steps_before = np.concatenate([np.zeros((1, 8), int), count[:-1]], 0) + 1
    np.testing.assert_array_equal(trunc, ~term & (steps_before == 3))
    assert (count[ends] == 0).all()
    t, i = map(int, np.argwhere(trunc)[0])
    assert not np.array_equal(final["grid"][t, i], obs["grid"][t, i])  # final observation kept apart
    np.testing.assert_array_equal(final["step_count"][t, i], 3.0)
    # The registered env keeps Jumanji's own limit as the default.
    assert make_env("jumanji/Snake-v1")[1].max_steps_in_episode == 4000


# ---------------------------------------------------------------- masks and multi-discrete
def test_masks_match_the_library():
    env, params = make_env("jumanji/Knapsack-v1")
    key = jax.random.PRNGKey(3)
    obs, _ = env.reset(key, params)
    _, ts = env.env.reset(key)
    np.testing.assert_array_equal(obs["action_mask"], ts.observation.action_mask)
    np.testing.assert_array_equal(obs["weights"], ts.observation.weights)

    # Minesweeper: a joint [10, 10] mask -> per-sub-action masks (row legal if any cell of it is legal, ...).
    env, params = make_env("jumanji/Minesweeper-v0")
    assert env.action_space(params) == MultiDiscrete((10, 10)) and env.mask_layout == "joint"
    spec = action_spec_from_space(env.action_space(params))
    assert spec.multi_discrete and spec.num_actions == 20
    st, ts = env.env.reset(key)
    for cell in ([0, 0], [0, 1], [3, 4]):  # reveal a few cells so the joint mask is not all True
        st, ts = env.env.step(st, jnp.asarray(cell, jnp.int32))
    joint = np.asarray(ts.observation.action_mask)
    mask = np.asarray(env.convert_obs(ts.observation)["action_mask"])
    np.testing.assert_array_equal(mask, np.concatenate([joint.any(1), joint.any(0)]))
    # @flat: one Discrete(100) action, the exact joint mask, the index unravelled for the env.
    flat, fparams = make_env("jumanji/Minesweeper-v0@flat")
    assert flat.action_space(fparams).n == 100
    np.testing.assert_array_equal(flat.convert_obs(ts.observation)["action_mask"], joint.reshape(-1))
    np.testing.assert_array_equal(flat.to_jumanji_action(jnp.int32(34)), [3, 4])
    assert obs_spec_from_space(flat.observation_space(fparams))["action_mask"].shape == (100,)


def test_state_dtypes_are_the_same_after_reset_and_step():
    for name in ("jumanji/Knapsack-v1", "jumanji/Snake-v1", "jumanji/Minesweeper-v0"):
        env, params = make_env(name)
        key = jax.random.key(0)
        obs_r, state_r = jax.eval_shape(env.reset, key, params)
        action = jax.eval_shape(env.action_space(params).sample, key)
        obs_s, state_s, reward, term, trunc, info = jax.eval_shape(env.step, key, state_r, action, params)
        assert jax.tree.structure(state_r) == jax.tree.structure(state_s), name
        for a, b in zip(jax.tree.leaves(state_r), jax.tree.leaves(state_s)):
            sig = lambda x: (x.shape, x.dtype, getattr(x, "weak_type", False))  # noqa: E731
            assert sig(a) == sig(b), name
        assert jax.tree.map(lambda a: (a.shape, a.dtype), obs_r) == jax.tree.map(lambda a: (a.shape, a.dtype), obs_s)
        assert jax.tree.map(lambda a: (a.shape, a.dtype), info["final_observation"]) == jax.tree.map(
            lambda a: (a.shape, a.dtype), obs_r)
        assert reward.dtype == jnp.float32 and reward.shape == () and term.dtype == jnp.bool_ and trunc.shape == ()


# ---------------------------------------------------------------- training by name, masked sampling
SMALL = dict(num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1, total_timesteps=64,
             actor_hidden=(16,), critic_hidden=(16,), cnn_channels=(4,))


@pytest.mark.parametrize("name", ["jumanji/Knapsack-v1", "jumanji/Snake-v1", "jumanji/Minesweeper-v0"])
def test_training_by_name(name):
    out = jax.jit(make_train(PPOConfig(env=name, **SMALL)))(jax.random.key(0))
    assert int(out.state.update_step) == 2
    for key, v in out.metrics.items():
        v = np.asarray(v)
        assert v.shape == (2,) and np.all(np.isfinite(v)), key


@pytest.mark.parametrize("name", ["jumanji/Knapsack-v1", "jumanji/Minesweeper-v0"])
def test_policy_never_samples_a_masked_action(name):
    from purejaxppo.core.agent import ActingState, as_agent, make_policy
    from purejaxppo.core.networks import make_network
    from purejaxppo.envs.spaces import zeros_obs

    env, env_params = make_env(name)
    obs_spec = obs_spec_from_space(env.observation_space(env_params))
    aspec = action_spec_from_space(env.action_space(env_params))
    agent = as_agent(make_network(obs_spec, aspec, actor_hidden=(16,), critic_hidden=(16,)))
    params = agent.init(jax.random.key(0), zeros_obs(obs_spec))
    # Push the untrained policy hard towards action 0 (of every sub-action), so the mask has something to fight.
    last = sorted(k for k in params["params"]["actor"] if k.startswith("Dense"))[-1]
    bias = params["params"]["actor"][last]["bias"]
    starts = np.cumsum((0,) + tuple(aspec.nvec or (aspec.num_actions,)))[:-1]
    params["params"]["actor"][last]["bias"] = bias.at[starts].set(20.0)
    policy = make_policy(agent, lambda a: a)
    n = 8

    @jax.jit
    def run(key):
        obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(key, n), env_params)

        def body(carry, k):
            state, obs = carry
            k1, k2 = jax.random.split(k)
            _, action = policy(ActingState(params), (), obs, None, k1, False, 10.0)
            picks = action.reshape(n, -1) + jnp.asarray(starts, jnp.int32)  # index into the concatenated mask
            legal = jnp.take_along_axis(obs["action_mask"], picks, axis=1).all()
            obs, state, *_ = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(k2, n), state, action, env_params)
            return (state, obs), legal

        _, legal = jax.lax.scan(body, (state, obs), jax.random.split(key, 40))
        return legal

    assert bool(jnp.all(run(jax.random.key(1))))
