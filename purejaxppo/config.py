"""Configuration: static `PPOConfig` and traced `HParams`.

The split is the library's central design rule:

* `PPOConfig` holds everything that fixes a shape or a branch of the compiled
  program (sizes, flags, env name, network widths). It is a frozen, hashable
  dataclass; changing any field means a new trace.
* `HParams` holds every float hyperparameter (learning rate, gamma, lambda,
  epsilon, coefficients, ...) as float32 arrays. They are *traced*, so
  `jax.vmap` over a grid of them compiles once.

`PPOConfig` keeps the default value of each float hyperparameter too, so one
YAML file describes a whole run; `config.hparams()` turns those into an
`HParams` pytree.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any

import jax.numpy as jnp
from flax import struct

OBJECTIVES = ("clip", "kl_adaptive", "kl_fixed", "none")
NETWORKS = ("auto", "mlp", "cnn")
ACTION_HANDLING = ("clip", "tanh")
ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "silu")


def _field(default: Any, doc: str, *, traced: bool = False):
    """A documented config field. `traced=True` marks a float hyperparameter."""
    return dataclasses.field(default=default, metadata={"doc": doc, "traced": traced})


@struct.dataclass
class HParams:
    """Traced float hyperparameters (each a float32 scalar, or a batch of them under vmap).

    Build one with `PPOConfig.hparams()` and change fields with `.replace(...)`;
    see `PPOConfig` for the meaning of each field.
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
    obs_clip: jnp.ndarray
    reward_clip: jnp.ndarray


HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Everything that defines a PPO run. Frozen and hashable.

    Fields marked *(traced)* are float hyperparameters: `hparams()` returns them
    as arrays, so they can be vmapped or changed without recompiling. All other
    fields are static: they fix shapes or control flow of the compiled program.
    Each field's documentation is in `PPOConfig.describe()` and in the README.
    """

    # --- environment and budget (static) ---
    env: str = _field("CartPole-v1", "gymnax environment id, or 'brax/<name>[@<backend>]' with the .[brax] extra (ignored when an env object is passed to make_train).")
    total_timesteps: int = _field(500_000, "Total environment steps over all parallel envs; num_updates = total_timesteps // (num_envs * num_steps).")
    num_envs: int = _field(4, "N: number of parallel environments (actors).")
    num_steps: int = _field(128, "T: steps each env takes per update (rollout length).")
    num_minibatches: int = _field(4, "Minibatches per epoch; minibatch size M = num_envs * num_steps / num_minibatches.")
    update_epochs: int = _field(4, "K: epochs over the rollout batch per update.")

    # --- network (static) ---
    actor_hidden: tuple[int, ...] = _field((64, 64), "Hidden layer widths of the actor MLP.")
    critic_hidden: tuple[int, ...] = _field((64, 64), "Hidden layer widths of the critic MLP.")
    activation: str = _field("tanh", f"Hidden activation, one of {ACTIVATIONS}.")
    init_log_std: float = _field(0.0, "Initial state-independent log standard deviation of the Gaussian policy (Box action spaces).")
    network: str = _field("auto", "Network family: 'mlp' (flattened obs), 'cnn' (image obs [H, W, C], e.g. MinAtar), or 'auto' (cnn for rank-3 observations, else mlp).")
    cnn_channels: tuple[int, ...] = _field((16,), "Output channels of the CNN's 3x3 stride-1 conv layers (each followed by ReLU); the MLP widths (actor_hidden / critic_hidden) follow the flattened conv features.")
    cnn_shared_torso: bool = _field(False, "With the CNN: one conv torso shared by actor and critic (else each has its own).")
    action_handling: str = _field("clip", "Box action spaces: 'clip' (Gaussian sample clipped to the box for the env; log-prob of the unclipped sample) or 'tanh' (tanh-squashed Gaussian scaled to the box, with the log-det correction in the log-prob).")

    # --- algorithm switches (static) ---
    objective: str = _field("clip", f"Policy objective, one of {OBJECTIVES}: clipped surrogate, adaptive-KL penalty, fixed-KL penalty, plain importance-weighted surrogate.")
    anneal_lr: bool = _field(True, "Linearly anneal the learning rate from learning_rate to 0 over num_updates.")
    normalize_advantages: bool = _field(True, "Normalize advantages to zero mean and unit std within each minibatch.")
    clip_value_loss: bool = _field(True, "Clip the value prediction to within vf_clip_eps of the rollout value (PPO2-style value clipping).")
    truncation_as_termination: bool = _field(False, "Treat time-limit truncation as termination (no bootstrap). Only for parity with older implementations; the default bootstraps from V(final_observation).")
    normalize_obs: bool = _field(False, "Normalize observations with running mean/variance (kept in the train state), clipped to +-obs_clip.")
    normalize_reward: bool = _field(False, "Scale rewards by the running std of the discounted return (per env, reset at episode end), clipped to +-reward_clip.")
    use_target_kl: bool = _field(False, "Enable target-KL early stopping: once an epoch's mean approx KL exceeds target_kl, the remaining epochs of that update are skipped.")

    # --- logging and in-training evaluation (static) ---
    log_every: int = _field(10, "Updates between live progress-bar refreshes and metrics.jsonl rows (CLI and purejaxppo.progress); 0 turns the progress bar off, and then no callback is compiled into the loop. Not used by train() itself.")
    eval_every: int = _field(0, "Evaluate the deterministic policy every eval_every updates (and after the last) inside the jitted loop, reported as metrics['eval_return'] (NaN on other updates); 0 = off.")
    eval_episodes: int = _field(10, "Episodes per in-training evaluation (run in parallel, each to its end or the env's max_steps_in_episode).")

    # --- float hyperparameters (traced) ---
    learning_rate: float = _field(2.5e-4, "Adam learning rate (initial value when anneal_lr).", traced=True)
    gamma: float = _field(0.99, "Discount factor, in (0, 1].", traced=True)
    gae_lambda: float = _field(0.95, "GAE lambda, in [0, 1].", traced=True)
    clip_eps: float = _field(0.2, "Clipping epsilon of the surrogate objective (objective='clip').", traced=True)
    vf_clip_eps: float = _field(0.2, "Value clipping range (when clip_value_loss).", traced=True)
    ent_coef: float = _field(0.01, "c2: entropy bonus coefficient.", traced=True)
    vf_coef: float = _field(0.5, "c1: value loss coefficient.", traced=True)
    max_grad_norm: float = _field(0.5, "Global gradient-norm clipping threshold (optax.clip_by_global_norm semantics).", traced=True)
    adam_eps: float = _field(1e-5, "Adam epsilon.", traced=True)
    target_kl: float = _field(0.015, "KL threshold for early stopping (used when use_target_kl).", traced=True)
    kl_target: float = _field(0.01, "d_targ of the adaptive-KL penalty (objective='kl_adaptive').", traced=True)
    kl_beta: float = _field(1.0, "KL penalty coefficient beta: initial value for 'kl_adaptive', constant for 'kl_fixed'.", traced=True)
    obs_clip: float = _field(10.0, "Clip normalized observations to +-obs_clip (when normalize_obs).", traced=True)
    reward_clip: float = _field(10.0, "Clip scaled rewards to +-reward_clip (when normalize_reward).", traced=True)

    def __post_init__(self):
        # Coerce list-valued widths (from YAML/CLI) to tuples so the config stays hashable.
        for name in ("actor_hidden", "critic_hidden", "cnn_channels"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        _validate(self)

    # --- derived sizes ---
    @property
    def batch_size(self) -> int:
        """N * T: transitions collected per update."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        """M = N * T / num_minibatches."""
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Number of PPO iterations: total_timesteps // (N * T)."""
        return self.total_timesteps // self.batch_size

    # --- conversions ---
    def hparams(self) -> HParams:
        """The traced float hyperparameters as an `HParams` of float32 scalars."""
        return HParams(**{n: jnp.asarray(getattr(self, n), dtype=jnp.float32) for n in HPARAM_FIELDS})

    def replace(self, **changes) -> "PPOConfig":
        """A copy with fields changed (validated); unknown names raise ValueError."""
        for name in changes:
            _check_known(name, "PPOConfig.replace")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (tuples become lists), suitable for YAML/JSON."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> "PPOConfig":
        """Build from a mapping; unknown keys and wrongly typed values raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of config fields, got {type(data).__name__}")
        kwargs = {}
        for key, value in data.items():
            _check_known(key, source)
            kwargs[key] = coerce_field(key, value, source=source)
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path) -> "PPOConfig":
        """Load a YAML file of config fields (a flat mapping)."""
        import yaml

        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
        return cls.from_dict(data, source=str(path))

    def to_yaml(self, path) -> None:
        import yaml

        with open(path, "w") as fh:
            yaml.safe_dump(self.to_dict(), fh, sort_keys=False)

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name -> documentation string (traced fields are marked)."""
        return {
            f.name: f.metadata["doc"] + (" (traced)" if f.metadata["traced"] else "")
            for f in dataclasses.fields(cls)
        }


# ----------------------------------------------------------------------------
# Validation and coercion
# ----------------------------------------------------------------------------

