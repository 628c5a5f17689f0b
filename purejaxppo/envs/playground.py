"""MuJoCo Playground environments behind the gymnax API (optional extra: `pip install -e '.[playground]'`).

Name syntax: `playground/<EnvName>` with a name from Playground's own registry
(`mujoco_playground.registry.ALL_ENVS`), e.g. `playground/CartpoleBalance`,
`playground/CartpoleSwingup`, `playground/CheetahRun`, `playground/Go1JoystickFlatTerrain`.
`env_names()` lists them (DM Control Suite, locomotion and manipulation).

`PlaygroundEnv` wraps the *raw* Playground env (`registry.load(name)`, no
`wrap_for_brax_training`: that wrapper folds the time limit into `done` and
replaces the observation the step reached with the reset one) and adds:

* a per-episode step counter and a time limit, `PlaygroundEnvParams.max_steps_in_episode`,
  by default the env config's `episode_length` (1000 for the DM Control Suite);
* `terminated` = Playground's `done` (the env's own end: a fall in locomotion
  tasks, a NaN state in the DM Control Suite, which otherwise never ends),
  `truncated` = the time limit reached without termination; never both;
* auto-reset on either with `env.reset` and a fresh key (not Brax's cached
  first state), `info["final_observation"]` = the observation the step reached;
* `observation_space`: an unbounded float32 Box, or a gymnax `Dict` of them for
  envs with dict observations (locomotion: `state` / `privileged_state`);
  `action_space`: Box[-1, 1]^action_size (Playground's actions are ctrl in [-1, 1]).

Kept apart / quirks:

* Implementation: on CPU (no GPU/TPU backend) the env is loaded with
  `config_overrides={"impl": "jax"}` (pure-JAX MJX); MuJoCo Warp needs a GPU.
  With an accelerator Playground's own default impl is kept. Override with
  `make(name, impl="jax" | "warp")`.
* State dtypes: some envs return reset states with Python scalars (CheetahRun's
  `data.time = 0.0`, a weakly typed float after tracing) where the stepped state
  has float32 arrays, which makes `lax.scan` retrace; the reset state is made of
  strongly typed arrays and every stepped state is cast to its dtypes.
* Float observations are cast to float32, reward to a float32 scalar.
* A step that terminates because the physics diverged (NaN state, the DM
  Control Suite's only termination) would carry NaN into the value of the
  final observation (0 * NaN) and the reward; on termination, non-finite
  entries of the final observation and the reward are replaced by 0.
* No action repeat (Playground's PPO config repeats actions only for
  PendulumSwingup, 4x, through the Brax wrapper); one `step` is one control step.
* Robot envs (locomotion, manipulation) read their models from
  mujoco_menagerie, which Playground git-clones into its package folder on the
  first load; offline that fails, and `make` raises a RuntimeError saying so
  (clone it there yourself for offline use). The DM Control Suite ships its
  assets and works offline.
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
from purejaxppo.errors import EnvUnavailableError

#: This suite's row of the environment table in the docs (docs/hooks.py reads it without importing the module).
SUITE = {
    "suite": "MuJoCo Playground",
    "names": "`playground/CartpoleBalance`, `playground/CheetahRun` (all 25 DM Control Suite tasks)",
    "actions": "Box[-1, 1]",
    "observations": "array (dict for robot tasks)",
    "masks": "—",
    "tested": "`tests/test_adapter_playground.py`",
    "notes": (
        "MJX (`impl='jax'`) is picked on CPU (MuJoCo Warp needs a GPU); compiling MJX's step takes 40–160 s. "
        "The 29 locomotion/manipulation tasks git-clone mujoco_menagerie on load and fail offline with an "
        "`EnvUnavailableError` (a RuntimeError) that gives the clone command"
    ),
}

PREFIX = "playground/"
EXTRA = "playground"
WHAT = "MuJoCo Playground"


@struct.dataclass
class PlaygroundEnvParams:
    """Time limit of an episode (Playground's `episode_length`; 1000 for the DM Control Suite)."""

    max_steps_in_episode: int = 1000


@struct.dataclass
class PlaygroundEnvState:
    """The raw Playground state (`mujoco_playground.State`) plus the step count of the running episode."""

    env_state: Any
    step_count: jax.Array  # int32 scalar


def _import_playground():
    return import_library("mujoco_playground", extra=EXTRA, prefix=PREFIX, what=WHAT)


def _suites() -> dict[str, tuple[str, ...]]:
    mp = _import_playground()
    return {
        "dm_control_suite": tuple(mp.dm_control_suite.ALL_ENVS),
        "locomotion": tuple(mp.locomotion.ALL_ENVS),
        "manipulation": tuple(mp.manipulation.ALL_ENVS),
    }


def env_names() -> list[str]:
    """Names in Playground's registry (DM Control Suite, locomotion, manipulation), sorted; imports playground."""
    return sorted({n for names in _suites().values() for n in names})


def _default_impl() -> str | None:
    """'jax' on a CPU-only machine (MuJoCo Warp needs a GPU); None (Playground's default) otherwise."""
    return "jax" if jax.default_backend() == "cpu" else None


def _float32(tree: Any) -> Any:
    return jax.tree.map(
        lambda x: jnp.asarray(x, jnp.float32) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else jnp.asarray(x),
        tree,
    )


def _finite(tree: Any) -> Any:
    return jax.tree.map(
        lambda x: jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x)) if jnp.issubdtype(x.dtype, jnp.inexact) else x, tree
    )


