"""Two processes joined by jax.distributed on loopback (one CPU device each): the mesh for real.

Each test starts its workers as subprocesses with a bounded timeout, and kills
them (whole process groups) on failure. The single-process references are
computed in this process: `jax.vmap(train)` for the seed axis, and the
vmap-emulated data axis of tests/test_parallel.py for the data axis.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

from purejaxppo.cli import main
from purejaxppo.parallel.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID, free_port
from purejaxppo.core.train import make_train
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
# Multi-process runs go through `python -m purejaxppo train --processes 2` (the launcher); single-process runs and
# resumes call the CLI's `main` in this process, where runs of the same settings share one compiled chunk program
# (purejaxppo.runs.chunks): each single-process program is compiled once, not once per subprocess. One 2-process
# run stopped by Ctrl-C (the `ctrl_c_run` fixture) serves both the Ctrl-C test and the resume-across-topologies test.

TINY = ["--seeds", "4", "--set", "num_envs=4", "--set", "num_steps=16", "--set", "total_timesteps=1024",
        "--set", "num_minibatches=2", "--set", "log_every=2", "--checkpoint-every", "4", "--progress", "off"]
LONG = [a if a != "total_timesteps=1024" else "total_timesteps=10000000" for a in TINY]  # runs until stopped


def cli(*args, timeout=TIMEOUT_S):
    return subprocess.run([sys.executable, "-m", "purejaxppo", "train", *args], cwd=ROOT, env=_env(), text=True,
                          capture_output=True, timeout=timeout)


def cli_here(*args) -> int:
    """`purejaxppo train ARGS` as one process: this one."""
    return main(["train", *map(str, args)])


def rows(run_dir):
    return {(r["update"], r["seed"]): r for r in map(json.loads, (Path(run_dir) / "metrics.jsonl").read_text().splitlines())}


def run_info(run_dir):
    return json.loads((Path(run_dir) / "run.json").read_text())


def test_cli_two_processes_then_resume_on_other_topologies(ctrl_c_run, tmp_path, capsys):
    # Seed axis over 2 processes (launched with --processes 2), stopped by Ctrl-C after a checkpoint at update u
    # (how it stopped is test_launcher_stops_every_worker[ctrl-c]'s business; here it is a run to continue)...
    run, _, out, _ = ctrl_c_run
    assert "on a mesh of seed=2 x data=1 devices (2 process(es))" in out, out[-2000:]
    info = run_info(run)
    assert info["processes"] == 2 and info["mesh"] == {"seed": 2, "data": 1}
    u = max(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("ckpt-*.msgpack"))
    end = u + 8
    # ...the same run without interruption, on 1 process (this one)...
    assert cli_here(*LONG, "--out", tmp_path / "ref", "--stop-after", end) == 0, capsys.readouterr().err
    # ...and (copies of) its folder continued on two other topologies: 1 process, and data=2 over 2 processes.
    a, c = shutil.copytree(run, tmp_path / "a"), shutil.copytree(run, tmp_path / "c")
    assert cli_here("--resume", a, "--stop-after", end, "--progress", "off") == 0, capsys.readouterr().err
    d = cli("--resume", str(c), "--processes", "2", "--mesh", "data=2", "--stop-after", str(u + 4))
    assert d.returncode == 0, d.stdout + d.stderr
    assert "on a mesh of seed=1 x data=2 devices (2 process(es))" in d.stdout
    info = run_info(c)
    assert info["processes"] == 2 and info["mesh"] == {"seed": 1, "data": 2} and info["status"] == "stopped"
    assert max(update for update, _ in rows(c)) == u + 4
    # The data-parallel run's own checkpoint, continued on 1 process.
    assert cli_here("--resume", c, "--stop-after", end, "--progress", "off") == 0, capsys.readouterr().err

    want, got_a, got_c = rows(tmp_path / "ref"), rows(a), rows(c)
    assert max(update for update, _ in want) == end
    assert set(got_a) == set(want) and set(got_c) == set(want)  # one writer: no row twice, none missing
    for k in ("episode_return", "value_loss", "policy_loss", "approx_kl", "explained_variance"):
        np.testing.assert_allclose([got_a[u][k] for u in sorted(want)], [want[u][k] for u in sorted(want)],
                                   rtol=1e-5, atol=1e-5, err_msg=k)
    # The data-parallel part draws its own random numbers per device (a different run of the same algorithm),
    # but continued from the seed-parallel checkpoint and was continued from its own: the rows are there and finite.
    assert all(np.isfinite(got_c[u]["value_loss"]) for u in got_c)
    assert run_info(a)["status"] == run_info(c)["status"] == run_info(tmp_path / "ref")["status"] == "stopped"


def test_cli_bad_mesh_and_process_counts_are_one_line_errors(tmp_path, capsys):
    def one_line(rc, err, args, msg):
        assert rc == 2, (args, err)
        lines = [ln for ln in err.splitlines() if ln.startswith("purejaxppo: error:")]
        assert len(lines) == 1 and msg in lines[0], (args, err)

    # Rejected before any worker starts: this process is the CLI.
    for args, msg in [(["--mesh", "seed=3"], "needs 3 devices but 1 are available"),
                      (["--mesh", "seeds=2"], "--mesh: 'seeds=2' is not AXIS=SIZE"),
                      (["--processes", "64"], "start at most")]:
        rc = cli_here(*TINY, "--out", tmp_path / "x", *args)
        one_line(rc, capsys.readouterr().err, args, msg)
    # Rejected by the workers of a 2-process run: the launcher reports one of them, once.
    for args, msg in [(["--processes", "2", "--mesh", "seed=2", "--seeds", "3"], "--seeds 3 is not divisible by the seed axis (2)"),
                      (["--processes", "2", "--mesh", "data=2", "--set", "num_envs=3"],
                       "num_envs: 3 is not divisible by the data axis (2)"),
                      (["--processes", "2", "--mesh", "seed=1"], "must use every device")]:
        r = cli(*TINY, "--out", str(tmp_path / "x"), *args, timeout=120)
        one_line(r.returncode, r.stderr, args, msg)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


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


def launch_and_stop(run_dir: Path, how: str):
    """`train --processes 2` of a long run, stopped once its first checkpoint exists: worker 1 killed
    ("worker-killed") or Ctrl-C to the launcher ("ctrl-c"). Returns (the launcher's exit status, its output,
    the pids of its workers that were left behind)."""
    p = subprocess.Popen([sys.executable, "-m", "purejaxppo", "train", *LONG, "--processes", "2",
                          "--out", str(run_dir)], cwd=ROOT, env=_env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not list((run_dir / "checkpoints").glob("ckpt-*")) and time.monotonic() < deadline:
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
    left = [pid for pid in workers.values()
            if Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]
    return p.returncode, out, left


@pytest.fixture(scope="module")
def ctrl_c_run(tmp_path_factory):
    """(run folder, launcher exit status, output, workers left behind) of one 2-process run stopped by Ctrl-C
    after its first checkpoint: test_launcher_stops_every_worker[ctrl-c] checks how it stopped, and
    test_cli_two_processes_then_resume_on_other_topologies continues copies of its folder."""
    run = tmp_path_factory.mktemp("ctrl_c") / "run"
    return (run, *launch_and_stop(run, "ctrl-c"))


@pytest.mark.parametrize("how", ["worker-killed", "ctrl-c"])
def test_launcher_stops_every_worker(tmp_path, how, request):
    if how == "ctrl-c":
        run, rc, out, left = request.getfixturevalue("ctrl_c_run")
        run = shutil.copytree(run, tmp_path / "run")  # the shared run's folder stays as it stopped
    else:
        run = tmp_path / "run"
        rc, out, left = launch_and_stop(run, how)
    assert rc == (130 if how == "ctrl-c" else 128 + signal.SIGKILL), out[-2000:]
    assert not left, left  # no worker left behind
    if how == "ctrl-c":
        assert "continue with: purejaxppo train --resume" in out
    # The newest checkpoint is intact: the run resumes (in this process).
    assert cli_here("--resume", run, "--stop-after", "8", "--progress", "off") == 0


def test_launcher_shows_the_output_of_a_worker_that_ended_before_worker_0_failed(monkeypatch):
    """Worker 1 ends early (exit 0) and worker 0 then dies at a barrier (SIGABRT): the launcher reports both and
    shows worker 1's output, which is where the cause is. Stand-in workers: no JAX, about a second."""
    from purejaxppo.parallel import distributed

    real_popen = subprocess.Popen
    scripts = {"0": "import os, time; time.sleep(1.0); os.abort()",
               "1": "print('worker one: bye early', flush=True)"}

    def popen(cmd, env, **kw):
        return real_popen([sys.executable, "-c", scripts[env[ENV_PROCESS_ID]]], env=env, **kw)

    monkeypatch.setattr(distributed.subprocess, "Popen", popen)
    monkeypatch.setattr(distributed, "max_local_processes", lambda: 2)
    messages = []
    rc = distributed.launch(["train"], 2, log=messages.append)
    assert rc == 128 + signal.SIGABRT
    assert messages[0].startswith("purejaxppo: worker 0 of 2 failed (exit -6)")
    assert messages[1].startswith("purejaxppo: worker 1 of 2 had already ended (exit 0)")
    assert "worker one: bye early" in messages[1]


