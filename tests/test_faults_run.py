"""Faults while training: SIGKILL at chosen and at random moments (also mid-checkpoint-write), a full disk,
two processes on one folder, NaN rewards, resource and import errors, and NaN eval_return in what users read.

Every recovery is compared with an uninterrupted run of the same config, bit for bit. The subprocess runs share
a persistent JAX compilation cache, so only the first of them compiles.
"""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train, raise_if_diverged
from purejaxppo.runs import checkpoints as checkpoint_mod
from purejaxppo.runs.checkpoints import CheckpointManager, read_checkpoint
from purejaxppo.cli import main
from purejaxppo.runs.progress import ProgressReporter
from purejaxppo.runs import learning_curves, train_run
from tests.runs_helpers import CHUNK, CONFIG, SEEDS, SET_ARGS

N = CONFIG.num_updates
QUIET = dict(num_seeds=SEEDS, checkpoint_every=CHUNK, progress="off", log=lambda m: None)
CLI_ARGS = ["--seeds", str(SEEDS), "--checkpoint-every", str(CHUNK), "--progress", "off", *SET_ARGS]

# Runs `purejaxppo train ARGS` after arming one fault: SIGKILL of this very process at a chosen point.
DRIVER = r'''
import os, signal, sys
from purejaxppo import cli
from purejaxppo.runs import checkpoints as checkpoint
from purejaxppo.runs import files, session, writers

point, at = sys.argv[1], int(sys.argv[2])
count = {"n": 0}

def hit():
    count["n"] += 1
    return count["n"] == at

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if point == "mid-checkpoint-write":  # the temp file holds half a checkpoint when the process dies
    real_fsync = checkpoint.os.fsync
    def fsync(fd):
        if "/.ckpt-" in os.readlink(f"/proc/self/fd/{fd}") and hit():
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            die()
        return real_fsync(fd)
    checkpoint.os.fsync = fsync
elif point == "after-checkpoint-rename":  # the new checkpoint is in place, the old ones not yet pruned
    real_dir = checkpoint._fsync_dir
    def fsync_dir(path):
        real_dir(path)
        if path.name == "checkpoints" and hit():
            die()
    checkpoint._fsync_dir = fsync_dir
elif point == "mid-metrics-write":  # half a row reached metrics.jsonl, no checkpoint covers it
    real_write = writers.JsonlWriter.write
    def write(self, rows):
        if hit():
            with open(self.path, "a") as fh:
                fh.write(__import__("json").dumps(rows[0])[:40])
            die()
        return real_write(self, rows)
    writers.JsonlWriter.write = write
elif point == "run-json-write":  # killed while replacing run.json
    real_json = files.write_json
    def write_json(path, data):
        if hit():
            die()
        return real_json(path, data)
    files.write_json = session.write_json = write_json  # save_info's run.json writes and the session's
sys.exit(cli.main(sys.argv[3:]))
'''


def _env(cache):
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    env.pop("PUREJAXPPO_TRACEBACK", None)
    return env


def rows_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def final_leaves(run):
    ck = CheckpointManager(run / "checkpoints").latest()
    meta, leaves, _ = read_checkpoint(ck)
    return meta["update"], leaves


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def reference(work):
    run = work / "reference"
    train_run(CONFIG, run, **QUIET)
    return rows_of(run), final_leaves(run)


def assert_matches_reference(run, reference):
    assert rows_of(run) == reference[0]
    update, leaves = final_leaves(run)
    ref_update, ref_leaves = reference[1]
    assert update == ref_update == N and leaves.keys() == ref_leaves.keys()
    for k in leaves:
        np.testing.assert_array_equal(leaves[k], ref_leaves[k], err_msg=k)


# ------------------------------------------------------------------ SIGKILL


