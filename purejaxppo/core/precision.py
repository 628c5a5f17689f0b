"""The matmul precision of a run's compiled programs (`PPOConfig.matmul_precision`).

JAX fixes the precision of each matmul and convolution when it is traced (`lax.dot_general` reads
`jax_default_matmul_precision` as it records the operation), so a context entered while a function is traced is
kept by the compiled program, whenever and wherever it is jitted. `matmul_precision(config)` is that context;
`Train.init` and `Train.update` (and through them the whole train function and the in-training evaluation),
`make_evaluate`, `make_episode_rollout` and `load_policy` trace inside it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax


def matmul_precision(config: Any) -> contextlib.AbstractContextManager:
    """The context `config.matmul_precision` sets while a program is traced.

    'default': none (JAX's own setting, `jax_default_matmul_precision`, applies: on recent NVIDIA GPUs float32
    matmuls may run in TF32); 'high' / 'highest': `jax.default_matmul_precision` of that name.
    """
    name = getattr(config, "matmul_precision", "default")
    if name == "default":
        return contextlib.nullcontext()
    return jax.default_matmul_precision(name)


def precision_info(config: Any) -> dict[str, Any]:
    """What run.json records: the config's setting and JAX's global default it leaves in place for 'default'."""
    return {
        "setting": getattr(config, "matmul_precision", "default"),
        "jax_default_matmul_precision": getattr(jax.config, "jax_default_matmul_precision", None),
        "backend": jax.default_backend(),
    }
