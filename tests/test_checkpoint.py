"""Full-state checkpoints: round trip, atomic writes, corruption and mismatch errors, bit-identical resume."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.runs.checkpoints import (
    CheckpointError,
    CheckpointManager,
    flatten_state,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from purejaxppo.runs import load_run, train_run
from tests.runs_helpers import CHUNK, CONFIG, SEEDS


def assert_trees_identical(a, b):
    fa, ka = flatten_state(a)
    fb, kb = flatten_state(b)
    assert ka == kb and sorted(fa) == sorted(fb)
    for k in fa:
        assert fa[k].dtype == fb[k].dtype and fa[k].shape == fb[k].shape, k
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


@pytest.fixture(scope="module")
def small_state():
    cfg = PPOConfig(env="Pendulum-v1", num_envs=2, num_steps=8, num_minibatches=1, total_timesteps=16,
                    normalize_obs=True, normalize_reward=True, objective="kl_adaptive")
    train = make_train(cfg)
    keys = jax.random.split(jax.random.key(3), 2)
    state = jax.jit(jax.vmap(train.init, in_axes=(0, None)))(keys, cfg.hparams())
    template = jax.eval_shape(jax.vmap(train.init, in_axes=(0, None)), keys, cfg.hparams())
    return state, template


def test_round_trip_keeps_every_leaf_typed_keys_and_meta(tmp_path, small_state):
    state, template = small_state
    meta = {"update": 7, "config": {"env": "Pendulum-v1"}, "note": "x"}
    save_checkpoint(tmp_path / "c.msgpack", state, meta)
    restored, meta2 = load_checkpoint(tmp_path / "c.msgpack", template)
    assert meta2 == meta
    assert jax.dtypes.issubdtype(restored.key.dtype, jax.dtypes.prng_key)
    assert_trees_identical(state, restored)
    # Restored keys draw the same numbers.
    np.testing.assert_array_equal(jax.random.uniform(state.key[0]), jax.random.uniform(restored.key[0]))
    assert restored.obs_norm is not None and restored.reward_scaler is not None
    assert not os.listdir(tmp_path) or all(not n.endswith(".tmp") for n in os.listdir(tmp_path))


def test_crash_during_write_leaves_previous_checkpoint(tmp_path, small_state, monkeypatch):
    state, template = small_state
    manager = CheckpointManager(tmp_path, keep=2)
    manager.save(state, {"update": 1}, 1)

    def crash(*a, **k):
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk died"):
        manager.save(state, {"update": 2}, 2)
    monkeypatch.undo()
    assert [u for u, _ in manager.list()] == [1]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]  # the temp file was removed
    load_checkpoint(manager.latest(), template)


def test_manager_keeps_the_newest_two(tmp_path, small_state):
    state, _ = small_state
    manager = CheckpointManager(tmp_path, keep=2)
    for u in (2, 4, 6):
        manager.save(state, {"update": u}, u)
    assert [u for u, _ in manager.list()] == [4, 6]


def test_truncated_latest_is_a_clear_error_and_previous_still_loads(tmp_path, small_state):
    state, template = small_state
    manager = CheckpointManager(tmp_path)
    manager.save(state, {"update": 1}, 1)
    latest = manager.save(state, {"update": 2}, 2)
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as e:
        manager.read_latest()
    assert "ckpt-00000001.msgpack is intact" in str(e.value)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(latest, template)
    restored, meta = load_checkpoint(tmp_path / "ckpt-00000001.msgpack", template)
    assert meta["update"] == 1
    assert_trees_identical(state, restored)


def test_flipped_byte_fails_the_checksum(tmp_path, small_state):
    state, _ = small_state
    path = save_checkpoint(tmp_path / "c.msgpack", state, {"update": 1})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum|corrupt"):
        read_checkpoint(path)


def test_not_a_checkpoint_and_missing(tmp_path):
    (tmp_path / "x.msgpack").write_bytes(b"hello")
    with pytest.raises(CheckpointError, match="corrupt|not a purejaxppo checkpoint"):
        read_checkpoint(tmp_path / "x.msgpack")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.msgpack")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        CheckpointManager(tmp_path / "empty").read_latest()


def test_shape_mismatch_names_the_leaf(tmp_path, small_state):
    state, _ = small_state
    path = save_checkpoint(tmp_path / "c.msgpack", state, {})
    cfg = PPOConfig(env="Pendulum-v1", num_envs=2, num_steps=8, num_minibatches=1, total_timesteps=16,
                    normalize_obs=True, normalize_reward=True, actor_hidden=(32, 64), objective="kl_adaptive")
    train = make_train(cfg)
    other = jax.eval_shape(jax.vmap(train.init, in_axes=(0, None)), jax.random.split(jax.random.key(0), 2), cfg.hparams())
    with pytest.raises(CheckpointError, match=r"params/params/actor/Dense_0/\w+' is float32\[2, (64|3, 64)\] in the checkpoint but float32\[2, (32|3, 32)\]"):
        load_checkpoint(path, other)
    no_norm = make_train(cfg.replace(actor_hidden=(64, 64), normalize_obs=False))
    other = jax.eval_shape(jax.vmap(no_norm.init, in_axes=(0, None)), jax.random.split(jax.random.key(0), 2), cfg.hparams())
    with pytest.raises(CheckpointError, match="unexpected leaf"):
        load_checkpoint(path, other)


def test_resume_in_process_is_bit_identical(tmp_path):
    """2 chunks straight vs 1 chunk, stop, resume (same process): identical metrics.jsonl and state."""
    quiet = dict(log=lambda m: None, progress="lines", progress_file=open(os.devnull, "w"))
    straight = train_run(CONFIG, tmp_path / "straight", num_seeds=SEEDS, checkpoint_every=CHUNK, **quiet)
    first = train_run(CONFIG, tmp_path / "resumed", num_seeds=SEEDS, checkpoint_every=CHUNK, stop_after=CHUNK, **quiet)
    assert first.update == CHUNK and not first.finished
    # Interrupted mid-run: rows written after the checkpoint must be dropped on resume.
    with open(tmp_path / "resumed" / "metrics.jsonl", "a") as fh:
        fh.write('{"update": 3, "env_steps": 192, "seed": 0, "episode_return": 1.0}\n{"upda')
    second = train_run(None, tmp_path / "resumed", resume=True, **quiet)
    assert second.finished and second.update == CONFIG.num_updates
    assert second.compile_s < 1.0  # the chunk program is reused within a process
    a = (tmp_path / "straight" / "metrics.jsonl").read_text()
    b = (tmp_path / "resumed" / "metrics.jsonl").read_text()
    assert a == b and len(a.splitlines()) == CONFIG.num_updates * SEEDS
    assert_trees_identical(straight.state, second.state)
    # ... and what is on disk is what training ended with.
    assert_trees_identical(load_run(tmp_path / "resumed").state, straight.state)
    assert int(np.asarray(second.state.update_step)[0]) == CONFIG.num_updates
