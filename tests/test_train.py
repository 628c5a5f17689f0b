import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import METRIC_NAMES, ConfigError, PPOConfig, make_train, raise_if_diverged
from tests.probes import ProbeEnv

SMALL = PPOConfig(env="CartPole-v1", num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2, total_timesteps=4 * 16 * 6)


@pytest.fixture(scope="module")
def train_small():
    return make_train(SMALL)


@pytest.fixture(scope="module")
def jit_train(train_small):
    return jax.jit(train_small)


def test_output_structure(jit_train):
    out = jit_train(jax.random.key(0))
    assert set(METRIC_NAMES) <= set(out.metrics)
    for name, v in out.metrics.items():
        assert v.shape == (SMALL.num_updates,), name
        assert v.dtype == jnp.float32, name
        assert np.all(np.isfinite(v)), name
    s = out.state
    assert int(s.update_step) == SMALL.num_updates
    assert s.env.obs.shape == (SMALL.num_envs, 4)
    # Nothing in the output grows with num_updates except the scalar metrics.
    for leaf in jax.tree.leaves(s):
        assert SMALL.num_updates not in leaf.shape or leaf.ndim == 0


def test_episode_return_never_nan_and_carried_forward():
    # 6 updates of 4 envs x 2 steps: no CartPole episode can finish in the first update.
    cfg = PPOConfig(num_envs=4, num_steps=2, num_minibatches=1, update_epochs=1, total_timesteps=4 * 2 * 40)
    m = jax.jit(make_train(cfg))(jax.random.key(0)).metrics
    r, n = np.asarray(m["episode_return"]), np.asarray(m["episodes_completed"])
    assert np.all(np.isfinite(r))
    assert n[0] == 0 and r[0] == 0.0  # nothing completed yet
    assert r.max() > 0 and n.sum() > 0  # later updates did complete episodes
    # Where an update completed no episode its value equals the previous one.
    idle = np.flatnonzero(n[1:] == 0) + 1
    assert len(idle) > 0 and np.all(r[idle] == r[idle - 1])
    assert np.all(np.asarray(m["episode_length"])[n > 0] >= 8)  # CartPole episodes last at least ~8 steps


def test_same_key_same_result_different_key_different(jit_train):
    a = jit_train(jax.random.key(1))
    b = jit_train(jax.random.key(1))
    c = jit_train(jax.random.key(2))
    chex.assert_trees_all_equal(a.metrics, b.metrics)
    chex.assert_trees_all_equal(a.state.params, b.state.params)
    assert not np.allclose(a.metrics["policy_loss"], c.metrics["policy_loss"])


def test_vmap_over_seeds_matches_individual_runs(train_small, jit_train):
    keys = jax.random.split(jax.random.key(3), 3)
    outs = jax.jit(jax.vmap(train_small))(keys)
    assert outs.metrics["episode_return"].shape == (3, SMALL.num_updates)
    for i in range(3):
        single = jit_train(keys[i])
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], outs.metrics), single.metrics, rtol=1e-4, atol=1e-5)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], outs.state.params), single.state.params, rtol=1e-4, atol=1e-5)


def test_hparam_sweep_one_trace_matches_individual_runs(train_small):
    hp = SMALL.hparams()
    lrs = jnp.array([1e-4, 3e-4, 1e-3])
    hps = jax.vmap(lambda lr: hp.replace(learning_rate=lr))(lrs)
    traced = chex.assert_max_traces(lambda key, hp: train_small(key, hp), n=1)  # chex wants a plain function
    sweep = jax.jit(jax.vmap(traced, in_axes=(None, 0)))
    key = jax.random.key(0)
    outs = sweep(key, hps)
    # Same shapes, other values: no retrace.
    outs2 = sweep(key, jax.vmap(lambda lr: hp.replace(learning_rate=lr))(lrs * 2))
    assert not np.allclose(outs.metrics["learning_rate"], outs2.metrics["learning_rate"])
    for i, lr in enumerate(lrs):
        single = jax.jit(make_train(SMALL.replace(learning_rate=float(lr))))(key)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], outs.metrics), single.metrics, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outs.metrics["learning_rate"][:, 0], lrs, rtol=1e-6)


def test_lr_annealing_and_constant():
    m = jax.jit(make_train(SMALL))(jax.random.key(0)).metrics["learning_rate"]
    n = SMALL.num_updates
    np.testing.assert_allclose(m, SMALL.learning_rate * (1 - np.arange(n) / n), rtol=1e-5)
    m2 = jax.jit(make_train(SMALL.replace(anneal_lr=False)))(jax.random.key(0)).metrics["learning_rate"]
    np.testing.assert_allclose(m2, SMALL.learning_rate, rtol=1e-6)


def test_custom_network_factory_is_used():
    import flax.linen as nn

    from purejaxppo.core.distributions import Categorical

    class Fixed(nn.Module):
        @nn.compact
        def __call__(self, obs):
            b = self.param("b", nn.initializers.zeros, ())
            logits = jnp.broadcast_to(jnp.array([0.0, 50.0]) + b, (obs.shape[0], 2))
            return Categorical(logits), jnp.full((obs.shape[0],), 42.0) + b

    calls = []

    def factory(obs_spec, action_spec):
        calls.append((obs_spec.shape, action_spec))
        return Fixed()

    train = make_train(SMALL, network_factory=factory)
    assert calls == [((4,), train.action_spec)]
    with pytest.raises(ConfigError, match="network_factory must take .obs_spec, action_spec."):
        make_train(SMALL, network_factory=lambda config, obs_shape, action_spec: Fixed())
    out = jax.jit(train)(jax.random.key(0))
    # Always pushing right, CartPole falls after ~10 steps: a signature no learned policy has at init.
    assert 8 <= float(out.metrics["episode_length"][-1]) <= 12
    assert float(out.metrics["entropy"][0]) < 1e-6


