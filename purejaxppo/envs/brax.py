"""Brax environments behind the gymnax API (optional extra: `pip install -e '.[brax]'`).

`BraxEnv` wraps a *raw* Brax env (no Brax training wrappers) and adds what the
rest of purejaxppo expects from a gymnax env:

* a per-episode step counter and a time limit (`BraxEnvParams.max_steps_in_episode`);
* `terminated` = Brax's `done` (the env's own end condition, e.g. the hopper
  falling) and `truncated` = the time limit reached without termination; the two
  are never both true, so the trainer bootstraps from V(final_observation) on
  truncation only;
* auto-reset on either, with a fresh key, and `info["final_observation"]` = the
  observation the step reached before the reset;
* `observation_space` (unbounded Box) and `action_space` (Box[-1, 1]^action_size).

Brax's own `EpisodeWrapper` / `AutoResetWrapper` are not used: they fold the
time limit into `done` and overwrite the pre-reset observation.

Select one from a config with `env: brax/<name>` or `env: brax/<name>@<backend>`
(see `purejaxppo.envs.make_env`); brax is imported only then.
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from purejaxppo.errors import EnvError, ExtraMissingError

#: This suite's row of the environment table in the docs (docs/hooks.py reads it without importing the module).
SUITE = {
    "suite": "Brax (retired upstream)",
    "names": "`brax/ant`, `brax/hopper@spring`",
    "actions": "Box[-1, 1]",
    "observations": "array",
    "masks": "—",
    "tested": "`tests/test_brax.py`",
    "notes": "slow physics; reduced hopper run in returns.md",
}

BRAX_PREFIX = "brax/"
INSTALL_HINT = "pip install -e '.[brax]'"


@struct.dataclass
class BraxEnvParams:
    """Time limit of a Brax episode (Brax's usual episode_length is 1000), and optionally the physics.

    sys: None (the env's own `brax.System`), or a System this env steps with instead: per-env domain
    randomization (purejaxppo.core.randomization.brax_mass) gives each env its own."""

    max_steps_in_episode: int = 1000
    sys: Any = None


@struct.dataclass
class BraxEnvState:
    """The raw Brax state plus the step count of the running episode."""

    brax_state: Any
    step_count: jax.Array  # int32 scalar


def _raw_key(key: jax.Array) -> jax.Array:
    """Brax envs expect old-style uint32[2] keys; accept typed `jax.random.key` keys too."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def _import_brax_envs():
    try:
        from brax import envs as brax_envs
    except ImportError as err:
        raise ExtraMissingError(
            f"PPOConfig.env: Brax environments ('brax/<name>') need the optional brax package, "
            f"which is not installed ({err}). Install it with: {INSTALL_HINT}"
        ) from err
    return brax_envs


def brax_env_names() -> list[str]:
    """Names in Brax's environment registry (imports brax)."""
    brax_envs = _import_brax_envs()
    registry = getattr(brax_envs, "_envs", None)
    if isinstance(registry, dict):
        return sorted(registry)
    return sorted(  # fallback if brax ever renames its private registry
        n
        for n in (
            "ant",
            "halfcheetah",
            "hopper",
            "humanoid",
            "humanoidstandup",
            "inverted_pendulum",
            "inverted_double_pendulum",
            "pusher",
            "reacher",
            "swimmer",
            "walker2d",
        )
    )


def parse_brax_name(name: str) -> tuple[str, str | None]:
    """'brax/hopper@positional' -> ('hopper', 'positional'); 'brax/ant' -> ('ant', None)."""
    if not name.startswith(BRAX_PREFIX):
        raise EnvError(f"PPOConfig.env: {name!r} is not a Brax env id (expected 'brax/<name>[@<backend>]')")
    rest = name[len(BRAX_PREFIX) :]
    env_name, sep, backend = rest.partition("@")
    if not env_name or (sep and not backend):
        raise EnvError(
            f"PPOConfig.env: malformed Brax env id {name!r}; expected 'brax/<name>' or 'brax/<name>@<backend>', "
            "e.g. 'brax/ant' or 'brax/hopper@positional'"
        )
    return env_name, (backend or None)


class BraxEnv:
    """A raw Brax env with the gymnax API, a time limit and terminated/truncated kept apart.

    Args:
      env: a Brax `Env` without training wrappers (e.g. `brax.envs.get_environment("ant")`),
        with array observations.
      name: display name.
    """

    def __init__(self, env: Any, name: str | None = None):
        self.env = env
        self.name = name or type(env).__name__
        obs = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs
        if not hasattr(obs, "shape"):
            raise EnvError(f"Brax env {self.name!r} has dict observations; purejaxppo needs a single observation array")
        self._obs_shape = tuple(int(s) for s in obs.shape)
        self._action_size = int(env.action_size)

    # --- gymnax API -----------------------------------------------------------
    @property
    def default_params(self) -> BraxEnvParams:
        return BraxEnvParams()

    @property
    def num_actions(self) -> int:
        return self._action_size

    def observation_space(self, params: BraxEnvParams | None = None):
        from gymnax.environments import spaces

        return spaces.Box(-jnp.inf, jnp.inf, self._obs_shape, jnp.float32)

    def action_space(self, params: BraxEnvParams | None = None):
        from gymnax.environments import spaces

        return spaces.Box(-1.0, 1.0, (self._action_size,), jnp.float32)

    @contextlib.contextmanager
    def _physics(self, params: BraxEnvParams | None):
        """While traced inside: the Brax env steps with `params.sys` (when given) instead of its own System."""
        if params is None or params.sys is None:
            yield
            return
        target = getattr(self.env, "unwrapped", self.env)
        saved = target.sys
        target.sys = params.sys
        try:
            yield
        finally:
            target.sys = saved

    def reset(self, key: jax.Array, params: BraxEnvParams | None = None) -> tuple[jax.Array, BraxEnvState]:
        with self._physics(params):
            brax_state = self.env.reset(_raw_key(key))
        state = BraxEnvState(brax_state=brax_state, step_count=jnp.zeros((), jnp.int32))
        return jnp.asarray(brax_state.obs, jnp.float32), state

    def step(self, key: jax.Array, state: BraxEnvState, action: jax.Array, params: BraxEnvParams | None = None):
        """One env step with auto-reset; returns (obs, state, reward, terminated, truncated, info)."""
        params = self.default_params if params is None else params
        with self._physics(params):
            next_state = self.env.step(state.brax_state, jnp.asarray(action, jnp.float32))
            reset_state = self.env.reset(_raw_key(key))
        step_count = state.step_count + 1
        final_obs = jnp.asarray(next_state.obs, jnp.float32)
        reward = jnp.asarray(next_state.reward, jnp.float32)
        terminated = jnp.asarray(next_state.done) > 0.5
        truncated = jnp.logical_and(step_count >= params.max_steps_in_episode, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)

        # Keep the state's structure and dtypes fixed (it is a lax.scan carry).
        brax_state = jax.tree.map(
            lambda r, s: jnp.where(done, r, s).astype(jnp.result_type(s)), reset_state, next_state
        )
        new_state = BraxEnvState(brax_state=brax_state, step_count=jnp.where(done, 0, step_count).astype(jnp.int32))
        obs = jnp.asarray(brax_state.obs, jnp.float32)
        info = {"final_observation": final_obs, "discount": 1.0 - terminated.astype(jnp.float32)}
        return obs, new_state, reward, terminated, truncated, info

    def __repr__(self) -> str:
        return f"BraxEnv({self.name!r}, obs_shape={self._obs_shape}, action_size={self._action_size})"


def make_brax_env(name: str) -> tuple[BraxEnv, BraxEnvParams]:
    """`'brax/<name>[@<backend>]'` -> (BraxEnv, BraxEnvParams()); unknown names raise EnvError."""
    env_name, backend = parse_brax_name(name)
    brax_envs = _import_brax_envs()
    known = brax_env_names()
    if env_name not in known:
        close = difflib.get_close_matches(env_name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(BRAX_PREFIX + c) for c in close)}?" if close else ""
        raise EnvError(
            f"PPOConfig.env: unknown Brax environment {env_name!r} in {name!r}.{hint} "
            f"Registered Brax environments: {', '.join(known)}."
        )
    kwargs = {} if backend is None else {"backend": backend}
    try:
        raw = brax_envs.get_environment(env_name, **kwargs)
    except ValueError as err:  # e.g. an unknown backend
        raise EnvError(
            f"PPOConfig.env: could not make Brax env {name!r}: {err} "
            "(backends: 'generalized', 'positional', 'spring', 'mjx')"
        ) from err
    return BraxEnv(raw, name=name), BraxEnvParams()


def make(name: str) -> tuple[BraxEnv, BraxEnvParams]:
    """The suite entry (purejaxppo.envs.SUITES): `make("ant@positional")` is `make_brax_env("brax/ant@positional")`."""
    return make_brax_env(BRAX_PREFIX + name)
