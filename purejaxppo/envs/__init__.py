"""Making environments by name and reading their spaces.

Any object with the gymnax API works: `reset(key, params) -> (obs, state)` and
`step(key, state, action, params) -> (obs, state, reward, terminated,
truncated, info)` with auto-reset and `info["final_observation"]`, plus
`observation_space(params)` / `action_space(params)`. That includes a user's
own subclass of `gymnax.environments.environment.Environment`.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from purejaxppo.envs.spaces import ActionSpec, action_spec_from_space, obs_spec_from_space  # noqa: F401 (re-exported)
from purejaxppo.errors import EnvError

#: The one registry of environment suites, by name prefix ("" for gymnax ids): prefix -> (the module that
#: implements the suite, its pip extra or None). Each module has `make(rest_of_name) -> (env, default params)`
#: and a `SUITE` dict, its row of the docs' environment table (docs/hooks.py reads it without importing).
#: A new suite is one module and one entry here.
SUITES: dict[str, tuple[str, str | None]] = {
    "": ("purejaxppo.envs.gymnax", None),
    "masked/": ("purejaxppo.envs.wrappers", None),
    "brax/": ("purejaxppo.envs.brax", "brax"),
    "playground/": ("purejaxppo.envs.playground", "playground"),
    "craftax/": ("purejaxppo.envs.craftax", "craftax"),
    "jumanji/": ("purejaxppo.envs.jumanji", "jumanji"),
    "xminigrid/": ("purejaxppo.envs.xminigrid", "xminigrid"),
    "navix/": ("purejaxppo.envs.navix", "navix"),
    "envpool/": ("purejaxppo.envs.envpool", "envpool"),
}


def suite_of(name: str) -> tuple[str, str, str | None]:
    """(prefix, module, extra) of the suite an env name selects (the longest matching prefix; "" is gymnax)."""
    prefix = max((p for p in SUITES if name.startswith(p)), key=len)
    module, extra = SUITES[prefix]
    return prefix, module, extra


def make_env(name: str) -> tuple[Any, Any]:
    """Environment and its default params, by name; unknown names raise EnvError with close matches.

    The name's prefix selects the suite (`SUITES`); the library behind it is imported only then, and a
    missing optional one raises ExtraMissingError naming the extra to install.

    * A gymnax id (`"CartPole-v1"`, `"Pendulum-v1"`, `"Breakout-MinAtar"`, ...):
      `gymnax.make(name)` (purejaxppo.envs.gymnax).
    * `"brax/<name>"` or `"brax/<name>@<backend>"` (e.g. `"brax/ant"`,
      `"brax/hopper@positional"`): a Brax env (backend `generalized`,
      `positional`, `spring` or `mjx`; without `@` Brax's default) wrapped by
      `purejaxppo.envs.brax.BraxEnv`: 1000-step time limit
      (`BraxEnvParams.max_steps_in_episode`), terminated/truncated kept apart,
      actions in [-1, 1]. Needs the optional extra: `pip install -e '.[brax]'`.
    * `"masked/<id>"` (e.g. `"masked/CartPole-v1"`, `"masked/Pendulum-v1"`): the
      gymnax task with its velocities masked out of the observation, a
      partially observed task for recurrent policies (purejaxppo.envs.wrappers).
    * `"playground/<name>"`, `"craftax/<name>"`, `"jumanji/<name>"`,
      `"xminigrid/<name>"`, `"navix/<name>"`: another library's env behind an
      adapter to this API (purejaxppo.envs.<library>; each library an optional extra
      of the same name, e.g. `pip install -e '.[craftax]'`).
    """
    if not isinstance(name, str):
        raise EnvError(f"PPOConfig.env: an environment id must be a string, got {type(name).__name__}")
    prefix, module, _ = suite_of(name)
    return importlib.import_module(module).make(name[len(prefix) :])


ENV_METHODS = ("reset", "step", "observation_space", "action_space")


def env_name(env: Any) -> str:
    """A readable name for an environment object: its `name` if it has one, else its class name."""
    try:
        name = env.name
    except Exception:  # a property that fails is no reason to fail here
        name = None
    return name if isinstance(name, str) and name else type(env).__name__


def check_env_api(env: Any, *, where: str = "make_train") -> None:
    """EnvError unless `env` has the gymnax API methods (reset, step, observation_space, action_space)."""
    missing = [m for m in ENV_METHODS if not callable(getattr(env, m, None))]
    if missing:
        raise EnvError(
            f"{where}: env must be an environment object with the gymnax API ({', '.join(ENV_METHODS)}), "
            f"or an environment id string such as 'CartPole-v1'; got {type(env).__name__} {env!r:.60}, "
            f"which lacks {', '.join(missing)}"
        )


def default_env_params(env: Any, *, where: str = "make_train") -> Any:
    """`env.default_params`, or EnvError asking for env_params when the env has none."""
    try:
        return env.default_params
    except AttributeError:
        raise EnvError(f"{where}: env {env_name(env)} has no default_params; pass env_params=...") from None


def env_spaces(env: Any, env_params: Any, *, trace_reset: bool = False, where: str = "make_train") -> tuple[Any, Any]:
    """(observation_space, action_space) of `env` under `env_params`.

    With `trace_reset`, also traces `env.reset` abstractly (`jax.eval_shape`:
    no computation). Params of another env fail in there with an
    AttributeError or TypeError from deep inside the env; that becomes a
    EnvError naming the env.
    """
    try:
        spaces = env.observation_space(env_params), env.action_space(env_params)
        if trace_reset:
            import jax

            jax.eval_shape(lambda key: env.reset(key, env_params), jax.random.key(0))
    except (AttributeError, TypeError) as e:
        raise EnvError(
            f"{where}: env_params do not fit env {env_name(env)}: {type(e).__name__}: {e}; "
            "pass the env's own params, e.g. env.default_params"
        ) from e
    return spaces


def make_action_transform(action_spec: ActionSpec, action_handling: str = "clip"):
    """Map a policy sample to the action the env receives.

    Discrete: identity. Box with "clip": clip to [low, high] (the log-prob stays
    that of the unclipped sample). Box with "tanh": low + (tanh(u) + 1) / 2 *
    (high - low), the squash whose log-det `TanhGaussian.log_prob` accounts for.
    """
    if action_spec.discrete:
        return lambda action: action
    import jax.numpy as jnp

    # A continuous ActionSpec carries its bounds (action_spec_from_space always sets them).
    assert action_spec.low is not None and action_spec.high is not None, "a Box ActionSpec needs low and high"
    low = jnp.asarray(np.reshape(action_spec.low, action_spec.shape), jnp.float32)
    high = jnp.asarray(np.reshape(action_spec.high, action_spec.shape), jnp.float32)
    if action_handling == "clip":
        return lambda action: jnp.clip(action, low, high)
    if action_handling == "tanh":
        if not (np.all(np.isfinite(action_spec.low)) and np.all(np.isfinite(action_spec.high))):
            raise EnvError("PPOConfig.action_handling: 'tanh' needs a bounded Box action space; use 'clip'")
        return lambda action: low + (jnp.tanh(action) + 1.0) * 0.5 * (high - low)
    raise EnvError(f"PPOConfig.action_handling: {action_handling!r} is not one of ('clip', 'tanh')")
