"""The Jumanji adapter's spaces: how `purejaxppo.envs.jumanji.JumanjiEnv` reads a Jumanji env's action spec
and observation, and converts both ways (`JumanjiSpaces`, its base class). Does not import jumanji: the
adapter passes in `jumanji.specs`.

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
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.envs.spaces import ACTION_MASK_KEY, MultiDiscrete
from purejaxppo.errors import EnvError

FLAT_SUFFIX = "@flat"

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


class JumanjiSpaces:
    """A Jumanji env's action and observation spaces, and the conversions between them and the policy's
    (module docstring). `JumanjiEnv` sets `name` and calls `_read_actions` then `_read_observations`."""

    name: str

    def _read_actions(self, spec: Any, specs: Any) -> None:
        """The action spec `spec` (one of `jumanji.specs`' arrays, passed in as `specs`) -> kind and nvec."""
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

    def _read_observations(self, env: Any, cls: str, flat: bool) -> None:
        """The observation's leaves (names, shapes) and the action mask's layout (after `_read_actions`)."""
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

    # --- spaces and actions -----------------------------------------------------
    @property
    def num_actions(self) -> int:
        if self._kind == "box":
            return int(math.prod(self._action_shape))
        assert self.nvec is not None  # set for every kind but "box"
        return int(math.prod(self.nvec)) if self.flat else int(sum(self.nvec))

    def observation_space(self, params: Any = None):
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

    def action_space(self, params: Any = None):
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

    def _space_text(self) -> str:
        """The action space in a repr: Box, Discrete(n) or MultiDiscrete([...])."""
        if self._kind == "box":
            return "Box"
        if self._kind == "discrete" or self.flat:
            return f"Discrete({self.num_actions})"
        assert self.nvec is not None  # "multi"
        return f"MultiDiscrete({list(self.nvec)})"
