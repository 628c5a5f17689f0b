"""A user's own env, network and objective (tests/custom_ppo.py) through everything, by its builder:
train_run / the CLI with `--build`, resume (also after SIGKILL), load_run, load_policy, eval, render, a sweep,
and two processes; the builder's errors; the program cache keyed by more than the config."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from purejaxppo import BuildError, make_train
from purejaxppo.core.objectives import Objective, register_objective
from purejaxppo.runs import ProgramCache, load_policy, load_run, train_run
from purejaxppo.runs.checkpoints import flatten_state, read_checkpoint
from tests import custom_ppo
from tests.custom_ppo import CONFIG, GoalWalk, tiny_network
from tests.runs_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
BUILD = "tests.custom_ppo:build"
QUIET = dict(log=lambda m: None)
SEEDS = 2


def same_state(a, b):
    fa, _ = flatten_state(a)
    fb, _ = flatten_state(b)
    assert sorted(fa) == sorted(fb)
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of the custom Train, by its builder."""
    out = tmp_path_factory.mktemp("build") / "ref"
    return train_run(CONFIG, out, build=BUILD, num_seeds=SEEDS, checkpoint_every=2, **QUIET)


# ------------------------------------------------------------------ in process (fast tier)


def test_a_built_run_records_its_builder_resumes_bit_identically_and_loads(reference, tmp_path):
    run = tmp_path / "run"
    first = train_run(CONFIG, run, build=BUILD, num_seeds=SEEDS, checkpoint_every=2, stop_after=2, **QUIET)
    assert first.status == "stopped" and first.update == 2
    info = json.loads((run / "run.json").read_text())
    assert info["build"] == BUILD and info["train"] == "builder"
    meta = read_checkpoint(run / "checkpoints" / "ckpt-00000002.msgpack")[0]
    assert meta["build"] == BUILD and meta["train"] == "builder"
    # The resume names nothing: the folder says how to build the Train again.
    done = train_run(None, run, resume=True, **QUIET)
    assert done.status == "finished" and done.update == CONFIG.num_updates
    assert (run / "metrics.jsonl").read_text() == (reference.run_dir / "metrics.jsonl").read_text()
    same_state(done.state, reference.state)
    loaded = load_run(run)
    assert isinstance(loaded.train.env, GoalWalk) and loaded.train.objective is custom_ppo.CLIP_PENALTY
    act = load_policy(run, seed_index=1)
    obs, _ = GoalWalk().reset(jax.random.key(0), GoalWalk().default_params)
    assert int(act(obs)) in (0, 1) and act(np.stack([obs, obs])).shape == (2,)
    # A builder whose Train does not fit the checkpoint is one error naming it; the folder is unchanged.
    def files():  # (the lock file is taken and released by each attempt)
        return sorted((p.name, p.stat().st_mtime_ns) for p in run.rglob("*") if p.name != ".lock")

    before = files()
    with pytest.raises(BuildError, match="tests.custom_ppo:build_wider"):
        load_run(run, build="tests.custom_ppo:build_wider")
    with pytest.raises(BuildError, match="tests.custom_ppo:build_wider"):
        train_run(None, run, resume=True, build="tests.custom_ppo:build_wider", stop_after=99, **QUIET)
    assert files() == before


@pytest.mark.parametrize(
    "build, message",
    [
        ("tests.custom_ppo", "is 'module:function'"),
        ("tests.no_such_module:build", "cannot import module 'tests.no_such_module'"),
        ("tests.custom_ppo:no_such_function", "has no function 'no_such_function'"),
        ("tests.custom_ppo:not_a_train", "returned str, not the Train"),
        ("tests.custom_ppo:build_other_config", "a Train of another config (num_envs: 4 -> 8)"),
    ],
)
def test_a_bad_builder_is_one_error_naming_it_before_any_folder_exists(tmp_path, build, message):
    with pytest.raises(BuildError, match="--build " + build.replace(".", r"\.")) as info:
        train_run(CONFIG, tmp_path / "run", build=build, **QUIET)
    assert message in str(info.value)
    assert not (tmp_path / "run").exists()


def test_a_train_object_without_a_builder_must_be_given_again(tmp_path):
    run = tmp_path / "run"
    train = make_train(CONFIG, env=GoalWalk(), network_factory=tiny_network)
    train_run(train, run, checkpoint_every=2, stop_after=2, **QUIET)
    assert json.loads((run / "run.json").read_text())["train"] == "object"
    for attempt in (lambda: train_run(None, run, resume=True, **QUIET), lambda: load_run(run)):
        with pytest.raises(BuildError, match="pass the same Train again"):
            attempt()
    assert load_run(run, train=train).train is train
    assert train_run(train, run, resume=True, **QUIET).status == "finished"


def test_the_program_cache_tells_objectives_of_the_same_name_apart(tmp_path):
    """Re-registering an objective under the same name compiles anew: its runs differ, the cache holds both."""
    name = "cache_probe_objective"
    cache = ProgramCache()
    results = []
    for scale in (1.0, -1.0):  # the second one ascends the other way: its parameters must differ
        register_objective(Objective(name, lambda r, a, kl, hp, s, c=scale: c * (r * a).mean()), replace=True)
        config = CONFIG.replace(objective=name, total_timesteps=CONFIG.batch_size * 2)
        results.append(train_run(config, tmp_path / f"r{scale}", build=BUILD, cache=cache, **QUIET))
    assert len([k for k in cache.entries if k[0] == "chunk"]) == 2
    a, _ = flatten_state(results[0].state.params)
    b, _ = flatten_state(results[1].state.params)
    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_train_run_changes_no_process_wide_setting(monkeypatch, tmp_path):
    import purejaxppo.cpu

    def refuse(**kwargs):
        raise AssertionError("train_run must not call purejaxppo.cpu.configure()")

    monkeypatch.setattr(purejaxppo.cpu, "configure", refuse)
    assert train_run(CONFIG.replace(total_timesteps=CONFIG.batch_size), tmp_path / "r", build=BUILD, **QUIET).finished


