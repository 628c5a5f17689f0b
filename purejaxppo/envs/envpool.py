"""EnvPool environments behind the gymnax API (optional extra: `pip install -e '.[envpool]'`).

Names: `envpool/<TaskId>` with an id of `envpool.list_all_envs()` (MuJoCo `Hopper-v4`, DM Control
`HopperHop-v1`, Atari `Pong-v5`, classic control `CartPole-v1`, ...), optionally followed by EnvPool's own
options: `envpool/Pong-v5?episodic_life=false&reward_clip=false`, `envpool/Hopper-v4?max_episode_steps=1000`
(values: true/false, ints, floats, else strings; an unknown option is an error listing the task's options).
`num_envs` and the seeds are the run's (PPOConfig.num_envs, its keys), not options; `num_threads` (default:
min(envs of a pool, CPUs)) is one.

EnvPool's envs are C++ objects outside JAX. They are stepped from inside the jitted train function through
a host callback (`jax.experimental.io_callback`), once per step for all envs of a seed: the per-env `reset`
and `step` of this API are `jax.custom_batching.custom_vmap` functions whose batching rule hands the whole
batch (every vmapped seed and env) to one callback, which steps them all in one EnvPool call.

* **Why a callback and not EnvPool's XLA interface:** MuJoCo tasks take and give float64, and their XLA
  step refuses float32 at trace time, so it only runs with `jax_enable_x64` on for the whole process. The
  callback converts at the boundary instead: actions are cast to the env's dtype, observations come back as
  float32 (uint8 frames stay uint8), and no process setting changes.
* **Pools and seeds:** a reset of a batch of envs (all vmapped seeds and envs of a run on one device, or of
  an evaluation) makes one EnvPool holding all of them, each env seeded from its own key (EnvPool's
  `env_seed`), so an env's stream depends on its key alone and runs are reproducible from their keys. Each
  step is then one EnvPool call for the whole batch. The env state in JAX is `(pool id, env index)`.
* **The next-step reset is hidden:** EnvPool resets an env on the step *after* it ended, returning the reset
  observation with reward 0 and ignoring that step's action. The callback steps the ended envs once more at
  once, so this API's step returns the reset observation in the same step as the end, with
  `info["final_observation"]` the observation the end reached; the extra transition never reaches GAE, the
  loss or the episode statistics. Terminated (the task's end: no bootstrap) and truncated (EnvPool's
  `max_episode_steps`: bootstrapped) stay apart.
* **Evaluation** (`eval_every`, `purejaxppo eval`) makes its own pools (seeded from the evaluation key) only when
  an evaluation runs, and closes them once its returns are computed (`release`, purejaxppo.core.evaluate).
* **Resume:** the pools are not in checkpoints. On resume the run layer calls `restart` (runs/start.py): every
  env of the state gets a fresh pool, seeded from its old pool id, and a new episode (running returns and
  lengths zeroed). Parameters, optimizer and normalizers resume exactly; the env stream does not, so a resumed
  EnvPool run is not bit-identical to an uninterrupted one. A pool id this process does not hold, stepped
  without `restart` (a state from another process, or a pool closed after `EVICT_IDLE_S` idle beside
  `MAX_POOLS` newer ones: purejaxppo.envs.envpool_host), never steps another pool: it gets a fresh pool seeded
  from its id, and that step is a truncation with reward 0 whose `final_observation` is the new episode's
  first observation.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import custom_batching
from jax.experimental import io_callback

from purejaxppo.envs.adapter import unknown_env_error
from purejaxppo.envs.envpool_host import (
    POOLS,
    PREFIX,
    check_options,
    flatten_obs,
    import_envpool,
    in_env_order,
    parse_name,
    seed_of,
)
from purejaxppo.errors import EnvError

#: This suite's row of the environment table in the docs (docs/hooks.py reads it without importing the module).
SUITE = {
    "suite": "EnvPool (MuJoCo, DM Control, Atari, classic control)",
    "names": "`envpool/Hopper-v4`, `envpool/Pong-v5`, `envpool/HopperHop-v1`, …",
    "actions": "Discrete, Box",
    "observations": "array (Atari: uint8 frames), dict (DM Control)",
    "masks": "—",
    "tested": "step by step against EnvPool's own stream (time limit, termination, GAE); jitted updates on "
    "Hopper-v4, Pong-v5, HopperHop-v1; eval; resume",
    "notes": "stepped by a host callback; resume restarts episodes (not bit-identical)",
}


# ----------------------------------------------------------------------------- the env


def _batched(axis_size: int, in_batched: Any, *xs: Any) -> list:
    """The arguments of a custom_vmap rule, each with the vmapped axis in front (broadcast where unbatched)."""
    return [x if b else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x)) for x, b in zip(xs, in_batched, strict=True)]


@struct.dataclass
class EnvPoolParams:
    max_steps_in_episode: int = struct.field(pytree_node=False, default=1000)


@struct.dataclass
class EnvPoolState:
    pool: Any  # int32: the EnvPool this env lives in (purejaxppo.envs.envpool.POOLS)
    index: Any  # int32: its env id within the pool


class EnvPoolEnv:
    """An EnvPool task with the gymnax 1.0 API (see the module docstring for how it is stepped)."""

    def __init__(self, name: str, task: str, options: dict, spec: Any):
        self.name, self.task, self.options = name, task, dict(options)
        with warnings.catch_warnings():  # gymnasium's note on float64 bounds of float32 boxes
            warnings.simplefilter("ignore", UserWarning)
            self._obs_space = spec.gymnasium_observation_space
            self._action_space = spec.gymnasium_action_space
        self._keys = sorted(self._obs_space.spaces) if hasattr(self._obs_space, "spaces") else None
        self._max_steps = int(spec.config.max_episode_steps)
        # Atari: the unclipped game reward and the end of the game (not of a life) go to the episode statistics
        # (info "score" / "episode_end", purejaxppo.core.rollout.EnvStep), whatever reward_clip / episodic_life say.
        self._game = "episodic_life" in spec.config._fields
        self._obs_leaves = [
            jax.ShapeDtypeStruct(s.shape, jnp.uint8 if s.dtype == np.uint8 else jnp.float32)
            for s in ([self._obs_space.spaces[k] for k in self._keys] if self._keys else [self._obs_space])
        ]
        self._reset = self._make_reset()
        self._step = self._make_step()
        self._release = self._make_release()

    @property
    def default_params(self) -> EnvPoolParams:
        return EnvPoolParams(max_steps_in_episode=self._max_steps)

    # -- spaces

    def observation_space(self, params: Any = None):
        from gymnax.environments import spaces

        def box(s, leaf):
            low = np.broadcast_to(np.asarray(s.low, np.float64), s.shape)
            high = np.broadcast_to(np.asarray(s.high, np.float64), s.shape)
            # EnvPool's DM Control specs give the smallest positive float64 as the lower bound of unbounded
            # observations (C++ numeric_limits<double>::min()): it means unbounded, not >= 0.
            low = np.where(low == np.finfo(np.float64).tiny, -np.inf, low)
            big = np.finfo(np.float32).max
            return spaces.Box(
                np.clip(low, -big, big).astype(leaf.dtype),
                np.clip(high, -big, big).astype(leaf.dtype),
                s.shape,
                leaf.dtype,
            )

        if self._keys is None:
            return box(self._obs_space, self._obs_leaves[0])
        return spaces.Dict(
            {k: box(self._obs_space.spaces[k], leaf) for k, leaf in zip(self._keys, self._obs_leaves, strict=True)}
        )

    def action_space(self, params: Any = None):
        from gymnax.environments import spaces

        s = self._action_space
        if hasattr(s, "n"):
            return spaces.Discrete(int(s.n))
        return spaces.Box(np.asarray(s.low, np.float32), np.asarray(s.high, np.float32), s.shape, jnp.float32)

    # -- the per-env API (batched by custom_vmap into one callback per call)

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, EnvPoolState]:
        obs, pool, index = self._reset(jax.random.key_data(key))
        return self._obs(obs), EnvPoolState(pool, index)

    def step(self, key: jax.Array, state: EnvPoolState, action: jax.Array, params: Any = None):
        action = jnp.asarray(action, jnp.int32 if hasattr(self._action_space, "n") else jnp.float32)
        obs, final_obs, reward, terminated, truncated, *game = self._step(state.pool, state.index, action)
        info = {"final_observation": self._obs(final_obs)}
        if self._game:
            info["score"], info["episode_end"] = game
        return self._obs(obs), state, reward, terminated, truncated, info

    def release(self, state: EnvPoolState, x: Any) -> Any:
        """Close the pools of `state` once `x` is computed; returns `x` (purejaxppo.core.evaluate calls this after
        an evaluation with its returns, so the close waits for the last step and the returns for the close)."""
        return self._release(state.pool, x)

    def _obs(self, leaves: list) -> Any:
        return dict(zip(self._keys, leaves, strict=True)) if self._keys else leaves[0]

    def _make_reset(self):
        env = self

        def host(key_data):
            # One pool for the whole batch (every vmapped seed and env: one EnvPool call per step), each env
            # seeded from its own key, so an env's stream does not depend on what it is batched with.
            key_data = np.asarray(key_data)
            batch = key_data.shape[:-1]
            flat = key_data.reshape((-1, key_data.shape[-1]))
            pool_id, obs = env._fresh_pool([seed_of(k) for k in flat])
            obs = [o.reshape(batch + leaf.shape) for o, leaf in zip(obs, env._obs_leaves, strict=True)]
            pool = np.full(batch, pool_id, np.int32)
            index = np.arange(len(flat), dtype=np.int32).reshape(batch)
            return obs, pool, index

        @custom_batching.custom_vmap
        def reset(key_data):
            batch = key_data.shape[:-1]
            shapes = (
                [jax.ShapeDtypeStruct(batch + leaf.shape, leaf.dtype) for leaf in env._obs_leaves],
                jax.ShapeDtypeStruct(batch, jnp.int32),
                jax.ShapeDtypeStruct(batch, jnp.int32),
            )
            return tuple(io_callback(host, shapes, key_data, ordered=False))

        @reset.def_vmap
        def _(axis_size, in_batched, key_data):
            out = reset(key_data)
            return out, jax.tree.map(lambda _: True, out)

        return reset

    def _fresh_pool(self, env_seeds: list[int], pool_id: int | None = None) -> tuple[int, list[np.ndarray]]:
        """A new pool (under `pool_id`, else a new id), one env per seed, reset: (its id, obs leaves in env order)."""
        pool_id, made = POOLS.make(self.task, self.options, env_seeds, pool_id=pool_id)
        obs, info = made.env.reset()
        return pool_id, in_env_order(info, self._host_obs(obs), np.arange(len(env_seeds)))

    def _host_obs(self, obs: Any) -> list[np.ndarray]:
        return [np.asarray(o, leaf.dtype) for o, leaf in zip(flatten_obs(obs), self._obs_leaves, strict=True)]

    def _make_step(self):
        env = self

        def host(pool, index, action):
            pool, index, action = np.asarray(pool), np.asarray(index), np.asarray(action)
            batch = pool.shape
            flat_pool, flat_index = pool.reshape(-1), index.reshape(-1)
            flat_action = action.reshape((flat_pool.size,) + action.shape[len(batch) :])
            k = len(env._obs_leaves)
            if (flat_pool == flat_pool[0]).all():  # the usual case: the batch is one pool, one call, no scatter
                got = env._step_pool(int(flat_pool[0]), flat_index, flat_action)
            else:
                leaves = [(leaf.shape, leaf.dtype) for leaf in env._obs_leaves] * 2  # obs, then final obs
                leaves += [((), np.float32), ((), bool), ((), bool)]  # reward, terminated, truncated
                leaves += [((), np.float32), ((), bool)] if env._game else []  # score, episode_end
                got = [np.zeros((flat_pool.size,) + shape, dtype) for shape, dtype in leaves]
                for pool_id in np.unique(flat_pool):
                    rows = np.flatnonzero(flat_pool == pool_id)
                    part = env._step_pool(int(pool_id), flat_index[rows], flat_action[rows])
                    for out, value in zip(got, part, strict=True):
                        out[rows] = value
            shaped = [a.reshape(batch + a.shape[1:]) for a in got]
            return shaped[:k], shaped[k : 2 * k], *shaped[2 * k :]  # then reward, terminated, truncated(, game)

        @custom_batching.custom_vmap
        def step(pool, index, action):
            batch = pool.shape
            obs = [jax.ShapeDtypeStruct(batch + leaf.shape, leaf.dtype) for leaf in env._obs_leaves]
            shapes: tuple = (
                obs,
                obs,
                jax.ShapeDtypeStruct(batch, jnp.float32),
                jax.ShapeDtypeStruct(batch, jnp.bool_),
                jax.ShapeDtypeStruct(batch, jnp.bool_),
            )
            if env._game:  # score, episode_end
                shapes += (jax.ShapeDtypeStruct(batch, jnp.float32), jax.ShapeDtypeStruct(batch, jnp.bool_))
            return tuple(io_callback(host, shapes, pool, index, action, ordered=False))

        @step.def_vmap
        def _(axis_size, in_batched, pool, index, action):
            out = step(*_batched(axis_size, in_batched, pool, index, action))
            return out, jax.tree.map(lambda _: True, out)

        return step

    def _make_release(self):
        def host(pool, x):
            POOLS.release(np.unique(np.asarray(pool)))
            return np.asarray(x)

        @custom_batching.custom_vmap
        def release(pool, x):
            return io_callback(host, jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), pool, x, ordered=False)

        @release.def_vmap
        def _(axis_size, in_batched, pool, x):
            return release(*_batched(axis_size, in_batched, pool, x)), True

        return release

    def _step_pool(self, pool_id: int, ids: np.ndarray, action: np.ndarray) -> list:
        """Step envs `ids` of one pool; ended envs are stepped once more at once, so their reset observation
        is returned with this step (module docstring). Returns obs leaves, final obs leaves, reward,
        terminated, truncated, in the order of `ids`."""
        pool = POOLS.get(pool_id)
        if pool is None:  # a resumed run, or an evicted pool: fresh envs, the episodes in flight cut
            return self._restart_pool(pool_id, ids)
        with pool.lock:  # the shards of a data-parallel mesh step their envs of one pool from parallel threads
            return self._step_locked(pool, ids, np.asarray(action, pool.action_dtype))

    def _step_locked(self, pool: Any, ids: np.ndarray, act: np.ndarray) -> list:
        obs, reward, terminated, truncated, info = pool.env.step(act, env_id=ids)
        obs = self._host_obs(obs)
        # Atari: info "reward" is the unclipped reward, info "terminated" the end of the game (with episodic_life,
        # `terminated` also marks each lost life, after which EnvPool goes on with the same game: no reset).
        game = [np.asarray(info["reward"]), np.asarray(info["terminated"])] if self._game else []
        flat = [*obs, np.asarray(reward), np.asarray(terminated), np.asarray(truncated), *game]
        ordered = in_env_order(info, flat, ids)
        k = len(obs)
        obs, (reward, terminated, truncated), game = ordered[:k], ordered[k : k + 3], ordered[k + 3 :]
        terminated = terminated.astype(bool)
        truncated = truncated.astype(bool) & ~terminated
        final = [o.copy() for o in obs]
        done = (game[1].astype(bool) if game else terminated) | truncated  # EnvPool resets these next step
        game = [game[0].astype(np.float32), done] if game else []
        if done.any():
            again = ids[done]
            reset_obs, _, _, _, info2 = pool.env.step(np.zeros((again.size,) + act.shape[1:], act.dtype), env_id=again)
            reset_obs = in_env_order(info2, self._host_obs(reset_obs), again)
            for o, r in zip(obs, reset_obs, strict=True):
                o[done] = r
        return [*obs, *final, reward.astype(np.float32), terminated, truncated, *game]

    def _restart_pool(self, pool_id: int, ids: np.ndarray) -> list:
        _, obs = self._fresh_pool(_seeds_from(pool_id, int(ids.max()) + 1), pool_id=pool_id)
        obs = [o[ids] for o in obs]
        zeros = np.zeros(ids.size, bool)
        game = [np.zeros(ids.size, np.float32), ~zeros] if self._game else []
        return [*obs, *[o.copy() for o in obs], np.zeros(ids.size, np.float32), zeros, ~zeros, *game]

    def restart(self, state: EnvPoolState) -> tuple[Any, EnvPoolState]:
        """New episodes for the envs of a state read back from a checkpoint (the run layer calls this on resume:
        the pools are not in checkpoints). `state` is host arrays `[..., N]`; each row gets a fresh pool, seeded
        from its old pool id, reset now. Returns the reset observations (numpy) and the new state."""
        pool, index = np.asarray(state.pool), np.asarray(state.index)
        obs = [np.zeros(pool.shape + leaf.shape, leaf.dtype) for leaf in self._obs_leaves]
        new_pool = np.zeros_like(pool)
        for old in np.unique(pool):
            where = pool == old
            pool_id, got = self._fresh_pool(_seeds_from(int(old), int(index[where].max()) + 1))
            for o, g in zip(obs, got, strict=True):
                o[where] = g[index[where]]
            new_pool[where] = pool_id
        return self._obs(obs), EnvPoolState(new_pool, index)

    def __repr__(self) -> str:
        return f"EnvPoolEnv({self.name!r})"


def _seeds_from(pool_id: int, n: int) -> list[int]:
    """The env seeds of a pool restarted in place of `pool_id` (one that is not in this process)."""
    return [(pool_id + i) % (2**31 - 1) for i in range(n)]


def env_names() -> list[str]:
    return sorted(import_envpool().list_all_envs())


def make(name: str) -> tuple[EnvPoolEnv, EnvPoolParams]:
    """`'Hopper-v4?max_episode_steps=500'` (after the `envpool/` prefix) -> (env, params)."""
    task, options = parse_name(name)
    envpool = import_envpool()
    if task not in envpool.list_all_envs():
        raise unknown_env_error(PREFIX, task, envpool.list_all_envs(), "EnvPool")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check_options(name, options, envpool.make_spec(task).config._asdict())
        try:
            spec = envpool.make_spec(task, **options)
        except Exception as e:  # EnvPool's own message for an ill-typed option
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EnvError(f"PPOConfig.env: '{PREFIX}{name}': EnvPool refused the options {options}: {first}") from None
    env = EnvPoolEnv(PREFIX + name, task, options, spec)
    return env, env.default_params
