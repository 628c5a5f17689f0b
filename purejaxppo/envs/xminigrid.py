"""XLand-MiniGrid environments behind the gymnax API (optional extra: `pip install -e '.[xminigrid]'`).

Names: `xminigrid/<id>` with an id of `xminigrid.registered_environments()`, e.g.
`xminigrid/MiniGrid-Empty-8x8`, `xminigrid/MiniGrid-DoorKey-5x5`,
`xminigrid/MiniGrid-FourRooms`. The `XLand-MiniGrid-*` ids are meta-RL worlds
whose goal and rules come from a *ruleset* in the env params (xminigrid's
default one has an empty goal: the episode never ends and never pays). They
need one of:

* `xminigrid/XLand-MiniGrid-R1-9x9@<benchmark>:<index>`, e.g.
  `@trivial-21k:0`: ruleset `<index>` of an xminigrid benchmark
  (`xminigrid.load_benchmark`; the file is downloaded from Hugging Face into
  `~/.xland_minigrid` on first use, `$XLAND_MINIGRID_DATA` elsewhere; offline
  that fails with a clear error unless the file is already there);
* `make("XLand-MiniGrid-R1-9x9", ruleset=...)` with a `xminigrid.types.RuleSet`
  built by hand from `xminigrid.core.goals` / `xminigrid.core.rules` (works
  offline), or `params.replace(ruleset=...)` on the params `make` returns.

What the adapter keeps apart, and how:

* terminated = xminigrid's last step with discount 0 (the goal reached);
  truncated = its last step with discount 1 (`step_num == params.max_steps`,
  the time limit, without the goal). xminigrid can flag both on the same step;
  the adapter reports that as terminated only.
* Auto-reset: the adapter steps the *raw* env (not xminigrid's
  `GymAutoResetWrapper`, which overwrites the observation the step reached)
  and resets from the `key` purejaxppo passes, so `info["final_observation"]`
  is the pre-reset observation. (xminigrid's own wrapper would reset from the
  key stored in its state instead.)
* Time limit: the env params' `max_steps` (xminigrid's default: 4*H*W for
  Empty, 10*H*W for DoorKey, ...; 3*H*W for XLand). It is a static field of
  xminigrid's params (changing it recompiles) and the reward depends on it
  (`1 - 0.9 * step / max_steps` on success), so tests force it with
  `params.replace(max_steps=5)`.
* Observations: xminigrid's egocentric partial view, symbolic `uint8[V, V, 2]`
  (tile id, colour id; V = `params.view_size`, 7 for MiniGrid, 5 for XLand),
  given as float32 (the ids as numbers; `network: auto` routes it to the CNN,
  `mlp` flattens it). The agent's direction is not in the observation (the
  view is rotated so that the agent faces up), as in MiniGrid.
* Actions: `Discrete(6)` (forward, turn right, turn left, pick up, put down,
  toggle); xminigrid has no illegal actions, so no action mask.
* State: xminigrid's `TimeStep` with every leaf cast to a fixed (strong)
  dtype once, so reset and step states match (`cast_like`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.envs.adapter import cast_like, import_library, raw_key, step_result, unknown_env_error, where_done
from purejaxppo.errors import EnvError

#: This suite's row of the environment table in the docs (docs/hooks.py reads it without importing the module).
SUITE = {
    "suite": "XLand-MiniGrid",
    "names": (
        "`xminigrid/MiniGrid-Empty-8x8`, `xminigrid/MiniGrid-DoorKey-5x5` (all 23 MiniGrid ids); "
        "`xminigrid/XLand-MiniGrid-R1-9x9@trivial-21k:0`"
    ),
    "actions": "Discrete(6)",
    "observations": "symbolic view `[7, 7, 2]` (partial)",
    "masks": "—",
    "tested": "`tests/test_adapter_xminigrid.py`",
    "notes": "XLand ids need a ruleset: a benchmark (downloaded on first use) or `make(name, ruleset=...)`",
}

PREFIX = "xminigrid/"
WHAT = "XLand-MiniGrid"


def _xminigrid():
    return import_library("xminigrid", extra="xminigrid", prefix=PREFIX, what=WHAT)


def env_names() -> list[str]:
    """xminigrid's own environment ids (imports xminigrid)."""
    return list(_xminigrid().registered_environments())


def _strong(tree: Any) -> Any:
    """Every leaf as a strongly typed array of its own dtype (xminigrid's resets hold weakly typed scalars)."""
    return cast_like(tree, tree)


