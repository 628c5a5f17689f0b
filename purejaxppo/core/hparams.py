"""`HParams`, the traced float hyperparameters, and the check of concrete values of them.

`PPOConfig` (purejaxppo.core.config) declares each hyperparameter's default and
range; `PPOConfig.hparams()` builds an `HParams` of them, and
`purejaxppo.core.config.validate_hparams` checks hand-built ones and sweep grids
with `check_hparams` below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxppo.core.config_fields import Range
from purejaxppo.errors import ConfigError


@struct.dataclass
class HParams:
    """Traced float hyperparameters (each a float32 scalar, or a batch of them under vmap).

    Build one with `PPOConfig.hparams()` and change fields with `.replace(...)`;
    see `PPOConfig` for the meaning of each field. Values set this way skip
    PPOConfig's checks: `validate_hparams(hp)` applies the same ranges
    (elementwise over a sweep grid).
    """

    learning_rate: jnp.ndarray
    gamma: jnp.ndarray
    gae_lambda: jnp.ndarray
    clip_eps: jnp.ndarray
    vf_clip_eps: jnp.ndarray
    ent_coef: jnp.ndarray
    vf_coef: jnp.ndarray
    max_grad_norm: jnp.ndarray
    adam_eps: jnp.ndarray
    target_kl: jnp.ndarray
    kl_target: jnp.ndarray
    kl_beta: jnp.ndarray
    kl_beta_min: jnp.ndarray
    kl_beta_max: jnp.ndarray
    obs_clip: jnp.ndarray
    reward_clip: jnp.ndarray
    popart_beta: jnp.ndarray


HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))


def check_hparams(hp: HParams, ranges: Mapping[str, Range], objective: str | None) -> HParams:
    """`validate_hparams` (purejaxppo.core.config) with the fields' `ranges`: returns `hp`, or raises ConfigError."""
    if not isinstance(hp, HParams):
        raise ConfigError(
            f"validate_hparams: expected an HParams (e.g. PPOConfig().hparams()), got {type(hp).__name__}"
        )
    leaves = {name: getattr(hp, name) for name in HPARAM_FIELDS}
    if any(isinstance(x, jax.core.Tracer) for x in leaves.values()):
        return hp
    _check_values({name: _hparam_array(name, x) for name, x in leaves.items()}, ranges, objective)
    return hp


def _hparam_array(name: str, x: Any) -> np.ndarray:
    """A concrete HParams leaf as a float32 NumPy array (ConfigError unless it holds floats)."""
    arr = np.asarray(x) if isinstance(x, (np.ndarray, jax.Array, float, np.floating)) else None
    if arr is None or not np.issubdtype(arr.dtype, np.floating):
        dtype = f"dtype {arr.dtype}" if arr is not None else type(x).__name__
        raise ConfigError(
            f"HParams.{name}: must be a float array (any shape), got {dtype}: {x!r:.80}; "
            "pass floats, e.g. jnp.asarray(value, jnp.float32) as PPOConfig.hparams() does"
        )
    with np.errstate(over="ignore", under="ignore"):
        return arr.astype(np.float32)


def _check_entries(name: str, requirement: str, bad: np.ndarray, show) -> None:
    """Raise ConfigError naming field `name` and the first entry where `bad` holds (its index when batched).

    `show(index)` describes the offending value(s) at that index.
    """
    if not bad.any():
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    where = f" at index {first} ({int(bad.sum())} of {bad.size} entries)" if bad.ndim else ""
    raise ConfigError(f"HParams.{name}: {requirement}, got {show(first)}{where}")


def _check_values(values: Mapping[str, np.ndarray], ranges: Mapping[str, Range], objective: str | None) -> None:
    """Raise ConfigError for the first float32 array of `values` outside its range, or a kl_beta rule broken."""
    for name, rule in ranges.items():
        x = values[name]
        _check_entries(
            name, f"must be {'' if rule.inf_ok else 'finite and '}{rule.text}", ~rule.holds(x), lambda i, x=x: str(x[i])
        )
    try:
        lo, hi, beta = np.broadcast_arrays(values["kl_beta_min"], values["kl_beta_max"], values["kl_beta"])
    except ValueError:
        raise ConfigError(
            "HParams.kl_beta_min: the shapes of kl_beta_min, kl_beta_max and kl_beta "
            f"({values['kl_beta_min'].shape}, {values['kl_beta_max'].shape}, {values['kl_beta'].shape}) do not "
            "broadcast"
        ) from None
    _check_entries(
        "kl_beta_min", "must be <= kl_beta_max", lo > hi, lambda i: f"kl_beta_min = {lo[i]!s} > kl_beta_max = {hi[i]!s}"
    )
    if objective in ("kl_adaptive", "clip_kl"):
        zero = " (or be 0)" if objective == "clip_kl" else ""
        _check_entries(
            "kl_beta",
            f"the initial kl_beta must lie within [kl_beta_min, kl_beta_max]{zero} for objective={objective!r}",
            ((beta < lo) | (beta > hi)) & ((beta != 0) if objective == "clip_kl" else True),
            lambda i: f"kl_beta = {beta[i]!s} outside [{lo[i]!s}, {hi[i]!s}]",
        )
