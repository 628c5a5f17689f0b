"""Recurrent PPO (network='gru'/'lstm', and a user's recurrent module): resets at episode boundaries, the
time-limit bootstrap from the carry before the reset, first-epoch replay equality, determinism / vmap,
data-parallel training, masked tasks, and the memory probe (MLP at chance, GRU and LSTM solve it)."""

from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.core.agent import RecurrentAgent, is_recurrent, reset_carry
from purejaxppo.envs import make_env
from purejaxppo.core.gae import compute_gae
from purejaxppo.core.losses import ppo_loss
from purejaxppo.core.rollout import collect
from purejaxppo.core.train import advantages, bootstrap_values, minibatches, rollout_batch
from tests.recurrent_envs import CountingNet, CueRecall, RandomLengths

TINY = dict(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2, rnn_size=16, rnn_torso=(16,),
            actor_hidden=(16,), critic_hidden=(16,))


def _rollout(train, key, state=None):
    """(state before, traj) of one rollout with the train's agent and current params."""
    hp = train.config.hparams()
    state = train.init(key, hp) if state is None else state
    c = train.config
    carry, _, _, traj, _ = collect(key, state.env, state.params, train.agent, train.env, train.env_params,
                                   num_steps=c.num_steps, to_env_action=train.to_env_action, obs_norm=None,
                                   reward_scaler=None, gamma=hp.gamma, obs_clip=hp.obs_clip,
                                   reward_clip=hp.reward_clip)
    return state, traj, carry


def _acting_pass(agent, params, traj):
    """The rollout's acting path written out: agent.step over time from carry0 with done = first.
    Returns (carries after each step [T, ...], logits-or-dists [T], values [T])."""
    def body(carry, xs):
        obs, first = xs
        carry, dist, value = agent.step(params, carry, obs, first)
        return carry, (carry, dist, value)

    return jax.lax.scan(body, traj.carry0, (traj.obs, traj.first))[1]


# ------------------------------------------------------------------ config and network


@pytest.mark.parametrize("network", ["gru", "lstm"])
@pytest.mark.parametrize("shared", [True, False])
def test_recurrent_network_shapes_and_carry(network, shared):
    train = make_train(PPOConfig(network=network, rnn_shared_core=shared, **TINY))
    assert isinstance(train.agent, RecurrentAgent) and train.recurrent
    carry = train.agent.initial_carry(3)
    leaves = jax.tree.leaves(carry)
    assert len(leaves) == (1 if network == "gru" else 2) * (1 if shared else 2)
    assert all(x.shape == (3, 16) and not np.any(np.asarray(x)) for x in leaves)
    params = train.agent.init(jax.random.key(0), jnp.zeros((3, 4)))
    carry, dist, value = train.agent.step(params, carry, jnp.ones((3, 4)), jnp.zeros((3,), bool))
    assert dist.logits.shape == (3, 2) and value.shape == (3,)
    assert jax.tree.structure(carry) == jax.tree.structure(train.agent.initial_carry(3))
    dist, value = train.agent.sequence(params, train.agent.initial_carry(3), jnp.ones((5, 3, 4)),
                                       jnp.zeros((5, 3), bool))
    assert dist.logits.shape == (5, 3, 2) and value.shape == (5, 3)
    assert not is_recurrent(make_train(PPOConfig(**{k: v for k, v in TINY.items() if "rnn" not in k})).agent)


def test_recurrent_config_needs_whole_env_sequences_per_minibatch():
    with pytest.raises(ValueError, match=r"PPOConfig.num_minibatches: network='gru'.*num_envs = 6.*divisible"):
        PPOConfig(network="gru", num_envs=6, num_steps=16, num_minibatches=4)
    PPOConfig(network="mlp", num_envs=6, num_steps=16, num_minibatches=4)  # transitions are shuffled one by one
    with pytest.raises(ValueError, match="PPOConfig.rnn_size"):
        PPOConfig(network="gru", rnn_size=0)


# ------------------------------------------------------------------ resets and bootstrap