def test_sigkill_at_chosen_moments_then_resume_is_bit_identical(work, reference):
    """One run killed four times — mid checkpoint write, right after a checkpoint's rename, mid metrics row,
    mid run.json update — resumed after each kill, ends bit-identical to the uninterrupted run."""
    run, cache = work / "killed", work / "jax-cache"
    driver = work / "driver.py"
    driver.write_text(DRIVER)

    def launch(point, at, *args):
        return subprocess.run([sys.executable, str(driver), point, str(at), "train", *args], cwd=work,
                              capture_output=True, text=True, timeout=600, env=_env(cache))

    first = launch("mid-checkpoint-write", 2, "--out", str(run), *CLI_ARGS)  # dies writing ckpt 4
    assert first.returncode == -signal.SIGKILL, first.stderr
    ck = run / "checkpoints"
    assert [p.name for p in ck.iterdir() if p.name.endswith(".tmp")], "the half-written temp file should be there"
    assert [u for u, _ in CheckpointManager(ck).list()] == [2]

    second = launch("after-checkpoint-rename", 1, "--resume", str(run))  # dies after ckpt 4 is in place
    assert second.returncode == -signal.SIGKILL, second.stderr
    assert "temp file(s) left by an interrupted write" in second.stdout
    assert not [p for p in ck.iterdir() if p.name.endswith(".tmp")]
    assert [u for u, _ in CheckpointManager(ck).list()] == [2, 4]

    third = launch("mid-metrics-write", 1, "--resume", str(run))  # dies writing update 5's rows
    assert third.returncode == -signal.SIGKILL, third.stderr

    fourth = launch("run-json-write", 1, "--resume", str(run))  # dies at the session's first run.json write
    assert fourth.returncode == -signal.SIGKILL, fourth.stderr
    assert "unparsable line(s)" in fourth.stdout  # the torn row of the third run was reported (and kept)

    last = launch("none", 0, "--resume", str(run))
    assert last.returncode == 0, last.stderr
    assert_matches_reference(run, reference)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished"
    # The first session was killed after its checkpoint at update 2: no cleanup ran ("ended" is missing), but
    # the wall time it had used by that checkpoint is kept.
    killed = info["sessions"][0]
    assert "ended" not in killed and killed["end_update"] == 2 and killed["wall_time_s"] > 0


