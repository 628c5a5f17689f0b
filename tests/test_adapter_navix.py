"""Navix adapter (purejaxppo.envs.navix, `env: navix/<id>[@<observation>]`); skipped without navix."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("navix")

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.envs import navix as adapter  # noqa: E402
from purejaxppo.envs import make_env  # noqa: E402
from tests.env_rollouts import scripted_rollout_fn as _rollout_fn  # noqa: E402

EMPTY = "navix/Navix-Empty-5x5-v0"
# Navix-Empty-5x5-v0: the agent starts at (1, 1) facing east, the goal is at (3, 3).
# Navix (MiniGrid) actions: 0 turn left, 1 turn right, 2 forward, 3 pick up, 4 drop, 5 toggle, 6 done.
# With a 6-step limit: goal on step 5 (before the limit), then a no-op pick-up and the goal again on the next
# episode's 6th step (the limit's own step), then a turn.
TO_GOAL = [2, 2, 1, 2, 2, 3, 2, 2, 1, 2, 2, 1]
TURN = [1] * 12  # never terminates


@pytest.fixture(scope="module")
def empty():
    return make_env(EMPTY)


def test_truncation_termination_and_final_observation(empty):
    env, params = empty
    assert isinstance(env, adapter.NavixEnv) and env.name == EMPTY and "Navix-Empty-5x5-v0" in repr(env)
    assert params.max_steps_in_episode == 100  # navix.make's default
    assert env.observation_space(params).shape == (7, 7, 3) and env.action_space(params).n == 7
    run = jax.jit(_rollout_fn(env, params.replace(max_steps_in_episode=6)))
    rollout = lambda actions: jax.tree.map(np.asarray, run(jax.random.key(0), jnp.asarray(actions, jnp.int32)))  # noqa: E731

    # Turning forever: truncated exactly every 6 steps, never terminated.
    obs0, (obs, reward, term, trunc, final) = rollout(TURN)
    assert obs.dtype == np.float32 and final.dtype == np.float32 and reward.dtype == np.float32
    assert term.dtype == np.bool_ and trunc.dtype == np.bool_
    assert not term.any() and not reward.any()
    np.testing.assert_array_equal(trunc, np.broadcast_to((np.arange(1, 13) % 6 == 0)[:, None], trunc.shape))
    for i in (5, 11):  # the boundary: the returned obs is a fresh reset, the final observation is not
        np.testing.assert_array_equal(obs[i], obs0)
        assert (final[i] != obs[i]).any()
    np.testing.assert_array_equal(final[:5], obs[:5])  # no reset: the same

    # Walking to the goal: terminated on step 5 (reward 1), the episode restarts; the next one reaches the goal
    # on the limit's own step: terminated only.
    _, (obs, reward, term, trunc, final) = rollout(TO_GOAL)
    assert term[:, 0].tolist() == [False] * 4 + [True] + [False] * 5 + [True, False]
    assert not trunc.any()
    np.testing.assert_array_equal(reward[:, 0], np.asarray(term[:, 0], np.float32))
    np.testing.assert_array_equal(obs[4], obs0)
    assert (final[4] != obs[4]).any()


def test_state_dtypes_fixed(empty):
    env, params = empty
    key = jax.random.key(0)
    after_reset = jax.eval_shape(lambda k: env.reset(k, params)[1], key)
    after_step = jax.eval_shape(lambda k: env.step(k, env.reset(k, params)[1], jnp.int32(0), params)[1], key)
    desc = lambda t: [(x.shape, x.dtype, x.weak_type) for x in jax.tree.leaves(t)]  # noqa: E731
    assert jax.tree.structure(after_reset) == jax.tree.structure(after_step)
    assert desc(after_reset) == desc(after_step)


@pytest.mark.parametrize("network", ["mlp"])  # one network per adapter keeps CI short: xminigrid gru, navix mlp
def test_make_train_by_name(network):
    cfg = PPOConfig(env="navix/Navix-DoorKey-5x5-v0", network=network, num_envs=4, num_steps=8,
                    num_minibatches=2, update_epochs=1, total_timesteps=64, actor_hidden=(16,), critic_hidden=(16,),
                    rnn_size=16, rnn_torso=(16,))
    out = jax.jit(make_train(cfg))(jax.random.key(0))
    assert int(out.state.update_step) == 2
    for name, v in out.metrics.items():
        assert np.all(np.isfinite(np.asarray(v))), name


def test_names_and_observations():
    with pytest.raises(ValueError, match=r"unknown Navix environment 'Navix-Empty-7x7-v0'.*Did you mean.*"
                                         r"Navix environments:.*Navix-DoorKey-5x5-v0"):
        make_env("navix/Navix-Empty-7x7-v0")
    with pytest.raises(ValueError, match="unknown Navix observation 'rgb'"):
        make_env("navix/Navix-Empty-5x5-v0@rgb")
    assert "Navix-DoorKey-5x5-v0" in adapter.env_names()
    env, params = make_env("navix/Navix-Empty-6x6-v0@symbolic")  # fully observed: the whole grid
    assert env.observation_space(params).shape == (6, 6, 3)
    env, params = make_env("navix/Navix-Empty-6x6-v0@categorical")
    assert env.observation_space(params).shape == (6, 6)


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "navix", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[navix\]'"):
        make_env(EMPTY)
