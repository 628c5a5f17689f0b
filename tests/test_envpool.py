"""EnvPool adapter (purejaxppo.envs.envpool, `env: envpool/<TaskId>[?option=value&...]`); skipped without envpool.

The semantics are checked against EnvPool itself: a pool made here with the adapter's seed and stepped one env
at a time shows EnvPool's own stream (with its next-step reset: an ended env's next step returns the reset
observation, reward 0); the adapter's stream must be that stream with each of those extra steps removed.
"""

import json
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

envpool = pytest.importorskip("envpool")

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.core.gae import compute_gae  # noqa: E402
from purejaxppo.envs import envpool as adapter  # noqa: E402
from purejaxppo.envs import envpool_host as host  # noqa: E402
from purejaxppo.envs import make_env  # noqa: E402
from purejaxppo.errors import EnvError, ExtraMissingError  # noqa: E402
from tests.runs_helpers import run_cli  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # gymnasium's notes on EnvPool's float64 boxes

N = 2  # envs per rollout


def alternate(t, n):  # CartPole: pushing left and right in turn keeps the pole up for many steps
    return (np.arange(t)[:, None] % 2 * np.ones((1, n))).astype(np.int32)


def rollout_fn(env, params, n=N):
    """Jitted `(key, actions [T, n, ...]) -> (reset keys' data, obs0, (obs, reward, term, trunc, final_obs))`."""
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def run(key, actions):
        k0, k1 = jax.random.split(key)
        keys = jax.random.split(k0, n)
        obs0, state = reset(keys, params)

        def body(state, xs):
            k, a = xs
            obs, state, reward, term, trunc, info = step(jax.random.split(k, n), state, a, params)
            return state, (obs, reward, term, trunc, info["final_observation"])

        _, out = jax.lax.scan(body, state, (jax.random.split(k1, actions.shape[0]), actions))
        return jax.random.key_data(keys), obs0, out

    jitted = jax.jit(run)
    return lambda key, actions: jax.tree.map(np.asarray, jitted(key, jnp.asarray(actions)))


def envpool_stream(task, options, seed, actions):
    """What the adapter's step should return, from EnvPool's own stream: each env stepped alone, and after an
    end its next-step reset (checked to be reward 0, not an end) taken as the reset observation."""
    pool = envpool.make(task, env_type="gymnasium", num_envs=actions.shape[1], env_seed=seed, **options)
    obs0, _ = pool.reset()
    out = {k: [] for k in ("obs", "reward", "term", "trunc", "final")}
    for k in range(actions.shape[1]):
        rows = {key: [] for key in out}
        for a in actions[:, k]:
            obs, reward, term, trunc, _ = pool.step(np.asarray(a)[None], env_id=np.array([k]))
            final = obs
            if term[0] or trunc[0]:
                obs, ghost_reward, ghost_term, ghost_trunc, _ = pool.step(np.asarray(a)[None], env_id=np.array([k]))
                assert ghost_reward[0] == 0 and not ghost_term[0] and not ghost_trunc[0]  # EnvPool's extra step
            for key, value in zip(out, (obs[0], reward[0], term[0], trunc[0] and not term[0], final[0]), strict=True):
                rows[key].append(value)
        for key in out:
            out[key].append(np.stack(rows[key]))
    pool.close()
    return obs0, {key: np.stack(v, axis=1) for key, v in out.items()}  # [T, n, ...]


def pool_seed(key_data):
    """The env seeds of a pool made from these env keys: each env's from its own key."""
    return [host.seed_of(k) for k in np.asarray(key_data)]


def check_against_envpool(name, actions):
    env, params = make_env("envpool/" + name)
    keys, obs0, (obs, reward, term, trunc, final) = rollout_fn(env, params)(jax.random.key(0), actions)
    task, options = host.parse_name(name)
    raw0, raw = envpool_stream(task, options, pool_seed(keys), actions)
    np.testing.assert_array_equal(obs0, raw0.astype(np.float32))
    for got, want in ((obs, raw["obs"]), (final, raw["final"])):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_array_equal(got, want.astype(np.float32))
    np.testing.assert_array_equal(reward, raw["reward"].astype(np.float32))
    np.testing.assert_array_equal(term, raw["term"])
    np.testing.assert_array_equal(trunc, raw["trunc"])
    assert reward.dtype == np.float32 and term.dtype == np.bool_ and trunc.dtype == np.bool_
    return obs0, obs, reward, term, trunc, final


