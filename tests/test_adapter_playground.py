"""MuJoCo Playground adapter (purejaxppo.envs.playground, `env: playground/<EnvName>`).

Skipped without the optional extra (`pip install -e '.[playground]'`). CartpoleBalance is
the cheapest DM Control Suite env to compile on CPU; it never terminates on its own (only a
NaN state ends it), so termination is checked on a tiny fake Playground env.
"""

import subprocess
import sys

import pytest

pytest.importorskip("mujoco_playground")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import struct  # noqa: E402

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.envs import playground as pg  # noqa: E402
from purejaxppo.envs import action_spec_from_space, make_env  # noqa: E402

NAME = "playground/CartpoleBalance"


@pytest.fixture(scope="module")
def cartpole():
    return make_env(NAME)


def _rollout(env, params, action, steps, num_envs=2, seed=0):
    """`steps` vmapped jitted steps with a constant action: (obs0, (obs, reward, term, trunc, final_obs), state)."""
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    @jax.jit
    def run(key):
        k0, k1 = jax.random.split(key)
        obs0, state = reset(jax.random.split(k0, num_envs), params)
        acts = jnp.broadcast_to(jnp.asarray(action, jnp.float32), (num_envs, env.num_actions))

        def body(state, k):
            obs, state, reward, term, trunc, info = step(jax.random.split(k, num_envs), state, acts, params)
            return state, (obs, reward, term, trunc, info["final_observation"])

        return obs0, *jax.lax.scan(body, state, jax.random.split(k1, steps))[::-1]

    return run(jax.random.key(seed))


def test_cartpole_time_limit_truncates_with_final_observation(cartpole):
    env, params = cartpole
    assert isinstance(env, pg.PlaygroundEnv) and params.max_steps_in_episode == 1000
    assert env.observation_space(params).shape == (5,) and env.observation_space(params).dtype == jnp.float32
    spec = action_spec_from_space(env.action_space(params))
    assert not spec.discrete and spec.shape == (1,) and spec.low == (-1.0,) and spec.high == (1.0,)

    limit5 = pg.PlaygroundEnvParams(max_steps_in_episode=5)
    obs0, (obs, reward, term, trunc, final), _ = _rollout(env, limit5, [1.0], 12)
    obs, final, term, trunc = map(np.asarray, (obs, final, term, trunc))
    assert obs.shape == (12, 2, 5) and obs.dtype == np.float32 and final.dtype == np.float32
    assert reward.dtype == jnp.float32 and reward.shape == (12, 2) and np.all(np.isfinite(reward))
    assert term.dtype == np.bool_ and trunc.dtype == np.bool_
    assert not term.any()  # the balance task never ends on its own
    np.testing.assert_array_equal(trunc, np.broadcast_to((np.arange(1, 13) % 5 == 0)[:, None], (12, 2)))
    np.testing.assert_array_equal(final[:4], obs[:4])  # no reset: the same
    for i in (4, 9):  # boundary: the cart was pushed for 5 steps, the returned obs is a fresh reset
        assert np.all(np.abs(final[i, :, 0]) > 0.02)   # cart position moved
        assert np.all(np.abs(obs[i, :, 0]) <= 0.1)     # reset: cart position uniform in [-0.1, 0.1]
        assert np.all(np.abs(obs[i, :, 3]) < 0.1)      # reset: cart velocity ~0.01 * N(0, 1)
        assert np.all(np.abs(final[i, :, 3]) > 0.1)
    assert not np.allclose(obs[4], obs[9])  # a fresh key per reset


@pytest.mark.parametrize("name", [NAME, "playground/CheetahRun"])  # CheetahRun resets data.time to a Python float
def test_state_types_fixed_after_reset_and_step(name):
    env, params = make_env(name)
    key = jax.random.key(0)
    _, s0 = jax.eval_shape(env.reset, key, params)
    _, s1, *_ = jax.eval_shape(env.step, key, s0, jnp.zeros((env.num_actions,)), params)
    assert jax.tree.structure(s0) == jax.tree.structure(s1)
    types = lambda t: [(x.shape, x.dtype, getattr(x, "weak_type", False)) for x in jax.tree.leaves(t)]  # noqa: E731
    assert types(s0) == types(s1)


def test_make_train_by_name():
    cfg = PPOConfig(env=NAME, num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1, total_timesteps=64,
                    actor_hidden=(16,), critic_hidden=(16,), normalize_obs=True)
    # By name, with a 5-step limit so that every env ends an episode in each 8-step rollout.
    train = make_train(cfg, env_params=pg.PlaygroundEnvParams(max_steps_in_episode=5))
    assert isinstance(train.env, pg.PlaygroundEnv) and train.env.name == NAME
    out = jax.jit(train)(jax.random.key(0))
    assert int(out.state.update_step) == 2
    for name, v in out.metrics.items():
        assert np.all(np.isfinite(np.asarray(v))), name
    assert np.all(np.asarray(out.metrics["episodes_completed"]) >= 4)
    assert np.all(np.asarray(out.metrics["episode_length"]) == 5)


