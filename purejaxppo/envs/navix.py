"""Navix environments behind the gymnax API (optional extra: `pip install -e '.[navix]'`).

Names: `navix/<id>` or `navix/<id>@<observation>` with an id of
`navix.registry()`, e.g. `navix/Navix-Empty-5x5-v0`,
`navix/Navix-DoorKey-5x5-v0`, `navix/Navix-DoorKey-8x8-v0@symbolic`.
`<observation>` picks Navix's observation function:

* `symbolic_first_person` (default): MiniGrid's egocentric partial view,
  `uint8[7, 7, 3]` (entity tag, colour, state: door open/closed/locked) cropped
  around the agent and rotated so that it faces up; partially observed;
* `symbolic`: the whole grid, `uint8[H, W, 3]` (fully observed; the agent's
  cell holds its direction), Navix's own default;
* `categorical` / `categorical_first_person`: one entity tag per cell,
  `int32[H, W]` / `[7, 7]`.

All are given as float32 (the symbols as numbers: `network: auto` routes a
rank-3 observation to the CNN, `mlp` flattens it). Navix's RGB observations
are not offered (large images, and their sprite cache is rendered per reset).

What the adapter keeps apart, and how:

* terminated = Navix's `step_type == 2` (TERMINATION: goal reached, lava,
  ball hit, ...); truncated = the adapter's own time limit,
  `NavixEnvParams.max_steps_in_episode` steps without termination. The Navix
  env is built with an effectively infinite `max_steps`, so its own
  `step_type == 1` (TRUNCATION) never fires and the limit is a traced param (a
  test can force it small without recompiling). Default: 100, the default of
  `navix.make` (which Navix's published baselines use), not MiniGrid's 4*H*W.
  Navix rewards do not depend on `max_steps` (its `penality_coeff` is 0).
* Auto-reset: Navix resets on the step *after* a done step (dm_env style) and
  keeps no pre-reset observation; the adapter calls the env's transition
  (`Environment._step`) and resets in the same step from purejaxppo's `key`,
  so `info["final_observation"]` is the observation the step reached.
* Actions: `Discrete(7)` (MiniGrid's action set; Navix has no illegal actions,
  so no action mask). Reward float32 (1 on reaching the goal).
* State: Navix's `Timestep`. Its reset and step states differ in dtypes and
  weak types (the action, `info["return"]`), which made lax.scan recompile on
  the second step: every leaf is cast once to a fixed strong dtype (`cast_like`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from purejaxppo.envs.adapter import (
    cast_like,
    import_library,
    raw_key,
    step_result,
    strong,
    unknown_env_error,
    where_done,
)
from purejaxppo.errors import EnvError

#: This suite's row of the environment table in the docs (docs/hooks.py reads it without importing the module).
SUITE = {
    "suite": "Navix",
    "names": "`navix/Navix-Empty-5x5-v0`, `navix/Navix-DoorKey-8x8-v0@symbolic` (all 41 ids)",
    "actions": "Discrete(7)",
    "observations": "symbolic view `[7, 7, 3]` (partial; `@symbolic` for the full grid)",
    "masks": "—",
    "tested": "`tests/test_adapter_navix.py`",
    "notes": "time limit `NavixEnvParams.max_steps_in_episode` (default 100)",
}

PREFIX = "navix/"
WHAT = "Navix"
DEFAULT_MAX_STEPS = 100
OBSERVATIONS = ("symbolic_first_person", "symbolic", "categorical", "categorical_first_person")
_NO_LIMIT = 2**30  # Navix's own max_steps: its truncation never fires, the adapter's does


@struct.dataclass
class NavixEnvParams:
    """Time limit of a Navix episode (traced: changing it does not recompile)."""

    max_steps_in_episode: int = DEFAULT_MAX_STEPS


def _navix():
    return import_library("navix", extra="navix", prefix=PREFIX, what=WHAT)


def env_names() -> list[str]:
    """Navix's own environment ids (imports navix)."""
    return sorted(_navix().registry())


class NavixEnv:
    """A Navix env with the gymnax API, auto-reset, a time limit in the params and terminated/truncated kept apart.

    Args:
      env: a Navix `Environment` (e.g. `navix.make(id, max_steps=2**30, observation_fn=...)`); its own
        `max_steps` should be out of reach, the adapter's `NavixEnvParams.max_steps_in_episode` is the limit.
      name: display name, e.g. "navix/Navix-Empty-5x5-v0".
    """

    def __init__(self, env: Any, name: str):
        self.env = env
        self.name = name
        obs = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).observation
        self._obs_shape = tuple(int(s) for s in obs.shape)
        self._num_actions = len(env.action_set)

    # --- gymnax API -----------------------------------------------------------
    @property
    def default_params(self) -> NavixEnvParams:
        return NavixEnvParams()

    @property
    def num_actions(self) -> int:
        return self._num_actions

    def observation_space(self, params: NavixEnvParams | None = None):
        from gymnax.environments import spaces

        space = self.env.observation_space
        return spaces.Box(float(space.minimum), float(space.maximum), self._obs_shape, jnp.float32)

    def action_space(self, params: NavixEnvParams | None = None):
        from gymnax.environments import spaces

        return spaces.Discrete(self._num_actions)

    def reset(self, key: jax.Array, params: NavixEnvParams | None = None) -> tuple[jax.Array, Any]:
        timestep = strong(self.env.reset(raw_key(key)))
        return jnp.asarray(timestep.observation, jnp.float32), timestep

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: NavixEnvParams | None = None):
        """One env step with auto-reset; returns (obs, state, reward, terminated, truncated, info)."""
        params = self.default_params if params is None else params
        next_ts = cast_like(self.env._step(state, jnp.asarray(action, jnp.int32)), state)
        terminated = next_ts.step_type == 2  # navix.StepType.TERMINATION
        truncated = jnp.logical_and(next_ts.t >= params.max_steps_in_episode, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        final_obs = jnp.asarray(next_ts.observation, jnp.float32)

        # Navix's own reset reuses the rendering cache of the running state (a per-grid sprite cache).
        reset_ts = cast_like(self.env.reset(raw_key(key), state.state.cache), state)
        new_state = where_done(done, reset_ts, next_ts)
        obs, reward = jnp.asarray(new_state.observation, jnp.float32), jnp.asarray(next_ts.reward, jnp.float32)
        return step_result(obs, new_state, reward, terminated, truncated, final_obs)

    def __repr__(self) -> str:
        return f"NavixEnv({self.name!r}, obs_shape={self._obs_shape}, num_actions={self._num_actions})"


def make(name: str) -> tuple[NavixEnv, NavixEnvParams]:
    """`'<id>'` or `'<id>@<observation>'` (no prefix) -> (NavixEnv, NavixEnvParams()); unknown ids raise EnvError."""
    nx = _navix()
    env_id, sep, obs_name = name.partition("@")
    known = list(nx.registry())
    if env_id not in known:
        raise unknown_env_error(PREFIX, env_id, known, WHAT)
    if sep and obs_name not in OBSERVATIONS:
        raise EnvError(
            f"PPOConfig.env: unknown Navix observation {obs_name!r} in {PREFIX + name!r}; "
            f"one of: {', '.join(OBSERVATIONS)}"
        )
    observation_fn = getattr(nx.observations, obs_name or OBSERVATIONS[0])
    env = nx.make(env_id, max_steps=_NO_LIMIT, observation_fn=observation_fn)
    return NavixEnv(env, name=PREFIX + name), NavixEnvParams()
