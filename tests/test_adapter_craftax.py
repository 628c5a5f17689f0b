"""Craftax adapter (purejaxppo.envs.craftax, `env: craftax/<name>`); skipped without craftax.

Craftax's step and world generation are large XLA programs (on a 2-core CPU
compiling the Classic reset + step takes ~0.5-1.5 min), so the tests share one
small env (a 4-world pool) and one compiled rollout, run on several inputs.
"""

import sys

import pytest

pytest.importorskip("craftax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.envs import craftax as cx  # noqa: E402
from purejaxppo.envs import make_env  # noqa: E402

NAME = "Craftax-Classic-Symbolic-v1"
N, T, LIMIT = 3, 12, 5
NOOP = 0  # Classic action 0


@pytest.fixture(scope="module")
def classic():
    env, params = cx.make(NAME, pool_size=4)
    return env, params


@pytest.fixture(scope="module")
def rollout(classic):
    env, _ = classic
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    @jax.jit
    def run(key, state, params):
        def body(state, k):
            obs, state, reward, term, trunc, info = step(jax.random.split(k, N), state, jnp.full((N,), NOOP), params)
            return state, (obs, reward, term, trunc, info["final_observation"], state.timestep)

        return jax.lax.scan(body, state, jax.random.split(key, T))[1]

    return run


_RESETS = {}


def _reset(env, params, seed=0):
    if env not in _RESETS:  # compile the vmapped reset once per env
        _RESETS[env] = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    return _RESETS[env](jax.random.split(jax.random.key(seed), N), params)


def test_truncation_final_observation_and_pool(classic, rollout):
    env, params = classic
    assert env.name == "craftax/" + NAME and params.max_steps_in_episode == 10_000 and params.pool_size == 4
    assert env.observation_space(params).shape == (1345,) and env.action_space(params).n == 17
    p = params.replace(max_steps_in_episode=LIMIT)
    obs0, state = _reset(env, p)
    obs, reward, term, trunc, final, timestep = map(np.asarray, rollout(jax.random.key(1), state, p))
    assert obs.dtype == np.float32 and final.dtype == np.float32 and reward.dtype == np.float32
    assert term.dtype == np.bool_ and trunc.dtype == np.bool_
    # NOOPs in daylight from full health: nobody dies within 12 steps, truncated exactly every LIMIT steps.
    assert not term.any()
    boundary = (np.arange(1, T + 1) % LIMIT == 0)
    np.testing.assert_array_equal(trunc, np.broadcast_to(boundary[:, None], (T, N)))
    np.testing.assert_array_equal(timestep[:, 0], np.arange(1, T + 1) % LIMIT)  # the counter restarts at a reset
    np.testing.assert_array_equal(final[~boundary], obs[~boundary])  # no reset: the same observation
    pool_obs = np.asarray(p.pool_obs)
    for t in np.flatnonzero(boundary):
        for i in range(N):
            # after the reset the env is in a pooled world; the final observation is the world it left
            assert any(np.array_equal(obs[t, i], q) for q in pool_obs)
            assert not np.array_equal(final[t, i], obs[t, i])


def test_termination_is_not_truncation(classic, rollout):
    env, params = classic
    # Env 0 at zero health dies on its first step, on the last step of a 1-step limit: terminated, never truncated.
    p = params.replace(max_steps_in_episode=LIMIT)
    _, state = _reset(env, p, seed=2)
    health = state.player_health.at[0].set(0)
    obs, _, term, trunc, final, _ = map(np.asarray, rollout(jax.random.key(3), state.replace(player_health=health), p))
    assert term[0, 0] and not trunc[0, 0] and not term[0, 1:].any()
    assert not np.array_equal(final[0, 0], obs[0, 0])
    assert not (term & trunc).any()
    p1 = params.replace(max_steps_in_episode=1)
    _, _, term, trunc, _, _ = map(np.asarray, rollout(jax.random.key(3), state.replace(player_health=health), p1))
    assert term[0, 0] and not trunc[0, 0] and trunc[0, 1:].all()


def test_state_dtypes_fixed(classic):
    env, params = classic
    key = jax.random.key(0)
    _, s0 = jax.eval_shape(env.reset, key, params)
    _, s1, *_ = jax.eval_shape(env.step, key, s0, jnp.int32(1), params)
    spec = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype, bool(getattr(x, "weak_type", False))), t)  # noqa: E731
    assert jax.tree.structure(s0) == jax.tree.structure(s1)
    assert spec(s0) == spec(s1)


def test_unknown_name_and_missing_library(monkeypatch):
    with pytest.raises(ValueError, match=r"Craftax-Classic-Symbolic-v1.*Craftax environments:.*Craftax-Symbolic-v1"):
        make_env("craftax/Craftax-Classic-Symbolic-v2")
    assert cx.env_names() == sorted(cx.ENV_NAMES)
    monkeypatch.setitem(sys.modules, "craftax", None)
    monkeypatch.setitem(sys.modules, "craftax.craftax_env", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[craftax\]'"):
        make_env("craftax/" + NAME)


def test_make_train_by_name(classic, monkeypatch):
    _, params = classic
    monkeypatch.setattr(cx, "DEFAULT_POOL_SIZE", 4)  # a small default pool for the env made by name
    cfg = PPOConfig(env="craftax/" + NAME, num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1,
                    total_timesteps=64, actor_hidden=(16,), critic_hidden=(16,))
    # The env by name, with a 5-step time limit so that every env ends episodes in each rollout.
    train = make_train(cfg, env_params=params.replace(max_steps_in_episode=5))
    assert isinstance(train.env, cx.CraftaxEnv) and train.env.pool_size == 4
    out = jax.jit(train)(jax.random.key(0))
    assert int(out.state.update_step) == 2
    for name, v in out.metrics.items():
        assert np.all(np.isfinite(np.asarray(v))), name
    assert np.all(np.asarray(out.metrics["episodes_completed"]) >= 4)