def _counting_train(**kw):
    cfg = PPOConfig(num_envs=8, num_steps=24, num_minibatches=2, update_epochs=1, **kw)
    env = RandomLengths()
    return make_train(cfg, env=env, env_params=env.default_params, network_factory=lambda o, a: CountingNet())


def test_carry_never_leaks_across_an_episode_boundary():
    """RandomLengths shows the steps since the episode began; CountingNet's carry counts the observations it
    saw since its last reset. They agree at every step of two consecutive rollouts (the second starts from
    the first's carry), in the acting path, the replay, and at terminations and truncations alike."""
    train = _counting_train()
    assert isinstance(train.agent, RecurrentAgent)
    state, traj, env_carry = _rollout(train, jax.random.key(1))
    state2, traj2, _ = _rollout(train, jax.random.key(2), state.replace(env=env_carry))
    for tr in (traj, traj2):
        seen = np.asarray(tr.obs[..., 0]) + 1  # observations seen in this episode, this one included
        np.testing.assert_array_equal(np.asarray(tr.carry), seen)  # the acting path's carry after each step
        np.testing.assert_array_equal(np.asarray(tr.value), seen)  # the replay from carry0 with `first`
        assert np.asarray(tr.truncated).any() and np.asarray(tr.terminated).any()
        assert np.asarray(tr.first[1:]).sum() > 10
    # The second segment starts mid-episode for some envs: carry0 is the carry left by the first rollout.
    np.testing.assert_array_equal(np.asarray(traj2.carry0), np.asarray(traj.carry[-1]))
    assert np.asarray(traj2.carry0).max() > 0


def test_truncation_bootstraps_from_the_carry_that_saw_the_episode():
    """V(final_obs_t) is evaluated from the carry after step t, not from the reset carry: with CountingNet the
    bootstrap value of a truncated step is the episode's length + 1, where a reset carry would give 1."""
    train = _counting_train()
    state, traj, _ = _rollout(train, jax.random.key(3))
    nv = np.asarray(bootstrap_values(train.agent, state.params, traj))
    np.testing.assert_array_equal(nv, np.asarray(traj.obs[..., 0]) + 2)
    trunc = np.asarray(traj.truncated)
    assert trunc.any() and np.all(nv[trunc] == 5)  # 4-step time limit: the 5th observation would be seen
    hp = train.config.hparams()
    adv, targets = advantages(train.agent, state.params, traj, hp)
    want = compute_gae(traj.reward, traj.value, jnp.asarray(nv), traj.terminated, traj.truncated, hp.gamma,
                       hp.gae_lambda)
    chex.assert_trees_all_close((adv, targets), want)
    # truncation_as_termination drops exactly the bootstrap at truncations.
    adv_t, _ = advantages(train.agent, state.params, traj, hp, truncation_as_termination=True)
    want_t = compute_gae(traj.reward, traj.value, jnp.asarray(nv), traj.terminated | traj.truncated,
                         traj.truncated, hp.gamma, hp.gae_lambda)[0]
    chex.assert_trees_all_close(adv_t, want_t)


@pytest.mark.parametrize("network", ["gru", "lstm"])
def test_truncation_bootstrap_with_a_gru_or_lstm(network):
    """The same for the real cells, against a hand-written loop: at truncations the bootstrap value differs
    from what the reset carry would give (the test can tell them apart)."""
    env, params = make_env("masked/CartPole-v1")
    cfg = PPOConfig(network=network, **TINY)
    train = make_train(cfg, env=env, env_params=params.replace(max_steps_in_episode=5))
    state, traj, _ = _rollout(train, jax.random.key(4))
    agent = train.agent
    carries, _, _ = _acting_pass(agent, state.params, traj)
    want = jax.vmap(lambda c, o: agent.step(state.params, c, o, None)[2])(carries, traj.final_obs)
    got = bootstrap_values(agent, state.params, traj)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    reset = jax.vmap(lambda o: agent.step(state.params, agent.initial_carry(cfg.num_envs), o, None)[2])(
        traj.final_obs)
    trunc = np.asarray(traj.truncated)
    assert trunc.sum() >= 4 and np.all(np.abs(np.asarray(got - reset))[trunc] > 1e-6)


