"""Adapters from other JAX environment libraries to the gymnax 1.0 API, each an optional extra.

Every adapter module here turns one library's environments into objects with
the API `purejaxppo.envs` documents:

    reset(key, params) -> (obs, state)
    step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)

with auto-reset inside `step`, `info["final_observation"]` (the observation the
step reached, before the reset), `terminated` (the task's own end: no
bootstrap) and `truncated` (a time limit: bootstrap from V(final observation))
never both True, plus `observation_space(params)`, `action_space(params)`,
`default_params` and `name`. Illegal actions, where a library has them, are a
bool `obs["action_mask"]` (purejaxppo.envs.spaces.ACTION_MASK_KEY).

`make_env("<prefix>/<name>")` selects one by name (the registry `purejaxppo.envs.SUITES`); the library is imported only
then, and a missing one raises an ExtraMissingError (an ImportError) naming the extra to install.
This package's core never imports any of these libraries.

    prefix        extra          module
    playground/   playground     purejaxppo.envs.playground   (MuJoCo Playground)
    craftax/      craftax        purejaxppo.envs.craftax
    jumanji/      jumanji        purejaxppo.envs.jumanji
    xminigrid/    xminigrid      purejaxppo.envs.xminigrid    (XLand-MiniGrid)
    navix/        navix          purejaxppo.envs.navix

(`brax/` and `masked/` are in purejaxppo.envs.brax and purejaxppo.envs.wrappers.)
The helpers below are what the adapters share.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.errors import EnvError, ExtraMissingError


def import_library(module: str, *, extra: str, prefix: str, what: str):
    """Import an adapter's library, or an ExtraMissingError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ExtraMissingError(
            f"PPOConfig.env: {what} environments ('{prefix}<name>') need the optional package "
            f"{module.split('.')[0]!r}, "
            f"which could not be imported ({err}). Install it with: pip install -e '.[{extra}]'"
        ) from err


def unknown_env_error(prefix: str, name: str, known: Iterable[str], what: str) -> EnvError:
    """EnvError for an unknown env name: close matches first, then the library's own names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""
    return EnvError(
        f"PPOConfig.env: unknown {what} environment {name!r} in {prefix + name!r}.{hint} "
        f"{what} environments: {', '.join(known)}."
    )


def raw_key(key: jax.Array) -> jax.Array:
    """An old-style uint32[2] key (what most env libraries expect) from a typed `jax.random.key` or a raw one."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def cast_like(tree: Any, like: Any) -> Any:
    """`tree` with every leaf a strongly typed array of the dtype of the matching leaf of `like`.

    Libraries whose reset and step return states of different dtypes or weak
    types (e.g. an int32 counter after reset, a weakly typed one after step, a
    Python float in a reset state) make `lax.scan` recompile or fail; adapters
    cast both the reset and the stepped state to one fixed set of dtypes.
    A Python scalar in `like` stands for its default JAX dtype (float32, int32).
    """
    return jax.tree.map(lambda x, ref: jnp.asarray(x, jnp.asarray(ref).dtype), tree, like)


def strong(tree: Any) -> Any:
    """Every leaf a strongly typed array of its own (default) dtype: no weak types or Python scalars in a scan carry."""
    return cast_like(tree, tree)


def step_result(obs: Any, state: Any, reward: Any, terminated: jax.Array, truncated: jax.Array, final_obs: Any):
    """The gymnax 1.0 step tuple `(obs, state, reward, terminated, truncated, info)` every adapter returns, with
    `info = {"final_observation": final_obs, "discount": 1 - terminated}`."""
    info = {"final_observation": final_obs, "discount": 1.0 - terminated.astype(jnp.float32)}
    return obs, state, reward, terminated, truncated, info


def where_done(done: jax.Array, if_done: Any, otherwise: Any) -> Any:
    """Per-env select of two pytrees of the same structure (scalar `done` for one env), keeping `otherwise`'s dtypes."""
    return jax.tree.map(lambda a, b: jnp.where(done, a, b).astype(jnp.result_type(b)), if_done, otherwise)
