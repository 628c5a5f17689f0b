"""Training on a device mesh: seeds and environments sharded over devices and processes.

A mesh has two named axes (`jax.sharding.Mesh`):

- "seed": independent runs (seeds, sweep members) split over devices; no
  communication at all.
- "data": one run's `num_envs` split over devices. Each device steps its
  `num_envs / D` envs and runs the update on its shard; gradients, and every
  statistic that spans envs (advantage normalization, the observation and
  reward normalizers, episode returns, explained variance, approx KL / clip
  fraction and the target-KL stop, the exact KL behind the adaptive beta, the
  divergence guard, evaluation) are averaged over the axis
  (`purejaxppo.core.collectives`), so every device applies the same update and holds
  the same parameters.

The sharded state carries both axes in front of every leaf: `[S, D, ...]`
(seed, data shard), sharded as `P("seed", "data")`; parameters are therefore
stored once per data shard (and identical, which the tests check). Metrics
are `[S, ...]`. Without a mesh nothing here is used: `make_train(config)` is
the single-device program.

    mesh = make_mesh(seed=2, data=1)          # or make_mesh() for the default shape
    strain = make_sharded_train(config, mesh, num_seeds=8)
    out = jax.jit(strain)(strain.seed_keys(0))  # metrics [8, num_updates]

Several processes (`jax.distributed`): every process runs the same program
on the same host inputs; `seed_keys` and `hparams` build global arrays from
them, and `gather` brings sharded outputs back to every host.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxppo.core.config import RECURRENT_NETWORKS, HParams, PPOConfig, validate_hparams
from purejaxppo.core.keys import is_key
from purejaxppo.core.pbt import PBTTrain
from purejaxppo.core.train import Train, TrainOutput, make_train
from purejaxppo.errors import ConfigError

SEED, DATA = "seed", "data"
AXES = (SEED, DATA)
# Name of the vmap over the seeds that one device holds (distinct from the mesh's "seed" axis).
LOCAL_SEEDS = "local_seeds"


def parse_mesh(text: str) -> dict[str, int]:
    """`"seed=2,data=1"` -> {"seed": 2, "data": 1} (ConfigError naming the flag on anything else)."""
    shape: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in AXES:
            raise ConfigError(
                f"--mesh: {part!r} is not AXIS=SIZE with AXIS one of {', '.join(AXES)} (e.g. --mesh seed=2,data=1)"
            )
        if name in shape:
            raise ConfigError(f"--mesh: axis {name!r} given twice")
        try:
            size = int(value)
        except ValueError:
            raise ConfigError(f"--mesh: {name}={value!r} must be a positive integer (e.g. --mesh {name}=2)") from None
        if size < 1:
            raise ConfigError(f"--mesh: {name}={size} must be a positive integer (e.g. --mesh {name}=2)")
        shape[name] = size
    return shape


def default_mesh_shape(num_seeds: int, num_envs: int, num_devices: int) -> dict[str, int]:
    """All devices on the seed axis when the seeds divide among them; otherwise on the data axis.

    Seeds need no communication, so they are sharded first: seed = the largest
    divisor of num_devices that also divides num_seeds; the remaining factor
    goes to the data axis if it divides num_envs (else the mesh uses fewer
    devices, never a shape that cannot run).
    """
    seed = max(d for d in range(1, num_devices + 1) if num_devices % d == 0 and num_seeds % d == 0)
    rest = num_devices // seed
    data = max(d for d in range(1, rest + 1) if rest % d == 0 and num_envs % d == 0)
    return {SEED: seed, DATA: data}


def check_mesh_shape(shape: dict[str, int], *, num_seeds: int, config: PPOConfig, num_devices: int) -> None:
    """ConfigError naming the field and the fix for a mesh that does not fit the run."""
    seed, data = shape.get(SEED, 1), shape.get(DATA, 1)
    if seed * data > num_devices:
        raise ConfigError(
            f"mesh: seed={seed} x data={data} needs {seed * data} devices but {num_devices} are available "
            f"({jax.default_backend()}); shrink the mesh, or start more processes (--processes)"
        )
    if num_seeds % seed:
        raise ConfigError(
            f"mesh: --seeds {num_seeds} is not divisible by the seed axis ({seed}); use a multiple of "
            f"{seed} seeds or --mesh seed=<a divisor of {num_seeds}>"
        )
    if config.num_envs % data:
        raise ConfigError(
            f"PPOConfig.num_envs: {config.num_envs} is not divisible by the data axis ({data}); "
            f"use a multiple of {data} envs or --mesh data=<a divisor of {config.num_envs}>"
        )
    local = config.num_envs // data * config.num_steps
    if local % config.num_minibatches:
        raise ConfigError(
            f"PPOConfig.num_minibatches: each of the {data} data shards holds num_envs / {data} * num_steps = {local} "
            f"samples, which must be divisible by num_minibatches = {config.num_minibatches}; choose a divisor of "
            f"{local}"
        )
    if config.network in RECURRENT_NETWORKS and (config.num_envs // data) % config.num_minibatches:
        raise ConfigError(
            f"PPOConfig.num_minibatches: network={config.network!r} takes minibatches of whole env sequences from each "
            f"data shard's num_envs / {data} = {config.num_envs // data} envs, which must be divisible by "
            f"num_minibatches = {config.num_minibatches}; lower num_minibatches or raise num_envs"
        )


def make_mesh(seed: int | None = None, data: int | None = None, devices: Sequence[Any] | None = None) -> Mesh:
    """A ("seed", "data") mesh over `devices` (default: all devices of all processes).

    Sizes left out take what remains (seed first); their product must equal
    the number of devices used (the first seed * data devices when both are given).
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if seed is None and data is None:
        seed, data = n, 1
    elif seed is None:
        assert data is not None  # the first branch took seed and data both None
        seed = n // data
    elif data is None:
        data = n // seed
    if seed < 1 or data < 1 or seed * data > n:
        raise ConfigError(f"make_mesh: seed={seed} x data={data} does not fit {n} device(s)")
    return Mesh(np.asarray(devices[: seed * data], dtype=object).reshape(seed, data), AXES)


