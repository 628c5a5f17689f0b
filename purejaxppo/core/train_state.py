"""What training carries and returns: `TrainState`, `TrainOutput`, the metric names, and the divergence report.

Built and advanced by `purejaxppo.core.train.Train` (`init`, `update`); all
names here are importable from purejaxppo.core.train and from purejaxppo.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import struct

from purejaxppo.core.normalization import ObsNorm, RewardScaler
from purejaxppo.core.rollout import EnvCarry
from purejaxppo.errors import DivergedError

METRIC_NAMES = (
    "episode_return",
    "episode_length",
    "episodes_completed",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "kl",
    "kl_beta",
    "explained_variance",
    "grad_norm",
    "learning_rate",
    "epochs_completed",
    "diverged",
)


@struct.dataclass
class TrainState:
    """Everything a run carries between updates (checkpoint this to resume).

    obs_norm / reward_scaler are None unless enabled in the config (obs_norm
    is one RunningMeanStd per observation leaf). objective_state is the
    objective's own state (the adaptive beta for kl_adaptive, `()` for the
    others). diverged becomes True (and stays) once an update produced
    non-finite numbers; from then on updates leave params and optimizer state
    unchanged. value_norm is PopArt's statistics of the value targets
    (purejaxppo.core.popart.PopArtStats) with value_normalization='popart', else None.
    """

    params: Any
    opt_state: Any
    env: EnvCarry
    obs_norm: ObsNorm | None
    reward_scaler: RewardScaler | None
    objective_state: Any
    key: jax.Array
    update_step: jax.Array
    last_episode_return: jax.Array
    last_episode_length: jax.Array
    diverged: jax.Array
    # Keyword-only with a default: TrainState(...) without it stays valid, and subclasses may add fields.
    value_norm: Any = dataclasses.field(default=None, kw_only=True)


class TrainOutput(NamedTuple):
    """state: final `TrainState`; metrics: dict of float32 `[num_updates]` (per-update reductions)."""

    state: TrainState
    metrics: dict[str, jax.Array]


def raise_if_diverged(out: TrainOutput) -> None:
    """Raise FloatingPointError if any run in `out` (possibly vmapped) produced non-finite numbers.

    Inside jit a run cannot raise; instead an update that yields NaN/inf
    losses or parameters is not applied, `metrics["diverged"]` becomes 1 from
    that update on, and the final params are the last finite ones. Call this
    on the host after training to turn that report into an error.
    """
    diverged = np.asarray(out.metrics["diverged"]) > 0
    if diverged.any():
        flat = diverged.reshape(-1, diverged.shape[-1])
        runs = np.flatnonzero(flat.any(axis=-1))
        first = int(np.argmax(flat[runs[0]])) + 1  # metrics[..., j] belong to update j + 1
        raise DivergedError(
            f"training diverged: {len(runs)} of {flat.shape[0]} run(s) produced non-finite losses or parameters "
            f"(run {int(runs[0])} first at update {first}); their params were frozen at the last finite values. "
            "Lower learning_rate, enable normalize_obs/normalize_reward, or check the environment's "
            "rewards/observations."
        )
