"""Jumanji environments behind the gymnax API (optional extra: `pip install -e '.[jumanji]'`).

Names: `jumanji/<id>` with a Jumanji registry id (`jumanji.registered_environments()`), e.g.
`jumanji/Snake-v1`, `jumanji/Game2048-v1`, `jumanji/Knapsack-v1`, `jumanji/Maze-v0`,
`jumanji/Tetris-v0`, `jumanji/BinPack-v2`, `jumanji/Minesweeper-v0`. A multi-discrete env whose
mask is a joint mask over the product of its sub-actions (Tetris, Minesweeper, BinPack, FlatPack,
Sudoku) or that has no mask (RubiksCube) can also be taken as ONE Discrete action over the product
with `@flat`, e.g. `jumanji/Minesweeper-v0@flat` (exact mask, see below).

`JumanjiEnv` wraps a *raw* Jumanji env (Jumanji's own `AutoResetWrapper` is not used: it
overwrites the final observation) and adds:

* **terminated vs truncated.** Jumanji's `TimeStep` ends an episode with `step_type == LAST`;
  most of its envs mark their own time limit with `discount == 0`, exactly like a termination
  (Snake, Maze, Tetris, RubiksCube, ...), so the discount alone cannot tell them apart. The table
  `TIME_LIMIT_RULES` below says, per env class (read from each env's source, jumanji 1.1.2):
  - `"library"`: the env's `time_limit` attribute is read only by its done test and its specs, so
    the adapter turns it off (sets it to 2**31 - 1) and applies the same limit itself as
    `JumanjiEnvParams.max_steps_in_episode` (default: the env's own `time_limit`, e.g. 4000 for
    Snake-v1, rows*cols for Maze). Every LAST from the library is then the task's own end
    (terminated); the adapter's step counter reaching the limit is truncated.
  - `"task"`: the env has no time limit (every LAST is the task's end, e.g. Knapsack: all
    items packed or none fits, Game2048: no legal move). `max_steps_in_episode` is a cap the task
    never reaches where a bound is known (Knapsack: num_items), else 10_000 (Game2048, ...),
    where the adapter truncates.
  - `"state"`: the time limit also shapes the dynamics/reward (MMST: array sizes;
    SearchAndRescue: reward scale), so it stays on; truncated = LAST and
    `state.<counter> >= env.time_limit`. Approximation: a task end on the limit step itself
    counts as truncation.
  - any other env class (not in the table): **fallback, discount-based**: LAST with discount 0
    (all agents) is terminated, LAST with discount > 0 truncated; an env that marks its time limit
    with discount 0 will have it called a termination (biased). `max_steps_in_episode` = the env's
    `time_limit` attribute if it has one, else 10_000.
  The two flags are never both True (termination wins).
* **auto-reset** on either, with `info["final_observation"]` = the observation the step reached
  before the reset (the library's reset is computed every step and selected per env).
* **observations** (a dict of arrays, the action mask laid out for the policy) and **actions**
  (Discrete, MultiDiscrete or Box): purejaxppo.envs.jumanji_spaces.
* **reward**: float32; multi-agent envs with one reward per agent (Connector, LevelBasedForaging,
  SearchAndRescue) give the SUM (a team return for one centralised policy).

Quirks: `Sokoban-v0` downloads its levels from the Hugging Face Hub when made (fails offline
after ~25 s of retries: reported as a RuntimeError); `PacMan-v1` ignores its `time_limit`
argument (always 1000). The library is imported only by `make`/`env_names`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxppo.envs.adapter import cast_like, import_library, raw_key, step_result, unknown_env_error, where_done
from purejaxppo.envs.jumanji_spaces import FLAT_SUFFIX, MASK_LAYOUT, JumanjiSpaces
from purejaxppo.errors import EnvError, EnvUnavailableError

__all__ = [
    "DEFAULT_CAP",
    "FLAT_SUFFIX",
    "MASK_LAYOUT",
    "PREFIX",
    "SUITE",
    "TIME_LIMIT_RULES",
    "WHAT",
    "JumanjiEnv",
    "JumanjiEnvParams",
    "JumanjiEnvState",
    "env_names",
    "make",
]

#: This suite's row of the environment table in the docs (docs/hooks.py reads it without importing the module).
SUITE = {
    "suite": "Jumanji",
    "names": (
        "`jumanji/Snake-v1`, `jumanji/Knapsack-v1`, `jumanji/Game2048-v1`, `jumanji/Minesweeper-v0`, "
        "`jumanji/Tetris-v0@flat` (25 of its 26 ids)"
    ),
    "actions": "Discrete, MultiDiscrete (`@flat`: one Discrete over the product, exact joint mask)",
    "observations": "dict of arrays",
    "masks": "yes",
    "tested": "`tests/test_adapter_jumanji.py`",
    "notes": (
        "per-env truncation rules (`TIME_LIMIT_RULES`: most Jumanji envs mark their time limit like a "
        "termination); Sokoban-v0 downloads its levels and fails offline; use `network: mlp` on CPU (the CNN "
        "on Snake's grid is ~50× slower)"
    ),
}

PREFIX = "jumanji/"
WHAT = "Jumanji"
_NO_LIMIT = 2**31 - 1  # what the adapter sets a "library" env's time_limit to: never reached
DEFAULT_CAP = 10_000  # adapter time limit when the task has no known bound

# Per env class: how its time limit is kept apart from its task's end (module docstring).
#   ("library", None): its `time_limit` attribute is turned off, the adapter applies it instead.
#   ("task", cap): no time limit in the env; cap(env) = a bound on the episode length (or DEFAULT_CAP).
#   ("state", field): truncated = LAST and state.<field> >= env.time_limit.
TIME_LIMIT_RULES: dict[str, tuple[str, Any]] = {
    # time_limit read only by the done test (+ specs) in jumanji 1.1.2
    "Snake": ("library", None),
    "Maze": ("library", None),
    "Tetris": ("library", None),
    "RubiksCube": ("library", None),
    "SlidingTilePuzzle": ("library", None),
    "Cleaner": ("library", None),
    "Connector": ("library", None),
    "LevelBasedForaging": ("library", None),
    "PacMan": ("library", None),
    "RobotWarehouse": ("library", None),
    "Sokoban": ("library", None),
    # no time limit: every LAST is the task's own end
    "Knapsack": ("task", lambda env: int(env.num_items)),  # each step packs a new item or ends
    "TSP": ("task", lambda env: int(env.num_cities)),
    "CVRP": ("task", lambda env: 2 * int(env.num_nodes)),
    "Minesweeper": ("task", lambda env: int(env.num_rows) * int(env.num_cols)),
    "GraphColoring": ("task", lambda env: int(env.num_nodes)),
    "Sudoku": ("task", lambda env: 81),
    "FlatPack": ("task", lambda env: int(env.num_blocks)),
    "BinPack": ("task", lambda env: int(np.asarray(env.action_spec.num_values)[-1])),  # one item per step
    "JobShop": ("task", lambda env: int(env.num_jobs) * int(env.max_num_ops) * int(env.max_op_duration)),
    "Game2048": ("task", lambda env: DEFAULT_CAP),
    "MultiCVRP": ("task", lambda env: DEFAULT_CAP),
    # the time limit shapes the env itself: it stays on
    "MMST": ("state", "step_count"),
    "SearchAndRescue": ("state", "step"),
}


@struct.dataclass
class JumanjiEnvParams:
    """The adapter's time limit (truncation) of a Jumanji episode."""

    max_steps_in_episode: int = 1000


