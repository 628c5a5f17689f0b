"""benchmarks/recipes.py's pure parts (placeholder masking, smoothing, steps to 90% of the improvement, the merged
markdown) and purejaxppo.envs.wrappers.ScaleReward, the reward-scale wrapper its PopArt experiment trains on."""

import importlib.util
import sys
from pathlib import Path

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.envs.wrappers import ScaleReward
from purejaxppo.errors import EnvError

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = PPOConfig(
    env="CartPole-v1",
    num_envs=4,
    num_steps=64,
    num_minibatches=2,
    update_epochs=1,
    total_timesteps=4 * 64 * 2,
    actor_hidden=(8,),
    critic_hidden=(8,),
)  # 2 updates


@pytest.fixture(scope="module")
def rb():
    spec = importlib.util.spec_from_file_location("_bench_recipes", BENCH / "recipes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_valid_curves_blank_the_placeholder_before_each_runs_first_episode(rb):
    curves = np.array([[0.0, 0.0, 5.0, 5.0], [0.0, 3.0, 3.0, 4.0]])
    completed = np.array([[0, 0, 2, 0], [0, 1, 0, 1]])
    out = rb.valid_curves(curves, completed)
    np.testing.assert_array_equal(np.isnan(out), [[True, True, False, False], [True, False, False, False]])
    np.testing.assert_array_equal(out[1, 1:], [3.0, 3.0, 4.0])


def test_smooth_is_a_trailing_mean_and_nan_while_the_window_is_incomplete(rb):
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [np.nan, 2.0, 4.0, 6.0, 8.0]])
    out = rb.smooth(x, 2)
    np.testing.assert_array_equal(
        np.isnan(out), [[True, False, False, False, False], [True, True, False, False, False]]
    )
    np.testing.assert_allclose(out[0, 1:], [1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(out[1, 2:], [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(rb.smooth(x, 1), x)


def test_target_is_ninety_percent_of_the_improvement_for_either_sign(rb):
    assert rb.target_score(20.0, 500.0) == pytest.approx(452.0)
    assert rb.target_score(-1200.0, -200.0) == pytest.approx(-300.0)


def test_steps_to_target_counts_updates_to_the_first_crossing_and_inf_when_never(rb):
    smoothed = np.array([[np.nan, 1.0, 5.0, 9.0, 9.5], [np.nan, np.nan, 1.0, 2.0, 2.0], [10.0, 1.0, 1.0, 1.0, 1.0]])
    steps = rb.steps_to_target(smoothed, 9.0, steps_per_update=100)
    np.testing.assert_array_equal(steps, [400.0, np.inf, 100.0])
    # a negative-return task: a NaN (no data yet) is never a crossing, though 0 > -300
    assert np.isinf(rb.steps_to_target(np.array([[np.nan, -900.0]]), -300.0, 10)).all()


def test_steps_text_counts_seeds_that_reach_and_marks_a_censored_median(rb):
    assert rb.steps_text(np.array([100.0, 200.0, 300.0, np.inf]), 1000).endswith("(3/4)")
    assert not rb.steps_text(np.array([100.0, 200.0, 300.0, np.inf]), 1000).startswith(">=")
    assert rb.steps_text(np.array([100.0, np.inf, np.inf, np.inf]), 1000).startswith(">=1,000")
    assert rb.steps_text(np.array([np.inf, np.inf]), 1000) == "never (0/2)"


def test_render_keeps_every_recorded_section_in_experiment_order(rb):
    sec = lambda t: {"command": f"cmd {t}", "hardware": "hw", "seconds": 1.0, "text": [t]}  # noqa: E731
    md = rb.render({"precision": sec("P"), "privileged": sec("V")})
    assert md.index("## Privileged") < md.index("## Matmul precision") and "cmd P" in md and "cmd V" in md
    assert "## PopArt" not in md


def test_scale_reward_scales_the_reward_and_keeps_the_unscaled_one_as_the_score():
    env, params = gymnax.make("CartPole-v1")
    scaled = ScaleReward(env, 1000.0)
    key = jax.random.key(0)
    obs0, state0 = env.reset(key, params)
    obs1, state1 = scaled.reset(key, params)
    np.testing.assert_array_equal(obs0, obs1)
    plain = env.step(key, state0, 1, params)
    out = scaled.step(key, state1, 1, params)
    np.testing.assert_array_equal(plain[0], out[0])
    assert float(out[2]) == pytest.approx(1000.0 * float(plain[2]))
    assert float(out[5]["score"]) == float(plain[2])
    assert (out[3], out[4]) == (plain[3], plain[4])
    assert scaled.observation_space(params).shape == env.observation_space(params).shape
    assert scaled.action_space(params).n == env.action_space(params).n and scaled.num_actions == env.num_actions


def test_scale_reward_keeps_an_inner_score_and_refuses_a_zero_scale():
    class WithScore:
        def step(self, key, state, action, params=None):
            return 0.0, state, jnp.float32(2.0), False, False, {"score": jnp.float32(7.0)}

    out = ScaleReward(WithScore(), 0.5).step(None, None, 0)
    assert float(out[2]) == 1.0 and float(out[5]["score"]) == 7.0
    with pytest.raises(EnvError, match="nonzero"):
        ScaleReward(WithScore(), 0.0)


def test_training_on_scaled_rewards_reports_returns_in_the_tasks_units():

    env, params = gymnax.make("CartPole-v1")
    returns = {}
    for scale in (1.0, 1000.0):
        out = jax.jit(make_train(TINY, env=ScaleReward(env, scale), env_params=params))(jax.random.key(0))
        returns[scale] = np.asarray(out.metrics["episode_return"])
    # the same seed acts the same in the first rollout (the policy has not learned yet): the same episodes
    assert returns[1.0][0] > 0 and returns[1000.0][0] == pytest.approx(returns[1.0][0])


def test_evaluate_lengths_at_the_nominal_length_is_the_librarys_evaluation_and_the_length_reaches_the_env(rb):
    from purejaxppo.core.agent import ActingState
    from purejaxppo.core.evaluate import make_evaluate

    r = rb.train_seeds(TINY, 2)
    key = jax.random.key(3)
    got = rb.evaluate_lengths(r, np.array([1.0, 0.1]), 8, key)  # [S, L]
    assert got.shape == (2, 2)
    evaluate = make_evaluate(r.train)
    acting = ActingState(r.out.state.params, r.out.state.obs_norm)
    want = jax.vmap(lambda a, k: evaluate(a, k, 8).mean())(acting, jax.random.split(key, 2))
    np.testing.assert_allclose(got[:, 0], np.asarray(want), rtol=1e-6)
    assert not np.allclose(got[:, 0], got[:, 1])  # a pole a tenth as long falls sooner