def _space(spec: Any):
    from gymnax.environments import spaces

    if isinstance(spec, dict):
        return spaces.Dict({k: _space(v) for k, v in spec.items()})
    if jnp.issubdtype(spec.dtype, jnp.floating):
        return spaces.Box(-jnp.inf, jnp.inf, tuple(spec.shape), jnp.float32)
    if spec.dtype == jnp.bool_:
        return spaces.Box(0, 1, tuple(spec.shape), jnp.bool_)
    info = jnp.iinfo(spec.dtype)
    return spaces.Box(info.min, info.max, tuple(spec.shape), spec.dtype)


class PlaygroundEnv:
    """A raw MuJoCo Playground env with the gymnax API, a time limit and terminated/truncated kept apart.

    Args:
      env: a Playground `MjxEnv` without training wrappers (e.g. `registry.load("CartpoleBalance")`).
      name: display name.
      episode_length: the default time limit (`default_params.max_steps_in_episode`).
    """

    def __init__(self, env: Any, name: str | None = None, episode_length: int = 1000):
        self.env = env
        self.name = name or type(env).__name__
        self._episode_length = int(episode_length)
        self._action_size = int(env.action_size)
        state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        obs = state.obs
        if isinstance(obs, dict):
            obs = dict(obs)
        self._obs_spec = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, jnp.float32 if jnp.issubdtype(x.dtype, jnp.floating) else x.dtype),
            obs,
        )

    # --- gymnax API -----------------------------------------------------------
    @property
    def default_params(self) -> PlaygroundEnvParams:
        return PlaygroundEnvParams(max_steps_in_episode=self._episode_length)

    @property
    def num_actions(self) -> int:
        return self._action_size

    def observation_space(self, params: PlaygroundEnvParams | None = None):
        return _space(self._obs_spec)

    def action_space(self, params: PlaygroundEnvParams | None = None):
        from gymnax.environments import spaces

        return spaces.Box(-1.0, 1.0, (self._action_size,), jnp.float32)

    def _reset(self, key: jax.Array):
        env_state = self.env.reset(raw_key(key))
        if isinstance(env_state.obs, dict):  # a plain dict, whatever mapping type the env used
            env_state = env_state.replace(obs=dict(env_state.obs))
        env_state = env_state.replace(obs=_float32(env_state.obs))
        return strong(env_state)  # no Python scalars or weakly typed leaves: the types of every stepped state

    def reset(self, key: jax.Array, params: PlaygroundEnvParams | None = None):
        env_state = self._reset(key)
        return env_state.obs, PlaygroundEnvState(env_state=env_state, step_count=jnp.zeros((), jnp.int32))

    def step(
        self, key: jax.Array, state: PlaygroundEnvState, action: jax.Array, params: PlaygroundEnvParams | None = None
    ):
        """One env step with auto-reset; returns (obs, state, reward, terminated, truncated, info)."""
        params = self.default_params if params is None else params
        prev = state.env_state
        next_state = self.env.step(prev, jnp.asarray(action, jnp.float32))
        if isinstance(next_state.obs, dict):
            next_state = next_state.replace(obs=dict(next_state.obs))
        next_state = cast_like(next_state.replace(obs=_float32(next_state.obs)), prev)

        step_count = state.step_count + 1
        terminated = jnp.asarray(next_state.done) > 0.5
        truncated = jnp.logical_and(step_count >= params.max_steps_in_episode, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        reward = jnp.asarray(next_state.reward, jnp.float32).reshape(())
        final_obs = next_state.obs
        # A diverged (NaN) state ends the episode; keep its NaNs out of V(final obs) and the return.
        reward = jnp.where(terminated & ~jnp.isfinite(reward), 0.0, reward)
        final_obs = where_done(terminated, _finite(final_obs), final_obs)

        reset_state = cast_like(self._reset(key), prev)
        env_state = where_done(done, reset_state, next_state)
        new_state = PlaygroundEnvState(env_state=env_state, step_count=jnp.where(done, 0, step_count).astype(jnp.int32))
        return step_result(env_state.obs, new_state, reward, terminated, truncated, final_obs)

    def __repr__(self) -> str:
        return (
            f"PlaygroundEnv({self.name!r}, obs={jax.tree.map(lambda s: s.shape, self._obs_spec)}, "
            f"action_size={self._action_size}, episode_length={self._episode_length})"
        )


def _menagerie_error(name: str, suite: str, err: BaseException) -> EnvUnavailableError:
    from mujoco_playground._src import mjx_env

    path = getattr(mjx_env, "MENAGERIE_PATH", "<mujoco_playground>/external_deps/mujoco_menagerie")
    sha = getattr(mjx_env, "MENAGERIE_COMMIT_SHA", "<commit>")
    return EnvUnavailableError(
        f"PPOConfig.env: could not load {WHAT} {suite} env {PREFIX + name!r}: its robot model comes from "
        f"mujoco_menagerie, which Playground git-clones from GitHub into {path} when the env is first loaded, "
        f"and that failed (no network?): {type(err).__name__}: {str(err).rstrip('.')}. "
        f"For offline use, clone it there yourself: "
        f"git clone https://github.com/google-deepmind/mujoco_menagerie {path} && git -C {path} checkout {sha}. "
        f"The DM Control Suite envs need no download."
    )


def make(name: str, impl: str | None = None) -> tuple[PlaygroundEnv, PlaygroundEnvParams]:
    """`<EnvName>` (without the prefix) -> (PlaygroundEnv, its default params); unknown names raise EnvError.

    `impl`: MJX implementation ('jax' or 'warp'); default 'jax' on CPU, Playground's own default elsewhere.
    """
    mp = _import_playground()
    suites = _suites()
    suite = next((s for s, names in suites.items() if name in names), None)
    if suite is None:
        raise unknown_env_error(PREFIX, name, env_names(), WHAT)
    impl = _default_impl() if impl is None else impl
    config = mp.registry.get_default_config(name)
    overrides = {"impl": impl} if impl is not None and "impl" in config else None
    from mujoco_playground._src import mjx_env

    menagerie = getattr(mjx_env, "MENAGERIE_PATH", None)
    had_menagerie = menagerie is not None and menagerie.exists()
    try:
        raw = mp.registry.load(name, config=config, config_overrides=overrides)
    except Exception as err:  # noqa: BLE001 (a failed git clone, a missing model file, mujoco's XML error)
        if suite == "dm_control_suite" or (
            had_menagerie and not isinstance(err, OSError) and "menagerie" not in str(err)
        ):
            raise
        raise _menagerie_error(name, suite, err) from err
    episode_length = int(config.get("episode_length", 1000))
    env = PlaygroundEnv(raw, name=PREFIX + name, episode_length=episode_length)
    return env, env.default_params
