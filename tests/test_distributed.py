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
