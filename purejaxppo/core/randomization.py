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


def cartpole(scale: float) -> Randomize:
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


RANDOMIZERS: dict[str, Callable[[float], Randomize]] = {"cartpole": cartpole}


def from_config(config: Any) -> Randomize | None:
    """The shipped randomizer `config.domain_randomization` names (None for 'none')."""
    name = config.domain_randomization
    return None if name == "none" else RANDOMIZERS[name](config.domain_randomization_scale)


def draw(randomize: Randomize, base: Any, keys: jax.Array) -> Any:
    """One params set per key: leaves `[N, ...]` (keys `[N]`)."""
    return jax.vmap(randomize, in_axes=(0, None))(keys, base)


def redraw(randomize: Randomize, base: Any, params: Any, keys: jax.Array, done: jax.Array) -> Any:
    """`params` (leaves `[N, ...]`) with a fresh draw for every env where `done` `[N]`."""
    fresh = draw(randomize, base, keys)
    return jax.tree.map(lambda f, p: jnp.where(done.reshape((-1,) + (1,) * (p.ndim - 1)), f, p), fresh, params)


def randomized_leaves(randomize: Randomize, base: Any) -> tuple[tuple[str, int], ...]:
    """(name, leaf index) of the float leaves of the env params that `randomize` changes (drawn with two keys,
    eagerly, when make_train builds the Train); a randomizer that fails on the params is a ConfigError."""
    try:
        draws = [randomize(jax.random.key(k), base) for k in (1, 2)]
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"make_train: randomize(key, env_params) failed on this env's params: {type(e).__name__}: {e}"
        ) from e
    base_leaves, paths = jax.tree.leaves(base), jax.tree_util.tree_leaves_with_path(base)
    out = []
    for i, (path, b) in enumerate(paths):
        leaves = [jax.tree.leaves(d)[i] for d in draws]
        if any(np.shape(x) != np.shape(b) for x in leaves):
            raise ConfigError(
                f"make_train: randomize(key, env_params) changed the shape of env param {jax.tree_util.keystr(path)}"
                f" from {np.shape(b)} to {np.shape(leaves[0])}; return params of the base params' shapes"
            )
        floating = jnp.issubdtype(jnp.asarray(leaves[0]).dtype, jnp.floating)
        if floating and any(not np.array_equal(np.asarray(x), np.asarray(b)) for x in leaves):
            out.append((jax.tree_util.keystr(path, simple=True, separator="."), i))
    assert len(base_leaves) == len(paths)
    return tuple(out)


def param_metrics(params: Any, leaves: tuple[tuple[str, int], ...], axis: collectives.Axis = None) -> dict:
    """`env_params/<name>_mean` and `_std` over the envs (of every device on `axis`) of each randomized leaf."""
    flat = jax.tree.leaves(params)
    out = {}
    for name, i in leaves:
        x = flat[i].astype(jnp.float32).reshape(flat[i].shape[0], -1).mean(axis=-1)
        mean, var = collectives.mean_var(x, axis)
        out[f"env_params/{name}_mean"] = mean
        out[f"env_params/{name}_std"] = jnp.sqrt(var)
    return out
