"""Craftax environments behind the gymnax API (optional extra: `pip install -e '.[craftax]'`).

Names: `craftax/<name>` with `<name>` one of Craftax's own names that its
`make_craftax_env_from_name(name, auto_reset=False)` accepts:
`Craftax-Classic-Symbolic-v1`, `Craftax-Symbolic-v1` (the full game),
`Craftax-Classic-Pixels-v1`, `Craftax-Pixels-v1`.

What the adapter does on top of Craftax's *no-auto-reset* env:

* terminated vs truncated. Craftax folds its time limit into `done`
  (`is_game_over`: `timestep >= max_timesteps` OR dead OR (Classic) standing in
  lava OR (full) the boss defeated). The adapter steps Craftax with its
  `max_timesteps` raised out of reach, so Craftax's own `is_terminal` gives the
  task's end only: `terminated`. The time limit is the adapter's
  (`CraftaxParams.max_steps_in_episode`, default Craftax's own: 10,000 steps
  Classic, 100,000 full): `truncated = timestep >= max_steps_in_episode and not
  terminated`, so the two are never both True (a death on the last step is a
  termination).
* auto-reset from a pool. Craftax's auto-reset env generates a fresh world on
  every step for every env (`lax.select` keeps one of them), which makes
  stepping on CPU orders of magnitude slower. Instead `CraftaxParams` holds a
  pool of `pool_size` worlds (reset states and their observations) generated
  ONCE, outside the per-step path, when the params are made; on `terminated` or
  `truncated` the env restarts from a pool world picked by the step key (a
  gather, no world generation). `reset` itself still generates a fresh world
  per env (it runs once per env at the start of training). Trade-off: after the
  first episode an env only sees the `pool_size` pooled layouts (mob spawns,
  combat and the rest of the dynamics still differ between episodes, as they
  follow the step keys), so fewer distinct worlds than Craftax's own auto-reset
  (a new world per episode); raise `pool_size` for more variety at the price
  of memory (a Classic world is ~40 kB, a full-Craftax world ~0.5 MB) and
  generation time at `make`. The pool is generated from `pool_seed`
  (default 0), the same for every training seed unless changed.
* `info["final_observation"]` = the observation the step reached, before the
  reset; the reward is float32; the state keeps the reset state's dtypes
  (Craftax-Classic's step returns some leaves in other dtypes than its reset,
  which would make `lax.scan` recompile: the adapter casts).
* observations: float32 vectors (symbolic: Classic 1345, full 8268) or float32
  images (pixels, HxWx3); actions `Discrete(17)` (Classic) / `Discrete(43)`
  (full). Craftax has no illegal actions (an impossible action is a no-op), so
  there is no action mask.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from purejaxppo.envs.adapter import cast_like, import_library, raw_key, step_result, strong, unknown_env_error
from purejaxppo.errors import EnvError

#: This suite's row of the environment table in the docs (docs/hooks.py reads it without importing the module).
SUITE = {
    "suite": "Craftax",
    "names": (
        "`craftax/Craftax-Classic-Symbolic-v1`, `craftax/Craftax-Symbolic-v1`, `craftax/Craftax-Classic-Pixels-v1`"
    ),
    "actions": "Discrete(17 / 43)",
    "observations": "float vector or image",
    "masks": "— (impossible actions are no-ops)",
    "tested": "`tests/test_adapter_craftax.py`",
    "notes": (
        "auto-resets draw from a pool of 256 pre-generated worlds (`make(name, pool_size=...)`), since "
        "generating a world per step is far too slow on CPU; the first pixels use builds a texture cache (~4 "
        "min)"
    ),
}

PREFIX = "craftax/"
WHAT = "Craftax"
#: Craftax's names (what `make_craftax_env_from_name(name, auto_reset=False)` accepts; it has no registry).
ENV_NAMES = ("Craftax-Classic-Pixels-v1", "Craftax-Classic-Symbolic-v1", "Craftax-Pixels-v1", "Craftax-Symbolic-v1")
#: Default number of pooled worlds that auto-resets draw from (see the module docstring).
DEFAULT_POOL_SIZE = 256
_NO_LIMIT = 2**31 - 1  # Craftax's max_timesteps during steps: out of reach, so its `done` is the task's end only


def _craftax():
    return import_library("craftax.craftax_env", extra="craftax", prefix=PREFIX, what=WHAT)


def env_names() -> list[str]:
    """Craftax's env names (imports craftax)."""
    _craftax()
    return sorted(ENV_NAMES)


