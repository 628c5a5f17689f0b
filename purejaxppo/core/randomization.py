"""Per-env domain randomization: each env draws its own env params at every reset, inside the compiled program.

`make_train(config, randomize=fn)` (or `PPOConfig.domain_randomization` for a shipped randomizer) with
`fn(key, env_params) -> env_params`: a pure function from a PRNG key and the env's base params to one env's
params (same pytree structure, shapes and dtypes). Then the env params are per-env state (`EnvCarry.env_params`,
leaves `[N, ...]`): `Train.init` draws one set per env before the first reset, and the rollout draws a fresh set
for every env whose episode ended, right after the step that ended it (`redraw`). The env's auto-reset picks
the new episode's first state inside that step, with the finished episode's params; the new params govern the
new episode from its first step on (for the shipped randomizers the reset state does not depend on the
randomized params). Every update reports, for each parameter the randomizer changes, its mean and standard
deviation over the envs (`param_metrics`: `env_params/<name>_mean`, `_std`). The in-training evaluation runs
the base params.

Shipped randomizers (`RANDOMIZERS`, by `PPOConfig.domain_randomization` with `domain_randomization_scale` s):

* `cartpole`: gymnax CartPole's pole half-length, pole mass and cart mass each multiplied by its own factor
  uniform in [1 - s, 1 + s] (total_mass and polemass_length recomputed); for `CartPole-v1` and
  `masked/CartPole-v1[+privileged]`.
* `brax_mass`: a Brax env's (`brax/<name>`) link masses, each times its own U[1 - s, 1 + s]: the env params
  carry each env's `brax.System` (`BraxEnvParams.sys`, purejaxppo.envs.brax), with `link.inertia.mass` (what the
  generalized, positional and spring pipelines integrate) and `body_mass` scaled alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.core import collectives
from purejaxppo.errors import ConfigError

Randomize = Callable[[jax.Array, Any], Any]  # fn(key, env_params) -> env_params


def cartpole(scale: float, env: Any = None) -> Randomize:
    """gymnax CartPole: length, masspole and masscart each times U[1 - scale, 1 + scale] (derived fields kept)."""

    def randomize(key: jax.Array, params: Any) -> Any:
        for name in ("length", "masspole", "masscart"):
            if not hasattr(params, name):
                raise ConfigError(
                    "PPOConfig.domain_randomization: 'cartpole' randomizes gymnax CartPole's params (length, "
                    f"masspole, masscart), but this env's params {type(params).__name__} have no {name!r}; use it "
                    "with CartPole-v1 or masked/CartPole-v1, or pass make_train(..., randomize=fn)"
                )
        k_len, k_pole, k_cart = jax.random.split(key, 3)
        factor = lambda k: jax.random.uniform(k, (), jnp.float32, 1.0 - scale, 1.0 + scale)  # noqa: E731
        length = params.length * factor(k_len)
        masspole = params.masspole * factor(k_pole)
        masscart = params.masscart * factor(k_cart)
        return params.replace(
            length=length,
            masspole=masspole,
            masscart=masscart,
            total_mass=masspole + masscart,
            polemass_length=masspole * length,
        )

    return randomize


def brax_mass(scale: float, env: Any) -> Randomize:
    """A Brax env (purejaxppo.envs.brax.BraxEnv): every link's mass times its own U[1 - scale, 1 + scale], in the
    System the env params carry (`BraxEnvParams.sys`; the env's own System when the params have none)."""
    raw = getattr(getattr(env, "env", None), "unwrapped", getattr(env, "env", None))
    base_sys = getattr(raw, "sys", None)
    if base_sys is None or not hasattr(base_sys, "link"):
        raise ConfigError(
            "PPOConfig.domain_randomization: 'brax_mass' randomizes a Brax env's link masses (env 'brax/<name>' "
            "with a generalized, positional or spring backend); this env has no brax.System; pass "
            "make_train(..., randomize=fn) for your own"
        )

    def randomize(key: jax.Array, params: Any) -> Any:
        sys = base_sys if getattr(params, "sys", None) is None else params.sys
        mass = sys.link.inertia.mass
        factor = jax.random.uniform(key, mass.shape, jnp.float32, 1.0 - scale, 1.0 + scale)
        changes = {"link.inertia.mass": mass * factor}
        body = getattr(sys, "body_mass", None)
        if body is not None and body.shape[-1] == mass.shape[-1] + 1:  # the world body first
            changes["body_mass"] = body.at[1:].multiply(factor)
        return params.replace(sys=sys.tree_replace(changes))

    return randomize


RANDOMIZERS: dict[str, Callable[[float, Any], Randomize]] = {"cartpole": cartpole, "brax_mass": brax_mass}


def from_config(config: Any, env: Any = None) -> Randomize | None:
    """The shipped randomizer `config.domain_randomization` names for `env` (None for 'none')."""
    name = config.domain_randomization
    return None if name == "none" else RANDOMIZERS[name](config.domain_randomization_scale, env)


def draw(randomize: Randomize, base: Any, keys: jax.Array) -> Any:
    """One params set per key: leaves `[N, ...]` (keys `[N]`)."""
    return jax.vmap(randomize, in_axes=(0, None))(keys, base)


def redraw(randomize: Randomize, base: Any, params: Any, keys: jax.Array, done: jax.Array) -> Any:
    """`params` (leaves `[N, ...]`) with a fresh draw for every env where `done` `[N]`."""
    fresh = draw(randomize, base, keys)
    return jax.tree.map(lambda f, p: jnp.where(done.reshape((-1,) + (1,) * (p.ndim - 1)), f, p), fresh, params)


def randomized_leaves(randomize: Randomize, base: Any) -> tuple[tuple[str, int], ...]:
    """(name, leaf index) of the float leaves of the env params that `randomize` draws differently for two keys
    (drawn eagerly when make_train builds the Train); a randomizer that fails, or whose draws differ in structure
    or shapes, is a ConfigError."""
    try:
        first, second = (randomize(jax.random.key(k), base) for k in (1, 2))
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"make_train: randomize(key, env_params) failed on this env's params: {type(e).__name__}: {e}"
        ) from e
    if jax.tree.map(np.shape, first) != jax.tree.map(np.shape, second):
        raise ConfigError(
            "make_train: randomize(key, env_params) must return params of one structure and shapes for every key "
            "(got different ones for two keys); draw every field with fixed shapes"
        )
    out = []
    for i, ((path, a), b) in enumerate(
        zip(jax.tree_util.tree_leaves_with_path(first), jax.tree.leaves(second), strict=True)
    ):
        if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) and not np.array_equal(np.asarray(a), np.asarray(b)):
            out.append((jax.tree_util.keystr(path, simple=True, separator="."), i))
    return tuple(out)


def param_metrics(params: Any, leaves: tuple[tuple[str, int], ...], axis: collectives.Axis = None) -> dict:
    """`env_params/<name>_mean` and `_std` over the envs (of every device on `axis`) of each randomized leaf; a
    leaf of several entries per env (a Brax System's link masses `[N, L]`) gives one pair per entry,
    `<name>.<k>` (at most MAX_ENTRIES of them)."""
    flat = jax.tree.leaves(params)
    out = {}
    for name, i in leaves:
        x = flat[i].astype(jnp.float32).reshape(flat[i].shape[0], -1)
        entries = [(name, x[:, 0])] if x.shape[1] == 1 else [(f"{name}.{k}", x[:, k]) for k in range(x.shape[1])]
        for label, column in entries[:MAX_ENTRIES]:
            mean, var = collectives.mean_var(column, axis)
            out[f"env_params/{label}_mean"] = mean
            out[f"env_params/{label}_std"] = jnp.sqrt(var)
    return out


MAX_ENTRIES = 16  # per randomized leaf, the entries param_metrics reports
