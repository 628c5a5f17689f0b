"""Typed PRNG keys inside pytrees (train states hold `jax.random.key(...)` keys, not raw uint32 arrays)."""

from __future__ import annotations

import jax


def is_key(x) -> bool:
    """Whether `x` is an array of typed PRNG keys (dtype `key<...>`)."""
    return jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)