# ----------------------------------------------------------------------------- names, options, errors


def test_names_options_spaces_and_errors():
    env, params = make_env("envpool/CartPole-v1?max_episode_steps=5")
    assert isinstance(env, adapter.EnvPoolEnv) and params.max_steps_in_episode == 5
    assert env.observation_space(params).shape == (4,) and env.action_space(params).n == 2
    assert host.parse_name("Pong-v5?episodic_life=false&frame_skip=2&x=a") == (
        "Pong-v5", {"episodic_life": False, "frame_skip": 2, "x": "a"})
    env, params = make_env("envpool/Hopper-v4")
    space = env.action_space(params)
    assert space.shape == (3,) and space.dtype == jnp.float32 and env.observation_space(params).dtype == jnp.float32
    with pytest.raises(EnvError, match=r"unknown EnvPool environment 'Hoper-v4'.*Did you mean 'envpool/Hopper-v4'"):
        make_env("envpool/Hoper-v4")
    with pytest.raises(EnvError, match=r"unknown EnvPool option 'bogus'; this task's options: .*max_episode_steps"):
        make_env("envpool/CartPole-v1?bogus=1")
    with pytest.raises(EnvError, match=r"option max_episode_steps='abc' must be a number"):
        make_env("envpool/CartPole-v1?max_episode_steps=abc")
    with pytest.raises(EnvError, match=r"option 'seed' is set by purejaxppo"):
        make_env("envpool/CartPole-v1?seed=3")
    with pytest.raises(EnvError, match=r"'envpool/CartPole-v1\?x': options are key=value pairs"):
        make_env("envpool/CartPole-v1?x")


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "envpool", None)
    with pytest.raises(ExtraMissingError, match=r"'envpool'.*pip install -e '\.\[envpool\]'"):
        make_env("envpool/CartPole-v1")


def test_dm_control_and_atari_spaces():
    env, params = make_env("envpool/HopperHop-v1")
    space = env.observation_space(params)
    assert sorted(space.spaces) == ["position", "touch", "velocity"]
    for leaf in space.spaces.values():  # EnvPool's DM Control bound (the smallest positive float64) is unbounded
        assert leaf.dtype == jnp.float32 and (np.asarray(leaf.low) < -1e38).all()
    env, params = make_env("envpool/Pong-v5")
    space = env.observation_space(params)
    assert space.shape == (4, 84, 84) and space.dtype == jnp.uint8 and env.action_space(params).n == 6


# ----------------------------------------------------------------------------- the next-step reset hidden


def test_time_limit_truncates_and_hides_the_next_step_reset_cartpole():
    """A forced time limit: steps 5 and 10 are truncated (not terminated), their final observation is the
    pre-reset one, the step after is an ordinary step of the new episode (reward 1, no reward-0 transition)."""
    obs0, obs, reward, term, trunc, final = check_against_envpool("CartPole-v1?max_episode_steps=5", alternate(12, N))
    assert not term.any() and (reward == 1).all()
    np.testing.assert_array_equal(trunc, np.broadcast_to((np.arange(1, 13) % 5 == 0)[:, None], trunc.shape))
    for t in (4, 9):
        assert (final[t] != obs[t]).any(axis=-1).all() and (np.abs(obs[t]) <= 0.05).all()  # a reset state
    np.testing.assert_array_equal(np.delete(final, [4, 9], axis=0), np.delete(obs, [4, 9], axis=0))


@pytest.mark.parametrize("name, limit", [("Hopper-v4?max_episode_steps=5", True), ("Hopper-v4", False)])
def test_mujoco_time_limit_and_termination(name, limit):
    """Hopper: a forced time limit (standing still) truncates at steps 5 and 10, the next step earns Hopper's
    reward (nonzero); full torque falls over, terminated (not truncated), the next step a new episode."""
    if limit:
        _, obs, reward, term, trunc, final = check_against_envpool(name, np.zeros((12, N, 3), np.float32))
        assert not term.any() and trunc[[4, 9]].all() and trunc.sum() == 2 * N
        assert (reward[[5, 10]] > 0.5).all() and (final[4] != obs[4]).any()
    else:
        _, obs, reward, term, trunc, final = check_against_envpool(name, np.ones((40, N, 3), np.float32))
        assert not trunc.any() and term.any(axis=0).all()
        t = np.argmax(term[:, 0])
        assert reward[t + 1, 0] > 0.5 and (final[t, 0] != obs[t, 0]).any()