def test_nan_is_reported_and_params_frozen():
    cfg = PPOConfig(num_envs=2, num_steps=4, num_minibatches=1, update_epochs=1, total_timesteps=2 * 4 * 3)
    env = ProbeEnv("constant")
    train = make_train(cfg, env=env)
    bad = cfg.hparams().replace(learning_rate=jnp.asarray(jnp.inf))
    out = jax.jit(train)(jax.random.key(0), bad)
    assert np.all(np.asarray(out.metrics["diverged"]) == 1.0)
    init = train.init(jax.random.key(0))
    chex.assert_trees_all_equal(out.state.params, init.params)
    with pytest.raises(FloatingPointError, match="diverged"):
        raise_if_diverged(out)
    raise_if_diverged(jax.jit(train)(jax.random.key(0)))  # a healthy run passes


def test_init_update_compose_to_train(train_small, jit_train):
    key = jax.random.key(5)
    state = train_small.init(key)
    update = jax.jit(train_small.update)
    rows = []
    for _ in range(SMALL.num_updates):
        state, m = update(state)
        rows.append(m)
    full = jit_train(key)
    chex.assert_trees_all_close(jax.tree.map(lambda *x: jnp.stack(x), *rows), full.metrics, rtol=1e-5, atol=1e-6)


def test_obs_and_reward_normalization_state():
    cfg = SMALL.replace(normalize_obs=True, normalize_reward=True)
    out = jax.jit(make_train(cfg))(jax.random.key(0))
    s = out.state
    assert float(s.obs_norm.count) == pytest.approx(cfg.total_timesteps, rel=1e-3)
    assert s.reward_scaler.returns.shape == (cfg.num_envs,)
    assert np.all(np.isfinite(out.metrics["value_loss"]))


@pytest.mark.parametrize("n", [1, 2, 5, 512, 1000, 20480])
def test_permutation_is_a_permutation_and_deterministic(n):
    from purejaxppo.core.update import permutation

    p = np.asarray(permutation(jax.random.PRNGKey(3), n))
    assert p.dtype == np.int32 and sorted(p.tolist()) == list(range(n))
    np.testing.assert_array_equal(p, np.asarray(permutation(jax.random.PRNGKey(3), n)))
    if n >= 512:
        assert not np.array_equal(p, np.asarray(permutation(jax.random.PRNGKey(4), n)))


def test_permutation_is_uniform():
    """All 4! = 24 orders of 4 items are equally likely (chi-square over 24,000 draws)."""
    from purejaxppo.core.update import permutation

    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 4)))(jax.random.split(jax.random.PRNGKey(0), 24_000)))
    codes = perms @ np.array([64, 16, 4, 1])
    _, counts = np.unique(codes, return_counts=True)
    assert len(counts) == 24
    chi2 = float(np.sum((counts - 1000.0) ** 2 / 1000.0))
    assert chi2 < 49.7  # 99.9% quantile of chi-square with 23 degrees of freedom


def test_the_update_blocks_stay_importable_from_train():
    """Tests, benchmarks and user code import the update's building blocks from purejaxppo.core.train."""
    import purejaxppo.core.train as train_module
    import purejaxppo.core.train_state as train_state
    import purejaxppo.core.update as update

    for name in ("make_optimizer", "permutation", "explained_variance", "advantages", "bootstrap_values",
                 "rollout_batch", "minibatches", "run_epochs"):
        assert getattr(train_module, name) is getattr(update, name), name
    for name in ("METRIC_NAMES", "TrainState", "TrainOutput", "raise_if_diverged"):
        assert getattr(train_module, name) is getattr(train_state, name), name


class _ScoredEnv:
    """CartPole whose info reports a score of 2 per step and the episode's end every second end (an Atari-like
    env: clipped learning reward vs game score, lives vs games)."""

    def __init__(self):
        from purejaxppo.envs import make_env

        self.env, self.params = make_env("CartPole-v1")
        self.default_params = self.params

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, key, params=None):
        obs, state = self.env.reset(key, params)
        return obs, (state, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params=None):
        inner, ends = state
        obs, inner, reward, term, trunc, info = self.env.step(key, inner, action, params)
        done = term | trunc
        ends = ends + done.astype(jnp.int32)
        info = {**info, "score": 2.0 * reward, "episode_end": done & (ends % 2 == 0)}
        return obs, (inner, ends), reward, term, trunc, info


def test_an_envs_score_and_episode_end_drive_the_episode_statistics_only():
    env = _ScoredEnv()
    cfg = SMALL.replace(total_timesteps=4 * 16 * 12)
    scored = jax.jit(make_train(cfg, env=env, env_params=env.params))(jax.random.key(0))
    plain = jax.jit(make_train(cfg))(jax.random.key(0))
    chex.assert_trees_all_close(scored.state.params, plain.state.params, rtol=1e-6, atol=1e-7)  # learning unchanged
    n_scored, n_plain = (np.asarray(o.metrics["episodes_completed"]).sum() for o in (scored, plain))
    assert 0 < n_scored < n_plain and abs(n_scored - n_plain / 2) <= 4  # every second end is an episode's
    ret_s, ret_p = (np.asarray(o.metrics["episode_return"])[-1] for o in (scored, plain))
    assert ret_s > 2.0 * ret_p  # two episodes' worth of a doubled score
