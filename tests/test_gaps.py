"""Tests for behaviour the other files left unchecked; each is written so that a wrong implementation fails it.

explained_variance; the grad_norm metric (before clipping) and make_optimizer's global-norm clipping;
per-minibatch advantage normalization; one diverging run among vmapped ones; actions clipped/squashed
to the box before the env receives them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment, spaces

from purejaxppo import PPOConfig, make_train
from purejaxppo.core.distributions import Categorical
from purejaxppo.core.losses import Batch, normalize, ppo_loss
from purejaxppo.core.train import explained_variance, make_optimizer

TINY = dict(num_envs=2, num_steps=8, num_minibatches=1, update_epochs=1, total_timesteps=2 * 8 * 3)


def _ev(v, t) -> float:
    return float(explained_variance(jnp.asarray(v, jnp.float32), jnp.asarray(t, jnp.float32)))


# --- explained_variance ------------------------------------------------------------------------------------

def test_explained_variance_reference_points():
    t = np.array([1.0, -2.0, 3.5, 0.25, 7.0])
    assert _ev(t, t) == pytest.approx(1.0)  # perfect predictions
    assert _ev(np.full_like(t, t.mean()), t) == pytest.approx(0.0, abs=1e-6)  # predicting the mean
    assert _ev(-t, t) < 0  # worse than the mean
    assert _ev(t + 10.0, t) == pytest.approx(1.0)  # a constant offset is not penalized (variance of the error)
    flat = _ev(np.array([0.0, 5.0, -3.0]), np.full(3, 2.0))  # targets without variance
    assert flat == 0.0 and np.isfinite(flat)


def test_explained_variance_matches_numpy_on_random_data():
    rng = np.random.default_rng(0)
    for shape in [(64,), (16, 8), (3, 5, 7)]:
        t = rng.normal(size=shape).astype(np.float32) * 3.0
        v = (t + rng.normal(size=shape) * rng.uniform(0.1, 3.0)).astype(np.float32)
        expected = 1.0 - np.var(t.astype(np.float64) - v) / np.var(t.astype(np.float64))
        assert _ev(v, t) == pytest.approx(expected, rel=1e-4, abs=1e-5)


# --- grad_norm and max_grad_norm ---------------------------------------------------------------------------

def _adam_as_identity(hp, lr):
    """make_optimizer with a huge Adam eps: its first update is -lr * g / (|g| + eps), so g = -update * eps / lr."""
    eps = 1e6
    opt = make_optimizer(hp.replace(adam_eps=jnp.float32(eps)), jnp.float32(lr))

    def passed_gradient(grads):
        updates, _ = opt.update(grads, opt.init(grads), grads)
        return jax.tree.map(lambda u: np.asarray(u, np.float64) * -eps / lr, updates)

    return passed_gradient


def _global_norm(tree) -> float:
    return float(np.sqrt(sum(np.sum(np.square(x)) for x in jax.tree.leaves(tree))))


def test_make_optimizer_clips_by_the_global_norm():
    hp = PPOConfig(max_grad_norm=0.5).hparams()
    passed = _adam_as_identity(hp, lr=1e-3)
    # Leaves of different norms: per-leaf clipping would give another direction and a norm of 0.5 * sqrt(2).
    big = {"a": jnp.array([300.0, 400.0]), "b": jnp.array([[0.0, 1200.0]])}  # global norm 1300
    got = passed(big)
    assert _global_norm(got) == pytest.approx(0.5, rel=1e-5)
    for k in big:
        np.testing.assert_allclose(got[k], np.asarray(big[k]) * (0.5 / 1300.0), rtol=1e-5, atol=1e-9)
    small = jax.tree.map(lambda x: x / 1e4, big)  # norm 0.13 < 0.5: passed through unchanged
    got = passed(small)
    for k in small:
        np.testing.assert_allclose(got[k], np.asarray(small[k]), rtol=1e-5, atol=1e-9)


def test_grad_norm_metric_is_measured_before_clipping():
    cfg = PPOConfig(**TINY)
    train = make_train(cfg)
    run = jax.jit(train)
    key = jax.random.key(3)
    hp = cfg.hparams()
    outs = {m: run(key, hp.replace(max_grad_norm=jnp.float32(m))) for m in (1e-6, 1e9, 1e10)}
    first = {m: float(o.metrics["grad_norm"][0]) for m, o in outs.items()}
    # The first update's gradient comes from the same params and rollout in every run: its norm cannot depend on
    # the threshold, and it is far above the tiny one (so that run was clipped).
    assert first[1e-6] == first[1e9] == first[1e10]
    assert first[1e-6] > 1e-3
    leaves = {m: jax.tree.leaves(o.state.params) for m, o in outs.items()}
    # Clipping happened: tiny threshold -> other params; never triggered: bit-identical params.
    assert any(not np.array_equal(a, b) for a, b in zip(leaves[1e-6], leaves[1e9]))
    assert all(np.array_equal(a, b) for a, b in zip(leaves[1e9], leaves[1e10]))


# --- per-minibatch advantage normalization -----------------------------------------------------------------

def test_normalize_zero_mean_unit_std_and_affine_invariant():
    x = jnp.asarray(np.random.default_rng(1).normal(2.0, 5.0, size=257), jnp.float32)
    n = np.asarray(normalize(x))
    assert abs(n.mean()) < 1e-6 and n.std() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(normalize(3.0 * x + 7.0), n, atol=1e-5)
    np.testing.assert_allclose(normalize(-x), -n, atol=1e-6)
    assert np.all(np.asarray(normalize(jnp.full(4, 3.0))) == 0.0)  # no variance: zeros, not NaN


def _policy_loss(adv, normalize_advantages):
    """ppo_loss's policy loss on a fixed minibatch of a tabular categorical policy (ratios away from 1)."""
    rng = np.random.default_rng(2)
    m, a = 32, 3
    logits = jnp.asarray(rng.normal(size=(m, a)), jnp.float32)
    old_logits = logits + jnp.asarray(rng.normal(scale=0.5, size=(m, a)), jnp.float32)
    action = jnp.asarray(rng.integers(0, a, size=m), jnp.int32)
    old = Categorical(old_logits)
    batch = Batch(obs=jnp.arange(m), action=action, log_prob=old.log_prob(action), value=jnp.zeros(m),
                  advantage=jnp.asarray(adv, jnp.float32), target=jnp.zeros(m), old_dist=old)

    def apply_fn(params, obs):
        return Categorical(params[obs]), jnp.zeros(obs.shape[0])

    _, metrics = ppo_loss(logits, apply_fn, batch, PPOConfig().hparams(), normalize_advantages=normalize_advantages)
    return float(metrics["policy_loss"])


