"""The host side of the EnvPool adapter (purejaxppo.envs.envpool): this process's pools, by id."""

from __future__ import annotations

import collections
import dataclasses
import os
import secrets
import threading
import time
import warnings
from typing import Any

import numpy as np

from purejaxppo.envs.adapter import import_library
from purejaxppo.errors import EnvError

PREFIX = "envpool/"
#: Beyond this many pools, the least recently used one idle for EVICT_IDLE_S seconds is closed when a new one is
#: made (a pool of a training that ended; a later use of it restarts its envs, with a warning).
MAX_POOLS = 64
EVICT_IDLE_S = 300.0


#: EnvPool options the adapter sets itself: a pool's envs and seed come from the run (PPOConfig.num_envs, its keys).
MANAGED_OPTIONS = ("num_envs", "batch_size", "seed", "env_seed", "max_num_players", "gym_reset_return_info")


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_name(name: str) -> tuple[str, dict[str, Any]]:
    """`"Pong-v5?episodic_life=false"` -> ("Pong-v5", {"episodic_life": False})."""
    task, _, query = name.partition("?")
    options = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise EnvError(f"PPOConfig.env: '{PREFIX}{name}': options are key=value pairs joined by '&', got {part!r}")
        options[key] = _parse_value(value)
    return task, options


def check_options(name: str, options: dict, defaults: dict) -> None:
    """An EnvError naming an option that the task does not have (`defaults`: its EnvPool config), that the
    adapter sets itself, or whose value is not of its default's kind (a number, true/false, text)."""
    known = [f for f in defaults if f not in MANAGED_OPTIONS]
    for key, value in options.items():
        where = f"PPOConfig.env: '{PREFIX}{name}':"
        if key in MANAGED_OPTIONS:
            raise EnvError(
                f"{where} option {key!r} is set by purejaxppo (each seed's pool has PPOConfig.num_envs envs, "
                "seeded from the run's keys); remove it"
            )
        if key not in known:
            raise EnvError(f"{where} unknown EnvPool option {key!r}; this task's options: {', '.join(known)}")
        default = defaults[key]
        if isinstance(default, bool):
            kind, ok = "true or false", isinstance(value, bool)
        elif isinstance(default, (int, float)):
            kind, ok = "a number", isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            kind, ok = "text", not isinstance(default, str) or isinstance(value, str)
        if not ok:
            raise EnvError(f"{where} option {key}={value!r} must be {kind} (EnvPool's default: {default!r})")


def import_envpool():
    return import_library("envpool", extra="envpool", prefix=PREFIX, what="EnvPool")


@dataclasses.dataclass
class Pool:
    env: Any
    num_envs: int
    action_dtype: np.dtype
    discrete: bool
    used: float = 0.0  # time.monotonic() of its last use
    # One caller at a time: EnvPool's step is a send then a recv, so two callers stepping one pool at once (the
    # shards of a data-parallel mesh run their callbacks in parallel threads) could each receive the other's envs.
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class Pools:
    """This process's EnvPools by id, least recently used first (the host side of every callback).

    Ids are random in [1, 2**31): unique within the process and, with probability ~1e-8 per live pool, not
    equal to an id of another process's pool read back from a checkpoint (such an id gets a fresh pool, it never
    steps this process's). 0 is no pool (an evaluation's blank state, purejaxppo.core.evaluate)."""

    def __init__(self):
        self.pools: collections.OrderedDict[int, Pool] = collections.OrderedDict()
        self.evicted: set[int] = set()
        self.lock = threading.Lock()

    def new_id(self) -> int:
        with self.lock:
            while True:
                pool_id = secrets.randbelow(2**31 - 1) + 1
                if pool_id not in self.pools and pool_id not in self.evicted:
                    return pool_id

    def make(self, task: str, options: dict, env_seeds: list[int], pool_id: int | None = None) -> tuple[int, Pool]:
        """A new pool of one env per seed in `env_seeds` (under `pool_id`, else a new id): (its id, the pool)."""
        envpool = import_envpool()
        num_envs = len(env_seeds)
        kwargs = {"num_threads": max(1, min(num_envs, os.cpu_count() or 1)), **options}
        with warnings.catch_warnings():  # gymnasium's note on float64 bounds of float32 boxes
            warnings.simplefilter("ignore", UserWarning)
            env = envpool.make(task, env_type="gymnasium", num_envs=num_envs, env_seed=list(env_seeds), **kwargs)
        space = env.action_space
        discrete = hasattr(space, "n")
        pool = Pool(env, num_envs, np.dtype(np.int32 if discrete else space.dtype), discrete, time.monotonic())
        pool_id = self.new_id() if pool_id is None else pool_id
        with self.lock:
            self.pools[pool_id] = pool
            self._evict(pool_id, pool.used)
        return pool_id, pool

    def _evict(self, keep: int, now: float) -> None:
        extra = len(self.pools) - MAX_POOLS
        for pool_id, pool in list(self.pools.items()):
            if extra <= 0 or now - pool.used < EVICT_IDLE_S:
                break
            if pool_id != keep:
                del self.pools[pool_id]
                self.evicted.add(pool_id)
                pool.env.close()
                extra -= 1

    def get(self, pool_id: int) -> Pool | None:
        with self.lock:
            pool = self.pools.get(pool_id)
            if pool is not None:
                self.pools.move_to_end(pool_id)
                pool.used = time.monotonic()
            elif pool_id in self.evicted:
                warnings.warn(
                    f"EnvPool pool {pool_id} was closed after {EVICT_IDLE_S:.0f} s idle beside {MAX_POOLS} newer "
                    "pools (purejaxppo.envs.envpool_host.MAX_POOLS); its envs restart with new episodes",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.evicted.discard(pool_id)
            return pool

    def release(self, pool_ids) -> None:
        """Close these pools now (an evaluation's, once it is over); ids this process does not hold are ignored."""
        with self.lock:
            for pool_id in pool_ids:
                pool = self.pools.pop(int(pool_id), None)
                if pool is not None:
                    pool.env.close()


POOLS = Pools()


def seed_of(key_data: np.ndarray) -> int:
    """An env's EnvPool seed from its JAX key's data (uint32 words): the same key, the same env."""
    words = np.asarray(key_data, np.uint64).ravel()
    return int((words[0] * np.uint64(2654435761) + words[-1]) % np.uint64(2**31 - 1))


def flatten_obs(obs: Any) -> list[np.ndarray]:
    return [obs[k] for k in sorted(obs)] if isinstance(obs, dict) else [obs]


def in_env_order(info: dict, arrays: list[np.ndarray], ids: np.ndarray) -> list[np.ndarray]:
    """EnvPool's results reordered to follow `ids` (its `info["env_id"]` says which env each row is)."""
    got = np.asarray(info["env_id"])
    if np.array_equal(got, ids):
        return arrays
    order = np.argsort(got)[np.searchsorted(np.sort(got), ids)]
    return [a[order] for a in arrays]