@struct.dataclass
class CraftaxParams:
    """Craftax's own params, the pool of reset worlds, and the adapter's time limit.

    env_params: Craftax's `EnvParams` (its `max_timesteps` is ignored: the
      adapter's `max_steps_in_episode` is the time limit).
    pool_states: Craftax `EnvState`s with a leading axis of size pool_size.
    pool_obs: their observations, `[pool_size, *obs_shape]`.
    max_steps_in_episode: episode time limit (truncation).
    """

    env_params: Any
    pool_states: Any
    pool_obs: jax.Array
    max_steps_in_episode: int = 10_000

    @property
    def pool_size(self) -> int:
        return int(self.pool_obs.shape[0])


_GENERATORS: dict[tuple, Any] = {}


def _generator(name: str, env: Any):
    """Craftax's world generation (`reset_env`), jitted once per env kind and reused by later `make`s."""
    kind = (name, type(env).__qualname__, repr(getattr(env, "static_env_params", None)))
    if kind not in _GENERATORS:
        _GENERATORS[kind] = jax.jit(env.reset_env)
    return _GENERATORS[kind]


class CraftaxEnv:
    """A Craftax no-auto-reset env with the gymnax API, pooled auto-resets and terminated/truncated apart.

    Args:
      env: a Craftax env from `make_craftax_env_from_name(name, auto_reset=False)`.
      name: display name (e.g. "craftax/Craftax-Classic-Symbolic-v1").
      pool_size: number of worlds generated for `default_params`' pool.
      pool_seed: seed of that pool.
    """

    def __init__(self, env: Any, name: str, *, pool_size: int = DEFAULT_POOL_SIZE, pool_seed: int = 0):
        if pool_size < 1:
            raise EnvError(f"CraftaxEnv: pool_size must be >= 1, got {pool_size}")
        self.env = env
        self.name = name
        self.pool_size = int(pool_size)
        self.pool_seed = int(pool_seed)
        self._default_params: CraftaxParams | None = None
        lib_params = env.default_params
        self._lib_params = lib_params
        self._max_steps = int(lib_params.max_timesteps)
        obs = jax.eval_shape(env.reset_env, jax.random.PRNGKey(0), lib_params)[0]
        self._obs_shape = tuple(int(s) for s in obs.shape)
        self._num_actions = int(env.num_actions)

    # --- params -----------------------------------------------------------------
    def make_params(
        self,
        *,
        pool_size: int | None = None,
        pool_seed: int | None = None,
        max_steps_in_episode: int | None = None,
        env_params: Any = None,
    ) -> CraftaxParams:
        """Params with a freshly generated pool (this is where worlds are generated, once)."""
        pool_size = self.pool_size if pool_size is None else int(pool_size)
        pool_seed = self.pool_seed if pool_seed is None else int(pool_seed)
        env_params = self._lib_params if env_params is None else env_params
        # One jitted world generation called pool_size times: on CPU this is ~8x faster than a vmapped
        # generation (measured: 4.5 ms vs 35 ms per Classic world) and compiles once per env name,
        # whatever the pool size.
        gen = _generator(self.name, self.env)
        worlds = [gen(k, env_params) for k in jax.random.split(jax.random.PRNGKey(pool_seed), pool_size)]
        pool_obs = jnp.stack([jnp.asarray(o, jnp.float32) for o, _ in worlds])
        pool_states = jax.tree.map(lambda *xs: jnp.stack(xs), *[s for _, s in worlds])
        return CraftaxParams(
            env_params=env_params,
            pool_states=strong(pool_states),
            pool_obs=pool_obs,
            max_steps_in_episode=self._max_steps if max_steps_in_episode is None else int(max_steps_in_episode),
        )

    @property
    def default_params(self) -> CraftaxParams:
        """Craftax's default params and a pool of `pool_size` worlds from `pool_seed` (generated on first use)."""
        if self._default_params is None:
            self._default_params = self.make_params()
        return self._default_params

    # --- gymnax API -------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        return self._num_actions

    def observation_space(self, params: CraftaxParams | None = None):
        from gymnax.environments import spaces

        box = self.env.observation_space(self._lib_params)  # Craftax's own Box (symbolic and pixels: [0, 1])
        return spaces.Box(box.low, box.high, self._obs_shape, jnp.float32)

    def action_space(self, params: CraftaxParams | None = None):
        from gymnax.environments import spaces

        return spaces.Discrete(self._num_actions)

    def reset(self, key: jax.Array, params: CraftaxParams | None = None):
        """A freshly generated world (once per env at the start; auto-resets use the pool)."""
        params = self.default_params if params is None else params
        obs, state = self.env.reset_env(raw_key(key), params.env_params)
        return jnp.asarray(obs, jnp.float32), strong(state)

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: CraftaxParams | None = None):
        """One step with auto-reset from the pool; returns (obs, state, reward, terminated, truncated, info)."""
        params = self.default_params if params is None else params
        key = raw_key(key)
        k_step, k_pick = jax.random.split(key)
        lib_params = params.env_params.replace(max_timesteps=_NO_LIMIT)
        obs_st, state_st, reward, done, _ = self.env.step_env(k_step, state, jnp.asarray(action, jnp.int32), lib_params)
        state_st = cast_like(state_st, state)
        final_obs = jnp.asarray(obs_st, jnp.float32)
        terminated = jnp.asarray(done, bool)
        truncated = jnp.logical_and(state_st.timestep >= params.max_steps_in_episode, jnp.logical_not(terminated))
        reset = jnp.logical_or(terminated, truncated)

        i = jax.random.randint(k_pick, (), 0, params.pool_obs.shape[0])
        state_re = cast_like(jax.tree.map(lambda p: p[i], params.pool_states), state)
        obs_re = params.pool_obs[i]
        new_state = jax.tree.map(lambda a, b: jax.lax.select(reset, a, b), state_re, state_st)
        obs = jax.lax.select(reset, obs_re, final_obs)
        return step_result(obs, new_state, jnp.asarray(reward, jnp.float32), terminated, truncated, final_obs)

    def __repr__(self) -> str:
        return (
            f"CraftaxEnv({self.name!r}, obs_shape={self._obs_shape}, num_actions={self._num_actions}, "
            f"pool_size={self.pool_size}, max_steps_in_episode={self._max_steps})"
        )


def make(name: str, *, pool_size: int | None = None, pool_seed: int = 0) -> tuple[CraftaxEnv, CraftaxParams]:
    """`'<Craftax name>'` (without `craftax/`) -> (CraftaxEnv, its default params, pool generated here).

    pool_size: worlds in the auto-reset pool (default `DEFAULT_POOL_SIZE`); pool_seed: their seed.
    """
    pool_size = DEFAULT_POOL_SIZE if pool_size is None else pool_size
    lib = _craftax()
    if name not in ENV_NAMES:
        raise unknown_env_error(PREFIX, name, ENV_NAMES, WHAT)
    try:
        raw = lib.make_craftax_env_from_name(name, auto_reset=False)
    except ValueError as err:  # a name this Craftax version does not know
        raise unknown_env_error(PREFIX, name, ENV_NAMES, WHAT) from err
    env = CraftaxEnv(raw, PREFIX + name, pool_size=pool_size, pool_seed=pool_seed)
    return env, env.default_params
