"""Data- and seed-parallel semantics on one device (purejaxppo.core.collectives / purejaxppo.parallel).

A data axis of D devices is emulated with `jax.vmap(..., axis_name="data")`:
collectives (pmean/psum/axis_index) behave over a vmap axis exactly as over a
`shard_map` mesh axis, so the per-device program is the one that runs on a
mesh. tests/test_distributed.py runs the same programs on a real 2-process
mesh and compares against these emulations.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from purejaxppo.core import collectives
from purejaxppo.core.config import PPOConfig
from purejaxppo.core.losses import Batch, ppo_loss
from purejaxppo.core.normalization import RewardScaler, RunningMeanStd
from purejaxppo.parallel import (check_mesh_shape, default_mesh_shape, hparams_kind, make_mesh,
                                 make_sharded_train, params_of, parse_mesh)
from purejaxppo.core.train import make_optimizer, make_train, permutation, rollout_batch, run_epochs

D = 2
SMALL = PPOConfig(env="CartPole-v1", num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2,
                  total_timesteps=4 * 16 * 6)


def shards(x, d=D, axis=0):
    """Split `x` into d equal shards along `axis`, stacked in front: [d, ...]."""
    return jnp.stack(jnp.split(x, d, axis=axis))


def emulate(fn, d=D):
    return jax.vmap(fn, axis_name="data")


# ------------------------------------------------------------------ reductions


@pytest.mark.parametrize("d", [1, 2, 4])
def test_reductions_over_the_axis_equal_the_union(d):
    x = jax.random.normal(jax.random.key(0), (64, 3)) * 3.0 + 1.0
    y = x + 0.5 * jax.random.normal(jax.random.key(1), (64, 3))
    xs, ys = shards(x, d), shards(y, d)
    m, v = emulate(lambda a: collectives.mean_var(a, "data"))(xs)
    np.testing.assert_allclose(m, np.broadcast_to(np.mean(x), (d,)), rtol=1e-6)
    np.testing.assert_allclose(v, np.broadcast_to(np.var(x), (d,)), rtol=1e-5)
    m0, v0 = emulate(lambda a: collectives.mean_var(a, "data", along=0))(xs)
    np.testing.assert_allclose(m0, np.broadcast_to(np.mean(x, 0), (d, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v0, np.broadcast_to(np.var(x, 0), (d, 3)), rtol=1e-5)
    z = emulate(lambda a: collectives.normalize(a, "data"))(xs)
    np.testing.assert_allclose(np.concatenate(list(z)), collectives.normalize(x, None), rtol=1e-5, atol=1e-5)
    ev = emulate(lambda a, b: collectives.explained_variance(a, b, "data"))(xs, ys)
    np.testing.assert_allclose(ev, np.broadcast_to(collectives.explained_variance(x, y), (d,)), rtol=1e-5)
    s = emulate(lambda a: collectives.psum(jnp.sum(a), "data"))(xs)
    np.testing.assert_allclose(s, np.broadcast_to(np.sum(x), (d,)), rtol=1e-5)
    ok = emulate(lambda a: collectives.all_true(jnp.all(a < 5.0), "data"))(xs)
    assert np.all(ok == bool(np.all(x < 5.0)))


def test_single_device_reductions_are_the_plain_ones():
    # axis=None must be exactly the single-device expressions (the golden tests rely on it).
    x = jax.random.normal(jax.random.key(2), (50,))
    assert np.array_equal(collectives.normalize(x, None), (x - x.mean()) / (x.std() + 1e-8))
    assert np.array_equal(collectives.mean_var(x, None)[1], jnp.var(x))


def test_device_keys_differ_per_device_and_are_the_key_on_one_device():
    key = jax.random.key(3)
    ks = emulate(lambda _: jax.random.key_data(collectives.device_key(key, "data")))(jnp.zeros(D))
    assert not np.array_equal(ks[0], ks[1])
    one = jax.vmap(lambda _: jax.random.key_data(collectives.device_key(key, "data")), axis_name="data")(jnp.zeros(1))
    assert np.array_equal(one[0], jax.random.key_data(key))


def test_normalizers_merge_every_shard():
    x = jax.random.normal(jax.random.key(4), (3, 32, 5)) * 2.0 + 3.0  # 3 batches of 32 observations
    rms, sharded = RunningMeanStd.create((5,)), jax.vmap(lambda _: RunningMeanStd.create((5,)))(jnp.zeros(D))
    for b in x:
        rms = rms.update(b)
        sharded = emulate(lambda r, s: r.update(s, "data"))(sharded, shards(b))
    for d in range(D):
        np.testing.assert_allclose(sharded.mean[d], rms.mean, rtol=1e-5)
        np.testing.assert_allclose(sharded.var[d], rms.var, rtol=1e-5)
        np.testing.assert_allclose(sharded.count[d], rms.count, rtol=1e-6)
    # Reward scaler: per-env returns stay local, the statistics of the returns are global.
    r = jax.random.normal(jax.random.key(5), (4, 8))
    done = jax.random.bernoulli(jax.random.key(6), 0.2, (4, 8))
    one, par = RewardScaler.create(8), jax.vmap(lambda _: RewardScaler.create(8 // D))(jnp.zeros(D))
    for t in range(4):
        one, scaled = one.step(r[t], done[t], 0.99, 10.0)
        par, scaled_p = emulate(lambda s, a, b: s.step(a, b, 0.99, 10.0, "data"))(par, shards(r[t]), shards(done[t]))
        np.testing.assert_allclose(np.concatenate(list(scaled_p)), scaled, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(list(par.returns)), one.returns, rtol=1e-6)


# ------------------------------------------------------------------ one update on fixed inputs


def _fixed_batch(train, key):
    """A real rollout's batch (`rollout_batch`: leaves [T, N, ...]), params and optimizer state: fixed inputs
    of one update."""
    hp = train.config.hparams()
    state = train.init(key, hp)
    from purejaxppo.core.rollout import collect
    from purejaxppo.core.train import advantages

    c = train.config
    _, _, _, traj, _ = collect(key, state.env, state.params, train.agent, train.env, train.env_params,
                               num_steps=c.num_steps, to_env_action=train.to_env_action, obs_norm=None,
                               reward_scaler=None, gamma=hp.gamma, obs_clip=hp.obs_clip, reward_clip=hp.reward_clip)
    adv, targets = advantages(train.agent, state.params, traj, hp)
    return state.params, state.opt_state, rollout_batch(traj, adv, targets), hp


@pytest.mark.parametrize("target_kl", [False, True])
def test_data_parallel_update_is_the_update_on_the_union_of_the_device_minibatches(target_kl):
    cfg = SMALL.replace(update_epochs=3, num_minibatches=2, use_target_kl=target_kl, target_kl=5e-6)
    train = make_train(cfg)
    params, opt_state, batch, hp = _fixed_batch(train, jax.random.key(7))
    key = jax.random.key(8)
    opt = make_optimizer(hp, hp.learning_rate)
    kw = dict(update_epochs=cfg.update_epochs, num_minibatches=cfg.num_minibatches, use_target_kl=target_kl)

    def loss(axis):
        return lambda p, mb: ppo_loss(p, train.agent.apply, mb, hp, objective=train.objective, data_axis=axis)

    def replay_loss(axis):  # what Train.update does: the agent replays the [1, M] minibatch
        return lambda p, mb: ppo_loss(p, lambda q, o: train.agent.sequence(q, mb.carry0, o, mb.first), mb, hp,
                                      objective=train.objective, data_axis=axis)

    # D devices, each with its own envs' shard of the [T, N] batch.
    local = batch._replace(**{f: jax.tree.map(lambda x: shards(x, axis=1), getattr(batch, f))
                              for f in Batch._fields if f != "carry0"})
    par_params, _, par_m = jax.jit(emulate(
        lambda b: run_epochs(replay_loss("data"), opt, params, opt_state, b, key, hp, data_axis="data", **kw)))(local)
    # The reference shuffles each device's transitions flattened time-major ([T, N/D] -> [T * N/D]).
    local = jax.tree.map(lambda x: x.reshape((D, -1) + x.shape[3:]), local._replace(carry0=()))

    # Reference, written out by hand on one device: minibatch j of an epoch is the union of the devices'
    # j-th local minibatches (each device shuffles its shard with its own key).
    n_local = cfg.batch_size // D
    m_local = n_local // cfg.num_minibatches
    grad_fn = jax.jit(jax.value_and_grad(loss(None), has_aux=True))
    p, o, kls = params, opt_state, []
    for epoch in range(cfg.update_epochs):
        perms = [permutation(jax.random.fold_in(jax.random.fold_in(key, d), epoch), n_local) for d in range(D)]
        epoch_kl = []
        for j in range(cfg.num_minibatches):
            idx = [perms[d][j * m_local:(j + 1) * m_local] for d in range(D)]
            mb = jax.tree.map(lambda x: jnp.concatenate([x[d][idx[d]] for d in range(D)]), local)
            (_, m), g = grad_fn(p, mb)
            u, o = opt.update(g, o, p)
            p = optax.apply_updates(p, u)
            epoch_kl.append(float(m["approx_kl"]))
        kls.append(np.mean(epoch_kl))
        if target_kl and kls[-1] > hp.target_kl:
            break
    for d in range(D):
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[d], par_params), p, rtol=2e-5, atol=1e-6)
    assert np.all(par_m["epochs_completed"] == len(kls))
    if target_kl:
        assert len(kls) < cfg.update_epochs  # the early stop did fire, on the same epoch on every device


# ------------------------------------------------------------------ whole runs


def _emulated_data_train(cfg, d):
    """train(key) of a D-shard data-parallel run emulated on one device: state leaves [D, ...]."""
    per_device = dataclasses.replace(make_train(cfg), data_axis="data", data_shards=d)
    return jax.jit(lambda key: jax.vmap(lambda _: per_device(key), axis_name="data")(jnp.arange(d)))


def test_one_device_data_parallel_equals_make_train():
    cfg = SMALL.replace(normalize_obs=True, normalize_reward=True)
    ref = jax.jit(make_train(cfg))(jax.random.key(0))
    out = _emulated_data_train(cfg, 1)(jax.random.key(0))
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], out.metrics), ref.metrics, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], out.state.params), ref.state.params, rtol=1e-5, atol=1e-6)


def test_data_parallel_devices_stay_in_lockstep_over_many_updates():
    cfg = SMALL.replace(num_envs=8, total_timesteps=8 * 16 * 30, normalize_obs=True, normalize_reward=True,
                        objective="kl_adaptive", use_target_kl=True, target_kl=0.01, eval_every=10, eval_episodes=3)
    out = _emulated_data_train(cfg, D)(jax.random.key(1))
    s = out.state
    for leaf in jax.tree.leaves((s.params, s.opt_state, s.obs_norm, s.reward_scaler.stats, s.objective_state,
                                 out.metrics)):
        assert np.array_equal(leaf[0], leaf[1], equal_nan=True)
    # ...while each device stepped its own envs.
    assert not np.array_equal(s.env.obs[0], s.env.obs[1])
    assert s.env.obs.shape == (D, cfg.num_envs // D, 4)
    assert np.isfinite(out.metrics["eval_return"][0, -1])
    assert float(s.obs_norm.count[0]) == pytest.approx(cfg.total_timesteps, rel=1e-3)


def test_seed_sharded_train_on_one_device_is_vmap_train():
    cfg = SMALL
    mesh = make_mesh(seed=1, data=1)
    strain = make_sharded_train(cfg, mesh, num_seeds=3)
    keys = jax.random.split(jax.random.key(0), 3)
    out = jax.jit(strain)(strain.seed_keys(0))
    ref = jax.jit(jax.vmap(make_train(cfg)))(keys)
    chex.assert_trees_all_close(out.metrics, ref.metrics, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(params_of(out.state), ref.state.params, rtol=1e-6, atol=1e-6)
    # init + update compose the same way, with per-seed hyperparameters too.
    hp = jax.tree.map(lambda v: jnp.full((3,), v), cfg.hparams())
    state = jax.jit(strain.init)(strain.seed_keys(0), strain.hparams(hp))
    state, m = jax.jit(strain.update)(state, strain.hparams(hp))
    np.testing.assert_allclose(m["value_loss"], ref.metrics["value_loss"][:, 0], rtol=1e-6)


# ------------------------------------------------------------------ mesh shapes and errors


def test_parse_mesh_and_errors():
    assert parse_mesh("seed=2,data=1") == {"seed": 2, "data": 1}
    assert parse_mesh("data=4") == {"data": 4}
    for bad in ["seed", "seeds=2", "seed=0", "seed=x", "seed=2,seed=2"]:
        with pytest.raises(ValueError, match="--mesh"):
            parse_mesh(bad)


def test_default_mesh_shape_prefers_seeds():
    assert default_mesh_shape(num_seeds=8, num_envs=4, num_devices=2) == {"seed": 2, "data": 1}
    assert default_mesh_shape(num_seeds=1, num_envs=1024, num_devices=2) == {"seed": 1, "data": 2}
    assert default_mesh_shape(num_seeds=2, num_envs=64, num_devices=8) == {"seed": 2, "data": 4}
    assert default_mesh_shape(num_seeds=3, num_envs=5, num_devices=2) == {"seed": 1, "data": 1}


def test_bad_mesh_shapes_name_the_field():
    cfg = SMALL
    with pytest.raises(ValueError, match="--seeds 3 is not divisible by the seed axis"):
        check_mesh_shape({"seed": 2, "data": 1}, num_seeds=3, config=cfg, num_devices=2)
    with pytest.raises(ValueError, match="PPOConfig.num_envs: 4 is not divisible by the data axis"):
        check_mesh_shape({"seed": 1, "data": 3}, num_seeds=1, config=cfg, num_devices=3)
    with pytest.raises(ValueError, match="num_minibatches"):
        check_mesh_shape({"seed": 1, "data": 2}, num_seeds=1, config=cfg.replace(num_steps=3, num_minibatches=4),
                         num_devices=2)
    with pytest.raises(ValueError, match="needs 4 devices"):
        check_mesh_shape({"seed": 2, "data": 2}, num_seeds=2, config=cfg, num_devices=1)
    with pytest.raises(ValueError, match="does not fit"):
        make_mesh(seed=2, data=1)  # one device here
    with pytest.raises(ValueError, match="scalar"):
        hparams_kind(cfg.hparams().replace(learning_rate=jnp.zeros((2, 2))))