def test_ppo_loss_normalizes_advantages_within_the_minibatch():
    adv = np.random.default_rng(3).normal(size=32)
    on = _policy_loss(adv, True), _policy_loss(4.0 * adv + 3.0, True)
    off = _policy_loss(adv, False), _policy_loss(4.0 * adv + 3.0, False)
    assert on[0] == pytest.approx(on[1], rel=1e-5, abs=1e-6)
    assert abs(off[0] - off[1]) > 0.1


def test_single_sample_minibatches_have_no_policy_gradient_when_normalized():
    """Normalized within a minibatch of one sample, every advantage is 0; over the whole batch it would not be.

    With vf_coef = ent_coef = 0 the loss is then exactly flat, so the grad_norm metric is exactly 0.
    """
    cfg = PPOConfig(num_envs=2, num_steps=4, num_minibatches=8, update_epochs=2, total_timesteps=2 * 4 * 3)
    hp = cfg.hparams().replace(vf_coef=jnp.float32(0.0), ent_coef=jnp.float32(0.0))
    key = jax.random.key(0)
    grad_norm = {flag: np.asarray(jax.jit(make_train(cfg.replace(normalize_advantages=flag)))(key, hp)
                                  .metrics["grad_norm"]) for flag in (True, False)}
    assert np.all(grad_norm[True] == 0.0)
    assert np.all(grad_norm[False] > 0.0)


# --- one diverging run among vmapped runs ------------------------------------------------------------------

def _run_lr(train, keys, hp, lrs):
    hps = jax.tree.map(lambda x: jnp.broadcast_to(x, (len(lrs),) + jnp.shape(x)), hp)
    return jax.jit(jax.vmap(train))(keys, hps.replace(learning_rate=jnp.asarray(lrs, jnp.float32)))