def test_cartpole_termination_is_not_truncation():
    """Pushing one way: the pole falls (terminated, the final observation past the angle or position limit),
    never truncated under the long time limit; the next step is the new episode's first (reward 1)."""
    _, obs, reward, term, trunc, final = check_against_envpool("CartPole-v1", np.ones((30, N), np.int32))
    assert term.any(axis=0).all() and not trunc.any() and (reward == 1).all()
    t, k = np.argwhere(term)[0]
    assert abs(final[t, k, 2]) > 0.2094 or abs(final[t, k, 0]) > 2.4
    assert (np.abs(obs[t, k]) <= 0.05).all()


def test_gae_returns_and_bootstrap_equal_a_plain_numpy_computation():
    """Over a rollout with a forced time limit: compute_gae (V(s') from the final observation at a truncation)
    equals a plain numpy loop, each step at a truncation is r + gamma V(final obs) - V(s) exactly, and every
    episode's return is the limit's 5 steps of reward 1 (no reward-0 ghost step in between)."""
    obs0, obs, reward, term, trunc, final = check_against_envpool("CartPole-v1?max_episode_steps=5", alternate(15, N))
    w = np.array([0.3, -0.2, 1.5, 0.7], np.float32)
    v = lambda o: (o @ w).astype(np.float32)  # noqa: E731
    values = v(np.concatenate([obs0[None], obs[:-1]]))  # V(s_t): s_t is the obs the action at t was taken in
    next_values = v(final)
    gamma, lam = 0.9, 0.8
    adv, targets = compute_gae(*map(jnp.asarray, (reward, values, next_values, term, trunc)), gamma, lam)
    expected, running = np.zeros_like(reward), np.zeros(N, np.float32)
    for t in reversed(range(len(reward))):
        delta = reward[t] + gamma * (1 - term[t]) * next_values[t] - values[t]
        running = delta + gamma * lam * (1 - (term[t] | trunc[t])) * running
        expected[t] = running
    np.testing.assert_allclose(np.asarray(adv), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(targets), expected + values, rtol=1e-5, atol=1e-5)
    for t in (4, 9, 14):  # the truncation bootstrap, by hand
        np.testing.assert_allclose(np.asarray(adv)[t], 1 + gamma * v(final[t]) - values[t], rtol=1e-5, atol=1e-5)
    ends = np.cumsum(np.concatenate([np.zeros((1, N), bool), (term | trunc)[:-1]]), axis=0)  # episode index
    returns = [reward[:, k][ends[:, k] == e].sum() for k in range(N) for e in range(3)]
    assert returns == [5.0] * (3 * N)


# ----------------------------------------------------------------------------- pools


def test_a_stale_pool_id_never_steps_another_pool():
    """A state naming a pool this process does not hold (from another process) gets a fresh pool: a truncation
    with reward 0; the pools this process holds are not stepped by it."""
    env, params = make_env("envpool/CartPole-v1")
    run = rollout_fn(env, params)
    actions = alternate(6, N)
    keys, obs0, first = run(jax.random.key(1), actions)
    live = set(host.POOLS.pools)
    stale = next(i for i in range(1, 2**31) if i not in host.POOLS.pools)
    state = adapter.EnvPoolState(jnp.full((N,), stale, jnp.int32), jnp.arange(N, dtype=jnp.int32))
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    obs, new_state, reward, term, trunc, info = step(jax.random.split(jax.random.key(2), N), state,
                                                     jnp.zeros(N, jnp.int32), params)
    assert np.asarray(trunc).all() and not np.asarray(term).any() and not np.asarray(reward).any()
    assert stale in host.POOLS.pools and live <= set(host.POOLS.pools)
    np.testing.assert_array_equal(np.asarray(new_state.pool), stale)
    _, obs0_again, second = run(jax.random.key(1), actions)  # a new pool of the same seed: the same stream
    np.testing.assert_array_equal(obs0_again, obs0)
    jax.tree.map(np.testing.assert_array_equal, second, first)
    host.POOLS.release([stale])


