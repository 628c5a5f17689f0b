"""Will a run fit? A memory estimate from the config, checked before anything is compiled.

A config such as `num_envs=10**9` would otherwise spend minutes building an
initial state and then die from the kernel's OOM killer or an XLA
`RESOURCE_EXHAUSTED` deep inside a compiled program. `check_memory` refuses it
up front with a `ResourceError` (a `ValueError`) that gives the estimate, the
device's memory and the fields to change.

The estimate is deliberately simple and errs low (so it never refuses a run
that would fit): the train state (exact, from `jax.eval_shape` when given,
otherwise from the env's observation size), the rollout buffer of
`num_steps x num_envs` transitions, and what one update holds at once (a
shuffled copy of the batch plus the network activations of the full-batch
value/KL passes), all times the number of vmapped seeds.
"""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

import numpy as np

from purejaxppo.errors import ResourceError

SKIP_ENV_VAR = "PUREJAXPPO_SKIP_MEMORY_CHECK"
_F32 = 4


class MemoryEstimate(NamedTuple):
    """Bytes per seed: `state` (train state), `rollout` (T x N transitions), `update` (transient per update)."""

    state: int
    rollout: int
    update: int
    num_seeds: int

    @property
    def per_seed(self) -> int:
        return self.state + self.rollout + self.update

    @property
    def total(self) -> int:
        return self.per_seed * self.num_seeds


def fmt_bytes(n: float) -> str:
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def tree_bytes(tree: Any) -> int:
    """Bytes of a pytree of arrays or ShapeDtypeStructs (typed PRNG keys count as two uint32)."""
    import jax

    total = 0
    for leaf in jax.tree.leaves(tree):
        shape = getattr(leaf, "shape", ())
        dtype = getattr(leaf, "dtype", None)
        try:
            item = np.dtype(dtype).itemsize
        except TypeError:  # a PRNG key dtype
            item = 8
        total += int(math.prod(shape)) * item
    return total


def estimate_memory(
    config, obs_spec, action_spec, num_seeds: int = 1, state_bytes: int | None = None
) -> MemoryEstimate:
    """Estimated bytes of one run of `config` (see the module docstring); `state_bytes` is per seed if given.

    obs_spec: the observation spec (purejaxppo.envs.spaces: a ShapeDtypeStruct or a pytree of them).
    """
    from purejaxppo.core.network_layers import frames_hw, is_atari_frames
    from purejaxppo.envs.spaces import is_array_spec, obs_size

    n, t = int(config.num_envs), int(config.num_steps)
    obs = obs_size(obs_spec) * _F32
    image = is_array_spec(obs_spec) and len(obs_spec.shape) == 3
    if action_spec.discrete:  # one int per (sub-)action, one logit per choice
        act, dist = max(1, len(action_spec.shape)) * _F32, int(action_spec.num_actions) * _F32
    else:
        size = int(math.prod(action_spec.shape))
        act, dist = size * _F32, 2 * size * _F32
    # obs and final_obs, action, distribution parameters, and 8 scalars (reward, value, log-prob,
    # terminated, truncated, next value, advantage, target).
    transition = 2 * obs + act + dist + 8 * _F32
    rollout = n * t * transition
    nature = image and (config.network == "nature_cnn" or (config.network == "auto" and is_atari_frames(obs_spec)))
    if nature:  # the Nature CNN's activations per sample: its three conv outputs and the 512-unit layer
        h, w = frames_hw(tuple(obs_spec.shape))
        width = 512 + 2 * int(action_spec.num_actions)
        for kernel, stride, channels in ((8, 4, 32), (4, 2, 64), (3, 1, 64)):
            h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
            width += h * w * channels
    elif image and config.network in ("cnn", "auto"):
        width = (
            int(math.prod(obs_spec.shape[:2])) * sum(config.cnn_channels)
            + sum(config.actor_hidden)
            + sum(config.critic_hidden)
        )
    else:
        width = sum(config.actor_hidden) + sum(config.critic_hidden)
    update = n * t * (transition + width * _F32)  # the shuffled batch copy + full-batch activations
    if state_bytes is None:
        state_bytes = n * (2 * obs + 16 * _F32)
    return MemoryEstimate(int(state_bytes), int(rollout), int(update), int(num_seeds))


def available_memory(device=None) -> tuple[int | None, str]:
    """(bytes, description) of the memory a run on `device` (default: JAX's first device) can use."""
    import jax

    device = device or jax.devices()[0]
    if device.platform != "cpu":
        try:
            stats = device.memory_stats() or {}
            limit = stats.get("bytes_limit")
            if limit:
                return int(limit), f"memory of {device.device_kind}"
        except Exception:  # backends without memory stats
            pass
        return None, f"memory of {device.device_kind} (unknown)"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available host memory (MemAvailable)"
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "host memory"
    except (ValueError, OSError, AttributeError):
        return None, "host memory (unknown)"


def check_memory(
    config, obs_spec, action_spec, num_seeds: int = 1, state_bytes: int | None = None, device=None
) -> MemoryEstimate:
    """Raise ResourceError if the estimate exceeds the device's memory; return the estimate.

    Set the environment variable PUREJAXPPO_SKIP_MEMORY_CHECK=1 to skip the refusal
    (e.g. when the estimate is known to be too high for a custom env).
    """
    est = estimate_memory(config, obs_spec, action_spec, num_seeds, state_bytes)
    if os.environ.get(SKIP_ENV_VAR, "").strip().lower() not in ("", "0", "false", "no", "off"):
        return est
    limit, what = available_memory(device)
    if limit is not None and est.total > limit:
        seeds = f"{num_seeds} seed(s) x " if num_seeds > 1 else ""
        raise ResourceError(
            f"this run needs about {fmt_bytes(est.total)} of memory ({seeds}state {fmt_bytes(est.state)} + rollout "
            f"{fmt_bytes(est.rollout)} of num_envs * num_steps = {config.num_envs} x {config.num_steps} transitions + "
            f"update {fmt_bytes(est.update)}), more than the {fmt_bytes(limit)} {what}; reduce num_envs or num_steps"
            + (" or the number of seeds" if num_seeds > 1 else "")
            + f" (or set {SKIP_ENV_VAR}=1 if the estimate is wrong)"
        )
    return est
