"""Which entries of a dict observation each head of a network reads (`PPOConfig.actor_obs_keys` /
`critic_obs_keys`): `select_obs` picks them out of an observation, `check_obs_keys` checks them against the
observation spec, `network_obs_keys` parses, checks and canonicalizes both for `networks.make_network`.
"""

from __future__ import annotations

from purejaxppo.core.config_checks import parse_obs_keys
from purejaxppo.errors import ConfigError

ObsKeys = tuple[str, ...] | None  # which entries of a dict observation a head reads; None: the whole observation


def select_obs(obs, keys: ObsKeys):
    """The part of an observation a head reads (`PPOConfig.actor_obs_keys` / `critic_obs_keys`, parsed by
    `config_checks.parse_obs_keys`): the whole `obs` for None, the entry itself for one key, else the dict of
    those entries (flattened in sorted key order, as any dict)."""
    if keys is None:
        return obs
    if len(keys) == 1:
        return obs[keys[0]]
    return {k: obs[k] for k in keys}


def check_obs_keys(obs_spec, keys: ObsKeys, field: str) -> None:
    """ConfigError naming `field` unless every key names an entry of the (dict) observation spec."""
    if keys is None:
        return
    if not isinstance(obs_spec, dict):
        raise ConfigError(
            f"PPOConfig.{field}: {','.join(keys)!r} selects entries of a dict observation, but this env's "
            f"observation is {'an array' if hasattr(obs_spec, 'shape') else type(obs_spec).__name__}; leave it 'all'"
        )
    missing = [k for k in keys if k not in obs_spec]
    if missing:
        raise ConfigError(
            f"PPOConfig.{field}: {', '.join(map(repr, missing))} not among the observation's keys "
            f"{sorted(obs_spec)}; name some of those (comma-separated) or 'all'"
        )


def network_obs_keys(
    obs_spec, kind: str, actor_obs_keys: str, critic_obs_keys: str, cnn_shared_torso: bool
) -> tuple[ObsKeys, ObsKeys]:
    """(actor_keys, critic_keys) of `make_network`: 'all' or comma-separated keys parsed, checked against
    `obs_spec`, sorted, and None where they name the whole observation. kind: the resolved `network`; the Nature
    CNN refuses keys and a shared CNN torso refuses different ones (ConfigErrors)."""
    actor_keys, critic_keys = parse_obs_keys(actor_obs_keys), parse_obs_keys(critic_obs_keys)
    check_obs_keys(obs_spec, actor_keys, "actor_obs_keys")
    check_obs_keys(obs_spec, critic_keys, "critic_obs_keys")
    # Keys in any order name the same inputs; every key of the observation is the whole observation.
    actor_keys, critic_keys = (
        None if k is None or set(k) == set(obs_spec) else tuple(sorted(k)) for k in (actor_keys, critic_keys)
    )
    if kind == "nature_cnn" and (actor_keys, critic_keys) != (None, None):
        raise ConfigError(
            "PPOConfig.critic_obs_keys: the Nature CNN reads one frame observation with one torso for both heads; "
            "leave actor_obs_keys and critic_obs_keys 'all', or use network 'cnn'"
        )
    if kind == "cnn" and cnn_shared_torso and actor_keys != critic_keys:
        raise ConfigError(
            "PPOConfig.cnn_shared_torso: one conv torso for both heads needs them to read the same inputs "
            f"(actor_obs_keys {actor_obs_keys!r}, critic_obs_keys {critic_obs_keys!r}); set it false"
        )
    return actor_keys, critic_keys
