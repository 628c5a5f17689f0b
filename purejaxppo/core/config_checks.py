"""Checking a whole config: every field against its own declared constraint, then the cross-field rules.

`validate_config(c)` runs `field_problem` (purejaxppo.core.config_fields) on
each field, from the field's annotation and metadata, so a field is checked by
being declared. What involves more than one field is a small named rule here,
`(config) -> (field, message) | None`, run in `CROSS_FIELD_RULES` order once
every field is fine on its own. `hparam_problems` applies the float ranges and
the kl_beta rules elementwise to concrete `HParams` values (a sweep grid).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from purejaxppo.core.config_fields import INT32_LIMIT, LIMIT_TEXT, as_float32, field_hints, field_problem
from purejaxppo.errors import ConfigError

RECURRENT_NETWORKS = ("gru", "lstm")
ALL_OBS_KEYS = "all"  # actor_obs_keys / critic_obs_keys: the whole observation


def parse_obs_keys(value: str) -> tuple[str, ...] | None:
    """`actor_obs_keys` / `critic_obs_keys` -> None for 'all' (the whole observation), else the keys in order."""
    if value == ALL_OBS_KEYS:
        return None
    return tuple(k.strip() for k in value.split(","))


Problem = tuple[str, str] | None  # (field, what is wrong and how to fix it), or None when the rule holds


def validate_config(c: Any) -> None:
    """Raise ConfigError('<Class>.<field>: ...') for the first field or cross-field rule `c` breaks."""
    owner = type(c).__name__
    hints = field_hints(type(c))
    for f in dataclasses.fields(c):
        problem = field_problem(hints[f.name], f.metadata, getattr(c, f.name))
        if problem is not None:
            raise ConfigError(f"{owner}.{f.name}: {problem}")
    for rule in CROSS_FIELD_RULES:
        broken = rule(c)
        if broken is not None:
            raise ConfigError(f"{owner}.{broken[0]}: {broken[1]}")


# ----------------------------------------------------------------------------- cross-field rules


def batch_fits_int32(c) -> Problem:
    if c.batch_size < INT32_LIMIT:
        return None
    return "num_envs", (
        f"num_envs * num_steps = {c.num_envs} * {c.num_steps} = {c.batch_size} must be < "
        f"{LIMIT_TEXT[INT32_LIMIT]}, and one rollout of that many transitions would need over "
        f"{c.batch_size * 40 / 1e9:,.0f} GB of memory; lower num_envs or num_steps"
    )


def minibatches_divide_batch(c) -> Problem:
    if c.batch_size % c.num_minibatches == 0:
        return None
    return "num_minibatches", (
        f"num_envs * num_steps = {c.batch_size} must be divisible by num_minibatches = {c.num_minibatches}; "
        f"choose a divisor of {c.batch_size}"
    )


def budget_holds_one_update(c) -> Problem:
    if c.total_timesteps >= c.batch_size:
        return None
    return "total_timesteps", (
        f"{c.total_timesteps} is smaller than one update's batch num_envs * num_steps = {c.batch_size}; "
        "increase it or shrink the batch"
    )


def num_updates_fit_int32(c) -> Problem:
    if c.num_updates < INT32_LIMIT:
        return None
    return "total_timesteps", (
        f"gives num_updates = total_timesteps // (num_envs * num_steps) = {c.num_updates}, which must be < "
        f"{LIMIT_TEXT[INT32_LIMIT]}; lower total_timesteps or raise num_envs * num_steps"
    )


def recurrent_minibatches_are_whole_envs(c) -> Problem:
    if c.network not in RECURRENT_NETWORKS or c.num_envs % c.num_minibatches == 0:
        return None
    return "num_minibatches", (
        f"network={c.network!r} trains on minibatches of whole env sequences, so num_envs = "
        f"{c.num_envs} must be divisible by num_minibatches = {c.num_minibatches}; choose a divisor of "
        f"{c.num_envs}"
    )


def obs_keys_well_formed(c) -> Problem:
    for name in ("actor_obs_keys", "critic_obs_keys"):
        keys = parse_obs_keys(getattr(c, name))
        if keys is None:
            continue
        if any(not k for k in keys) or len(set(keys)) != len(keys) or ALL_OBS_KEYS in keys:
            return name, (
                f"{getattr(c, name)!r} must be 'all' or distinct, non-empty observation keys separated by commas "
                "(e.g. 'obs' or 'obs,privileged')"
            )
    if c.network == "nature_cnn" and (c.actor_obs_keys, c.critic_obs_keys) != (ALL_OBS_KEYS, ALL_OBS_KEYS):
        return "critic_obs_keys", (
            "network='nature_cnn' reads one frame observation with one torso shared by both heads; leave "
            "actor_obs_keys and critic_obs_keys 'all', or use network 'cnn'"
        )
    if c.cnn_shared_torso and c.network == "cnn" and c.actor_obs_keys != c.critic_obs_keys:
        return "cnn_shared_torso", (
            "one conv torso shared by actor and critic needs them to read the same inputs, but actor_obs_keys = "
            f"{c.actor_obs_keys!r} and critic_obs_keys = {c.critic_obs_keys!r}; set cnn_shared_torso false"
        )
    return None


ADAPTIVE_BETA = ("kl_adaptive", "clip_kl")  # the built-in objectives whose beta starts within its bounds


def kl_beta_bounds_ordered(c) -> Problem:
    if as_float32(c.kl_beta_min) <= as_float32(c.kl_beta_max):
        return None
    return "kl_beta_min", (
        f"kl_beta_min = {c.kl_beta_min} must be <= kl_beta_max = {c.kl_beta_max}; "
        "lower kl_beta_min or raise kl_beta_max"
    )


def adaptive_kl_beta_within_bounds(c) -> Problem:
    lo, hi, beta = (as_float32(v) for v in (c.kl_beta_min, c.kl_beta_max, c.kl_beta))
    if c.objective not in ADAPTIVE_BETA or lo <= beta <= hi or (c.objective == "clip_kl" and beta == 0):
        return None
    zero = " (or 0, no penalty)" if c.objective == "clip_kl" else ""
    return "kl_beta", (
        f"the initial kl_beta = {c.kl_beta} must lie within [kl_beta_min, kl_beta_max] = "
        f"[{c.kl_beta_min}, {c.kl_beta_max}]{zero} for objective={c.objective!r}; change kl_beta or widen the bounds"
    )


CROSS_FIELD_RULES: tuple[Callable[[Any], Problem], ...] = (
    batch_fits_int32,
    minibatches_divide_batch,
    budget_holds_one_update,
    num_updates_fit_int32,
    recurrent_minibatches_are_whole_envs,
    obs_keys_well_formed,
    kl_beta_bounds_ordered,
    adaptive_kl_beta_within_bounds,
)