def test_gru_sequence_restarts_exactly_at_first():
    """After a reset the GRU's outputs equal those of a fresh sequence started at that step."""
    train = make_train(PPOConfig(network="gru", **TINY))
    agent, t, b = train.agent, 12, 4
    params = agent.init(jax.random.key(0), jnp.zeros((b, 4)))
    obs = jax.random.normal(jax.random.key(1), (t, b, 4))
    carry0 = jax.tree.map(lambda x: x + 0.5, agent.initial_carry(b))
    first = jnp.zeros((t, b), bool).at[5, :].set(True)
    dist, value = agent.sequence(params, carry0, obs, first)
    fresh_dist, fresh_value = agent.sequence(params, agent.initial_carry(b), obs[5:], None)
    chex.assert_trees_all_close(value[5:], fresh_value, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(dist.logits[5:], fresh_dist.logits, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(value[:5] - agent.sequence(params, agent.initial_carry(b), obs[:5], None)[1])).max() > 1e-4


# ------------------------------------------------------------------ the update replays the rollout


@pytest.mark.parametrize("network", ["gru", "lstm"])
def test_first_epoch_replay_equals_the_rollout(network):
    """Every shuffled sequence minibatch, replayed from its carry0 with its reset mask, gives the log-probs and
    values the acting policy had in the rollout; so the first minibatch's ratios are exactly 1."""
    env, params = make_env("masked/CartPole-v1")
    cfg = PPOConfig(network=network, **{**TINY, "num_envs": 8, "num_steps": 32, "num_minibatches": 4})
    train = make_train(cfg, env=env, env_params=params.replace(max_steps_in_episode=20))
    state, traj, _ = _rollout(train, jax.random.key(5))
    assert np.asarray(traj.first[1:]).sum() > 5  # episodes end inside the segment
    agent, hp = train.agent, cfg.hparams()
    _, acting_dist, acting_value = _acting_pass(agent, state.params, traj)
    acting_logp = acting_dist.log_prob(traj.action)
    chex.assert_trees_all_close((traj.log_prob, traj.value), (acting_logp, acting_value), rtol=1e-5, atol=1e-5)

    adv, targets = advantages(agent, state.params, traj, hp)
    mbs = minibatches(rollout_batch(traj, adv, targets), jax.random.key(6), cfg.num_minibatches, sequences=True)
    assert mbs.obs.shape == (4, 32, 2, 2) and jax.tree.leaves(mbs.carry0)[0].shape[:2] == (4, 2)
    for j in range(cfg.num_minibatches):
        mb = jax.tree.map(lambda x: x[j], mbs)
        dist, value = agent.sequence(state.params, mb.carry0, mb.obs, mb.first)
        chex.assert_trees_all_close((dist.log_prob(mb.action), value), (mb.log_prob, mb.value), rtol=1e-5,
                                    atol=1e-5)
        _, m = ppo_loss(state.params, lambda p, o: agent.sequence(p, mb.carry0, o, mb.first), mb, hp)
        assert float(m["approx_kl"]) < 1e-9 and float(m["clip_fraction"]) == 0.0
    # Sequences are whole: each minibatch column is one env's segment in time order.
    env_ids = [int(np.flatnonzero((np.asarray(traj.obs[:, :, 0]) == np.asarray(mbs.obs[0, :, k, 0])[:, None])
                                  .all(axis=0))[0]) for k in range(2)]
    for k, e in enumerate(env_ids):
        np.testing.assert_array_equal(np.asarray(mbs.first[0, :, k]), np.asarray(traj.first[:, e]))


# ------------------------------------------------------------------ whole runs


@functools.cache
def _small_gru_train():
    return make_train(PPOConfig(env="masked/CartPole-v1", network="gru", total_timesteps=4 * 16 * 4,
                                normalize_obs=True, eval_every=2, eval_episodes=2, **TINY))


def test_recurrent_training_is_deterministic_and_vmap_equals_single_runs():
    train = _small_gru_train()
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.jit(jax.vmap(train))(keys)
    single = jax.jit(train)
    for i in (0, 2):
        one = single(keys[i])
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], batched.metrics), one.metrics, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], batched.state.params), one.state.params, rtol=1e-5,
                                    atol=1e-6)
    again = single(keys[0])
    chex.assert_trees_all_equal(again.metrics, single(keys[0]).metrics)
    assert np.all(np.isfinite(np.asarray(batched.metrics["eval_return"][:, 1::2])))
    assert batched.state.env.agent_carry[0].shape == (3, 4, 16)  # the hidden state is part of the train state


