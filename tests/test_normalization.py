import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.core.normalization import RewardScaler, RunningMeanStd


def test_running_stats_equal_numpy_over_all_data():
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=3.0, scale=2.0, size=(n, 3)) for n in (5, 17, 1, 40)]
    rms = RunningMeanStd.create((3,))
    for b in batches:
        rms = rms.update(jnp.asarray(b, jnp.float32))
    allx = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean, allx.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rms.var, allx.var(0), rtol=1e-3)
    assert float(rms.count) == pytest.approx(len(allx), abs=1e-3)


def test_merge_of_two_batches_equals_one_batch():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 2)), rng.normal(loc=5, size=(70, 2))
    two = RunningMeanStd.create((2,)).update(jnp.asarray(a, jnp.float32)).update(jnp.asarray(b, jnp.float32))
    one = RunningMeanStd.create((2,)).update(jnp.asarray(np.concatenate([a, b]), jnp.float32))
    np.testing.assert_allclose(two.mean, one.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two.var, one.var, rtol=1e-5)


def test_normalize_clips():
    rms = RunningMeanStd(jnp.zeros(2), jnp.ones(2), jnp.asarray(10.0))
    np.testing.assert_allclose(rms.normalize(jnp.array([100.0, -0.5]), 5.0), [5.0, -0.5], rtol=1e-6)


def test_reward_scaling_matches_plain_loop():
    gamma, clip = 0.9, 10.0
    rewards = np.array([[1.0, 0.0], [2.0, 1.0], [0.5, -1.0], [3.0, 2.0], [1.0, 0.0], [-2.0, 4.0]], np.float32)
    dones = np.array([[0, 0], [0, 1], [1, 0], [0, 0], [0, 1], [0, 0]], bool)
    # Reference: G <- gamma G + r per env; stats over every G seen so far; r / std; G <- 0 at episode end.
    G = np.zeros(2)
    seen = []
    expected = []
    for r, d in zip(rewards, dones):
        G = gamma * G + r
        seen.extend(G.tolist())
        expected.append(np.clip(r / np.sqrt(np.var(seen) + 1e-8), -clip, clip))
        G = np.where(d, 0.0, G)
    scaler = RewardScaler.create(2)
    got = []
    for r, d in zip(rewards, dones):
        scaler, s = scaler.step(jnp.asarray(r), jnp.asarray(d), gamma, clip)
        got.append(np.asarray(s))
    np.testing.assert_allclose(np.array(got), np.array(expected), rtol=2e-3)


def test_obs_normalization_identical_in_rollout_and_update():
    """With one epoch of one minibatch, the first forward pass of the update must reproduce the
    rollout's log-probs exactly (ratio 1, approx KL 0). If the update normalized observations
    differently from the rollout (or forgot to), the ratio would not be 1."""
    cfg = PPOConfig(num_envs=4, num_steps=32, num_minibatches=1, update_epochs=1, total_timesteps=4 * 32 * 4,
                    normalize_obs=True, learning_rate=1e-2)
    out = jax.jit(make_train(cfg))(jax.random.key(0))
    np.testing.assert_allclose(out.metrics["approx_kl"], 0.0, atol=1e-7)
    np.testing.assert_allclose(out.metrics["clip_fraction"], 0.0)
    # And normalization really is active: the statistics moved away from their initial values.
    assert float(jnp.abs(out.state.obs_norm.mean).max()) > 1e-3