# ------------------------------------------------------------------ PBT over processes
PBT_TINY = ["--set", "num_envs=4", "--set", "num_steps=16", "--set", "total_timesteps=2048", "--set",
            "num_minibatches=2", "--set", "log_every=2", "--population", "4", "--ready-every", "4",
            "--range", "learning_rate=log:1e-4:3e-3", "--range", "ent_coef=0:0.03", "--checkpoint-every", "8",
            "--progress", "off"]


def test_pbt_population_over_two_processes_equals_one_process(tmp_path, capsys):
    # The population axis split over 2 processes (seed=2: 2 members each): the members' scores are gathered
    # over both for the exploit step, so the lineage (who copied whom, when), the members' hyperparameters and
    # their curves are those of the same population on one process.
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["pbt", *PBT_TINY, "--out", str(one)]) == 0, capsys.readouterr().err
    r = subprocess.run([sys.executable, "-m", "purejaxppo", "pbt", *PBT_TINY, "--processes", "2", "--mesh", "seed=2",
                        "--out", str(two)], cwd=ROOT, env=_env(), text=True, capture_output=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "(2 process(es))" in r.stdout, r.stdout[-2000:]
    a, b = (json.loads((d / "pbt.json").read_text()) for d in (one, two))
    assert run_info(two)["processes"] == 2 and run_info(two)["mesh"] == {"seed": 2, "data": 1}
    assert a["lineage"] and a["lineage"] == b["lineage"]
    assert a["best"] == b["best"]
    for ea, eb in zip(a["final"], b["final"], strict=True):
        np.testing.assert_allclose(ea["score"], eb["score"], rtol=1e-5, atol=1e-5)
        assert ea["hparams"].keys() == eb["hparams"].keys()
        np.testing.assert_allclose(list(ea["hparams"].values()), list(eb["hparams"].values()), rtol=1e-6)
    ra, rb = ({(r["update"], r["member"]): r for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())}
              for d in (one, two))
    assert set(ra) == set(rb) and len(ra) == 4 * 16
    np.testing.assert_allclose([ra[k]["episode_return"] for k in sorted(ra)],
                               [rb[k]["episode_return"] for k in sorted(ra)], rtol=1e-5, atol=1e-5)
