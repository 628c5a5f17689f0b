"""Probe environments: each isolates one part of PPO with a known answer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from tests.probes import ProbeEnv

BASE = PPOConfig(num_envs=16, num_steps=8, num_minibatches=2, update_epochs=4, total_timesteps=16 * 8 * 60,
                 learning_rate=3e-3, ent_coef=0.0, actor_hidden=(16,), critic_hidden=(16,), clip_value_loss=False)


def _train(kind, continuous=False, **overrides):
    train = make_train(BASE.replace(**overrides), env=ProbeEnv(kind, continuous))
    out = jax.jit(train)(jax.random.key(0))

    def policy_value(obs):
        dist, value = train.network.apply(out.state.params, jnp.asarray(obs, jnp.float32).reshape(-1, 1))
        return dist, np.asarray(value)

    return out, policy_value


@pytest.mark.parametrize("continuous", [False, True])
def test_constant_reward_value(continuous):
    _, pv = _train("constant", continuous)
    assert pv([0.0])[1][0] == pytest.approx(1.0, abs=0.05)


def test_reward_equals_obs_value():
    _, pv = _train("reward_obs")
    np.testing.assert_allclose(pv([-1.0, 1.0])[1], [-1.0, 1.0], atol=0.1)


def test_two_step_discounting():
    _, pv = _train("two_step", gamma=0.5, total_timesteps=16 * 8 * 120)
    np.testing.assert_allclose(pv([0.0, 1.0])[1], [0.5, 1.0], atol=0.1)


def test_truncation_bootstraps_from_final_observation():
    # Reward 1 forever, cut every 5 steps by a time limit: the true value is 1 / (1 - gamma) = 2.
    _, pv = _train("truncated", gamma=0.5, total_timesteps=16 * 8 * 120)
    assert pv([0.0])[1][0] == pytest.approx(2.0, abs=0.1)
    # Treating truncation as termination learns the time-averaged 2 * (1 - mean_k 0.5^k) = 1.6125 instead.
    _, pv_old = _train("truncated", gamma=0.5, total_timesteps=16 * 8 * 120, truncation_as_termination=True)
    assert pv_old([0.0])[1][0] == pytest.approx(1.6125, abs=0.1)


def test_best_action_discrete():
    out, pv = _train("best_action")
    dist, _ = pv([0.0])
    assert float(jnp.exp(dist.log_prob(jnp.array([1])))[0]) > 0.95
    assert float(out.metrics["episode_return"][-1]) > 0.9


def test_best_action_continuous():
    _, pv = _train("best_action", continuous=True, learning_rate=1e-2, total_timesteps=16 * 8 * 150)
    dist, _ = pv([0.0])
    assert float(dist.mean[0, 0]) == pytest.approx(1.0, abs=0.2)


def test_obs_dependent_action_discrete():
    _, pv = _train("obs_action", total_timesteps=16 * 8 * 120)
    dist, _ = pv([-1.0, 1.0])
    p = np.exp(np.asarray(dist.log_probs))
    assert p[0, 0] > 0.9 and p[1, 1] > 0.9


def test_obs_dependent_action_continuous():
    _, pv = _train("obs_action", continuous=True, learning_rate=1e-2, total_timesteps=16 * 8 * 150)
    dist, _ = pv([-1.0, 1.0])
    np.testing.assert_allclose(np.asarray(dist.mean[:, 0]), [-1.0, 1.0], atol=0.25)