def _spec(kind: str) -> P:
    return {"state": P(SEED, DATA), "seed": P(SEED), "rep": P()}[kind]


def shard(fn: Callable, mesh: Mesh, in_kinds: Sequence[str], out_kinds: Sequence[str]) -> Callable:
    """Run `fn` once per device of `mesh` on that device's block of each argument (`jax.shard_map`).

    Kinds: "state" leaves are `[S, D, ...]` (`P("seed", "data")`), "seed" leaves
    `[S, ...]` (`P("seed")`), "rep" leaves are replicated. `fn` sees its
    device's `s = S / mesh.shape["seed"]` seeds with the data dimension of the
    "state" arguments squeezed away (`[s, ...]`), and returns outputs of the
    same kinds. Inside `fn`, collectives over "data" reach the run's other
    shards and over "seed" the other devices' seeds.
    """

    def body(*args):
        blocks = [
            jax.tree.map(lambda x: x[:, 0], a) if k == "state" else a for a, k in zip(args, in_kinds, strict=True)
        ]
        outs = fn(*blocks)
        return tuple(
            jax.tree.map(lambda x: x[:, None], o) if k == "state" else o for o, k in zip(outs, out_kinds, strict=True)
        )

    # check_vma off: outputs of kind "seed" are equal across the data axis by construction (averaged), which
    # the type system cannot see through the scanned update; the tests check it.
    return jax.shard_map(
        body,
        mesh=mesh,
        in_specs=tuple(_spec(k) for k in in_kinds),
        out_specs=tuple(_spec(k) for k in out_kinds),
        check_vma=False,
    )


def on_key_data(fn: Callable, x: Any) -> Any:
    """`fn(x)`; for a typed PRNG key array, `fn` of its raw uint32 data, wrapped back as keys of the same
    implementation (array placement and gathering work on the data; keys are not NumPy-convertible)."""
    if not is_key(x):
        return fn(x)
    return jax.random.wrap_key_data(fn(jax.random.key_data(x)), impl=jax.random.key_impl(x))