@struct.dataclass
class JumanjiEnvState:
    """Jumanji's env state and the step count of the running episode."""

    env_state: Any
    step_count: jax.Array  # int32 scalar


def _jumanji():
    return import_library("jumanji", extra="jumanji", prefix=PREFIX, what=WHAT)


def env_names() -> list[str]:
    """Jumanji's registered env ids (imports jumanji)."""
    return sorted(_jumanji().registered_environments())


class JumanjiEnv(JumanjiSpaces):
    """A raw Jumanji env with the gymnax API (module docstring; its spaces: `JumanjiSpaces`).

    Args:
      env: a Jumanji `Environment` without wrappers (e.g. `jumanji.make("Snake-v1")`). For a
        "library" rule env, its `time_limit` attribute is turned off here (the adapter applies it).
      name: display name.
      flat: take a multi-discrete env as one Discrete action over the product of its sub-actions.
    """

    def __init__(self, env: Any, name: str | None = None, flat: bool = False):
        specs = _jumanji().specs
        self.env = env
        self.name = name or type(env).__name__
        cls = type(env).__name__
        self.rule, rule_arg = TIME_LIMIT_RULES.get(cls, ("discount", None))
        lib_limit = getattr(env, "time_limit", None)
        if self.rule == "library":
            assert lib_limit is not None  # every "library"/"state" env of TIME_LIMIT_RULES has a time_limit
            self._default_limit = int(lib_limit)
            env.time_limit = _NO_LIMIT
        elif self.rule == "task":
            self._default_limit = int(rule_arg(env))
        elif self.rule == "state":
            self._state_counter = rule_arg
            assert lib_limit is not None
            self._default_limit = int(lib_limit) + 1  # the env truncates first; this is a backstop
        else:
            self._default_limit = int(lib_limit) if lib_limit is not None else DEFAULT_CAP

        self._read_actions(env.action_spec, specs)
        self._read_observations(env, cls, flat)

    # --- gymnax API -----------------------------------------------------------
    @property
    def default_params(self) -> JumanjiEnvParams:
        return JumanjiEnvParams(max_steps_in_episode=self._default_limit)

    def reset(self, key: jax.Array, params: JumanjiEnvParams | None = None):
        env_state, ts = self.env.reset(raw_key(key))
        state = JumanjiEnvState(env_state=env_state, step_count=jnp.zeros((), jnp.int32))
        return self.convert_obs(ts.observation), state

    def _end_flags(self, state: JumanjiEnvState, next_env_state: Any, ts: Any, step_count, params):
        last = jnp.any(jnp.asarray(ts.step_type) == 2)  # StepType.LAST
        limit = step_count >= params.max_steps_in_episode
        if self.rule in ("library", "task"):
            terminated = last
        elif self.rule == "state":
            lib_trunc = jnp.asarray(getattr(next_env_state, self._state_counter)) >= self.env.time_limit
            terminated = last & ~lib_trunc
            limit = limit | (last & lib_trunc)
        else:  # discount-based fallback
            terminated = last & jnp.all(jnp.asarray(ts.discount) == 0)
            limit = limit | (last & ~terminated)
        truncated = limit & ~terminated
        return terminated, truncated

    def step(self, key: jax.Array, state: JumanjiEnvState, action: jax.Array, params: JumanjiEnvParams | None = None):
        """One env step with auto-reset; returns (obs, state, reward, terminated, truncated, info)."""
        params = self.default_params if params is None else params
        next_env_state, ts = self.env.step(state.env_state, self.to_jumanji_action(action))
        step_count = state.step_count + 1
        terminated, truncated = self._end_flags(state, next_env_state, ts, step_count, params)
        done = terminated | truncated
        reward = jnp.sum(jnp.asarray(ts.reward, jnp.float32))

        reset_env_state, reset_ts = self.env.reset(raw_key(key))
        # The state keeps a reset's structure and dtypes (it is a lax.scan carry).
        env_state = cast_like(where_done(done, reset_env_state, next_env_state), reset_env_state)
        new_state = JumanjiEnvState(env_state=env_state, step_count=jnp.where(done, 0, step_count).astype(jnp.int32))
        final_obs = self.convert_obs(ts.observation)
        obs = where_done(done, self.convert_obs(reset_ts.observation), final_obs)
        return step_result(obs, new_state, reward, terminated, truncated, final_obs)

    def __repr__(self) -> str:
        space = self._space_text()
        return (
            f"JumanjiEnv({self.name!r}, actions={space}, mask={self.mask_layout}, time_limit_rule={self.rule!r}, "
            f"max_steps_in_episode={self._default_limit})"
        )


def make(name: str) -> tuple[JumanjiEnv, JumanjiEnvParams]:
    """`'<Jumanji id>[@flat]'` (without the `jumanji/` prefix) -> (JumanjiEnv, its default params)."""
    jumanji = _jumanji()
    env_id, sep, option = name.partition("@")
    if sep and option != FLAT_SUFFIX[1:]:
        raise EnvError(
            f"PPOConfig.env: unknown option {'@' + option!r} in {PREFIX + name!r}; "
            f"the only one is {FLAT_SUFFIX!r} (a multi-discrete env as one Discrete action)"
        )
    known = env_names()
    if env_id not in known:
        raise unknown_env_error(PREFIX, env_id, known, WHAT)
    try:
        raw = jumanji.make(env_id)
    except Exception as err:  # e.g. Sokoban's level download offline
        raise EnvUnavailableError(
            f"PPOConfig.env: could not make Jumanji env {env_id!r} ({type(err).__name__}: {err}); "
            "note: Sokoban-v0 downloads its levels from the Hugging Face Hub (needs network)"
        ) from err
    env = JumanjiEnv(raw, name=PREFIX + name, flat=bool(sep))
    return env, env.default_params
