"""Explicit CPU settings for fast, hang-free PPO under XLA:CPU: `configure()`.

`import purejaxppo` changes nothing global. Call this once, before any JAX
computation, to get the settings the CLI and the benchmark scripts use
(`train_run` and `sweep_run` leave them to you):

    import purejaxppo.cpu; purejaxppo.cpu.configure()   # or purejaxppo.configure_cpu()

It does two things, each with an opt-out:

1. Appends `--xla_cpu_enable_concurrency_optimized_scheduler=false` to the
   `XLA_FLAGS` environment variable (purejaxppo.cpu._xla_flags). On jax 0.10.2 a
   vmapped PPO over seeds was seen to deadlock on CPU without it. Only for
   jaxlib in `[0.4.35, 0.11)` (`_xla_flags.FLAG_JAX_RANGE`), only if XLA_FLAGS
   does not name the flag already, and only while no JAX backend has started
   (XLA reads XLA_FLAGS once): later it warns (RuntimeWarning, once per
   process) instead. This is a process-wide change that subprocesses inherit.
   Opt out: `scheduler_flag=False` or PUREJAXPPO_KEEP_XLA_FLAGS=1.
2. Registers JAX's unrolled threefry lowering for CPU (purejaxppo.cpu._rng):
   the same random numbers, fewer tiny kernels; it affects every program
   lowered afterwards in this process. Opt out: `unroll_threefry=False` or
   PUREJAXPPO_ROLLED_THREEFRY=1.

For both environment variables '', '0', 'false', 'no' and 'off' count as not set.
Calling it again is harmless: nothing is applied twice.
"""

from __future__ import annotations

from purejaxppo.cpu import _rng as _cpu_rng
from purejaxppo.cpu import _xla_flags


def configure(*, scheduler_flag: bool = True, unroll_threefry: bool = True) -> dict[str, str]:
    """Apply purejaxppo's CPU settings (idempotent). Returns what happened and why:

    {"scheduler_flag": "set" | "user" | "opt-out" | "disabled" | "not-needed" | "too-late",
     "scheduler_flag_reason": str,
     "threefry": "unrolled" | "opt-out" | "disabled" | "unavailable",
     "threefry_reason": str,
     "jaxlib": version string}
    """
    flag, flag_reason = _xla_flags.apply_scheduler_flag(scheduler_flag)
    rng, rng_reason = _cpu_rng.unroll_threefry_on_cpu(unroll_threefry)
    return {
        "scheduler_flag": flag,
        "scheduler_flag_reason": flag_reason,
        "threefry": rng,
        "threefry_reason": rng_reason,
        "jaxlib": _xla_flags.jaxlib_version(),
    }