# ------------------------------------------------------------------ the command line (slow tier)

LONG = CONFIG.replace(total_timesteps=CONFIG.batch_size * 300)
SETS = [
    "--set", "env=GoalWalk", "--set", "objective=clip_ratio_penalty", "--set", "num_envs=4", "--set", "num_steps=16",
    "--set", "num_minibatches=2", "--set", "update_epochs=2", "--set", "log_every=1",
]


def _kill_after_first_checkpoint(args) -> int:
    """Start `purejaxppo ARGS` (the console script: its sys.path lacks the working directory), SIGKILL it once it
    reports its first checkpoint; returns the update that checkpoint holds."""
    cmd = [str(Path(sys.executable).parent / "purejaxppo"), *map(str, args)]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in p.stdout:
            if line.startswith("checkpoint ckpt-"):
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=60)
                return int(line.split("update ")[1].split("/")[0])
        raise AssertionError(f"the run ended before its first checkpoint (rc {p.wait()})")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli-build")
    run = work / "run"
    args = ["train", "--build", BUILD, *SETS, "--set", f"total_timesteps={LONG.total_timesteps}", "--seeds", SEEDS,
            "--checkpoint-every", 2, "--progress", "lines", "--out", run]
    killed_at = _kill_after_first_checkpoint(args)
    assert killed_at < LONG.num_updates
    resumed = run_cli("train", "--resume", run, cwd=ROOT)  # no --build: the folder names it
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return work, run, killed_at


@pytest.mark.timeout(1200)
def test_cli_build_sigkill_resume_is_bit_identical(killed_and_resumed):
    work, run, killed_at = killed_and_resumed
    ref = train_run(LONG, work / "ref", build=BUILD, num_seeds=SEEDS, checkpoint_every=2, **QUIET)
    assert (run / "metrics.jsonl").read_text() == (ref.run_dir / "metrics.jsonl").read_text()
    same_state(load_run(run).state, ref.state)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["build"] == BUILD and len(info["sessions"]) == 2


def test_cli_build_eval_render_and_load_policy(killed_and_resumed):
    work, run, _ = killed_and_resumed
    ev = run_cli("eval", run, "--episodes", 2, "--deterministic", cwd=ROOT)
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert "(4 episodes)" in ev.stdout  # 2 seeds x 2 episodes of GoalWalk
    rd = run_cli("render", run, "--out", work / "x.gif", cwd=ROOT)
    assert rd.returncode == 2 and "GoalWalk" in rd.stderr and "Traceback" not in rd.stderr, rd.stderr[-3000:]
    assert not (work / "x.gif").exists()
    act = load_policy(run)
    params = GoalWalk().default_params
    obs, state = GoalWalk().reset(jax.random.key(3), params)
    steps = 0
    for steps in range(1, params.max_steps_in_episode + 1):  # the trained policy walks to the goal shown to it
        obs, state, _, terminated, truncated, _ = GoalWalk().step(jax.random.key(steps), state, act(obs), params)
        if terminated or truncated:
            break
    assert bool(terminated) and steps <= params.length


def test_cli_build_sweep_2x2(tmp_path):
    (tmp_path / "s.yaml").write_text("seeds: 1\ngrid:\n  learning_rate: [1.0e-3, 3.0e-3]\n")
    out = tmp_path / "sw"
    res = run_cli("sweep", tmp_path / "s.yaml", "--build", BUILD, *SETS, "--set", f"total_timesteps={CONFIG.total_timesteps}",
                  "--grid", "num_minibatches=1,2", "--out", out, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    saved = __import__("yaml").safe_load((out / "sweep.yaml").read_text())
    assert saved["spec"]["build"] == BUILD and len(saved["settings"]) == 4 and len(saved["groups"]) == 2
    for g in ("g0", "g1"):
        assert isinstance(load_run(out / "groups" / g).train.env, GoalWalk)
    assert (out / "sweep.md").is_file()


def test_cli_build_two_processes_with_an_objective_only_the_users_module_registers(tmp_path):
    run = tmp_path / "run"
    res = run_cli("train", "--build", BUILD, *SETS, "--set", f"total_timesteps={CONFIG.total_timesteps}",
                  "--seeds", SEEDS, "--checkpoint-every", 2, "--processes", 2, "--out", run, cwd=ROOT, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads((run / "run.json").read_text())
    assert info["processes"] == 2 and info["mesh"] == {"seed": 2, "data": 1} and info["status"] == "finished"
    ref = train_run(CONFIG, tmp_path / "ref", build=BUILD, num_seeds=SEEDS, checkpoint_every=2, **QUIET)
    a = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (ref.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["update"], r["seed"]) for r in a] == [(r["update"], r["seed"]) for r in b]
    np.testing.assert_allclose([r["episode_return"] or 0.0 for r in a], [r["episode_return"] or 0.0 for r in b], rtol=1e-5)
