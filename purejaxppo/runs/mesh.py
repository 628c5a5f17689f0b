"""How a run is placed on a device mesh and kept in step across processes.

The run folder only ever sees the *canonical* state: the single-device
layout of `jax.vmap(train.init)`, leaves `[S, ...]` with all `num_envs` envs
of a seed together. So checkpoints of a mesh run are ordinary checkpoints:
they resume on any number of processes and devices (any seed/data split that
divides the run), and on one device without a mesh.

- `to_mesh` lays a canonical host state out on the mesh: `[S, D, ...]`
  sharded `P("seed", "data")`, envs split into D consecutive blocks (the
  blocks a data-parallel `Train.init` would create) and everything else
  copied per shard. `to_canonical` is its inverse, on every process
  (`process_allgather`: a collective, so every process calls it at the same
  point).
- Several processes: process 0 (the leader) owns the run folder; the others
  (followers) hold no files. The leader sends each decision the followers
  need with `broadcast_one_to_all` (JAX's own collective): the run's header
  (config, seeds, chunk length, ...) and start state, then before every chunk
  how many updates to run (0: done; -1: the leader failed).

Why not orbax for these checkpoints: a PPO train state (parameters,
optimizer, env states) is small next to a host's memory, so gathering it to
the leader costs little (measured in benchmarks/results/scaling.md), and it
keeps the one checkpoint format that is fsynced, atomically renamed and
tested against SIGKILL at every write (tests/test_faults_run.py), needs no
shared filesystem (followers receive the state from the leader), and resumes
on any topology. A state too large for one host (e.g. millions of pixel-obs
envs over many hosts) would need orbax's per-process shards; that is not
built.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxppo.core.keys import is_key
from purejaxppo.errors import ConfigError
from purejaxppo.parallel import (
    DATA,
    SEED,
    check_mesh_shape,
    default_mesh_shape,
    gather,
    global_array,
    make_mesh,
    make_sharded_train,
    on_key_data,
    shard,
)
from purejaxppo.runs.axis import is_batched


def _split_env_leaves(state, fn_env: Callable, fn_other: Callable):
    """Apply fn_env to the leaves with an env axis after the seed axis (the env carry, the reward
    scaler's per-env returns), fn_other to every other leaf."""
    env = jax.tree.map(fn_env, state.env)
    scaler = state.reward_scaler
    if scaler is not None:
        scaler = scaler.replace(returns=fn_env(scaler.returns), stats=jax.tree.map(fn_other, scaler.stats))
    rest = state.replace(env=(), reward_scaler=None)
    rest = jax.tree.map(fn_other, rest)
    return rest.replace(env=env, reward_scaler=scaler)


def to_mesh(state, mesh: Mesh):
    """Canonical state `[S, ...]` (host arrays, identical on every process) -> global `[S, D, ...]` on `mesh`."""
    d = mesh.shape[DATA]
    sharding = NamedSharding(mesh, P(SEED, DATA))

    def place(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    def env_leaf(x):  # [S, N, ...] -> [S, D, N / D, ...]: D consecutive blocks of envs
        return on_key_data(lambda a: place(np.reshape(a, (a.shape[0], d, a.shape[1] // d) + a.shape[2:])), x)

    def other_leaf(x):  # [S, ...] -> [S, D, ...]: one copy per data shard
        return on_key_data(lambda a: place(np.repeat(np.asarray(a)[:, None], d, axis=1)), x)

    return _split_env_leaves(state, env_leaf, other_leaf)


def to_canonical(state):
    """Global `[S, D, ...]` state -> canonical host state `[S, ...]` (data shard 0's copy of replicated
    leaves). A collective when the state spans processes: call it on every process."""

    def env_leaf(x):
        return on_key_data(lambda a: a.reshape((a.shape[0], a.shape[1] * a.shape[2]) + a.shape[3:]), x)

    return _split_env_leaves(gather(state), env_leaf, lambda x: x[:, 0])


def chunk_on_mesh(chunk: Callable, mesh: Mesh, per_run_hp: bool = False) -> jax.stages.Wrapped:
    """`chunk(states, hp, n, stop)` of a batch of seeds -> the jitted program over the mesh's global state
    `[S, D, ...]`: each device runs it on its own seeds. `per_run_hp`: `hp` has `[S]` fields sharded over the
    seed axis like the runs (a sweep group), else it is replicated."""

    def fn(state, hp, n, stop):
        return tuple(chunk(state, hp, n, stop))

    return jax.jit(shard(fn, mesh, ("state", "seed" if per_run_hp else "rep", "rep", "rep"), ("state", "seed")))


def place_hparams(mesh: Mesh, hp):
    """The run's hyperparameters as global arrays: `[S]` fields (one per run) sharded over the seed axis,
    scalars replicated."""
    return global_array(mesh, "seed" if is_batched(hp) else "rep", hp)


# ------------------------------------------------------------------ leader -> followers


def _broadcast(x: np.ndarray) -> np.ndarray:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.broadcast_one_to_all(x))


def broadcast_json(obj: Any | None) -> Any:
    """The leader's JSON-able `obj` on every process (followers pass None)."""
    data = np.frombuffer(json.dumps(obj).encode(), np.uint8) if jax.process_index() == 0 else np.zeros(0, np.uint8)
    n = int(_broadcast(np.asarray([data.size], np.int64))[0])
    if jax.process_index() != 0:
        data = np.zeros(n, np.uint8)
    return json.loads(_broadcast(data).tobytes().decode())


def broadcast_int(value: int) -> int:
    """The leader's int on every process."""
    return int(_broadcast(np.asarray([value], np.int64))[0])


def broadcast_state(state, template):
    """The leader's canonical host state on every process (followers pass None and a `jax.eval_shape` template)."""
    leader = jax.process_index() == 0
    src = state if leader else template

    def to_data(x):
        if is_key(x):  # the state's keys are jax.random.key(...) keys: the default implementation
            return (
                np.asarray(jax.random.key_data(x))
                if leader
                else np.zeros(tuple(x.shape) + np.shape(jax.random.key_data(jax.random.key(0))), np.uint32)
            )
        return np.asarray(x) if leader else np.zeros(x.shape, x.dtype)

    got = jax.tree.map(lambda x: _broadcast(to_data(x)), src)
    return jax.tree.map(lambda t, x: jax.random.wrap_key_data(x) if is_key(t) else x, src, got)


def resolve_mesh_shape(
    requested: dict | None, *, num_seeds: int, config, device_count: int, process_count: int
) -> dict | None:
    """The ("seed", "data") sizes a run uses, or None for the plain single-device program.

    No request: None on one device; otherwise every device, seeds first
    (`default_mesh_shape`). A request (`--mesh seed=2,data=1`; a missing axis is
    1) is checked against the run (ConfigError naming the field and the fix).
    """
    if requested is None:
        if device_count == 1:
            return None
        shape = default_mesh_shape(num_seeds, config.num_envs, device_count)
    else:
        shape = {SEED: requested.get(SEED, 1), DATA: requested.get(DATA, 1)}
    check_mesh_shape(shape, num_seeds=num_seeds, config=config, num_devices=device_count)
    if process_count > 1 and shape[SEED] * shape[DATA] != device_count:
        raise ConfigError(
            f"--mesh seed={shape[SEED]},data={shape[DATA]} uses {shape[SEED] * shape[DATA]} of the {device_count} "
            "devices "
            f"of {process_count} processes; with several processes the mesh must use every device "
            f"(e.g. --mesh seed={device_count} with a multiple of {device_count} seeds, or --mesh data={device_count})"
        )
    return shape


class Peers:
    """The leader's side of keeping followers in step (no-ops in a single process). See the module docstring."""

    def __init__(self):
        self.count = jax.process_count()
        self.header_sent = False
        self.closed = False

    def send_header(self, header: dict, state) -> None:
        if self.count > 1:
            broadcast_json(header)
            broadcast_state(state, None)
        self.header_sent = True

    def nothing_to_do(self) -> None:
        """The run is already complete: the followers return at once."""
        if self.count > 1 and not self.header_sent:
            broadcast_json({"done": True})
        self.header_sent = self.closed = True

    def plan(self, n: int) -> None:
        """Tell the followers to run a chunk of n updates (0: the run is over)."""
        if self.count > 1 and not self.closed:
            broadcast_int(n)
            self.closed = n <= 0

    def abort(self) -> None:
        """Best effort, after a failure outside any collective: the followers stop (exit status 1)."""
        if self.count <= 1 or self.closed:
            return
        self.closed = True
        try:
            if not self.header_sent:
                broadcast_json({"abort": True})
            else:
                broadcast_int(-1)
        except Exception:  # noqa: BLE001 (the leader's own error is what matters)
            pass


def place_run(train, header: dict, state):
    """(per-device Train, mesh, global state) of a run's header and canonical host state."""
    shape = header["mesh"]
    mesh = make_mesh(seed=shape[SEED], data=shape[DATA])
    per_device = make_sharded_train(train.config, mesh, header["num_seeds"], train=train).train
    return per_device, mesh, to_mesh(state, mesh)


def replicated(mesh: Mesh, tree):
    """Host values every process holds -> replicated global arrays (inputs of a program over several processes)."""
    return global_array(mesh, "rep", tree)


class DeferredInterrupt:
    """The leader of a multi-process run takes Ctrl-C at the next chunk boundary, where every follower waits
    for the leader's plan: it tells them the run is over (plan 0), then raises KeyboardInterrupt. An interrupt
    taken anywhere else could leave one process inside a collective the other never joins. Only the leader
    gets the signal (the launcher passes Ctrl-C to worker 0 alone). Single-process runs stop at once as before.
    """

    def __init__(self, active: bool, say: Callable[[str], None]):
        self.requested, self.say, self.old = False, say, None
        if active and threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._note)

    def _note(self, signum, frame):
        if not self.requested:
            self.say("interrupt: stopping every process after this chunk (its checkpoint is kept)")
        self.requested = True

    def check(self, peers: Peers) -> None:
        if self.requested:
            peers.plan(0)
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            self.old = None
