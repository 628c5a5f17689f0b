"""XLand-MiniGrid adapter (purejaxppo.envs.xminigrid, `env: xminigrid/<id>`); skipped without xminigrid."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("xminigrid")

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.envs import xminigrid as adapter  # noqa: E402
from purejaxppo.envs import make_env  # noqa: E402
from tests.env_rollouts import scripted_rollout_fn as _rollout_fn  # noqa: E402

EMPTY = "xminigrid/MiniGrid-Empty-5x5"
# MiniGrid-Empty-5x5: the agent starts at (1, 1) facing right, the goal is at (3, 3).
# xminigrid actions: 0 forward, 1 turn right, 2 turn left, 3 pick up, 4 put down, 5 toggle.
# With a 6-step limit: goal on step 5 (before the limit), then a no-op pick-up and the goal again on the next
# episode's 6th step (the limit's own step), then a turn.
TO_GOAL = [0, 0, 1, 0, 0, 3, 0, 0, 1, 0, 0, 1]
TURN = [1] * 12  # never terminates


@pytest.fixture(scope="module")
def empty():
    return make_env(EMPTY)


def test_truncation_termination_and_final_observation(empty):
    env, params = empty
    assert isinstance(env, adapter.XMiniGridEnv) and env.name == EMPTY and "MiniGrid-Empty-5x5" in repr(env)
    assert params.max_steps == 100  # xminigrid's 4 * H * W
    assert env.observation_space(params).shape == (7, 7, 2) and env.action_space(params).n == 6

    run = jax.jit(_rollout_fn(env, params.replace(max_steps=6)))
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

    # Walking to the goal: terminated on step 5 (reward 1 - 0.9 * 5 / 6), the episode restarts; the next one
    # reaches the goal on the limit's own step (xminigrid flags both): terminated only.
    _, (obs, reward, term, trunc, final) = rollout(TO_GOAL)
    assert term[:, 0].tolist() == [False] * 4 + [True] + [False] * 5 + [True, False]
    assert not trunc.any()
    np.testing.assert_allclose(reward[4], 1 - 0.9 * 5 / 6, rtol=1e-6)
    np.testing.assert_allclose(reward[10], 1 - 0.9 * 6 / 6, rtol=1e-6)
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


@pytest.mark.parametrize("network", ["gru"])  # one network per adapter keeps CI short: xminigrid gru, navix mlp
def test_make_train_by_name(network):
    cfg = PPOConfig(env="xminigrid/MiniGrid-DoorKey-5x5", network=network, num_envs=4, num_steps=8,
                    num_minibatches=2, update_epochs=1, total_timesteps=64, actor_hidden=(16,), critic_hidden=(16,),
                    rnn_size=16, rnn_torso=(16,))
    out = jax.jit(make_train(cfg))(jax.random.key(0))
    assert int(out.state.update_step) == 2
    for name, v in out.metrics.items():
        assert np.all(np.isfinite(np.asarray(v))), name


def test_unknown_name_and_xland_need_a_ruleset():
    with pytest.raises(ValueError, match=r"unknown XLand-MiniGrid environment 'MiniGrid-Empty-7x7'.*"
                                         r"Did you mean.*MiniGrid-Empty-8x8"):
        make_env("xminigrid/MiniGrid-Empty-7x7")
    with pytest.raises(ValueError, match=r"needs a ruleset.*trivial-21k"):
        make_env("xminigrid/XLand-MiniGrid-R1-9x9")
    with pytest.raises(ValueError, match="malformed XLand ruleset"):
        make_env("xminigrid/XLand-MiniGrid-R1-9x9@trivial-21k")
    with pytest.raises(ValueError, match="unknown XLand benchmark"):
        make_env("xminigrid/XLand-MiniGrid-R1-9x9@nosuch:0")
    with pytest.raises(ValueError, match="only XLand-MiniGrid ids"):
        make_env("xminigrid/MiniGrid-Empty-5x5@trivial-21k:0")
    assert "MiniGrid-DoorKey-5x5" in adapter.env_names()


def test_xland_with_a_ruleset_built_offline():
    from xminigrid.core.constants import TILES_REGISTRY, Colors, Tiles
    from xminigrid.core.goals import AgentNearGoal
    from xminigrid.core.rules import EmptyRule
    from xminigrid.types import RuleSet

    ball = TILES_REGISTRY[Tiles.BALL, Colors.RED]
    ruleset = RuleSet(goal=AgentNearGoal(tile=ball).encode(), rules=EmptyRule().encode()[None], init_tiles=ball[None])
    env, params = adapter.make("XLand-MiniGrid-R1-9x9", ruleset=ruleset)
    assert env.observation_space(params).shape == (5, 5, 2)  # XLand's view size
    # Traced only (compiling an XLand step costs ~10 s of CPU): shapes and dtypes of a rollout.
    obs0, (obs, reward, term, trunc, final) = jax.eval_shape(_rollout_fn(env, params.replace(max_steps=6), 8),
                                                             jax.random.key(0), jnp.zeros(12, jnp.int32))
    assert obs0.shape == (8, 5, 5, 2) and obs.shape == final.shape == (12, 8, 5, 5, 2) and obs.dtype == jnp.float32
    assert reward.dtype == jnp.float32 and term.dtype == trunc.dtype == jnp.bool_


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "xminigrid", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[xminigrid\]'"):
        make_env(EMPTY)
