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

Validation: a `PPOConfig` checks every field when it is built and raises
ConfigError naming the field. Each field declares its own constraint next to
its default and documentation (`low=`, `range=`, `choices=`, ...; see
purejaxppo.core.config_fields); the type comes from the annotation, and the
few rules that span fields are named functions in purejaxppo.core.config_checks.
`objective` is only checked to be a non-empty name here: make_train resolves it
(purejaxppo.core.objectives). `HParams` built by hand or as a sweep grid are
checked by `validate_hparams` (called by make_train's train/init/update on
concrete hyperparameters; under jit/vmap they are tracers and cannot be checked).
"""

# long-module: PPOConfig is one frozen dataclass whose every field declares its constraint and documentation
# beside its default; the class cannot be split, and its conversions and checks belong with it.

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import jax.numpy as jnp

from purejaxppo.core.config_checks import ALL_OBS_KEYS, RECURRENT_NETWORKS, validate_config
from purejaxppo.core.config_fields import (  # noqa: F401 (INT32_LIMIT re-exported)
    FLOAT_EXACT_LIMIT,
    INT32_LIMIT,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_OR_INF,
    Range,
    declaration_problems,
    field_hints,
)
from purejaxppo.core.config_fields import config_field as _field
from purejaxppo.core.config_io import coerce, plain_value
from purejaxppo.core.config_io import read_yaml as _read_yaml
from purejaxppo.core.hparams import HPARAM_FIELDS, HParams, check_hparams
from purejaxppo.errors import ConfigError

OBJECTIVES = ("clip", "kl_adaptive", "kl_fixed", "none", "clip_kl")  # the built-in objectives (more can be registered)
NETWORKS = ("auto", "mlp", "cnn", "nature_cnn", *RECURRENT_NETWORKS)
CONV_IMPLS = ("patches", "xla")  # purejaxppo.core.conv: PatchConv (patches and one matmul), flax.linen.Conv
ACTION_HANDLING = ("clip", "tanh")
ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "silu")
MATMUL_PRECISIONS = ("default", "high", "highest")  # purejaxppo.core.precision
VALUE_NORMALIZATIONS = ("none", "popart")  # purejaxppo.core.popart
DOMAIN_RANDOMIZERS = ("none", "cartpole", "brax_mass")  # purejaxppo.core.randomization.RANDOMIZERS
INIT_LOG_STD_LIMIT = 20.0  # std = exp(+-20) is already 2e-9 .. 5e8; beyond, float32 log-probs and KLs lose all meaning
_UNIT = Range(0.0, 1.0, False, False, "in [0, 1]")
_UNIT_OPEN_LOW = Range(0.0, 1.0, True, False, "in (0, 1]")
_UNIT_OPEN = Range(0.0, 1.0, True, True, "in (0, 1)")
_LOG_STD = Range(
    -INIT_LOG_STD_LIMIT,
    INIT_LOG_STD_LIMIT,
    False,
    False,
    f"in [-{INIT_LOG_STD_LIMIT:g}, {INIT_LOG_STD_LIMIT:g}] (std = exp(init_log_std))",
)


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
        nonempty="environment id",
    )
    total_timesteps: int = _field(
        500_000,
        "Total environment steps over all parallel envs; num_updates = total_timesteps // (num_envs * num_steps).",
        low=1,
        limit=FLOAT_EXACT_LIMIT,
    )
    num_envs: int = _field(4, "N: number of parallel environments (actors).", low=1)
    num_steps: int = _field(128, "T: steps each env takes per update (rollout length).", low=1)
    num_minibatches: int = _field(
        4, "Minibatches per epoch; minibatch size M = num_envs * num_steps / num_minibatches.", low=1
    )
    update_epochs: int = _field(4, "K: epochs over the rollout batch per update.", low=1)

    # --- network (static) ---
    actor_hidden: tuple[int, ...] = _field((64, 64), "Hidden layer widths of the actor MLP.", low=1)
    critic_hidden: tuple[int, ...] = _field((64, 64), "Hidden layer widths of the critic MLP.", low=1)
    activation: str = _field("tanh", f"Hidden activation, one of {ACTIVATIONS}.", choices=ACTIVATIONS)
    layer_norm: bool = _field(
        False,
        "LayerNorm (learned scale and offset) after every hidden layer of the torsos, before its activation: the "
        "actor's and critic's MLP layers, each conv layer of cnn / nature_cnn (over the channels) and its dense "
        "layer, and the dense layers of a gru/lstm torso (the recurrent cell and the output layers are left as "
        "they are). Off by default (the parameter trees of earlier runs are unchanged).",
    )
    init_log_std: float = _field(
        0.0,
        "Initial state-independent log standard deviation of the Gaussian policy (Box action spaces).",
        range=_LOG_STD,
    )
    network: str = _field(
        "auto",
        "Network family: 'mlp' (flattened obs), 'cnn' (image obs [H, W, C], e.g. MinAtar), 'nature_cnn' (Atari: "
        "the PPO paper's Nature DQN CNN, conv 32 8x8 stride 4, 64 4x4 stride 2, 64 3x3 stride 1, dense 512, ReLU, "
        "one torso shared by linear policy and value heads; uint8 frames divided by 255; frames [C, H, W] with "
        "C <= 4, or [H, W, C], H and W >= 36; actor_hidden, critic_hidden, activation and cnn_* do not apply), "
        "'auto' (nature_cnn for uint8 frames [C, H, W] with C <= 4 and H, W >= 36, e.g. EnvPool Atari's "
        "[4, 84, 84]; cnn for other rank-3 observations; else mlp), or a recurrent policy for partially observed "
        "tasks: 'gru' or 'lstm' (torso -> recurrent cell -> actor/critic heads of actor_hidden/critic_hidden; the "
        "hidden state is reset at episode boundaries; num_envs must be divisible by num_minibatches, since "
        "minibatches are whole env sequences).",
        choices=NETWORKS,
    )
    rnn_size: int = _field(128, "gru/lstm: size of the recurrent cell's hidden state.", low=1)
    rnn_torso: tuple[int, ...] = _field(
        (128,),
        "gru/lstm: widths of the dense layers (with activation) between the observation and the recurrent cell "
        "(after the conv layers for image observations); empty = the flattened observation goes straight in.",
        low=1,
    )
    rnn_shared_core: bool = _field(
        True,
        "gru/lstm: actor and critic share one torso and recurrent cell (default: half the sequential compute, and "
        "the critic's dense value gradient trains the memory the actor reads); false = each has its own torso and "
        "cell.",
    )
    actor_obs_keys: str = _field(
        ALL_OBS_KEYS,
        "Which entries of a dict observation the actor reads: 'all' (the whole observation), or the keys, "
        "comma-separated ('obs', 'state,goal'). An action mask is applied to the policy either way. With mlp, cnn "
        "and gru/lstm networks; evaluation and load_policy need only these keys (load_policy fills the others "
        "with zeros). docs: Recipes.",
        nonempty="'all' or comma-separated observation keys",
    )
    critic_obs_keys: str = _field(
        ALL_OBS_KEYS,
        "Which entries of a dict observation the critic reads: 'all', or comma-separated keys (e.g. "
        "'obs,privileged' with env 'masked/<id>+privileged': a critic that sees the full state). gru/lstm with "
        "keys other than the actor's: with rnn_shared_core (the default) the critic is feed-forward (critic_hidden "
        "on its inputs; the recurrent core is the actor's), without it the critic has its own torso and cell on "
        "its inputs.",
        nonempty="'all' or comma-separated observation keys",
    )
    cnn_channels: tuple[int, ...] = _field(
        (16,),
        "Output channels of the CNN's 3x3 stride-1 conv layers (each followed by ReLU); the MLP widths "
        "(actor_hidden / critic_hidden) follow the flattened conv features.",
        low=1,
    )
    cnn_shared_torso: bool = _field(
        False, "With the CNN: one conv torso shared by actor and critic (else each has its own)."
    )
    conv_impl: str = _field(
        "patches",
        "How every conv layer (cnn, nature_cnn, a gru/lstm torso's on image observations) is computed: 'patches' "
        "(the input's patches gathered by static slices, then one matmul: vmapped seeds and sweep points run "
        "batched matmuls) or 'xla' (flax.linen.Conv, XLA's convolution, which a vmap over per-seed parameters "
        "turns into a grouped convolution, slow on CPU). The same parameters either way (a checkpoint of one "
        "loads in the other); results agree up to float rounding.",
        choices=CONV_IMPLS,
    )
    action_handling: str = _field(
        "clip",
        "Box action spaces: 'clip' (Gaussian sample clipped to the box for the env; log-prob of the unclipped "
        "sample) or 'tanh' (tanh-squashed Gaussian scaled to the box, with the log-det correction in the "
        "log-prob).",
        choices=ACTION_HANDLING,
    )

    domain_randomization: str = _field(
        "none",
        "Per-env domain randomization by a shipped randomizer (purejaxppo.core.randomization): 'cartpole' draws "
        "each env's pole length, pole mass and cart mass (each times U[1 - s, 1 + s], s = "
        "domain_randomization_scale) at every reset, inside the compiled program, 'brax_mass' each link mass of a "
        "Brax env (brax/<name>); the env params become per-env "
        "state and each randomized parameter's mean and std over the envs are metrics (env_params/<name>_mean, "
        "_std). Your own: make_train(..., randomize=fn). docs: Recipes.",
        choices=DOMAIN_RANDOMIZERS,
    )
    domain_randomization_scale: float = _field(
        0.2,
        "s of domain_randomization: each randomized parameter is its default times U[1 - s, 1 + s].",
        range=_UNIT_OPEN,
    )

    # --- algorithm switches (static) ---
    objective: str = _field(
        "clip",
        f"Policy objective: the name of a registered objective (purejaxppo.core.objectives), built in {OBJECTIVES}: "
        "clipped surrogate, adaptive-KL penalty, fixed-KL penalty, plain importance-weighted surrogate, and all of "
        "them in one (clipping and a KL penalty, each switched by its traced setting: one compiled program for a "
        "sweep across the paper's objectives). make_train "
        "resolves the name (an unknown one is refused there), or is given the Objective itself.",
        nonempty="objective name",
    )
    anneal_lr: bool = _field(True, "Linearly anneal the learning rate from learning_rate to 0 over num_updates.")
    anneal_clip_eps: bool = _field(
        False,
        "Anneal clip_eps by the same linear factor alpha (1 -> 0 over num_updates) as anneal_lr anneals the "
        "learning rate: the PPO paper's Atari setting (epsilon = 0.1 alpha).",
    )
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
    value_normalization: str = _field(
        "none",
        "'popart': PopArt (van Hasselt et al. 2016): the critic learns values normalized by running statistics of "
        "the value targets (over the batch, across data-parallel devices; step popart_beta), its output layer "
        "rescaled at each statistics update so its unnormalized predictions are preserved; the value loss (and "
        "vf_clip_eps) is then in normalized units, explained_variance in the targets' own. The statistics are "
        "part of the train state and checkpoints. 'none': plain value targets. docs: Recipes.",
        choices=VALUE_NORMALIZATIONS,
    )
    use_target_kl: bool = _field(
        False,
        "Enable target-KL early stopping: once an epoch's mean approx KL exceeds target_kl, the remaining epochs "
        "of that update are skipped.",
    )

    matmul_precision: str = _field(
        "default",
        "Precision of every float32 matmul and convolution of the compiled program (the train function's init and "
        "update, the in-training evaluation, load_policy's act): 'default' leaves JAX's own setting (on recent "
        "NVIDIA GPUs float32 matmuls may then run in TF32, about 10 mantissa bits; on TPU in one bfloat16 pass), "
        "'high' (TF32, or three bfloat16 passes on TPU) or 'highest' (full float32: exact float32 products on "
        "GPU, at several times the cost of TF32 on the matmuls). No effect on CPU. Recorded in run.json; "
        "docs: Recipes.",
        choices=MATMUL_PRECISIONS,
    )

    # --- logging and in-training evaluation (static) ---
    log_every: int = _field(
        10,
        "Updates between live progress-bar refreshes and metrics.jsonl rows (CLI and purejaxppo.runs.progress); 0 "
        "turns the progress bar off, and then no callback is compiled into the loop. Not used by train() itself.",
        low=0,
        note="0 = off",
    )
    eval_every: int = _field(
        0,
        "Evaluate the deterministic policy every eval_every updates (and after the last) inside the jitted loop, "
        "reported as metrics['eval_return'] (NaN on other updates); 0 = off.",
        low=0,
        note="0 = off",
    )
    eval_episodes: int = _field(
        10,
        "Episodes per in-training evaluation (run in parallel, each to its end or the env's max_steps_in_episode).",
        low=1,
    )

    # --- float hyperparameters (traced) ---
    learning_rate: float = _field(
        2.5e-4, "Adam learning rate (initial value when anneal_lr).", traced=True, range=POSITIVE
    )
    gamma: float = _field(0.99, "Discount factor, in (0, 1].", traced=True, range=_UNIT_OPEN_LOW)
    gae_lambda: float = _field(0.95, "GAE lambda, in [0, 1].", traced=True, range=_UNIT)
    clip_eps: float = _field(
        0.2,
        "Clipping epsilon of the surrogate objective (objective='clip' or 'clip_kl'); inf turns clipping off "
        "(exactly: clip(r, -inf, inf) = r).",
        traced=True,
        range=POSITIVE_OR_INF,
    )
    vf_clip_eps: float = _field(0.2, "Value clipping range (when clip_value_loss).", traced=True, range=POSITIVE)
    ent_coef: float = _field(0.01, "c2: entropy bonus coefficient.", traced=True, range=NON_NEGATIVE)
    vf_coef: float = _field(0.5, "c1: value loss coefficient.", traced=True, range=NON_NEGATIVE)
    max_grad_norm: float = _field(
        0.5,
        "Global gradient-norm clipping threshold (optax.clip_by_global_norm semantics).",
        traced=True,
        range=POSITIVE,
    )
    adam_eps: float = _field(1e-5, "Adam epsilon.", traced=True, range=POSITIVE)
    target_kl: float = _field(
        0.015, "KL threshold for early stopping (used when use_target_kl).", traced=True, range=POSITIVE
    )
    kl_target: float = _field(
        0.01, "d_targ of the adaptive-KL penalty (objective='kl_adaptive' or 'clip_kl').", traced=True, range=POSITIVE
    )
    kl_beta: float = _field(
        1.0,
        "KL penalty coefficient beta: initial value for 'kl_adaptive' (within [kl_beta_min, kl_beta_max]), "
        "constant for 'kl_fixed' (>= 0); for 'clip_kl' the initial value (0, or within the bounds; 0 turns the "
        "penalty off, and kl_beta_min = kl_beta_max = kl_beta keeps it fixed).",
        traced=True,
        range=NON_NEGATIVE,
    )
    kl_beta_min: float = _field(
        1e-4,
        "Lower bound on the adaptive beta (objective='kl_adaptive' or 'clip_kl'), > 0. Never binds in normal runs; "
        "it stops a long stretch of tiny KL from halving beta down to a float32 0 that can never double back.",
        traced=True,
        range=POSITIVE,
    )
    kl_beta_max: float = _field(
        1e4,
        "Upper bound on the adaptive beta (objective='kl_adaptive' or 'clip_kl'), >= kl_beta_min. Never binds in "
        "normal runs; it stops a long stretch of large KL from doubling beta to inf.",
        traced=True,
        range=POSITIVE,
    )
    obs_clip: float = _field(
        10.0, "Clip normalized observations to +-obs_clip (when normalize_obs).", traced=True, range=POSITIVE
    )
    reward_clip: float = _field(
        10.0, "Clip scaled rewards to +-reward_clip (when normalize_reward).", traced=True, range=POSITIVE
    )
    popart_beta: float = _field(
        0.01,
        "Step size of PopArt's moving averages of the value targets' mean and mean square, per update (when "
        "value_normalization='popart'); the k-th update uses max(popart_beta, 1/k), so the first takes the batch's "
        "own statistics.",
        traced=True,
        range=_UNIT_OPEN_LOW,
    )

    def __post_init__(self):
        # Plain Python values only (NumPy/JAX scalars -> int/float/bool, lists of widths -> tuples),
        # so the config stays hashable and YAML-dumpable; then check every field.
        hints = field_hints(type(self))
        for f in dataclasses.fields(self):
            value = plain_value(hints[f.name], getattr(self, f.name), f"{type(self).__name__}.{f.name}")
            object.__setattr__(self, f.name, value)
        validate_config(self)

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


# The field declarations are complete (each field's type has the constraint it needs), or nothing imports.
_DECLARATION_PROBLEMS = declaration_problems(PPOConfig)
if _DECLARATION_PROBLEMS:
    raise TypeError("PPOConfig fields without a complete constraint: " + "; ".join(_DECLARATION_PROBLEMS))

FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(PPOConfig)}
_HINTS = field_hints(PPOConfig)
_META = {f.name: f.metadata for f in dataclasses.fields(PPOConfig)}
assert HPARAM_FIELDS == tuple(name for name, meta in _META.items() if meta["traced"])

#: Allowed range of each traced hyperparameter (PPOConfig and validate_hparams), from the fields' declarations.
HPARAM_RANGES: dict[str, Range] = {name: _META[name]["range"] for name in HPARAM_FIELDS}


def _check_known(name: Any, source: str) -> None:
    if not isinstance(name, str):
        raise ConfigError(f"{source}: config field names must be strings, got {name!r}")
    if name not in FIELD_TYPES:
        close = difflib.get_close_matches(name, list(FIELD_TYPES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"{source}: unknown config field {name!r}.{hint} Valid fields: {', '.join(FIELD_TYPES)}")


def coerce_field(name: str, value: Any, *, source: str = "config") -> Any:
    """Check/convert `value` to the type of field `name`, as read from YAML or a CLI `--set`.

    Strings are parsed for non-str fields: ints from '64', '1e6' or '2.5e5'
    (whole numbers only), floats from '3e-4', bools and lists as YAML. NumPy
    and JAX scalars become Python values and a single int is a one-layer
    width list. Raises ConfigError naming the field on a wrong type; ranges are
    checked when the PPOConfig is built.
    """
    _check_known(name, source)
    return coerce(_HINTS[name], value, f"{source}: field {name!r}")


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
    return check_hparams(hp, HPARAM_RANGES, objective)
