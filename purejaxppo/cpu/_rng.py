"""CPU speed: lower JAX's threefry PRNG hash as straight-line code on CPU too.

On CPU, JAX lowers every threefry2x32 call (each `jax.random.split`,
`uniform`, `normal`, ...) to a 5-iteration `while` loop, to keep compile
times small. Inside a PPO rollout that loop sits in the body of the T-step
scan: gymnax's auto-resetting `step` alone makes two such calls per env step,
and XLA:CPU runs each loop iteration as a dozen or more tiny kernels plus
buffer copies. Profiled on CartPole (4 envs, jax 0.10.2), these loops were
the largest single share of the rollout's kernels.

GPU and TPU already use the unrolled form. `purejaxppo.cpu.configure()`
registers that same unrolled lowering for the CPU platform (nothing happens on
import). The hash is the same function, so every random number is bit-for-bit
the same as before (a test checks this); only the compiled program's shape
changes. It applies to all programs lowered afterwards in this process, not
only purejaxppo's, and cannot be undone; programs already lowered keep their
loops.

Opt out with PUREJAXPPO_ROLLED_THREEFRY=1 in the environment; '0', 'false',
'no', 'off' and '' count as not set. The patch uses a private JAX module; if
that moves, nothing is changed and the status says 'unavailable'.
"""

from __future__ import annotations

import functools

from purejaxppo.cpu._xla_flags import env_flag

OPT_OUT_ENV = "PUREJAXPPO_ROLLED_THREEFRY"

_state = {"registered": False}


def _register_unrolled_lowering() -> None:
    """Register JAX's own unrolled threefry lowering for platform 'cpu' (raises if the private API moved)."""
    from jax._src.interpreters import mlir

    try:
        from jax._src.random import threefry2x32 as mod
    except ImportError:  # older jax keeps threefry in jax._src.prng
        from jax._src import prng as mod  # type: ignore[attr-defined,no-redef]  # private module of older jax only
    rule = mlir.lower_fun(functools.partial(mod._threefry2x32_lowering, use_rolled_loops=False), multiple_results=True)
    mlir.register_lowering(mod.threefry2x32_p, rule, platform="cpu")


def unroll_threefry_on_cpu(enabled: bool = True) -> tuple[str, str]:
    """Register the unrolled lowering once per process. Returns (status, reason).

    Statuses: 'unrolled' (registered, now or by an earlier call), 'disabled' (enabled=False),
    'opt-out' (PUREJAXPPO_ROLLED_THREEFRY), 'unavailable' (JAX's private module moved).
    """
    if not enabled:
        done = " (already registered earlier in this process; it cannot be undone)" if _state["registered"] else ""
        return "disabled", "unroll_threefry=False: JAX's lowering left as it is" + done
    if _state["registered"]:
        return "unrolled", "unrolled threefry lowering already registered for CPU in this process"
    if env_flag(OPT_OUT_ENV):
        return "opt-out", f"{OPT_OUT_ENV} is set: JAX's rolled lowering kept"
    try:
        _register_unrolled_lowering()
    except Exception as e:  # private API changed: keep JAX's default
        return "unavailable", f"JAX's private threefry lowering moved ({type(e).__name__}: {e}); nothing changed"
    _state["registered"] = True
    return "unrolled", "registered JAX's unrolled threefry lowering for CPU (same random numbers, fewer kernels)"
