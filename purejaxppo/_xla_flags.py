"""CPU safety: avoid the XLA CPU deadlock seen with vmapped PPO.

On jax 0.10.2's CPU backend, `jax.jit(jax.vmap(train))` of a PPO over several
seeds was observed to hang forever (0% CPU, every thread waiting) unless the
concurrency-optimized scheduler is turned off:

    XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false

XLA reads XLA_FLAGS once, when the first backend is created. So on import,
purejaxppo appends the flag to XLA_FLAGS if (a) no backend has started yet and
(b) the user has not set the flag themselves (either value is respected) and
(c) PUREJAXPPO_KEEP_XLA_FLAGS is not set. If a backend has already started
without the flag, we warn once, since the flag can no longer take effect.
The flag only concerns the CPU backend; GPU/TPU runs are unaffected.
"""

from __future__ import annotations

import os
import warnings

FLAG_NAME = "--xla_cpu_enable_concurrency_optimized_scheduler"
FLAG = f"{FLAG_NAME}=false"
OPT_OUT_ENV = "PUREJAXPPO_KEEP_XLA_FLAGS"


def env_flag(name: str) -> bool:
    """True when environment variable `name` is set to something other than '', '0', 'false', 'no' or 'off'."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # private API moved: assume started, so we only ever warn
        return True


def configure_xla_cpu_flags() -> str:
    """Apply the CPU scheduler flag if still possible. Returns what happened:

    'set' (flag added), 'user' (user set it already), 'opt-out', or
    'too-late' (a backend had already started; a warning was issued if the CPU
    backend is in use).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG_NAME in flags:
        return "user"
    if env_flag(OPT_OUT_ENV):
        return "opt-out"
    if _backends_started():
        try:
            import jax

            on_cpu = jax.default_backend() == "cpu"
        except Exception:
            on_cpu = True
        if on_cpu:
            warnings.warn(
                "purejaxppo was imported after JAX's CPU backend started, so it could not set "
                f"XLA_FLAGS={FLAG}. vmapped training on CPU may deadlock (observed on jax 0.10.2). "
                "Import purejaxppo before running any JAX computation, or set the flag in the environment "
                "before starting Python.",
                RuntimeWarning,
                stacklevel=3,
            )
        return "too-late"
    os.environ["XLA_FLAGS"] = (flags + " " + FLAG).strip()
    return "set"