_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(PPOConfig)}
_HINTS = typing.get_type_hints(PPOConfig)


def _check_known(name: str, source: str) -> None:
    if name not in _FIELD_TYPES:
        close = difflib.get_close_matches(name, list(_FIELD_TYPES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"{source}: unknown config field {name!r}.{hint} Valid fields: {', '.join(_FIELD_TYPES)}")


def coerce_field(name: str, value: Any, *, source: str = "config") -> Any:
    """Check/convert `value` to the type of field `name` (str values are parsed, as from a CLI)."""
    _check_known(name, source)
    hint = _HINTS[name]
    if isinstance(value, str) and hint is not str:
        import yaml

        try:  # YAML 1.1 reads "3e-4" as a string; plain Python parsing first
            value = int(value) if hint is int else float(value) if hint is float else yaml.safe_load(value)
        except ValueError:
            value = yaml.safe_load(value)
    try:
        if hint is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if hint is int:
            if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
                raise TypeError
            return int(value)
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise TypeError
            return value
        origin = typing.get_origin(hint)
        if origin is tuple:
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise TypeError
            return tuple(value)
    except TypeError:
        raise ValueError(f"{source}: field {name!r} expects {_type_name(hint)}, got {value!r}") from None
    return value


def _type_name(hint) -> str:
    if typing.get_origin(hint) is tuple:
        return "a list of ints, e.g. [64, 64]"
    if isinstance(hint, types.GenericAlias):
        return str(hint)
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _validate(c: PPOConfig) -> None:
    def fail(field, msg):
        raise ValueError(f"PPOConfig.{field}: {msg}")

    for name in ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs"):
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            fail(name, f"must be a positive integer, got {v!r}")
    if c.batch_size % c.num_minibatches:
        fail("num_minibatches", f"num_envs * num_steps = {c.batch_size} must be divisible by num_minibatches = {c.num_minibatches}; choose a divisor of {c.batch_size}")
    if c.total_timesteps < c.batch_size:
        fail("total_timesteps", f"{c.total_timesteps} is smaller than one update's batch num_envs * num_steps = {c.batch_size}; increase it or shrink the batch")
    for name in ("actor_hidden", "critic_hidden", "cnn_channels"):
        v = getattr(c, name)
        if not isinstance(v, tuple) or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in v):
            fail(name, f"must be a tuple of positive ints (may be empty), got {v!r}")
    if c.network not in NETWORKS:
        fail("network", f"{c.network!r} is not one of {NETWORKS}")
    if c.action_handling not in ACTION_HANDLING:
        fail("action_handling", f"{c.action_handling!r} is not one of {ACTION_HANDLING}")
    if c.activation not in ACTIVATIONS:
        fail("activation", f"{c.activation!r} is not one of {ACTIVATIONS}")
    if c.objective not in OBJECTIVES:
        fail("objective", f"{c.objective!r} is not one of {OBJECTIVES}")
    if not isinstance(c.env, str) or not c.env:
        fail("env", f"must be a non-empty environment id string, got {c.env!r}")
    for name in ("log_every", "eval_every"):
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            fail(name, f"must be an integer >= 0 (0 = off), got {v!r}")
    if not isinstance(c.eval_episodes, int) or isinstance(c.eval_episodes, bool) or c.eval_episodes <= 0:
        fail("eval_episodes", f"must be a positive integer, got {c.eval_episodes!r}")
    for name in ("cnn_shared_torso", "anneal_lr", "normalize_advantages", "clip_value_loss", "truncation_as_termination",
                 "normalize_obs", "normalize_reward", "use_target_kl"):
        if not isinstance(getattr(c, name), bool):
            fail(name, f"must be true or false, got {getattr(c, name)!r}")

    def num(name):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            fail(name, f"must be a finite number, got {v!r}")
        return v

    num("init_log_std")
    if not 0.0 < num("gamma") <= 1.0:
        fail("gamma", f"must be in (0, 1], got {c.gamma}")
    if not 0.0 <= num("gae_lambda") <= 1.0:
        fail("gae_lambda", f"must be in [0, 1], got {c.gae_lambda}")
    for name in ("learning_rate", "clip_eps", "vf_clip_eps", "max_grad_norm", "adam_eps", "target_kl",
                 "kl_target", "obs_clip", "reward_clip"):
        if num(name) <= 0:
            fail(name, f"must be > 0, got {getattr(c, name)}")
    for name in ("ent_coef", "vf_coef", "kl_beta"):
        if num(name) < 0:
            fail(name, f"must be >= 0, got {getattr(c, name)}")
