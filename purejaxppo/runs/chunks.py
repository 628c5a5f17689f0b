"""How a chunk of updates is compiled and run: one jitted, seed-vmapped program per run, cached per process.

The number of updates in a chunk is a runtime argument, so a shorter last
chunk reuses the program; compiled programs (and jitted inits) are kept by a
`ProgramCache`, keyed by everything that decides them, so another session of
the same run (e.g. a resume in the same process) does not compile again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.core.keys import is_key
from purejaxppo.core.resources import check_memory, tree_bytes
from purejaxppo.runs.axis import is_batched
from purejaxppo.runs.mesh import chunk_on_mesh, replicated
from purejaxppo.runs.progress import with_progress

if TYPE_CHECKING:
    from purejaxppo.core.train import Train

AXIS = "local_seeds"  # the vmap over seeds (on a mesh: over one device's seeds; purejaxppo.parallel.LOCAL_SEEDS)


def make_chunk_fn(
    train: Train, chunk_len: int, reporter: Callable | None, log_every: int, mesh=None, per_run_hp: bool = False
) -> jax.stages.Wrapped:
    """`chunk(states[S], hp, n, stop_on_diverge) -> (states, metrics[S, chunk_len])`, jitted, vmapped over seeds.

    Runs `n <= chunk_len` updates (n is traced; the remaining iterations are
    skipped by a `cond`, so every chunk length reuses one compiled program)
    with the progress callback compiled in iff `reporter` is given and
    `log_every > 0`. With `stop_on_diverge` (a traced bool) the remaining
    updates are also skipped once any seed has diverged (on a mesh, any seed
    of any device: `lax.pmax` over its "seed" axis); the state's
    `update_step` then says how many ran.

    With a ("seed", "data") `mesh` (purejaxppo.parallel) the program runs on
    every device of it (purejaxppo.runs.mesh.chunk_on_mesh): states are the
    mesh layout `[S, D, ...]`, `train` is the per-device Train, and the
    divergence stop and the progress report span the mesh's seed axis too.

    per_run_hp: `hp` holds one value per run (`[S]` fields, a sweep group:
    purejaxppo.runs.axis), vmapped with the states; else one `HParams` for all.
    """
    config = train.config
    update = train.update
    mesh_axes = () if mesh is None else tuple(mesh.axis_names)
    if reporter is not None and log_every > 0:
        update = with_progress(
            update, log_every, reporter, total_updates=config.num_updates, axis_name=AXIS, mesh_axes=mesh_axes
        )

    # The seeds' vmap is inside the cond that skips updates (not the cond inside the vmap): JAX cannot vmap a
    # cond whose branches step envs through host callbacks (purejaxppo.envs.envpool); the program is the same.
    updates = jax.vmap(update, in_axes=(0, 0 if per_run_hp else None), axis_name=AXIS)

    def chunk(states, hp, n, stop_on_diverge):
        metric_shapes = jax.eval_shape(updates, states, hp)[1]
        blank = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), metric_shapes)

        def body(s, i):
            any_diverged = jnp.max(s.diverged.astype(jnp.int32))
            if mesh_axes:
                any_diverged = jax.lax.pmax(any_diverged, mesh_axes[0])
            any_diverged = any_diverged > 0
            go = jnp.logical_and(i < n, jnp.logical_not(jnp.logical_and(stop_on_diverge, any_diverged)))
            return jax.lax.cond(go, lambda s: updates(s, hp), lambda s: (s, blank), s)

        states, metrics = jax.lax.scan(body, states, jnp.arange(chunk_len))
        return states, jax.tree.map(lambda m: jnp.swapaxes(m, 0, 1), metrics)  # [chunk_len, S] -> [S, chunk_len]

    if mesh is not None:
        return chunk_on_mesh(chunk, mesh, per_run_hp)
    return jax.jit(chunk)


def host_state(state):
    """Host copies of the leaves without weak types (e.g. gymnax's `time=0`), like a restored checkpoint,
    so a fresh run and a resumed one lower to exactly the same program."""
    return jax.tree.map(lambda x: x if is_key(x) else np.asarray(x), state)


class Relay:
    """The host callback compiled into a cached chunk program; forwards to the current run's reporter."""

    def __init__(self):
        self.target = None

    def __call__(self, *args):
        if self.target is not None:
            self.target(*args)


class ProgramCache:
    """Compiled chunk programs and jitted inits, most recently used last, at most `size` of each kind together.

    Keyed by what decides the program: the config, the Train's source token (purejaxppo.runs.build.cache_token:
    the builder and objective object, or the Train object itself), the chunk length, seeds, progress on, and
    the mesh. So another session of the same run in this process (a resume) does not compile again, and a
    different env, network or objective under the same config never reuses another's program.
    """

    def __init__(self, size: int = 8):
        self.size = size
        self.entries: dict = {}

    def _get(self, key, make: Callable):
        entry = self.entries.pop(key, None)
        if entry is None:
            entry = make()
        self.entries[key] = entry
        while len(self.entries) > self.size:
            self.entries.pop(next(iter(self.entries)))
        return entry

    def init(self, train: Train, token, num_seeds: int, per_run_hp: bool = False) -> Callable:
        """`init(keys[S], hp) -> states[S]`, jitted and vmapped over seeds (and over `hp` with `per_run_hp`)."""
        key = ("init", train.config, token, num_seeds, per_run_hp)
        return self._get(key, lambda: jax.jit(jax.vmap(train.init, in_axes=(0, 0 if per_run_hp else None))))

    def chunk(self, train: Train, token, chunk_len: int, num_seeds: int, use_progress: bool, state, hp, mesh=None):
        """(compiled chunk program, its `Relay` or None), lowered for `state` and compiled on a miss. The progress
        callback is compiled in iff `use_progress`; point the relay's `target` at a reporter. With `mesh`, `train`
        is the per-device Train and `state` the global mesh-layout state. `hp` with `[S]` fields (one value per
        run, purejaxppo.runs.axis) compiles the per-run variant."""
        per_run_hp = is_batched(hp)
        key = (
            "chunk",
            train.config,
            token,
            chunk_len,
            num_seeds,
            use_progress,
            per_run_hp,
            None if mesh is None else tuple(mesh.shape.items()),
            None if mesh is None else tuple(d.id for d in mesh.devices.flat),
        )

        def make():
            relay = Relay() if use_progress else None
            chunk_fn = make_chunk_fn(train, chunk_len, relay, train.config.log_every, mesh, per_run_hp)
            n, stop = jnp.int32(chunk_len), jnp.asarray(True)
            if mesh is not None:  # every input a global array, so the program runs across processes
                n, stop = replicated(mesh, (np.int32(chunk_len), np.asarray(True)))
            return chunk_fn.lower(state, hp, n, stop).compile(), relay

        return self._get(key, make)


#: The cache train_run uses unless it is given another (purejaxppo.runs.session.RunSession(cache=...)).
PROCESS_CACHE = ProgramCache()


def state_template(train: Train, num_seeds: int, seed: int):
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    return jax.eval_shape(jax.vmap(train.init, in_axes=(0, None)), keys, train.config.hparams())


def check_run_fits(train: Train, num_seeds: int) -> None:
    """ResourceError before compiling if `num_seeds` runs of `train` cannot fit the device's memory
    (the train state's size exact, from `jax.eval_shape`; the rollout and update estimated)."""

    state_bytes = tree_bytes(state_template(train, num_seeds, 0)) // num_seeds
    check_memory(train.config, train.obs_spec, train.action_spec, num_seeds, state_bytes=state_bytes)