def test_unknown_name_lists_the_registry():
    with pytest.raises(ValueError, match=r"unknown MuJoCo Playground environment 'CartpoleBalanc'.*"
                                         r"'playground/CartpoleBalance'.*CheetahRun.*Go1JoystickFlatTerrain"):
        make_env("playground/CartpoleBalanc")
    names = pg.env_names()
    assert {"CartpoleBalance", "CartpoleSwingup", "CheetahRun"} <= set(names) and len(names) > 40


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco_playground", None)
    with pytest.raises(ImportError, match=r"PPOConfig\.env.*'playground/<name>'.*pip install -e '\.\[playground\]'"):
        make_env(NAME)


def test_robot_env_without_menagerie_is_a_clear_error(monkeypatch, tmp_path):
    # No network in tests: stand in for Playground's failing git clone.
    from mujoco_playground._src import mjx_env

    def failing_clone():
        raise subprocess.CalledProcessError(128, ["git", "clone"])

    monkeypatch.setattr(mjx_env, "MENAGERIE_PATH", tmp_path / "mujoco_menagerie")
    monkeypatch.setattr(mjx_env, "ensure_menagerie_exists", failing_clone)
    with pytest.raises(RuntimeError, match=r"'playground/Go1JoystickFlatTerrain'.*mujoco_menagerie.*git clone"):
        make_env("playground/Go1JoystickFlatTerrain")


# ---------------------------------------------------------------- termination, on a fake Playground env
@struct.dataclass
class _FakeState:  # the fields of mujoco_playground.State the adapter reads
    data: jax.Array
    obs: dict
    reward: jax.Array
    done: jax.Array
    metrics: dict
    info: dict


class _FakePlaygroundEnv:
    """x starts in [0, 0.1) and moves by action[0]; done (float, like Playground) once x >= 3; dict obs;
    the step returns weakly typed / float64-free but differently typed leaves, as CheetahRun does."""

    action_size = 1

    def reset(self, rng):
        x = jax.random.uniform(rng, (), minval=0.0, maxval=0.1)
        return _FakeState(x, {"state": jnp.stack([x, 0.0]), "privileged_state": jnp.stack([x])}, jnp.zeros(()),
                          jnp.zeros(()), {"x": jnp.zeros(())}, {"steps": jnp.zeros((), jnp.int32)})

    def step(self, state, action):
        x = state.data + action[0]
        t = state.obs["state"][1] + 1.0
        return _FakeState(x, {"state": jnp.stack([x, t]), "privileged_state": jnp.stack([x])}, x,
                          (x >= 3.0).astype(float), {"x": x}, {"steps": state.info["steps"] + 1.0})


def test_termination_and_dict_obs_on_fake_env():
    env = pg.PlaygroundEnv(_FakePlaygroundEnv(), name="fake", episode_length=1000)
    space = env.observation_space(env.default_params)
    assert set(space.spaces) == {"state", "privileged_state"} and space.spaces["state"].shape == (2,)

    # Terminates at step 3 (x >= 3), before the limit of 5: terminated only, then a reset.
    _, (obs, reward, term, trunc, final), _ = _rollout(env, pg.PlaygroundEnvParams(max_steps_in_episode=5), [1.0], 8)
    np.testing.assert_array_equal(np.asarray(term)[:, 0], [0, 0, 1, 0, 0, 1, 0, 0])
    assert not np.asarray(trunc).any()
    assert np.all(np.asarray(final["state"])[2, :, 0] >= 3.0) and np.all(np.asarray(obs["state"])[2, :, 0] < 0.1)
    np.testing.assert_array_equal(np.asarray(final["state"])[2, :, 1], 3.0)

    # Termination on the limit step itself is termination, never both; the limit alone is truncation.
    _, (_, _, term, trunc, _), _ = _rollout(env, pg.PlaygroundEnvParams(max_steps_in_episode=3), [1.0], 6)
    assert np.asarray(term).all(axis=1).tolist() == [False, False, True, False, False, True]
    assert not np.asarray(trunc).any()
    _, (_, _, term, trunc, _), state = _rollout(env, pg.PlaygroundEnvParams(max_steps_in_episode=2), [0.5], 4)
    assert not np.asarray(term).any() and np.asarray(trunc).all(axis=1).tolist() == [False, True, False, True]
    assert state.env_state.info["steps"].dtype == jnp.int32  # the step's float counter cast back