def test_an_evicted_pool_restarts_with_a_warning(monkeypatch):
    monkeypatch.setattr(host, "MAX_POOLS", 0)
    monkeypatch.setattr(host, "EVICT_IDLE_S", 0.0)
    env, params = make_env("envpool/CartPole-v1")
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    _, old = reset(jax.random.split(jax.random.key(3), N), params)
    _, new = reset(jax.random.split(jax.random.key(4), N), params)  # closes the idle older pool
    old_id, new_id = int(old.pool[0]), int(new.pool[0])
    assert old_id not in host.POOLS.pools and new_id in host.POOLS.pools
    with pytest.warns(RuntimeWarning, match=f"EnvPool pool {old_id} was closed"):
        out = step(jax.random.split(jax.random.key(5), N), old, jnp.zeros(N, jnp.int32), params)
        jax.block_until_ready(out)
    assert np.asarray(out[4]).all()  # truncated: its envs restart
    host.POOLS.release([old_id, new_id])


# ----------------------------------------------------------------------------- training (slow)


def tiny(env, **kw):
    return PPOConfig(env=env, **{"num_envs": 2, "num_steps": 8, "num_minibatches": 2, "update_epochs": 1,
                                 "total_timesteps": 2 * 8 * 2, **kw})


def test_training_episodes_have_no_ghost_step():
    """CartPole under a 5-step limit never falls in 5 steps: every episode the training counts has return and
    length exactly 5, and 2 envs x 10 steps complete 4 of them per update."""
    out = jax.jit(make_train(tiny("envpool/CartPole-v1?max_episode_steps=5", num_steps=10, total_timesteps=60)))(
        jax.random.key(0))
    for k in ("episode_return", "episode_length"):
        np.testing.assert_array_equal(np.asarray(out.metrics[k]), 5.0)
    np.testing.assert_array_equal(np.asarray(out.metrics["episodes_completed"]), 4.0)


def test_float64_never_leaks_from_a_mujoco_task():
    assert not jax.config.jax_enable_x64
    env, params = make_env("envpool/Hopper-v4")
    assert env.action_space(params).dtype == jnp.float32
    keys, obs0, (obs, reward, term, trunc, final) = rollout_fn(env, params)(
        jax.random.key(0), np.full((4, N, 3), 0.5, np.float32))
    assert obs0.dtype == obs.dtype == final.dtype == reward.dtype == np.float32
    out = jax.jit(make_train(tiny("envpool/Hopper-v4")))(jax.random.key(0))
    leaves = jax.tree.leaves((out.state.params, out.state.env, out.metrics))
    assert all(np.asarray(x).dtype.itemsize <= 4 for x in leaves)
    assert np.isfinite(np.asarray(out.metrics["value_loss"])).all()
    assert not jax.config.jax_enable_x64
    frames = rollout_fn(*make_env("envpool/Pong-v5"))(jax.random.key(0), np.zeros((2, N), np.int32))[1]
    assert frames.dtype == np.uint8 and frames.shape == (N, 4, 84, 84)


@pytest.mark.parametrize("name", ["envpool/Hopper-v4", "envpool/Pong-v5", "envpool/HopperHop-v1"])
def test_jitted_updates_by_name(name):
    """One MuJoCo, one Atari (network auto: the Nature CNN for its uint8 frames), one DM Control task (dict
    observations): a few jitted updates train and stay finite, with x64 off."""
    config = tiny(name, num_steps=4, total_timesteps=2 * 4 * 3) if "Pong" in name else tiny(name, total_timesteps=48)
    out = jax.jit(make_train(config))(jax.random.key(0))
    assert np.asarray(out.metrics["value_loss"]).shape == (config.num_updates,)
    assert all(np.isfinite(np.asarray(v)).all() for v in out.metrics.values())
    assert not jax.config.jax_enable_x64


def test_seeds_are_reproducible_and_differ():
    """The same key: bit-identical metrics, from new pools each time; another key, or another vmapped seed:
    other envs."""
    train = jax.jit(make_train(tiny("envpool/CartPole-v1", total_timesteps=48)))
    before = set(host.POOLS.pools)
    a, b, c = (jax.tree.map(np.asarray, train(jax.random.key(k)).metrics) for k in (0, 0, 1))
    assert len(set(host.POOLS.pools) - before) == 3  # one pool per call
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    env, params = make_env("envpool/CartPole-v1")
    two = jax.jit(jax.vmap(lambda k: jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k, N), params)))
    obs, state = two(jax.random.split(jax.random.key(0), 2))
    # One pool for the batch, each env seeded from its own key: the seeds' envs differ, and an env's stream is
    # its key's alone (the same keys unbatched give the same observations).
    assert (np.asarray(state.pool) == int(state.pool[0, 0])).all() and not np.array_equal(obs[0], obs[1])
    alone, _ = jax.jit(lambda k: jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k, N), params))(
        jax.random.split(jax.random.key(0), 2)[1])
    np.testing.assert_array_equal(alone, obs[1])


