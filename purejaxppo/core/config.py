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

Validation: a `PPOConfig` checks every field when it is built (type, range,
and the int32/float32 limits of the compiled program) and raises ConfigError
naming the field. `HParams` built by hand or as a sweep grid are checked by
`validate_hparams` (called by make_train's train/init/update on concrete
hyperparameters; under jit/vmap they are tracers and cannot be checked).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxppo.errors import ConfigError

OBJECTIVES = ("clip", "kl_adaptive", "kl_fixed", "none")
NETWORKS = ("auto", "mlp", "cnn", "gru", "lstm")
RECURRENT_NETWORKS = ("gru", "lstm")
ACTION_HANDLING = ("clip", "tanh")
ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "silu")

INT32_LIMIT = 2**31  # sizes and counters inside the compiled program are int32: each must be < 2**31
FLOAT_EXACT_LIMIT = 2**53  # the largest range of integers a float64 holds exactly (total_timesteps)
_FLOAT32 = np.finfo(np.float32)


def _field(default: Any, doc: str, *, traced: bool = False):
    """A documented config field. `traced=True` marks a float hyperparameter."""
    return dataclasses.field(default=default, metadata={"doc": doc, "traced": traced})


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


HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Everything that defines a PPO run. Frozen and hashable.

    Fields marked *(traced)* are float hyperparameters: `hparams()` returns them
    as arrays, so they can be vmapped or changed without recompiling. All other
    fields are static: they fix shapes or control flow of the compiled program.
    Each field's documentation is in `PPOConfig.describe()` and in the docs' configuration reference.
    """

    # --- environment and budget (static) ---
    env: str = _field(
        "CartPole-v1",
        "gymnax environment id, 'masked/<id>' (velocities masked out: masked/CartPole-v1, masked/Pendulum-v1, ...; "
        "for recurrent policies), 'brax/<name>[@<backend>]' with the .[brax] extra, or another library's env by "
        "prefix: 'playground/<name>', 'craftax/<name>', 'jumanji/<name>', 'xminigrid/<name>', 'navix/<name>', each "
        "with the extra of that name (docs: Environments) (ignored when an env object is passed to make_train).",
    )
    total_timesteps: int = _field(
        500_000,
        "Total environment steps over all parallel envs; num_updates = total_timesteps // (num_envs * num_steps).",
    )
    num_envs: int = _field(4, "N: number of parallel environments (actors).")
    num_steps: int = _field(128, "T: steps each env takes per update (rollout length).")
    num_minibatches: int = _field(
        4, "Minibatches per epoch; minibatch size M = num_envs * num_steps / num_minibatches."
    )
    update_epochs: int = _field(4, "K: epochs over the rollout batch per update.")

    # --- network (static) ---
    actor_hidden: tuple[int, ...] = _field((64, 64), "Hidden layer widths of the actor MLP.")
    critic_hidden: tuple[int, ...] = _field((64, 64), "Hidden layer widths of the critic MLP.")
    activation: str = _field("tanh", f"Hidden activation, one of {ACTIVATIONS}.")
    init_log_std: float = _field(
        0.0, "Initial state-independent log standard deviation of the Gaussian policy (Box action spaces)."
    )
    network: str = _field(
        "auto",
        "Network family: 'mlp' (flattened obs), 'cnn' (image obs [H, W, C], e.g. MinAtar), 'auto' (cnn for rank-3 "
        "observations, else mlp), or a recurrent policy for partially observed tasks: 'gru' or 'lstm' (torso -> "
        "recurrent cell -> actor/critic heads of actor_hidden/critic_hidden; the hidden state is reset at episode "
        "boundaries; num_envs must be divisible by num_minibatches, since minibatches are whole env sequences).",
    )
    rnn_size: int = _field(128, "gru/lstm: size of the recurrent cell's hidden state.")
    rnn_torso: tuple[int, ...] = _field(
        (128,),
        "gru/lstm: widths of the dense layers (with activation) between the observation and the recurrent cell "
        "(after the conv layers for image observations); empty = the flattened observation goes straight in.",
    )
    rnn_shared_core: bool = _field(
        True,
        "gru/lstm: actor and critic share one torso and recurrent cell (default: half the sequential compute, and "
        "the critic's dense value gradient trains the memory the actor reads); false = each has its own torso and "
        "cell.",
    )
    cnn_channels: tuple[int, ...] = _field(
        (16,),
        "Output channels of the CNN's 3x3 stride-1 conv layers (each followed by ReLU); the MLP widths "
        "(actor_hidden / critic_hidden) follow the flattened conv features.",
    )
    cnn_shared_torso: bool = _field(
        False, "With the CNN: one conv torso shared by actor and critic (else each has its own)."
    )
    action_handling: str = _field(
        "clip",
        "Box action spaces: 'clip' (Gaussian sample clipped to the box for the env; log-prob of the unclipped "
        "sample) or 'tanh' (tanh-squashed Gaussian scaled to the box, with the log-det correction in the "
        "log-prob).",
    )

    # --- algorithm switches (static) ---
    objective: str = _field(
        "clip",
        f"Policy objective, one of {OBJECTIVES}: clipped surrogate, adaptive-KL penalty, fixed-KL penalty, plain "
        "importance-weighted surrogate.",
    )
    anneal_lr: bool = _field(True, "Linearly anneal the learning rate from learning_rate to 0 over num_updates.")
    normalize_advantages: bool = _field(True, "Normalize advantages to zero mean and unit std within each minibatch.")
    clip_value_loss: bool = _field(
        True, "Clip the value prediction to within vf_clip_eps of the rollout value (PPO2-style value clipping)."
    )
    truncation_as_termination: bool = _field(
        False,
        "Treat time-limit truncation as termination (no bootstrap). Only for parity with older implementations; "
        "the default bootstraps from V(final_observation).",
    )
    normalize_obs: bool = _field(
        False, "Normalize observations with running mean/variance (kept in the train state), clipped to +-obs_clip."
    )
    normalize_reward: bool = _field(
        False,
        "Scale rewards by the running std of the discounted return (per env, reset at episode end), clipped to "
        "+-reward_clip.",
    )
    use_target_kl: bool = _field(
        False,
        "Enable target-KL early stopping: once an epoch's mean approx KL exceeds target_kl, the remaining epochs "
        "of that update are skipped.",
    )

    # --- logging and in-training evaluation (static) ---
    log_every: int = _field(
        10,
        "Updates between live progress-bar refreshes and metrics.jsonl rows (CLI and purejaxppo.runs.progress); 0 "
        "turns the progress bar off, and then no callback is compiled into the loop. Not used by train() itself.",
    )
    eval_every: int = _field(
        0,
        "Evaluate the deterministic policy every eval_every updates (and after the last) inside the jitted loop, "
        "reported as metrics['eval_return'] (NaN on other updates); 0 = off.",
    )
    eval_episodes: int = _field(
        10, "Episodes per in-training evaluation (run in parallel, each to its end or the env's max_steps_in_episode)."
    )

    # --- float hyperparameters (traced) ---
    learning_rate: float = _field(2.5e-4, "Adam learning rate (initial value when anneal_lr).", traced=True)
    gamma: float = _field(0.99, "Discount factor, in (0, 1].", traced=True)
    gae_lambda: float = _field(0.95, "GAE lambda, in [0, 1].", traced=True)
    clip_eps: float = _field(0.2, "Clipping epsilon of the surrogate objective (objective='clip').", traced=True)
    vf_clip_eps: float = _field(0.2, "Value clipping range (when clip_value_loss).", traced=True)
    ent_coef: float = _field(0.01, "c2: entropy bonus coefficient.", traced=True)
    vf_coef: float = _field(0.5, "c1: value loss coefficient.", traced=True)
    max_grad_norm: float = _field(
        0.5, "Global gradient-norm clipping threshold (optax.clip_by_global_norm semantics).", traced=True
    )
    adam_eps: float = _field(1e-5, "Adam epsilon.", traced=True)
    target_kl: float = _field(0.015, "KL threshold for early stopping (used when use_target_kl).", traced=True)
    kl_target: float = _field(0.01, "d_targ of the adaptive-KL penalty (objective='kl_adaptive').", traced=True)
    kl_beta: float = _field(
        1.0,
        "KL penalty coefficient beta: initial value for 'kl_adaptive' (within [kl_beta_min, kl_beta_max]), "
        "constant for 'kl_fixed' (>= 0).",
        traced=True,
    )
    kl_beta_min: float = _field(
        1e-4,
        "Lower bound on the adaptive beta (objective='kl_adaptive'), > 0. Never binds in normal runs; it stops a "
        "long stretch of tiny KL from halving beta down to a float32 0 that can never double back.",
        traced=True,
    )
    kl_beta_max: float = _field(
        1e4,
        "Upper bound on the adaptive beta (objective='kl_adaptive'), >= kl_beta_min. Never binds in normal runs; "
        "it stops a long stretch of large KL from doubling beta to inf.",
        traced=True,
    )
    obs_clip: float = _field(10.0, "Clip normalized observations to +-obs_clip (when normalize_obs).", traced=True)
    reward_clip: float = _field(10.0, "Clip scaled rewards to +-reward_clip (when normalize_reward).", traced=True)

    def __post_init__(self):
        # Plain Python values only (NumPy/JAX scalars -> int/float/bool, lists of widths -> tuples),
        # so the config stays hashable and YAML-dumpable; then check every field.
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _plain_value(f.name, getattr(self, f.name), f"PPOConfig.{f.name}"))
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

    def replace(self, **changes) -> PPOConfig:
        """A copy with fields changed (validated); unknown names raise ConfigError."""
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
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> PPOConfig:
        """Build from a mapping of field: value; unknown keys, wrong types and bad values raise ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: must be a mapping of field: value (e.g. 'num_envs: 8', one per line), "
                f"got {type(data).__name__} {data!r:.80}"
            )
        kwargs = {}
        for key, value in data.items():
            _check_known(key, source)
            kwargs[key] = coerce_field(key, value, source=source)
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path) -> PPOConfig:
        """Load a YAML file holding a flat mapping of field: value (an empty file gives the defaults).

        A missing file raises FileNotFoundError; a file that is not UTF-8, not
        valid YAML (the message gives the line), not a mapping at the top level,
        or that holds unknown fields or bad values raises ConfigError naming it.
        """
        return cls.from_dict(_read_yaml(path), source=str(path))

    def to_yaml(self, path) -> None:
        import yaml

        with open(path, "w") as fh:
            yaml.safe_dump(self.to_dict(), fh, sort_keys=False)

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name -> documentation string (traced fields are marked)."""
        return {
            f.name: f.metadata["doc"] + (" (traced)" if f.metadata["traced"] else "") for f in dataclasses.fields(cls)
        }


# ----------------------------------------------------------------------------
# Reading YAML
# ----------------------------------------------------------------------------


def _read_yaml(path) -> Any:
    """The parsed content of a YAML file (None for an empty file becomes {}); errors name the file."""
    import yaml

    with open(path, "rb") as fh:  # a missing file: FileNotFoundError naming it
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); save the config as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{at}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    return {} if data is None else data


# ----------------------------------------------------------------------------
# Coercion: plain Python values of the right type
# ----------------------------------------------------------------------------

_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(PPOConfig)}
_HINTS = typing.get_type_hints(PPOConfig)
_GRID_HINT = (
    "a list of values is a grid/sweep, not a single config: build one config per value "
    "(for traced fields, vmap over HParams instead)"
)


def _check_known(name: Any, source: str) -> None:
    if not isinstance(name, str):
        raise ConfigError(f"{source}: config field names must be strings, got {name!r}")
    if name not in _FIELD_TYPES:
        close = difflib.get_close_matches(name, list(_FIELD_TYPES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"{source}: unknown config field {name!r}.{hint} Valid fields: {', '.join(_FIELD_TYPES)}")


def _plain_scalar(value: Any, where: str) -> Any:
    """A NumPy scalar or 0-d NumPy/JAX array as the Python bool/int/float/str; anything else unchanged.

    Floats keep the shortest decimal of their own precision: np.float32(1e-3) -> 0.001.
    """
    if isinstance(value, jax.core.Tracer):
        raise ConfigError(
            f"{where}: got a traced JAX value; PPOConfig is static, so pass traced hyperparameters "
            "through HParams instead (config.hparams().replace(...))"
        )
    if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0:
        value = np.asarray(value)[()]
    if isinstance(value, np.floating):
        return float(str(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def _plain_value(name: str, value: Any, where: str) -> Any:
    """`value` for field `name` in plain Python types, before type and range checks.

    NumPy/JAX scalars become Python ones; a list/array of widths becomes a
    tuple; a whole float becomes an int for int fields (1e6 -> 1000000) and an
    int a float for float fields. A list or array for any other field raises
    ConfigError (a grid of values is not one config). Whatever else is wrong is
    left for the type/range checks to report.
    """
    hint = _HINTS[name]
    is_array = isinstance(value, (np.ndarray, jax.Array))
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) or (is_array and np.ndim(value) == 1):
            return tuple(_plain_scalar(v, where) for v in value)
        return _plain_scalar(value, where)
    if isinstance(value, (list, tuple, set, dict)) or (is_array and np.ndim(value) > 0):
        raise ConfigError(f"{where}: expects {_type_name(hint)}, got {value!r:.80}; {_GRID_HINT}")
    value = _plain_scalar(value, where)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # reported by _validate
            return value
    return value


def _parse_str(hint: Any, text: str) -> Any:
    """A CLI/YAML string for a non-str field, parsed: ints also from '1e6' (YAML 1.1 reads it as a string)."""
    import yaml

    for parse in {int: (int, float), float: (float,)}.get(hint, ()):
        try:
            return parse(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # reported as the wrong type


def _has_type(hint: Any, value: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return True


def coerce_field(name: str, value: Any, *, source: str = "config") -> Any:
    """Check/convert `value` to the type of field `name`, as read from YAML or a CLI `--set`.

    Strings are parsed for non-str fields: ints from '64', '1e6' or '2.5e5'
    (whole numbers only), floats from '3e-4', bools and lists as YAML. NumPy
    and JAX scalars become Python values and a single int is a one-layer
    width list. Raises ConfigError naming the field on a wrong type; ranges are
    checked when the PPOConfig is built.
    """
    _check_known(name, source)
    hint = _HINTS[name]
    where = f"{source}: field {name!r}"
    if isinstance(value, str) and hint is not str:
        value = _parse_str(hint, value)
    value = _plain_value(name, value, where)
    if typing.get_origin(hint) is tuple and isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not _has_type(hint, value):
        whole = " (not a whole number)" if hint is int and isinstance(value, float) else ""
        raise ConfigError(f"{where} expects {_type_name(hint)}, got {value!r}{whole}")
    return value


def _type_name(hint) -> str:
    if typing.get_origin(hint) is tuple:
        return "a list of ints, e.g. [64, 64]"
    if isinstance(hint, types.GenericAlias):
        return str(hint)
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


# ----------------------------------------------------------------------------
# Ranges
# ----------------------------------------------------------------------------


class _Range(NamedTuple):
    """An interval for a float hyperparameter, checked on its float32 value(s)."""

    low: float
    high: float
    low_open: bool
    high_open: bool
    text: str

    @typing.overload
    def holds(self, x: np.floating) -> np.bool_: ...
    @typing.overload
    def holds(self, x: np.ndarray) -> np.ndarray: ...
    def holds(self, x: np.ndarray | np.floating) -> np.ndarray | np.bool_:
        """Elementwise: finite and inside. An open bound at 0 needs a normal float32 (>= 1.2e-38):
        XLA flushes smaller values to 0."""
        low = _FLOAT32.tiny if (self.low_open and self.low == 0.0) else self.low
        above = x > low if (self.low_open and self.low != 0.0) else x >= low
        below = x < self.high if self.high_open else x <= self.high
        return np.isfinite(x) & above & below


_POSITIVE = _Range(0.0, math.inf, True, True, "> 0")
_NON_NEGATIVE = _Range(0.0, math.inf, False, True, ">= 0")

#: Allowed range of each traced hyperparameter (PPOConfig and validate_hparams).
HPARAM_RANGES: dict[str, _Range] = {
    "learning_rate": _POSITIVE,
    "gamma": _Range(0.0, 1.0, True, False, "in (0, 1]"),
    "gae_lambda": _Range(0.0, 1.0, False, False, "in [0, 1]"),
    "clip_eps": _POSITIVE,
    "vf_clip_eps": _POSITIVE,
    "ent_coef": _NON_NEGATIVE,
    "vf_coef": _NON_NEGATIVE,
    "max_grad_norm": _POSITIVE,
    "adam_eps": _POSITIVE,
    "target_kl": _POSITIVE,
    "kl_target": _POSITIVE,
    "kl_beta": _NON_NEGATIVE,
    "kl_beta_min": _POSITIVE,
    "kl_beta_max": _POSITIVE,
    "obs_clip": _POSITIVE,
    "reward_clip": _POSITIVE,
}
assert set(HPARAM_RANGES) == set(HPARAM_FIELDS)

#: Integer fields: (smallest allowed value, exclusive upper limit).
_INT_LIMITS = {
    "total_timesteps": (1, FLOAT_EXACT_LIMIT),
    "num_envs": (1, INT32_LIMIT),
    "num_steps": (1, INT32_LIMIT),
    "num_minibatches": (1, INT32_LIMIT),
    "update_epochs": (1, INT32_LIMIT),
    "eval_episodes": (1, INT32_LIMIT),
    "log_every": (0, INT32_LIMIT),
    "eval_every": (0, INT32_LIMIT),
    "rnn_size": (1, INT32_LIMIT),
}
_LIMIT_TEXT = {
    INT32_LIMIT: "2**31 (it is an int32 inside the compiled program)",
    FLOAT_EXACT_LIMIT: "2**53 (the largest integer range a float64 holds exactly)",
}
INIT_LOG_STD_LIMIT = 20.0  # std = exp(+-20) is already 2e-9 .. 5e8; beyond, float32 log-probs and KLs lose all meaning

_BOOL_FIELDS = (
    "cnn_shared_torso",
    "rnn_shared_core",
    "anneal_lr",
    "normalize_advantages",
    "clip_value_loss",
    "truncation_as_termination",
    "normalize_obs",
    "normalize_reward",
    "use_target_kl",
)
_CHOICES = {"network": NETWORKS, "action_handling": ACTION_HANDLING, "activation": ACTIVATIONS}


def _as_float32(v: float) -> np.float32:
    with np.errstate(over="ignore", under="ignore"):
        return np.float32(v)


def _float32_note(v: float, f32: np.float32) -> str:
    """Why a Python value that looks fine fails as float32 (empty when it does not)."""
    if float(f32) == v:
        return ""
    if abs(float(f32)) < _FLOAT32.tiny:
        return (
            f" (as float32 it is {float(f32)!r}: below the smallest normal float32 {_FLOAT32.tiny:.3g}, "
            "which XLA flushes to 0)"
        )
    return f" (as float32: {f32})"


def _validate(c: PPOConfig) -> None:
    def fail(field, msg):
        raise ConfigError(f"PPOConfig.{field}: {msg}")

    # Integers: type, lower bound, the int32/float64 limits.
    for name, (low, limit) in _INT_LIMITS.items():
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            fail(
                name,
                f"must be a positive integer, got {v!r}"
                if low == 1
                else f"must be an integer >= 0 (0 = off), got {v!r}",
            )
        if v >= limit:
            fail(name, f"must be < {_LIMIT_TEXT[limit]}, got {v}")
    if c.batch_size >= INT32_LIMIT:
        fail(
            "num_envs",
            f"num_envs * num_steps = {c.num_envs} * {c.num_steps} = {c.batch_size} must be < "
            f"{_LIMIT_TEXT[INT32_LIMIT]}, and one rollout of that many transitions would need over "
            f"{c.batch_size * 40 / 1e9:,.0f} GB of memory; lower num_envs or num_steps",
        )
    if c.batch_size % c.num_minibatches:
        fail(
            "num_minibatches",
            f"num_envs * num_steps = {c.batch_size} must be divisible by num_minibatches = {c.num_minibatches}; "
            f"choose a divisor of {c.batch_size}",
        )
    if c.total_timesteps < c.batch_size:
        fail(
            "total_timesteps",
            f"{c.total_timesteps} is smaller than one update's batch num_envs * num_steps = {c.batch_size}; "
            "increase it or shrink the batch",
        )
    if c.num_updates >= INT32_LIMIT:
        fail(
            "total_timesteps",
            f"gives num_updates = total_timesteps // (num_envs * num_steps) = {c.num_updates}, which must be < "
            f"{_LIMIT_TEXT[INT32_LIMIT]}; lower total_timesteps or raise num_envs * num_steps",
        )
    if c.network in RECURRENT_NETWORKS and c.num_envs % c.num_minibatches:
        fail(
            "num_minibatches",
            f"network={c.network!r} trains on minibatches of whole env sequences, so num_envs = "
            f"{c.num_envs} must be divisible by num_minibatches = {c.num_minibatches}; choose a divisor of "
            f"{c.num_envs}",
        )
    for name in ("actor_hidden", "critic_hidden", "cnn_channels", "rnn_torso"):
        v = getattr(c, name)
        if not isinstance(v, tuple) or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in v):
            fail(name, f"must be a tuple of positive ints (may be empty), got {v!r}")
        if any(w >= INT32_LIMIT for w in v):
            fail(name, f"layer widths must be < {_LIMIT_TEXT[INT32_LIMIT]}, got {v!r}")

    # Strings and switches.
    for name, choices in _CHOICES.items():
        if not isinstance(getattr(c, name), str) or getattr(c, name) not in choices:
            fail(name, f"{getattr(c, name)!r} is not one of {choices}")
    from purejaxppo.core.objectives import objective_names  # the registry: users may add objectives

    if not isinstance(c.objective, str) or c.objective not in objective_names():
        fail(
            "objective",
            f"{c.objective!r} is not one of {objective_names()} "
            "(register a new one with purejaxppo.core.objectives.register_objective)",
        )
    if not isinstance(c.env, str) or not c.env:
        fail("env", f"must be a non-empty environment id string, got {c.env!r}")
    for name in _BOOL_FIELDS:
        if not isinstance(getattr(c, name), bool):
            fail(name, f"must be true or false, got {getattr(c, name)!r}")

    # Floats: finite numbers; traced ones checked as the float32 values training will see.
    def num(name):
        v = getattr(c, name)
        try:
            finite = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        except OverflowError:  # an int beyond float range
            finite = False
        if not finite:
            fail(name, f"must be a finite number, got {v!r:.80}")
        return v

    if abs(num("init_log_std")) > INIT_LOG_STD_LIMIT:
        fail(
            "init_log_std",
            f"must be in [-{INIT_LOG_STD_LIMIT:g}, {INIT_LOG_STD_LIMIT:g}] (std = exp(init_log_std)), got "
            f"{c.init_log_std}",
        )
    for name, rule in HPARAM_RANGES.items():
        v = num(name)
        f32 = _as_float32(v)
        if not np.isfinite(f32):
            fail(
                name,
                f"{v!r} overflows float32 (hyperparameters are float32, max {_FLOAT32.max:.3g}); use a smaller value",
            )
        if not rule.holds(f32):
            fail(name, f"must be {rule.text}, got {v!r}{_float32_note(v, f32)}")
    lo, hi, beta = (float(_as_float32(getattr(c, n))) for n in ("kl_beta_min", "kl_beta_max", "kl_beta"))
    if lo > hi:
        fail(
            "kl_beta_min",
            f"kl_beta_min = {c.kl_beta_min} must be <= kl_beta_max = {c.kl_beta_max}; "
            "lower kl_beta_min or raise kl_beta_max",
        )
    if c.objective == "kl_adaptive" and not lo <= beta <= hi:
        fail(
            "kl_beta",
            f"the initial kl_beta = {c.kl_beta} must lie within [kl_beta_min, kl_beta_max] = "
            f"[{c.kl_beta_min}, {c.kl_beta_max}] for objective='kl_adaptive'; change kl_beta or widen the bounds",
        )


# ----------------------------------------------------------------------------
# Traced hyperparameters
# ----------------------------------------------------------------------------


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


def validate_hparams(hp: HParams, *, objective: str | None = None) -> HParams:
    """Check concrete hyperparameters against the ranges of `PPOConfig`; return `hp` unchanged.

    Every field must be a float array of any shape: a scalar, or a batch such
    as a sweep grid, checked elementwise, with errors naming the field, the
    offending value and (batched) its index. Values are checked as float32,
    as training sees them. Also kl_beta_min <= kl_beta_max, and with
    objective='kl_adaptive' kl_beta within them (where the fields broadcast).

    Under jit/vmap the fields are tracers, which cannot be checked: then `hp`
    is returned unchanged, unchecked. make_train's train/init/update call this
    on the hparams they are given, so eager calls are checked and jitted or
    vmapped ones are not: validate a sweep's concrete grid before vmapping it,

        grid = jax.vmap(lambda lr: hp.replace(learning_rate=lr))(jnp.array([1e-4, 3e-4]))
        validate_hparams(grid)
        out = jax.jit(jax.vmap(train, in_axes=(None, 0)))(key, grid)
    """
    if not isinstance(hp, HParams):
        raise ConfigError(
            f"validate_hparams: expected an HParams (e.g. PPOConfig().hparams()), got {type(hp).__name__}"
        )
    leaves = {name: getattr(hp, name) for name in HPARAM_FIELDS}
    if any(isinstance(x, jax.core.Tracer) for x in leaves.values()):
        return hp
    values = {name: _hparam_array(name, x) for name, x in leaves.items()}
    for name, rule in HPARAM_RANGES.items():
        x = values[name]
        _check_entries(name, f"must be finite and {rule.text}", ~rule.holds(x), lambda i, x=x: str(x[i]))
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
    if objective == "kl_adaptive":
        _check_entries(
            "kl_beta",
            "the initial kl_beta must lie within [kl_beta_min, kl_beta_max] for objective='kl_adaptive'",
            (beta < lo) | (beta > hi),
            lambda i: f"kl_beta = {beta[i]!s} outside [{lo[i]!s}, {hi[i]!s}]",
        )
    return hp
