"""The host side of the EnvPool adapter (purejaxppo.envs.envpool): this process's pools, by id."""

from __future__ import annotations

import collections
import dataclasses
import os
import secrets
import threading
from typing import Any

import numpy as np

from purejaxppo.envs.adapter import import_library

PREFIX = "envpool/"
#: Pools kept per process; the least recently used beyond this is closed (a later use recreates it).
MAX_POOLS = 64


def import_envpool():
    return import_library("envpool", extra="envpool", prefix=PREFIX, what="EnvPool")


@dataclasses.dataclass
class Pool:
    env: Any
    num_envs: int
    action_dtype: np.dtype
    discrete: bool


class Pools:
    """This process's EnvPools by id, least recently used first (the host side of every callback)."""

    def __init__(self):
        self.pools: collections.OrderedDict[int, Pool] = collections.OrderedDict()
        # Ids are unique within a process and, with a random high part, unlikely to equal another process's
        # (a pool id read back from a checkpoint names a pool of the process that wrote it).
        self.next_id = (secrets.randbelow(2**14) + 1) << 16
        self.lock = threading.Lock()

    def new_id(self) -> int:
        with self.lock:
            pool_id, self.next_id = self.next_id, self.next_id + 1
            return pool_id

    def make(self, task: str, options: dict, num_envs: int, seed: int, pool_id: int | None = None) -> tuple[int, Pool]:
        """A new pool of `num_envs` envs (under `pool_id`, else a new id): (its id, the pool)."""
        envpool = import_envpool()
        threads = max(1, min(num_envs, os.cpu_count() or 1))
        env = envpool.make(task, env_type="gymnasium", num_envs=num_envs, seed=seed, num_threads=threads, **options)
        space = env.action_space
        discrete = hasattr(space, "n")
        pool = Pool(env, num_envs, np.dtype(np.int32 if discrete else space.dtype), discrete)
        pool_id = self.new_id() if pool_id is None else pool_id
        with self.lock:
            self.pools[pool_id] = pool
            while len(self.pools) > MAX_POOLS:
                _, old = self.pools.popitem(last=False)
                old.env.close()
        return pool_id, pool

    def get(self, pool_id: int) -> Pool | None:
        with self.lock:
            pool = self.pools.get(pool_id)
            if pool is not None:
                self.pools.move_to_end(pool_id)
            return pool


POOLS = Pools()


def seed_of(key_data: np.ndarray) -> int:
    """A pool's EnvPool seed from a JAX key's data (uint32 words): the same key, the same envs."""
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
