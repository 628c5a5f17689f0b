"""One timed compile shared by compare.py's workers (ours, rejax, PureJaxRL), whichever virtualenv runs them.

Imports only jax: the peers' virtualenvs have it, and nothing of purejaxppo.
"""

from __future__ import annotations

import time

import jax


def compile_seeds(fn, keys, seeds: int):
    """Compile `fn(key)` for one seed, or `vmap(fn)` over `keys` `[seeds, ...]`, and time the compile.

    Returns (run, arg, compile_s): `run()` calls the compiled program on `arg` (keys[0] or keys) and blocks
    until its outputs are ready.
    """
    fn, arg = (fn, keys[0]) if seeds == 1 else (jax.vmap(fn), keys)
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(arg).compile()
    compile_s = time.perf_counter() - t

    def run():
        return jax.block_until_ready(compiled(arg))

    return run, arg, compile_s