def global_array(mesh: Mesh, kind: str, host_value: Any) -> Any:
    """A global array of `kind` ("seed" / "rep") from a value every process holds in full."""
    sharding = NamedSharding(mesh, _spec(kind))

    def place(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(lambda x: on_key_data(place, x), host_value)


def gather(tree: Any) -> Any:
    """Host NumPy copies of (possibly process-spanning) arrays, on every process."""
    from jax.experimental import multihost_utils

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(lambda x: on_key_data(fetch, x), tree)


def hparams_kind(hp: HParams) -> str:
    """ "seed" when every field carries a leading per-seed axis, "rep" when all are scalars."""
    ndims = {np.ndim(v) for v in jax.tree.leaves(hp)}
    if ndims == {0}:
        return "rep"
    if ndims == {1}:
        return "seed"
    raise ConfigError("hparams: every field must be a scalar (shared by all seeds) or a [num_seeds] array")


@dataclasses.dataclass(frozen=True, eq=False)
class ShardedTrain:
    """`make_train`'s training function for `num_seeds` seeds on a ("seed", "data") mesh.

    Call it like `jax.vmap(train)`: `strain(keys [S], hparams=None) ->
    TrainOutput` with state leaves `[S, D, ...]` and metrics `[S, num_updates]`
    (jit it). `init(keys, hp)` and `update(state, hp)` are its two pieces;
    `train` is the per-device `Train` (its `data_axis` set when D > 1).
    hparams: one `HParams` for all seeds, or one with `[S]` fields.
    """

    train: Train
    mesh: Mesh
    num_seeds: int

    @property
    def config(self) -> PPOConfig:
        return self.train.config

    @property
    def seed_shards(self) -> int:
        return self.mesh.shape[SEED]

    @property
    def data_shards(self) -> int:
        return self.mesh.shape[DATA]

    def seed_keys(self, seed: int) -> jax.Array:
        """The run's `[S]` keys (`jax.random.split(key(seed), S)`, as `train_run` uses) as a global array."""
        return global_array(self.mesh, "seed", jax.random.split(jax.random.key(seed), self.num_seeds))

    def hparams(self, hp: HParams | None = None) -> HParams:
        """`hp` (default: the config's) validated and placed on the mesh."""
        hp = self.config.hparams() if hp is None else validate_hparams(hp, objective=self.config.objective)
        return global_array(self.mesh, hparams_kind(hp), hp)

    def _per_seed(self, hp: HParams) -> tuple[str, Any]:
        kind = hparams_kind(hp)
        return kind, (0 if kind == "seed" else None)

    def init(self, keys: jax.Array, hp: HParams | None = None):
        hp = self.config.hparams() if hp is None else hp
        kind, axis = self._per_seed(hp)
        fn = lambda k, h: (jax.vmap(self.train.init, in_axes=(0, axis))(k, h),)  # noqa: E731
        return shard(fn, self.mesh, ("seed", kind), ("state",))(keys, hp)[0]

    def update(self, state, hp: HParams | None = None):
        hp = self.config.hparams() if hp is None else hp
        kind, axis = self._per_seed(hp)
        fn = jax.vmap(self.train.update, in_axes=(0, axis))
        return shard(fn, self.mesh, ("state", kind), ("state", "seed"))(state, hp)

    def __call__(self, keys: jax.Array, hparams: HParams | None = None) -> TrainOutput:
        hp = self.config.hparams() if hparams is None else hparams
        kind, axis = self._per_seed(hp)
        fn = lambda k, h: tuple(jax.vmap(self.train, in_axes=(0, axis))(k, h))  # noqa: E731
        state, metrics = shard(fn, self.mesh, ("seed", kind), ("state", "seed"))(keys, hp)
        return TrainOutput(state, metrics)


def make_sharded_train(
    config: PPOConfig,
    mesh: Mesh,
    num_seeds: int,
    env: Any = None,
    env_params: Any = None,
    network_factory: Callable | None = None,
    *,
    train: Train | None = None,
) -> ShardedTrain:
    """`make_train(config, env, env_params, network_factory)` for `num_seeds` seeds on `mesh` (see module doc).

    Pass an already built `train` to reuse it. ConfigError when the mesh does
    not fit (seeds not divisible by the seed axis, num_envs or the minibatches
    not divisible by the data axis).
    """
    if tuple(mesh.axis_names) != AXES:
        raise ConfigError(
            f"make_sharded_train: the mesh's axes must be {AXES} (purejaxppo.parallel.make_mesh), "
            f"got {tuple(mesh.axis_names)}"
        )
    shape = dict(mesh.shape)
    check_mesh_shape(shape, num_seeds=num_seeds, config=config, num_devices=math.prod(shape.values()))
    base = make_train(config, env, env_params, network_factory) if train is None else train
    data = shape[DATA]
    per_device = dataclasses.replace(base, data_axis=DATA if data > 1 else None, data_shards=data)
    if isinstance(per_device, PBTTrain):  # the population spans the mesh's seed axis, then each device's seeds
        per_device = dataclasses.replace(per_device, population_axes=(SEED, LOCAL_SEEDS))
    return ShardedTrain(per_device, mesh, num_seeds)


def params_of(state) -> Any:
    """Per-seed parameters `[S, ...]` of a sharded state (the data shards hold identical copies)."""
    return jax.tree.map(lambda x: x[:, 0], state.params)