def test_recurrent_data_parallel_matches_one_device_and_stays_in_lockstep():
    """Emulated data axis (vmap with axis_name): D=1 equals make_train; with D=2 every shard holds the same
    params after training, each stepping its own envs' sequences."""
    cfg = PPOConfig(env="masked/CartPole-v1", network="gru", total_timesteps=4 * 16 * 3,
                    **{**TINY, "num_minibatches": 2})

    def emulated(d):
        per_device = dataclasses.replace(make_train(cfg), data_axis="data", data_shards=d)
        return jax.jit(lambda key: jax.vmap(lambda _: per_device(key), axis_name="data")(jnp.arange(d)))

    ref = jax.jit(make_train(cfg))(jax.random.key(0))
    one = emulated(1)(jax.random.key(0))
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], one.metrics), ref.metrics, rtol=1e-5, atol=1e-6)
    two = emulated(2)(jax.random.key(0))
    for leaf in jax.tree.leaves(two.state.params):
        np.testing.assert_array_equal(np.asarray(leaf[0]), np.asarray(leaf[1]))
    assert two.state.env.agent_carry[0].shape == (2, 2, 16)  # each device carries its 2 envs' hidden states
    from purejaxppo.parallel import check_mesh_shape

    with pytest.raises(ValueError, match=r"num_minibatches: network='gru'.*num_envs / 2 = 2.*divisible"):
        check_mesh_shape({"seed": 1, "data": 2}, num_seeds=1, config=cfg.replace(num_minibatches=4), num_devices=2)


# ------------------------------------------------------------------ masked tasks


def test_masked_tasks_hide_the_velocities():
    env, params = make_env("masked/CartPole-v1")
    full, _ = make_env("CartPole-v1")
    obs, state = env.reset(jax.random.key(0), params)
    full_obs, _ = full.reset(jax.random.key(0), params)
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(full_obs)[[0, 2]])
    assert env.observation_space(params).shape == (2,)
    obs, state, reward, term, trunc, info = env.step(jax.random.key(1), state, 1, params)
    assert obs.shape == (2,) and info["final_observation"].shape == (2,)
    pend, pparams = make_env("masked/Pendulum-v1")
    assert pend.observation_space(pparams).shape == (2,) and pend.action_space(pparams).shape == (1,)
    with pytest.raises(ValueError, match="no masked version.*masked/CartPole-v1"):
        make_env("masked/Breakout-MinAtar")


# ------------------------------------------------------------------ the memory probe


@pytest.mark.parametrize("network", ["mlp", "gru", "lstm"])
def test_memory_probe_needs_memory(network):
    """CueRecall: the cue is visible only at the first of 4 steps and the reward at the last depends on it.
    A memoryless MLP stays at chance (mean return 0.5); the GRU and the LSTM recall it (return ~1)."""
    env = CueRecall(length=4)
    cfg = PPOConfig(network=network, num_envs=16, num_steps=16, num_minibatches=2, update_epochs=4,
                    total_timesteps=16 * 16 * 120, learning_rate=3e-3, ent_coef=0.01, gamma=0.99,
                    rnn_size=32, rnn_torso=(32,), actor_hidden=(32,), critic_hidden=(32,))
    train = make_train(cfg, env=env, env_params=env.default_params)
    out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 2))
    final = np.asarray(out.metrics["episode_return"][:, -10:]).mean(axis=1)
    if network == "mlp":
        assert np.all(np.abs(final - 0.5) < 0.12), final
    else:
        assert np.all(final > 0.9), final


