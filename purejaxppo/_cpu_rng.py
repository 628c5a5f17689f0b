"""CPU speed: lower JAX's threefry PRNG hash as straight-line code on CPU too.

On CPU, JAX lowers every threefry2x32 call (each `jax.random.split`,
`uniform`, `normal`, ...) to a 5-iteration `while` loop, to keep compile
times small. Inside a PPO rollout that loop sits in the body of the T-step
scan: gymnax's auto-resetting `step` alone makes two such calls per env step,
and XLA:CPU runs each loop iteration as a dozen or more tiny kernels plus
buffer copies. Profiled on CartPole (4 envs, jax 0.10.2), these loops were
the largest single share of the rollout's kernels.

GPU and TPU already use the unrolled form. On import, purejaxppo registers
that same unrolled lowering for the CPU platform. The hash is the same
function, so every random number is bit-for-bit the same as before (a test
checks this); only the compiled program's shape changes. It applies to all
programs lowered after the import, not only purejaxppo's.

Opt out with PUREJAXPPO_ROLLED_THREEFRY=1 in the environment (before import);
'0', 'false', 'no', 'off' and '' count as not set.
The patch uses a private JAX module; if that moves, nothing is changed and the
status says 'unavailable'.
"""

from __future__ import annotations

import functools

from purejaxppo._xla_flags import env_flag

OPT_OUT_ENV = "PUREJAXPPO_ROLLED_THREEFRY"


def unroll_threefry_on_cpu() -> str:
    """Register the unrolled threefry lowering for CPU. Returns 'unrolled', 'opt-out' or 'unavailable'."""
    if env_flag(OPT_OUT_ENV):
        return "opt-out"
    try:
        from jax._src.interpreters import mlir

        try:
            from jax._src.random import threefry2x32 as mod
        except ImportError:  # older jax keeps threefry in jax._src.prng
            from jax._src import prng as mod
        rule = mlir.lower_fun(functools.partial(mod._threefry2x32_lowering, use_rolled_loops=False),
                              multiple_results=True)
        mlir.register_lowering(mod.threefry2x32_p, rule, platform="cpu")
    except Exception:  # private API changed: keep JAX's default
        return "unavailable"
    return "unrolled"