def test_one_diverging_run_is_frozen_and_the_others_are_unaffected():
    cfg = PPOConfig(**dict(TINY, total_timesteps=2 * 8 * 4))
    train = make_train(cfg)
    hp = cfg.hparams()
    keys = jax.random.split(jax.random.key(7), 3)
    bad = _run_lr(train, keys, hp, [2.5e-4, 1e30, 1e-3])
    clean = _run_lr(train, keys, hp, [2.5e-4, 2.5e-4, 1e-3])

    diverged = np.asarray(bad.metrics["diverged"])
    assert np.all(diverged[[0, 2]] == 0.0)
    assert diverged[1].max() == 1.0 and np.all(np.diff(diverged[1]) >= 0)  # once diverged, it stays so
    assert not np.any(np.asarray(clean.metrics["diverged"]))
    # The diverged run's params are finite: frozen at the last finite values (here: before its first update).
    first_bad = int(np.argmax(diverged[1]))
    for leaf in jax.tree.leaves(bad.state.params):
        assert np.all(np.isfinite(np.asarray(leaf)[1]))
    if first_bad == 0:
        init = train.init(keys[1], hp.replace(learning_rate=jnp.float32(1e30))).params
        for got, want in zip(jax.tree.leaves(bad.state.params), jax.tree.leaves(init)):
            np.testing.assert_array_equal(np.asarray(got)[1], np.asarray(want))
    # The other runs: bit-identical to the same batch without the bad learning rate ...
    for tree_bad, tree_clean in [(bad.metrics, clean.metrics), (bad.state.params, clean.state.params)]:
        for a, b in zip(jax.tree.leaves(tree_bad), jax.tree.leaves(tree_clean)):
            np.testing.assert_array_equal(np.asarray(a)[[0, 2]], np.asarray(b)[[0, 2]])
    # ... and to running them alone (up to float rounding of batched vs unbatched kernels).
    for i, lr in [(0, 2.5e-4), (2, 1e-3)]:
        alone = jax.jit(train)(keys[i], hp.replace(learning_rate=jnp.float32(lr)))
        for name in ("episode_return", "policy_loss", "value_loss", "grad_norm"):
            np.testing.assert_allclose(np.asarray(bad.metrics[name])[i], alone.metrics[name], rtol=1e-4, atol=1e-5)
    with pytest.raises(FloatingPointError, match="1 of 3 run"):
        from purejaxppo import raise_if_diverged

        raise_if_diverged(bad)


# --- actions reach the env inside the box ------------------------------------------------------------------

@struct.dataclass
class _State(environment.EnvState):
    time: int


@struct.dataclass
class _Params(environment.EnvParams):
    max_steps_in_episode: int = 1000


class OutsideCounter(environment.Environment):
    """Box(-bound, bound, (2,)) actions; reward = fraction of the received action's components outside [-1, 1].

    Every episode lasts one step, so the `episode_return` metric is the mean of that fraction over the rollout:
    what the env actually received, after purejaxppo's clip / tanh transform.
    """

    def __init__(self, bound: float):
        super().__init__()
        self.bound = bound

    @property
    def default_params(self):
        return _Params()

    def reset_env(self, key, params):
        return jnp.zeros(1), _State(time=0)

    def step_env(self, key, state, action, params):
        outside = jnp.mean((jnp.abs(action) > 1.0).astype(jnp.float32))
        return jnp.zeros(1), _State(time=state.time + 1), outside, jnp.asarray(True), {}

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def action_space(self, params):
        return spaces.Box(-self.bound, self.bound, (2,), jnp.float32)


@pytest.mark.parametrize("handling", ["clip", "tanh"])
def test_env_receives_actions_inside_the_box(handling):
    # init_log_std = 2: the policy's samples have std e^2 ~ 7.4, mostly outside [-1, 1].
    cfg = PPOConfig(**dict(TINY, num_envs=4, num_steps=32, total_timesteps=4 * 32 * 2), init_log_std=2.0,
                    action_handling=handling)
    key = jax.random.key(0)
    inside = jax.jit(make_train(cfg, env=OutsideCounter(1.0)))(key).metrics["episode_return"]
    assert np.all(np.asarray(inside) == 0.0)
    if handling == "clip":
        # Control: the same policy in a box of +-100, where clipping at +-1 would not happen: the env counts
        # samples outside [-1, 1], so the zero above is the transform's doing.
        wide = jax.jit(make_train(cfg, env=OutsideCounter(100.0)))(key).metrics["episode_return"]
        assert np.all(np.asarray(wide) > 0.5)
