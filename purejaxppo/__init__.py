"""purejaxppo: Proximal Policy Optimization, end to end in JAX.

from purejaxppo import PPOConfig, make_train
train = make_train(PPOConfig(env="CartPole-v1"))
out = jax.jit(train)(jax.random.key(0))
"""

# Importing changes nothing global: CPU settings (XLA scheduler flag, unrolled threefry) are opt-in,
# `purejaxppo.cpu.configure()` before any JAX computation (the CLI and the benchmarks call it).
from purejaxppo import cpu  # noqa: E402
from purejaxppo.core.config import HParams, PPOConfig, validate_hparams  # noqa: E402
from purejaxppo.core.distributions import Categorical, DiagGaussian  # noqa: E402
from purejaxppo.core.evaluate import build_evaluate, make_evaluate  # noqa: E402
from purejaxppo.core.gae import compute_gae  # noqa: E402
from purejaxppo.core.networks import ActionSpec, ActorCritic, make_network  # noqa: E402
from purejaxppo.core.train import METRIC_NAMES, TrainOutput, TrainState, make_train, raise_if_diverged  # noqa: E402
from purejaxppo.cpu import configure as configure_cpu  # noqa: E402
from purejaxppo.envs import make_env  # noqa: E402
from purejaxppo.errors import (  # noqa: E402
    BuildError,
    CheckpointError,
    ConfigError,
    DivergedError,
    EnvError,
    EnvUnavailableError,
    ExtraMissingError,
    PureJaxPPOError,
    ResourceError,
    RunError,
    RunWriteError,
)
from purejaxppo.runs import load_policy, load_run, train_run  # noqa: E402
from purejaxppo.runs.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from purejaxppo.runs.progress import ProgressReporter, with_progress  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ActionSpec",
    "ActorCritic",
    "Categorical",
    "DiagGaussian",
    "HParams",
    "METRIC_NAMES",
    "PPOConfig",
    "TrainOutput",
    "TrainState",
    "compute_gae",
    "configure_cpu",
    "cpu",
    "make_env",
    "make_network",
    "make_train",
    "raise_if_diverged",
    "validate_hparams",
    # errors (purejaxppo.errors): the CLI shows these as one line; anything else is a bug with its traceback
    "PureJaxPPOError",
    "BuildError",
    "ConfigError",
    "DivergedError",
    "EnvError",
    "EnvUnavailableError",
    "ExtraMissingError",
    "ResourceError",
    "RunError",
    "RunWriteError",
    # run folders, checkpoints, evaluation, progress (purejaxppo.runs / checkpoint / evaluate / progress)
    "CheckpointError",
    "ProgressReporter",
    "build_evaluate",
    "load_checkpoint",
    "load_policy",
    "load_run",
    "make_evaluate",
    "save_checkpoint",
    "train_run",
    "with_progress",
]
