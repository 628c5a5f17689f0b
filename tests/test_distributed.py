"""Two processes joined by jax.distributed on loopback (one CPU device each): the mesh for real.

Each test starts its workers as subprocesses with a bounded timeout, and kills
them (whole process groups) on failure. The single-process references are
computed in this process: `jax.vmap(train)` for the seed axis, and the
vmap-emulated data axis of tests/test_parallel.py for the data axis.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

from purejaxppo.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID, free_port
from purejaxppo.train import make_train
from tests.distributed_configs import DATA_CONFIG, NUM_SEEDS, SEED_CONFIG

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def _env(**extra):
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)


def run_workers(argv_of, n=2, timeout=TIMEOUT_S, cwd=ROOT):
    """Start n workers (argv_of(i) -> argv) joined on a free loopback port; returns their outputs.
    Kills every worker's process group if one fails or the time runs out."""
    port = free_port()
    procs = []
    try:
        for i in range(n):
            env = _env(**{ENV_COORDINATOR: f"127.0.0.1:{port}", ENV_NUM_PROCESSES: str(n), ENV_PROCESS_ID: str(i)})
            procs.append(subprocess.Popen(argv_of(i), env=env, cwd=cwd, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True, start_new_session=True))
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    for i, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"worker {i} exited {p.returncode}:\n{out[-3000:]}"
    return outs


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run_workers(lambda i: [sys.executable, str(ROOT / "tests" / "distributed_worker.py"), str(out)])
    return dict(np.load(out / "results.npz"))


def test_two_processes_form_one_mesh(two_process_results):
    assert int(two_process_results["process_count"]) == 2
    assert int(two_process_results["device_count"]) == 2