class XMiniGridEnv:
    """A raw xminigrid env with the gymnax API, auto-reset and terminated/truncated kept apart.

    Args:
      env: an xminigrid `Environment` without wrappers (`xminigrid.make(id)[0]`).
      params: its params (only used for the spaces' shapes and `default_params`).
      name: display name, e.g. "xminigrid/MiniGrid-Empty-8x8".
    """

    def __init__(self, env: Any, params: Any, name: str):
        self.env = env
        self._params = params
        self.name = name

    # --- gymnax API -----------------------------------------------------------
    @property
    def default_params(self) -> Any:
        return self._params

    @property
    def num_actions(self) -> int:
        return int(self.env.num_actions(self._params))

    def observation_space(self, params: Any = None):
        from gymnax.environments import spaces
        from xminigrid.core.constants import NUM_COLORS, NUM_TILES

        params = self._params if params is None else params
        shape = tuple(int(s) for s in self.env.observation_shape(params))
        return spaces.Box(0.0, float(max(NUM_TILES, NUM_COLORS) - 1), shape, jnp.float32)

    def action_space(self, params: Any = None):
        from gymnax.environments import spaces

        return spaces.Discrete(int(self.env.num_actions(self._params if params is None else params)))

    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, Any]:
        params = self._params if params is None else params
        timestep = _strong(self.env.reset(params, raw_key(key)))
        return jnp.asarray(timestep.observation, jnp.float32), timestep

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any = None):
        """One env step with auto-reset; returns (obs, state, reward, terminated, truncated, info)."""
        params = self._params if params is None else params
        next_ts = cast_like(self.env.step(params, state, jnp.asarray(action, jnp.int32)), state)
        last = next_ts.last()
        terminated = jnp.logical_and(last, next_ts.discount == 0.0)
        truncated = jnp.logical_and(last, jnp.logical_not(terminated))
        final_obs = jnp.asarray(next_ts.observation, jnp.float32)

        reset_ts = cast_like(self.env.reset(params, raw_key(key)), state)
        new_state = where_done(last, reset_ts, next_ts)
        obs, reward = jnp.asarray(new_state.observation, jnp.float32), jnp.asarray(next_ts.reward, jnp.float32)
        return step_result(obs, new_state, reward, terminated, truncated, final_obs)

    def __repr__(self) -> str:
        p = self._params
        return (
            f"XMiniGridEnv({self.name!r}, grid={p.height}x{p.width}, view_size={p.view_size}, max_steps={p.max_steps})"
        )


def _benchmark_ruleset(xminigrid, full: str, spec: str):
    """`<benchmark>:<index>` -> that benchmark's ruleset (downloads the benchmark file if it is not cached)."""
    bench, sep, index = spec.partition(":")
    known = list(xminigrid.registered_benchmarks())
    if not sep or not index.isdigit():
        raise EnvError(
            f"PPOConfig.env: malformed XLand ruleset {spec!r} in {full!r}; expected "
            f"'{PREFIX}<XLand id>@<benchmark>:<index>', e.g. "
            f"'{PREFIX}XLand-MiniGrid-R1-9x9@trivial-21k:0'; benchmarks: {', '.join(known)}"
        )
    if bench not in known:
        raise EnvError(f"PPOConfig.env: unknown XLand benchmark {bench!r} in {full!r}; benchmarks: {', '.join(known)}")
    try:
        benchmark = xminigrid.load_benchmark(bench)
    except OSError as err:  # urllib's URLError is an OSError: offline and not cached
        from xminigrid.benchmarks import DATA_PATH

        raise EnvError(
            f"PPOConfig.env: could not load the XLand benchmark {bench!r} for {full!r}: {err}. xminigrid downloads "
            f"it from Hugging Face into {DATA_PATH} ($XLAND_MINIGRID_DATA); put the file there, or build a ruleset "
            "offline and pass it: purejaxppo.envs.xminigrid.make(name, ruleset=...)"
        ) from err
    n = benchmark.num_rulesets()
    if int(index) >= n:
        raise EnvError(f"PPOConfig.env: ruleset index {index} out of range in {full!r}: {bench!r} has {n} rulesets")
    return benchmark.get_ruleset(int(index))


def make(name: str, ruleset: Any = None) -> tuple[XMiniGridEnv, Any]:
    """`'<id>'` or `'<XLand id>@<benchmark>:<index>'` (no prefix) -> (env, xminigrid params).

    `ruleset`: an `xminigrid.types.RuleSet` for an XLand id (instead of `@<benchmark>:<index>`).
    Unknown ids raise EnvError listing xminigrid's ids.
    """
    xminigrid = _xminigrid()
    full = PREFIX + name
    env_id, sep, spec = name.partition("@")
    known = list(xminigrid.registered_environments())
    if env_id not in known:
        raise unknown_env_error(PREFIX, env_id, known, WHAT)
    xland = env_id.startswith("XLand-")
    if sep and not xland:
        raise EnvError(f"PPOConfig.env: {full!r}: only XLand-MiniGrid ids take '@<benchmark>:<index>'")
    if sep and ruleset is not None:
        raise EnvError(f"PPOConfig.env: {full!r}: give the ruleset either as '@<benchmark>:<index>' or as ruleset=")
    if xland and not sep and ruleset is None:
        raise EnvError(
            f"PPOConfig.env: {full!r} needs a ruleset (its goal and rules): use "
            f"'{PREFIX}{env_id}@<benchmark>:<index>' (benchmarks: {', '.join(xminigrid.registered_benchmarks())}; "
            "downloaded by xminigrid on first use), or build one offline from xminigrid.core.goals/rules and call "
            "purejaxppo.envs.xminigrid.make(name, ruleset=...)"
        )
    if ruleset is not None and not xland:
        raise EnvError(f"PPOConfig.env: {full!r}: MiniGrid envs have their goal built in; ruleset= is for XLand ids")
    env, params = xminigrid.make(env_id)
    if sep:
        ruleset = _benchmark_ruleset(xminigrid, full, spec)
    if ruleset is not None:
        params = params.replace(ruleset=ruleset)
    return XMiniGridEnv(env, params, name=full), params