def test_sigkill_at_random_moments_then_resume_is_bit_identical(work):
    """SIGKILL from outside at random times after compiling (seeded, so a failure can be replayed)."""
    cfg = CONFIG.replace(total_timesteps=CONFIG.batch_size * 300)
    ref = work / "random-ref"
    train_run(cfg, ref, **{**QUIET, "checkpoint_every": 5})
    run, cache = work / "random-killed", work / "jax-cache"
    args = ["--seeds", str(SEEDS), "--checkpoint-every", "5", "--progress", "off",
            *[a if not a.startswith("total_timesteps=") else f"total_timesteps={cfg.total_timesteps}" for a in SET_ARGS]]
    rng = random.Random(1234)
    kills = 0
    cmd = [sys.executable, "-m", "purejaxppo", "train", "--out", str(run), *args]
    for _ in range(12):
        proc = subprocess.Popen(cmd, cwd=work, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        for line in proc.stdout:  # wait until the compiled loop runs (or it ends)
            if line.startswith("compiled one chunk"):
                break
        time.sleep(rng.uniform(0.0, 0.5))  # short: every attempt must die before the 300 updates are done
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        if kills == 4 or proc.returncode == 0:
            break
        if (run / "checkpoints").is_dir() and CheckpointManager(run / "checkpoints").list():
            cmd = [sys.executable, "-m", "purejaxppo", "train", "--resume", str(run)]
        else:  # killed before the first checkpoint: start again in the same folder
            cmd = [sys.executable, "-m", "purejaxppo", "train", "--out", str(run), "--overwrite", *args]
    assert kills >= 3
    done = subprocess.run(cmd, cwd=work, env=_env(cache), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert rows_of(run) == rows_of(ref)
    _, leaves = final_leaves(run)
    _, ref_leaves = final_leaves(ref)
    for k in ref_leaves:
        np.testing.assert_array_equal(leaves[k], ref_leaves[k], err_msg=k)


# ------------------------------------------------------------------ full disk, two processes


def test_full_disk_during_a_checkpoint_write(work, reference, monkeypatch, capsys):
    run = work / "full-disk"
    real_fsync = checkpoint_mod.os.fsync
    calls = {"n": 0}

    def fsync(fd):
        if "/.ckpt-" in os.readlink(f"/proc/self/fd/{fd}"):
            calls["n"] += 1
            if calls["n"] == 2:  # the second checkpoint does not fit
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(checkpoint_mod.os, "fsync", fsync)
    rc = main(["train", "--out", str(run), *CLI_ARGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "No space left on device" in err[0] and "ckpt-00000002.msgpack is intact" in err[0]
    assert f"purejaxppo train --resume {run}" in err[0]
    ck = run / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["ckpt-00000002.msgpack"]  # no temp file, the previous one intact
    read_checkpoint(ck / "ckpt-00000002.msgpack")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and "No space left on device" in info["error"]
    monkeypatch.setattr(checkpoint_mod.os, "fsync", real_fsync)
    assert main(["train", "--resume", str(run)]) == 0
    assert_matches_reference(run, reference)


def test_two_train_processes_on_one_folder(work):
    run, cache = work / "shared-out", work / "jax-cache"
    long_args = ["--seeds", "1", "--checkpoint-every", "50", "--progress", "off", "--set", "num_envs=4",
                 "--set", "num_steps=16", "--set", "num_minibatches=2", "--set", "update_epochs=2",
                 "--set", f"total_timesteps={4 * 16 * 100_000}"]  # minutes: killed below once the others were refused
    first = subprocess.Popen([sys.executable, "-m", "purejaxppo", "train", "--out", str(run), *long_args], cwd=work,
                             env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (run / "run.json").exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second could start; make it longer"
        for extra in (["--out", str(run), *long_args], ["--out", str(run), "--overwrite", *long_args],
                      ["--resume", str(run)]):
            second = subprocess.run([sys.executable, "-m", "purejaxppo", "train", *extra], cwd=work, env=_env(cache),
                                    capture_output=True, text=True, timeout=300)
            assert second.returncode == 2, second.stderr
            assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr
            assert first.poll() is None
    finally:
        first.kill()
        first.wait(timeout=60)
    from purejaxppo.runs.folder import RunLock

    RunLock(run).acquire().release()  # the killed holder left no stale lock
    updates = [r["update"] for r in rows_of(run)]
    assert updates == list(range(10, 10 * len(updates) + 1, 10))  # one run's rows only, in order


# ------------------------------------------------------------------ NaN rewards


class NaNRewardEnv:
    """CartPole whose reward becomes NaN from env step `after` on (counted per env)."""

    def __init__(self, after):
        import gymnax

        self.inner, self.default_params = gymnax.make("CartPole-v1")
        self.after = after

    def reset(self, key, params):
        obs, state = self.inner.reset(key, params)
        return obs, (state, jnp.int32(0))

    def step(self, key, state, action, params):
        inner, t = state
        obs, inner, reward, term, trunc, info = self.inner.step(key, inner, action, params)
        info = dict(info)
        return obs, (inner, t + 1), jnp.where(t + 1 >= self.after, jnp.nan, reward), term, trunc, info

    def observation_space(self, params):
        return self.inner.observation_space(params)

    def action_space(self, params):
        return self.inner.action_space(params)


def test_nan_rewards_are_reported_as_divergence_naming_the_update():
    cfg = PPOConfig(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=1, total_timesteps=4 * 16 * 6)
    train = make_train(cfg, env=NaNRewardEnv(after=16 * 3 + 5))  # NaN rewards start inside update 4
    out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 2))
    flags = np.asarray(out.metrics["diverged"])
    assert flags[:, :3].sum() == 0 and flags[:, 3:].min() == 1
    with pytest.raises(FloatingPointError, match=r"first at update 4\b"):
        raise_if_diverged(out)


# ------------------------------------------------------------------ one-line errors


def _one_line_error(capsys, argv, monkeypatch=None):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("purejaxppo: error: "), err
    return err[0]


def test_size_and_count_errors_are_one_line_and_fast(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    msg = _one_line_error(capsys, ["train", "--progress", "off", "--set", "num_envs=100000000", "--set", "num_steps=8",
                                   "--set", "num_minibatches=1", "--set", "total_timesteps=800000000"])
    assert "memory" in msg and "num_envs" in msg and time.perf_counter() - t0 < 60
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing left behind
    for sets in (["num_envs=1000000000", "total_timesteps=128000000000"], ["total_timesteps=1000000000000000"]):
        msg = _one_line_error(capsys, ["train", "--progress", "off", *sum((["--set", s] for s in sets), [])])
        assert "total_timesteps" in msg or "num_envs" in msg
    for seeds in ("0", "-1"):
        assert "--seeds" in _one_line_error(capsys, ["train", "--seeds", seeds, "--progress", "off"])


def test_library_errors_become_one_line(tmp_path, capsys, monkeypatch):
    """A missing extra, no network, device memory and a read-only disk are the user's to fix: one line each.
    (An OverflowError is a bug since config fields are range-checked against int32: tests/test_errors.py.)"""
    from urllib.error import URLError

    from purejaxppo import runs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "brax", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "brax.envs", None)
    assert "pip install" in _one_line_error(capsys, ["train", "--set", "env=brax/ant", "--progress", "off"])
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    cases = {
        URLError(OSError(-3, "Temporary failure in name resolution")): "offline",
        jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 9 GB.\nmore"):
            "out of device memory",
        OSError(errno.EROFS, "Read-only file system", "runs/x/run.json"): "read-only",
    }
    for exc, words in cases.items():
        def boom(*a, exc=exc, **k):
            raise exc
        monkeypatch.setattr(runs, "train_run", boom)
        assert words in _one_line_error(capsys, ["train", "--progress", "off"])


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    from purejaxppo.runs import folder as run_folder

    run = tmp_path / "run"
    train_run(CONFIG, run, stop_after=CHUNK, **QUIET)

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(run / ".lock"))

    monkeypatch.setattr(run_folder, "open", read_only, raising=False)
    msg = _one_line_error(capsys, ["train", "--resume", str(run)])
    assert "cannot write to run folder" in msg and "Read-only file system" in msg


# ------------------------------------------------------------------ NaN eval_return in what users read


def test_eval_return_gaps_do_not_break_plots_progress_or_the_report(work, reference, capsys):
    run = work / "reference"  # eval_every=2: eval_return is null on updates 1 and 3
    steps, values = learning_curves(run, "eval_return")
    assert steps.tolist() == [u * CONFIG.batch_size for u in (2, 4, 5)] and np.isfinite(values).all()
    assert main(["plot", str(run), "--metric", "eval_return", "--out", str(work / "eval.png")]) == 0
    assert (work / "eval.png").stat().st_size > 1000

    rep = ProgressReporter(N, CONFIG.batch_size, 2, style="lines", file=open(os.devnull, "w"))
    first = rep.summary({"episode_return": np.array([10.0, 12.0]), "eval_return": np.array([50.0, 70.0])}, None)
    gap = rep.summary({"episode_return": np.array([11.0, 13.0]), "eval_return": np.array([np.nan, np.nan])}, None)
    assert "eval 60.0" in first and "eval 60.0" in gap and "nan" not in gap.lower()

    from purejaxppo.cli import print_train_summary
    from purejaxppo.runs import RunResult

    res = RunResult(run, CONFIG, None, N, True, 1.0, 2.0, 3.0)
    print_train_summary(res)
    out = capsys.readouterr().out
    assert "eval return" in out and "nan" not in out.lower()


def test_make_train_refuses_a_run_that_cannot_fit_in_memory_fast():
    from purejaxppo.core.resources import ResourceError

    t0 = time.perf_counter()
    with pytest.raises(ResourceError, match=r"needs about .* of memory .* reduce num_envs or num_steps"):
        make_train(PPOConfig(num_envs=10**9, num_steps=1, num_minibatches=1, total_timesteps=10**9))
    with pytest.raises(ValueError, match=r"num_envs.*GB of memory"):
        PPOConfig(num_envs=10**9)  # 128 steps each: past the int32 batch limit, and says what it would need
    assert time.perf_counter() - t0 < 30