# ------------------------------------------------------------------ run folder, resume, eval, render, load_policy


def test_recurrent_run_resumes_bit_identically_and_acts_statefully(tmp_path, capsys):
    """A GRU run stopped after 2 of 4 updates and resumed equals the uninterrupted run bit for bit (the hidden
    states are checkpointed with the env states); eval and render run on it; load_policy's act carries the
    hidden state between calls, resets it on `done` or act.reset(), and equals the agent stepped by hand."""
    from purejaxppo import load_policy
    from purejaxppo.runs.checkpoints import flatten_state
    from purejaxppo.cli import main
    from purejaxppo.runs import load_run, train_run

    cfg = _small_gru_train().config
    quiet = dict(num_seeds=2, checkpoint_every=2, progress="off", log=lambda m: None)
    train_run(cfg, tmp_path / "a", stop_after=2, **quiet)
    train_run(None, tmp_path / "a", resume=True, **quiet)
    train_run(cfg, tmp_path / "b", **quiet)
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
    a, _ = flatten_state(load_run(tmp_path / "a").state)
    b, _ = flatten_state(load_run(tmp_path / "b").state)
    assert sorted(a) == sorted(b) and any("agent_carry" in k for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    assert main(["eval", str(tmp_path / "a"), "--episodes", "2"]) == 0
    assert "return: mean" in capsys.readouterr().out
    assert main(["render", str(tmp_path / "a"), "--out", str(tmp_path / "ep.gif"), "--max-frames", "10"]) == 0
    assert (tmp_path / "ep.gif").read_bytes()[:3] == b"GIF"

    act = load_policy(tmp_path / "a", seed_index=1)
    assert act.recurrent and act.carry is None
    env, params = make_env("masked/CartPole-v1")
    obs = jnp.stack([env.reset(k, params)[0] for k in jax.random.split(jax.random.key(3), 3)])
    agent, acting = act.agent, act.acting
    from purejaxppo.core.normalization import normalize_obs

    def by_hand(carry, o, done):
        carry, dist, _ = agent.step(acting.params, carry, normalize_obs(acting.obs_norm, o, cfg.obs_clip), done)
        return carry, dist.mode()

    carry = agent.initial_carry(3)
    no = jnp.zeros((3,), bool)
    for t in range(3):
        o = obs + 0.01 * t
        carry, want = by_hand(carry, o, no)
        np.testing.assert_array_equal(np.asarray(act(o)), np.asarray(want))
    chex.assert_trees_all_close(act.carry, carry, rtol=1e-5, atol=1e-6)
    done = jnp.array([True, False, False])
    carry, want = by_hand(carry, obs, done)
    np.testing.assert_array_equal(np.asarray(act(obs, done=done)), np.asarray(want))
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], act.carry),
                                jax.tree.map(lambda x: x[0], by_hand(agent.initial_carry(3), obs, no)[0]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"carried hidden state is for 3 env\(s\); call act.reset\(\)"):
        act(obs[0])
    act.reset()
    assert act(obs[0]).shape == () and jax.tree.leaves(act.carry)[0].shape == (1, 16)


@pytest.mark.parametrize("name", ["cartpole_masked_gru", "pendulum_masked_gru", "memorychain_gru"])
def test_shipped_recurrent_configs_build_and_trace(name):
    import pathlib

    cfg = PPOConfig.from_yaml(pathlib.Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml")
    assert cfg.network in ("gru", "lstm")
    train = make_train(cfg.replace(total_timesteps=cfg.batch_size))  # one update, traced only
    out = jax.eval_shape(train, jax.random.key(0))
    assert out.metrics["episode_return"].shape == (1,)
    assert jax.tree.leaves(out.state.env.agent_carry)[0].shape == (cfg.num_envs, cfg.rnn_size)