def test_in_training_evaluation_under_a_seed_vmap_makes_pools_only_when_it_runs():
    """eval_every under vmap over seeds (JAX cannot vmap a cond or a batched-predicate while_loop with IO
    effects: purejaxppo.core.evaluate avoids both); its pools are made on evaluation updates only, and closed."""
    made = []
    original = host.Pools.make

    def make(self, task, options, env_seeds, pool_id=None):
        made.append(len(env_seeds))
        return original(self, task, options, env_seeds, pool_id)

    config = tiny("envpool/CartPole-v1", total_timesteps=2 * 8 * 4, eval_every=3, eval_episodes=3)
    before = set(host.POOLS.pools)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(host.Pools, "make", make)
        out = jax.jit(jax.vmap(make_train(config)))(jax.random.split(jax.random.key(0), 2))
    returns = np.asarray(out.metrics["eval_return"])
    assert np.isnan(returns[:, [0, 1]]).all() and (returns[:, [2, 3]] >= 1).all()
    assert made == [4, 6, 6]  # one pool per batch: training 2 seeds x 2 envs; evaluation 2 x 3 episodes, twice
    assert len(set(host.POOLS.pools) - before) == 1  # the evaluations' pools are closed


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_restarts_episodes_with_exact_parameters_and_eval_works(tmp_path, monkeypatch):
    """HalfCheetah never terminates: under a 10-step limit, 4 steps per update, an uninterrupted run ends its
    episodes in updates 3 and 5. Resumed after update 2 (in process, and in a new process whose pools are gone),
    its envs start new episodes: none ends in update 3, the next ones end in update 5 with length 10. The
    resumed state has the checkpoint's parameters, optimizer state and normalizers. `purejaxppo eval` works."""
    from purejaxppo.runs import load_run, start, train_run

    config = PPOConfig(env="envpool/HalfCheetah-v4?max_episode_steps=10", num_envs=2, num_steps=4,
                       num_minibatches=2, update_epochs=1, total_timesteps=2 * 4 * 6, log_every=1,
                       normalize_obs=True)
    run_dir, copy = tmp_path / "run", tmp_path / "copy"
    assert train_run(config, run_dir, num_seeds=2, checkpoint_every=2, stop_after=2).status == "stopped"
    shutil.copytree(run_dir, copy)
    saved = load_run(run_dir).state

    restarted = []
    original = start.restart_outside_envs
    monkeypatch.setattr(start, "restart_outside_envs", lambda t, s: restarted.append(original(t, s)) or restarted[-1])
    assert train_run(None, run_dir, resume=True).status == "finished"
    (state,) = restarted
    for part in ("params", "opt_state", "obs_norm"):
        jax.tree.map(np.testing.assert_array_equal, getattr(state, part), getattr(saved, part))
    assert not np.isin(np.asarray(state.env.env_state.pool), np.asarray(saved.env.env_state.pool)).any()
    assert not np.asarray(state.env.episode_length).any()

    result = run_cli("train", "--resume", copy, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for folder in (run_dir, copy):
        done = {(r["update"], r["seed"]): r["episodes_completed"] for r in _rows(folder)}
        assert [done[u, s] for u in range(1, 7) for s in (0, 1)] == [0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 0, 0]
        assert {r["episode_length"] for r in _rows(folder) if r["update"] == 5} == {10.0}

    result = run_cli("eval", run_dir, "--episodes", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 seed(s) x 3 episode(s)" in result.stdout



def test_two_processes_each_step_their_own_pools(tmp_path):
    """`--processes 2` (seeds over two jax.distributed processes): each process makes and steps the pools of its
    own seeds; the run finishes like a one-process run."""
    out = tmp_path / "run"
    result = run_cli("train", "--set", "env=envpool/CartPole-v1", "--set", "num_envs=4", "--set", "num_steps=32",
                     "--set", "total_timesteps=1024", "--seeds", "2", "--processes", "2", "--checkpoint-every", "4",
                     "--out", out, "--progress", "off", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["processes"] == 2 and info["mesh"] == {"seed": 2, "data": 1}
    rows = _rows(out)
    assert {r["seed"] for r in rows} == {0, 1} and max(r["update"] for r in rows) == 8
    assert all(r["episode_return"] is None or r["episode_return"] > 0 for r in rows)


def test_a_data_parallel_mesh_steps_both_shards_of_one_pool(tmp_path, monkeypatch):
    """`--mesh data=2` on two CPU devices: the run's one pool holds both shards' envs and each shard's callback
    steps its own half from its own thread (a lock per pool keeps EnvPool's send/recv pairs apart)."""
    flags = ((__import__("os").environ.get("XLA_FLAGS", "")) + " --xla_force_host_platform_device_count=2").strip()
    monkeypatch.setenv("XLA_FLAGS", flags)
    out = tmp_path / "run"
    result = run_cli("train", "--set", "env=envpool/CartPole-v1", "--set", "num_envs=4", "--set", "num_steps=32",
                     "--set", "total_timesteps=1024", "--set", "num_minibatches=2", "--mesh", "data=2",
                     "--checkpoint-every", "4", "--out", out, "--progress", "off", cwd=tmp_path, timeout=300)
    # (without the lock this failed: an IndexError in one shard's callback, and the other shard then hung)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["mesh"] == {"seed": 1, "data": 2}
    rows = _rows(out)
    assert max(r["update"] for r in rows) == 8 and sum(r["episodes_completed"] for r in rows) > 0
    assert all(r["episode_return"] is None or r["episode_return"] > 0 for r in rows)


def test_atari_lives_and_clipped_rewards_count_whole_games_of_unclipped_score():
    """SpaceInvaders with episodic_life and reward_clip: a lost life is `terminated` (no bootstrap) but EnvPool goes on
    with the same game (no reset step to hide), the game's end is followed by EnvPool's next-step reset (hidden);
    the episode statistics get the unclipped reward (info "score") and the end of the game (info "episode_end"),
    so the reported return is the game score. Checked against EnvPool's own stream, stepped alone."""
    name = "SpaceInvaders-v5?episodic_life=true&reward_clip=true"
    env, params = make_env("envpool/" + name)
    t_steps = 1500
    actions = np.random.default_rng(0).integers(0, 6, (t_steps, 1)).astype(np.int32)

    def run(key, acts):
        keys = jax.random.split(key, 1)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

        def body(state, a):
            obs, state, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                keys, state, a, params)
            return state, (reward, term, trunc, info["score"], info["episode_end"], obs[:, -1].sum((-1, -2)))

        return jax.random.key_data(keys), jax.lax.scan(body, state, acts)[1]

    keys, (reward, term, trunc, score, end, frame) = jax.tree.map(np.asarray, jax.jit(run)(jax.random.key(3),
                                                                                           jnp.asarray(actions)))
    task, options = host.parse_name(name)
    pool = envpool.make(task, env_type="gymnasium", num_envs=1, env_seed=pool_seed(keys), **options)
    pool.reset()
    want = {k: [] for k in ("reward", "term", "score", "end", "frame")}
    for a in actions[:, 0]:
        obs, r, te, tr, info = pool.step(np.asarray([a]), env_id=np.array([0]))
        game_over = bool(info["terminated"][0] or tr[0])
        if game_over:  # EnvPool's next-step reset, hidden by the adapter
            obs, ghost_r, _, _, _ = pool.step(np.asarray([a]), env_id=np.array([0]))
            assert ghost_r[0] == 0
        for k, v in zip(want, (r[0], te[0], info["reward"][0], game_over, obs[0, -1].sum()), strict=True):
            want[k].append(v)
    pool.close()
    np.testing.assert_array_equal(reward[:, 0], np.float32(want["reward"]))
    np.testing.assert_array_equal(term[:, 0], want["term"])
    np.testing.assert_array_equal(score[:, 0], np.float32(want["score"]))
    np.testing.assert_array_equal(end[:, 0], want["end"])
    np.testing.assert_array_equal(frame[:, 0], want["frame"])
    lives_lost = term[:, 0] & ~end[:, 0]
    assert lives_lost.sum() >= 2 and end[:, 0].sum() >= 1, (lives_lost.sum(), end.sum())
    assert not trunc.any()
    assert (reward <= 1).all() and score.max() > 1  # clipped for learning, unclipped for the score (5-30 points)
