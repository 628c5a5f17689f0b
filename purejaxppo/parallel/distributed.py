"""Several processes: joining `jax.distributed`, and the one-machine launcher.

One process per host (GPU/TPU nodes) or, on a CPU machine, one per core:
every process runs the same `purejaxppo train` command; `jax.distributed`
joins them into one runtime whose devices form the mesh (purejaxppo.parallel).

- `purejaxppo train --processes N ...` (`launch`): starts N local workers with
  a free loopback port, waits for them, stops all when one fails or on Ctrl-C,
  and exits with the first failure's status.
- Clusters: run `purejaxppo train --distributed ...` once per host (e.g.
  `srun`), which calls `jax.distributed.initialize()`: it detects SLURM and
  TPU pods itself; elsewhere set PUREJAXPPO_COORDINATOR (host:port of process
  0), PUREJAXPPO_NUM_PROCESSES and PUREJAXPPO_PROCESS_ID, or pass
  `--coordinator/--num-processes/--process-id`.

On CPU the processes talk through gloo (`jax_cpu_collectives_implementation`).
Everything here must run before the first JAX computation of the process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from purejaxppo.errors import ConfigError

ENV_COORDINATOR = "PUREJAXPPO_COORDINATOR"
ENV_NUM_PROCESSES = "PUREJAXPPO_NUM_PROCESSES"
ENV_PROCESS_ID = "PUREJAXPPO_PROCESS_ID"
# How long a worker waits for the others to join before giving up (seconds).
INIT_TIMEOUT_S = int(os.environ.get("PUREJAXPPO_INIT_TIMEOUT", "120"))


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} must be an integer") from None


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> tuple[int, int]:
    """Join this process to the distributed runtime; returns (process_index, process_count).

    Arguments left None come from PUREJAXPPO_COORDINATOR / _NUM_PROCESSES /
    _PROCESS_ID, and otherwise from `jax.distributed.initialize`'s own cluster
    detection (SLURM, TPU pods, ...). On CPU, cross-process collectives use gloo.
    """
    import jax

    coordinator = coordinator or os.environ.get(ENV_COORDINATOR) or None
    num_processes = num_processes if num_processes is not None else _int_env(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _int_env(ENV_PROCESS_ID)
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"--num-processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id {process_id} must be in [0, {num_processes})")
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except Exception:  # noqa: BLE001 (an older/newer jax without the option: its default applies)
        pass
    kwargs: dict[str, Any] = {}  # jax.distributed.initialize's keyword arguments (str and int values)
    if coordinator is not None:
        kwargs["coordinator_address"] = coordinator
    if num_processes is not None:
        kwargs["num_processes"] = num_processes
    if process_id is not None:
        kwargs["process_id"] = process_id
    if kwargs:
        kwargs["initialization_timeout"] = INIT_TIMEOUT_S
    jax.distributed.initialize(**kwargs)
    return jax.process_index(), jax.process_count()


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def max_local_processes() -> int:
    """How many local workers can usefully start: one per CPU core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _stop(procs: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    """SIGTERM every live worker's process group, then SIGKILL what is left after grace_s."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def _tail(log_file, lines: int = 20) -> list[str]:
    """The last `lines` lines a worker wrote to its (temporary) log file."""
    log_file.seek(0)
    return log_file.read().decode(errors="replace").strip().splitlines()[-lines:] or ["(no output)"]


def launch(
    worker_argv: Sequence[str],
    processes: int,
    *,
    env: dict | None = None,
    log=lambda msg: print(msg, file=sys.stderr, flush=True),
) -> int:
    """Run `python -m purejaxppo <worker_argv>` as `processes` local workers joined by jax.distributed.

    Worker 0 keeps this terminal's stdout/stderr (it alone prints progress and
    writes the run folder); the others' output is kept aside and shown only if
    the run fails: the failing worker's, and that of any worker that had
    already ended (one that leaves early makes the others fail at
    jax.distributed's barriers). Returns 0 when all succeed, else the first
    failing worker's exit status (130 after Ctrl-C). One failure stops the rest.
    Every worker runs `worker_argv` as given (plus `--distributed`).
    """
    _check_process_count(processes)
    port = free_port()
    base_env = dict(os.environ if env is None else env)
    procs: list[subprocess.Popen] = []
    logs: list[Any] = []  # workers 1.. write here (temporary files); worker 0 to this terminal
    with _sigint_as_flag() as interrupted:
        try:
            _start_workers(worker_argv, processes, port, base_env, procs, logs)
            failed = _wait_for_failure(procs, interrupted)
            return 0 if failed is None else _report_failure(procs, logs, failed, log)
        except KeyboardInterrupt:
            _interrupt_leader(procs)
            _stop(procs, grace_s=15.0)
            return 130
        finally:
            _stop(procs, grace_s=5.0)
            for f in logs:
                f.close()


def _check_process_count(processes: int) -> None:
    limit = max_local_processes()
    if processes < 1:
        raise ConfigError(f"--processes must be >= 1, got {processes}")
    if processes > limit:
        raise ConfigError(
            f"--processes {processes}: this machine lets this process use {limit} CPU core(s); "
            f"start at most {limit} local workers (one per core), or use --distributed on a cluster"
        )


@contextlib.contextmanager
def _sigint_as_flag() -> Iterator[list[int]]:
    """While inside, Ctrl-C only appends to the yielded list (in the main thread; elsewhere it is left alone).

    The wait loop raises KeyboardInterrupt itself at a safe point. Raised asynchronously, it could land inside
    Popen.poll() holding the Popen's internal wait lock, after which every later wait() on that worker blocks: the
    launcher then hung instead of stopping its workers."""
    interrupted: list[int] = []
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        yield interrupted
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)


def _start_workers(
    worker_argv: Sequence[str], processes: int, port: int, base_env: dict, procs: list, logs: list
) -> None:
    """Start the workers, appending each to `procs` (and the log file of each worker but 0 to `logs`) as it
    starts, so that the caller stops those already started if a later one fails to."""
    for i in range(processes):
        wenv = dict(
            base_env,
            **{ENV_COORDINATOR: f"127.0.0.1:{port}", ENV_NUM_PROCESSES: str(processes), ENV_PROCESS_ID: str(i)},
        )
        out = None
        if i > 0:
            out = tempfile.TemporaryFile()
            logs.append(out)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "purejaxppo", *worker_argv, "--distributed"],
                env=wenv,
                stdout=out if i else None,
                stderr=subprocess.STDOUT if i else None,
                start_new_session=True,
            )
        )


def _wait_for_failure(procs: list[subprocess.Popen], interrupted: list[int]) -> tuple[int, int] | None:
    """Wait until every worker has ended or one has failed: (its index, its exit status), or None if all succeeded.

    Raises KeyboardInterrupt when `interrupted` gets an entry (Ctrl-C) while waiting."""
    failed: tuple[int, int] | None = None
    while failed is None and any(p.poll() is None for p in procs):
        if interrupted:
            raise KeyboardInterrupt
        for i, p in enumerate(procs):
            if p.poll() not in (None, 0):
                failed = (i, p.returncode)
                break
        time.sleep(0.1)
    if failed is None:
        failed = next(((i, p.returncode) for i, p in enumerate(procs) if p.returncode), None)
    if failed is not None and failed[0] > 0:
        # The same user error usually stops every worker: give worker 0 (which prints to this terminal)
        # a moment to say it, and report that instead of repeating it.
        try:
            if procs[0].wait(timeout=15) not in (None, 0):
                failed = (0, procs[0].returncode)
        except subprocess.TimeoutExpired:
            pass
    return failed


def _report_failure(procs: list[subprocess.Popen], logs: list, failed: tuple[int, int], log) -> int:
    """Stop the other workers, show what explains the failure, and return the exit status for it."""
    processes = len(procs)
    i, rc = failed
    # Workers that ended on their own, before the rest are stopped: their output explains a failure that
    # shows up elsewhere (a worker that left early makes the others fail at jax.distributed's barriers).
    # (Not after exit status 2 of worker 0: that is a user error, which every worker meets and worker 0
    # has printed as one line.)
    ended = (
        {}
        if (i, rc) == (0, 2)
        else {j: p.returncode for j, p in enumerate(procs) if j > 0 and j != i and p.poll() is not None}
    )
    _stop(procs)
    if i > 0:
        log(
            f"purejaxppo: worker {i} of {processes} failed (exit {rc}); its last output:\n  "
            + "\n  ".join(_tail(logs[i - 1]))
        )
    elif rc != 2:
        log(f"purejaxppo: worker 0 of {processes} failed (exit {rc}); the others were stopped")
    for j, rcj in ended.items():
        log(
            f"purejaxppo: worker {j} of {processes} had already ended (exit {rcj}); its last output:\n  "
            + "\n  ".join(_tail(logs[j - 1]))
        )
    return rc if rc > 0 else 128 - rc  # a signal -N -> 128 + N


def _interrupt_leader(procs: list[subprocess.Popen]) -> None:
    """Ctrl-C: pass the interrupt to the leader (worker 0) alone, and give it a minute to stop.

    Workers are in their own sessions. The leader stops every worker at the next chunk boundary, where none is
    inside a collective (purejaxppo.runs.session)."""
    if procs and procs[0].poll() is None:
        try:
            os.killpg(procs[0].pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            procs[0].wait(timeout=60.0)
        except subprocess.TimeoutExpired:
            pass