def test_seed_axis_over_processes_equals_vmap(two_process_results):
    r = two_process_results
    ref = jax.jit(jax.vmap(make_train(SEED_CONFIG)))(jax.random.split(jax.random.key(0), NUM_SEEDS))
    np.testing.assert_allclose(r["seed_return"], ref.metrics["episode_return"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(r["seed_value_loss"], ref.metrics["value_loss"], rtol=1e-6, atol=1e-6)
    flat = np.stack([np.concatenate([np.ravel(x[i]) for x in jax.tree.leaves(ref.state.params)])
                     for i in range(NUM_SEEDS)])
    np.testing.assert_allclose(r["seed_params"], flat, rtol=1e-6, atol=1e-6)


def test_data_axis_over_processes_stays_in_lockstep_and_matches_the_emulation(two_process_results):
    r = two_process_results
    per_device = r["data_params_per_device"]
    assert np.array_equal(per_device[0], per_device[1])  # params, optimizer state, obs normalizer: bit for bit
    from tests.test_parallel import _emulated_data_train

    emu = _emulated_data_train(DATA_CONFIG, 2)(jax.random.split(jax.random.key(0), 1)[0])
    want = np.stack([np.asarray(emu.metrics[k][0]) for k in ("episode_return", "value_loss", "approx_kl", "kl")])
    np.testing.assert_allclose(r["data_metrics"], want, rtol=2e-4, atol=1e-6)
    emu_params = np.concatenate([np.ravel(x[0]) for x in jax.tree.leaves((emu.state.params, emu.state.opt_state,
                                                                           emu.state.obs_norm))])
    np.testing.assert_allclose(per_device[0], emu_params, rtol=2e-3, atol=1e-5)


# ------------------------------------------------------------------ the CLI: launcher, leader, resume across topologies

TINY = ["--seeds", "4", "--set", "num_envs=4", "--set", "num_steps=16", "--set", "total_timesteps=1024",
        "--set", "num_minibatches=2", "--set", "log_every=2", "--checkpoint-every", "4", "--progress", "off"]


def cli(*args, timeout=TIMEOUT_S):
    return subprocess.run([sys.executable, "-m", "purejaxppo", "train", *args], cwd=ROOT, env=_env(), text=True,
                          capture_output=True, timeout=timeout)


def rows(run_dir):
    return {(r["update"], r["seed"]): r for r in map(json.loads, (Path(run_dir) / "metrics.jsonl").read_text().splitlines())}


def test_cli_two_processes_then_resume_on_other_topologies(tmp_path):
    ref = cli(*TINY, "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    # Seed axis over 2 processes, stopped half way, finished by 1 process.
    a = cli(*TINY, "--processes", "2", "--out", str(tmp_path / "a"), "--stop-after", "8")
    assert a.returncode == 0, a.stdout + a.stderr
    assert "on a mesh of seed=2 x data=1 devices (2 process(es))" in a.stdout
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["processes"] == 2 and info["mesh"] == {"seed": 2, "data": 1} and info["status"] == "stopped"
    b = cli("--resume", str(tmp_path / "a"))
    assert b.returncode == 0, b.stderr
    # Data axis over 2 processes, stopped half way, finished as a seed-sharded 2-process run.
    c = cli(*TINY, "--processes", "2", "--mesh", "data=2", "--out", str(tmp_path / "c"), "--stop-after", "8")
    assert c.returncode == 0, c.stdout + c.stderr
    d = cli("--resume", str(tmp_path / "c"), "--processes", "2", "--mesh", "seed=2")
    assert d.returncode == 0, d.stdout + d.stderr

    want, got_a, got_c = rows(tmp_path / "ref"), rows(tmp_path / "a"), rows(tmp_path / "c")
    assert set(got_a) == set(want) and set(got_c) == set(want)  # one writer: no row twice, none missing
    for k in ("episode_return", "value_loss", "policy_loss", "approx_kl", "explained_variance"):
        np.testing.assert_allclose([got_a[u][k] for u in sorted(want)], [want[u][k] for u in sorted(want)],
                                   rtol=1e-5, atol=1e-5, err_msg=k)
    # The data-parallel half draws its own random numbers per device (a different run of the same algorithm),
    # but its second half continued from its own checkpoint: the rows are there and finite.
    assert all(np.isfinite(got_c[u]["value_loss"]) for u in got_c)
    assert json.loads((tmp_path / "c" / "run.json").read_text())["mesh"] == {"seed": 2, "data": 1}


def test_cli_bad_mesh_and_process_counts_are_one_line_errors(tmp_path):
    for args, msg in [(["--mesh", "seed=3"], "needs 3 devices but 1 are available"),
                      (["--processes", "2", "--mesh", "seed=2", "--seeds", "3"], "--seeds 3 is not divisible by the seed axis (2)"),
                      (["--processes", "2", "--mesh", "data=2", "--set", "num_envs=3"],
                       "num_envs: 3 is not divisible by the data axis (2)"),
                      (["--mesh", "seeds=2"], "--mesh: 'seeds=2' is not AXIS=SIZE"),
                      (["--processes", "64"], "start at most")]:
        r = cli(*TINY, "--out", str(tmp_path / "x"), *args, timeout=120)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        err = [ln for ln in r.stderr.splitlines() if ln.startswith("purejaxppo: error:")]
        assert len(err) == 1 and msg in err[0], (args, r.stderr)
    # The mesh must use every device of a multi-process run.
    r = cli(*TINY, "--out", str(tmp_path / "y"), "--processes", "2", "--mesh", "seed=1", timeout=120)
    assert r.returncode == 2 and "must use every device" in r.stderr, r.stderr
    assert not (tmp_path / "y").exists() or not any((tmp_path / "y").iterdir())


def _workers_of(launcher: subprocess.Popen) -> dict[int, int]:
    """{process id: pid} of a launcher's worker processes (read from /proc)."""
    found = {}
    for pid in Path("/proc").iterdir():
        if not pid.name.isdigit():
            continue
        try:
            stat = (pid / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != launcher.pid:
                continue
            env = dict(kv.split("=", 1) for kv in (pid / "environ").read_bytes().decode(errors="replace").split("\0")
                       if "=" in kv)
        except (OSError, ValueError, IndexError):
            continue
        if "PUREJAXPPO_PROCESS_ID" in env:
            found[int(env["PUREJAXPPO_PROCESS_ID"])] = int(pid.name)
    return found


@pytest.mark.parametrize("how", ["worker-killed", "ctrl-c"])
def test_launcher_stops_every_worker(tmp_path, how):
    long = [a if a != "total_timesteps=1024" else "total_timesteps=10000000" for a in TINY]
    p = subprocess.Popen([sys.executable, "-m", "purejaxppo", "train", *long, "--processes", "2",
                          "--out", str(tmp_path / "run")], cwd=ROOT, env=_env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not list((tmp_path / "run" / "checkpoints").glob("ckpt-*")) and time.monotonic() < deadline:
            assert p.poll() is None, p.stdout.read()
            time.sleep(0.5)
        workers = _workers_of(p)
        assert sorted(workers) == [0, 1]
        if how == "worker-killed":
            os.kill(workers[1], signal.SIGKILL)
        else:
            os.kill(p.pid, signal.SIGINT)
        out = p.communicate(timeout=120)[0]
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == (130 if how == "ctrl-c" else 128 + signal.SIGKILL), out[-2000:]
    for pid in workers.values():  # no worker left behind
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    if how == "ctrl-c":
        assert "continue with: purejaxppo train --resume" in out
    r = cli("--resume", str(tmp_path / "run"), "--stop-after", "8", timeout=240)  # the newest checkpoint is intact
    assert r.returncode == 0, r.stderr
