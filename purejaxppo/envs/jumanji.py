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
* **observations**: a dict of arrays, one key per leaf of Jumanji's (nested) observation
  NamedTuple/dataclass, named by its path (`"agent_position.row"` for Maze); numeric features
  (bool ones included, e.g. Knapsack's `packed_items`) as float32, except `"action_mask"`,
  kept bool and laid out for the policy (purejaxppo.envs.spaces.ACTION_MASK_KEY):
  - Discrete: `[num_actions]`, Jumanji's own mask.
  - MultiDiscrete with a per-sub-action mask `[K, n]` (Cleaner, Connector, JobShop, RobotWarehouse,
    LevelBasedForaging, MMST): rows concatenated, `[sum(nvec)]`: exact per sub-action, but
    constraints *between* sub-actions (two machines picking the same job in JobShop) are not
    expressible; the env ends the episode on such an invalid joint action.
  - MultiDiscrete with a joint mask over the product, shape `nvec` (Tetris `[4, 10]`, Minesweeper
    `[10, 10]`, BinPack `[40, 20]`, FlatPack, Sudoku): reduced to per-sub-action masks, a
    sub-action value legal if ANY joint action containing it is legal (an `any` over the other
    axes), concatenated to `[sum(nvec)]`. This is an APPROXIMATION: sub-actions sampled
    independently can still form an illegal joint action (the env then ends the episode: Tetris,
    BinPack and Minesweeper terminate on an invalid action). `@flat` avoids it: Discrete over the
    product, mask = the joint mask flattened (exact), the index unravelled to the K sub-actions.
* **actions**: DiscreteArray -> gymnax `Discrete(n)`; MultiDiscreteArray -> `MultiDiscrete(nvec)`
  (int32[K], reshaped to Jumanji's action shape); an integer BoundedArray (MultiCVRP) ->
  `MultiDiscrete(max - min + 1)` shifted by min; a float BoundedArray (SearchAndRescue) -> Box.
* **reward**: float32; multi-agent envs with one reward per agent (Connector, LevelBasedForaging,
  SearchAndRescue) give the SUM (a team return for one centralised policy).

Quirks: `Sokoban-v0` downloads its levels from the Hugging Face Hub when made (fails offline
after ~25 s of retries: reported as a RuntimeError); `PacMan-v1` ignores its `time_limit`
argument (always 1000). The library is imported only by `make`/`env_names`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxppo.envs.adapter import cast_like, import_library, raw_key, step_result, unknown_env_error, where_done
from purejaxppo.envs.spaces import ACTION_MASK_KEY, MultiDiscrete
from purejaxppo.errors import EnvError, EnvUnavailableError

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
FLAT_SUFFIX = "@flat"
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

# Multi-discrete envs whose mask layout the shape alone cannot tell (an `[K, n]` mask with K == n):
# "joint" (a mask over the product, shape nvec) or "per_sub" (one row per sub-action).
MASK_LAYOUT: dict[str, str] = {
    "Minesweeper": "joint",
    "Tetris": "joint",
    "BinPack": "joint",
    "FlatPack": "joint",
    "Sudoku": "joint",
    "Cleaner": "per_sub",
    "Connector": "per_sub",
    "JobShop": "per_sub",
    "RobotWarehouse": "per_sub",
    "LevelBasedForaging": "per_sub",
    "MMST": "per_sub",
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


def _path_name(path) -> str:
    parts = []
    for p in path:
        for attr in ("name", "key", "idx"):
            if hasattr(p, attr):
                parts.append(str(getattr(p, attr)))
                break
        else:
            parts.append(str(p))
    return ".".join(parts)


class JumanjiEnv:
    """A raw Jumanji env with the gymnax API (module docstring).

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

        # --- actions
        spec = env.action_spec
        self._action_shape = tuple(int(s) for s in spec.shape)
        self._action_dtype = spec.dtype
        self._action_min = None
        self.nvec: tuple[int, ...] | None  # the sub-action sizes; None for a box (continuous) action spec
        if isinstance(spec, specs.DiscreteArray):
            self._kind, self.nvec = "discrete", (int(spec.num_values),)
        elif isinstance(spec, specs.MultiDiscreteArray):
            self._kind, self.nvec = "multi", tuple(int(n) for n in np.asarray(spec.num_values).reshape(-1))
        elif isinstance(spec, specs.BoundedArray) and jnp.issubdtype(spec.dtype, jnp.integer):
            lo = np.broadcast_to(np.asarray(spec.minimum), self._action_shape).reshape(-1)
            hi = np.broadcast_to(np.asarray(spec.maximum), self._action_shape).reshape(-1)
            self._kind, self.nvec, self._action_min = "multi", tuple(int(n) for n in hi - lo + 1), lo.astype(np.int32)
        elif isinstance(spec, specs.BoundedArray):
            self._kind, self.nvec = "box", None
            self._box = (
                np.broadcast_to(np.asarray(spec.minimum, np.float32), self._action_shape),
                np.broadcast_to(np.asarray(spec.maximum, np.float32), self._action_shape),
            )
        else:
            raise EnvError(
                f"Jumanji env {self.name!r}: action spec {spec!r} is not supported "
                "(DiscreteArray, MultiDiscreteArray or BoundedArray)"
            )

        # --- observations
        reset_ts = jax.eval_shape(env.reset, jax.random.PRNGKey(0))[1]
        leaves, _ = jax.tree_util.tree_flatten_with_path(reset_ts.observation)
        self._obs_names = [_path_name(p) for p, _ in leaves]
        self._obs_shapes = {
            n: tuple(int(s) for s in leaf.shape) for n, (_, leaf) in zip(self._obs_names, leaves, strict=True)
        }
        mask_shape = self._obs_shapes.get(ACTION_MASK_KEY)
        if (
            self._action_min is not None
            and self.nvec is not None  # always, with an _action_min (a bounded integer spec)
            and mask_shape is not None
            and len(mask_shape) == 2
            and mask_shape[0] == len(self.nvec)
            and mask_shape[1] < min(self.nvec)
        ):
            # MultiCVRP's spec says maximum = num_customers + 1 (inclusive), its mask has num_customers + 1
            # entries (depot + customers): trust the mask.
            self.nvec = (int(mask_shape[1]),) * len(self.nvec)
        self.mask_layout = self._mask_layout(cls, mask_shape)
        self.flat = bool(flat)
        if self.flat:
            if self._kind != "multi" or self.mask_layout == "per_sub":
                raise EnvError(
                    f"Jumanji env {self.name!r}: {FLAT_SUFFIX} needs a multi-discrete env with a joint "
                    f"action mask or none (this one: {self._kind}, mask {self.mask_layout})"
                )
        self._obs_size = {n: int(math.prod(s)) for n, s in self._obs_shapes.items()}

    def _mask_layout(self, cls: str, shape) -> str | None:
        if shape is None:
            return None
        if self._kind == "discrete":
            assert self.nvec is not None  # set for "discrete" and "multi" (None only for "box")
            if math.prod(shape) != self.nvec[0]:
                raise EnvError(f"Jumanji env {self.name!r}: action_mask of shape {shape} for {self.nvec[0]} actions")
            return "flat"
        if self._kind != "multi":
            raise EnvError(f"Jumanji env {self.name!r}: an action_mask with a continuous action space")
        assert self.nvec is not None
        k = len(self.nvec)
        per_sub = len(set(self.nvec)) == 1 and tuple(shape) == (k, self.nvec[0])
        joint = tuple(shape) == self.nvec
        if per_sub and joint:
            return MASK_LAYOUT.get(cls, "joint")
        if per_sub:
            return "per_sub"
        if joint:
            return "joint"
        raise EnvError(
            f"Jumanji env {self.name!r}: action_mask of shape {shape} fits neither a per-sub-action "
            f"[{k}, n] nor a joint {list(self.nvec)} layout"
        )

    # --- observation conversion ------------------------------------------------
    def _mask(self, mask: jax.Array) -> jax.Array:
        mask = jnp.asarray(mask, bool)
        if self.mask_layout == "flat" or self.flat:
            return mask.reshape(-1)
        if self.mask_layout == "per_sub":
            return mask.reshape(-1)  # rows are the sub-actions, in order
        assert self.nvec is not None  # a joint mask layout means a multi-discrete env
        k = len(self.nvec)  # joint: sub-action k's value legal if any joint action with it is legal
        return jnp.concatenate([jnp.any(mask, axis=tuple(a for a in range(k) if a != i)) for i in range(k)])

    def convert_obs(self, jumanji_obs: Any) -> dict[str, jax.Array]:
        """Jumanji's observation -> the adapter's dict of arrays (float32 features, bool action_mask)."""
        leaves = jax.tree.leaves(jumanji_obs)
        out = {}
        for n, x in zip(self._obs_names, leaves, strict=True):
            out[n] = self._mask(x) if n == ACTION_MASK_KEY else jnp.asarray(x, jnp.float32)
        return out

    # --- gymnax API -----------------------------------------------------------
    @property
    def default_params(self) -> JumanjiEnvParams:
        return JumanjiEnvParams(max_steps_in_episode=self._default_limit)

    @property
    def num_actions(self) -> int:
        if self._kind == "box":
            return int(math.prod(self._action_shape))
        assert self.nvec is not None  # set for every kind but "box"
        return int(math.prod(self.nvec)) if self.flat else int(sum(self.nvec))

    def observation_space(self, params: JumanjiEnvParams | None = None):
        from gymnax.environments import spaces

        out = {}
        for n, shape in self._obs_shapes.items():
            if n == ACTION_MASK_KEY:
                assert self.nvec is not None  # a mask implies a discrete action spec (_mask_layout checks)
                size = self.num_actions if (self.flat or self.mask_layout != "joint") else sum(self.nvec)
                out[n] = spaces.Box(0, 1, (size,), jnp.bool_)
            else:
                out[n] = spaces.Box(-jnp.inf, jnp.inf, shape, jnp.float32)
        return spaces.Dict(out)

    def action_space(self, params: JumanjiEnvParams | None = None):
        from gymnax.environments import spaces

        if self._kind == "discrete":
            assert self.nvec is not None  # set for "discrete" and "multi"
            return spaces.Discrete(self.nvec[0])
        if self._kind == "multi":
            assert self.nvec is not None
            return spaces.Discrete(int(math.prod(self.nvec))) if self.flat else MultiDiscrete(self.nvec)
        return spaces.Box(self._box[0], self._box[1], self._action_shape, jnp.float32)

    def to_jumanji_action(self, action: jax.Array) -> jax.Array:
        """The policy's action -> Jumanji's (dtype and shape of its action spec)."""
        if self._kind == "box":
            return jnp.asarray(action, self._action_dtype).reshape(self._action_shape)
        action = jnp.asarray(action, jnp.int32)
        if self.flat:
            assert self.nvec is not None  # flat needs a multi-discrete env
            action = jnp.stack(jnp.unravel_index(action.reshape(()), self.nvec))
        if self._action_min is not None:
            action = action + self._action_min
        return action.astype(self._action_dtype).reshape(self._action_shape)

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
        if self._kind == "box":
            space = "Box"
        elif self._kind == "discrete" or self.flat:
            space = f"Discrete({self.num_actions})"
        else:
            assert self.nvec is not None  # "multi"
            space = f"MultiDiscrete({list(self.nvec)})"
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
