"""The gymnax suite: every id in `gymnax.registered_envs` ("CartPole-v1", "Breakout-MinAtar", ...)."""

from __future__ import annotations

import difflib
from typing import Any

from purejaxppo.errors import EnvError

#: This suite's row of the environment table in the docs (docs/hooks.py reads it without importing the module).
SUITE = {
    "suite": "gymnax",
    "names": "`CartPole-v1`, `Breakout-MinAtar`, … (all of `gymnax.registered_envs`)",
    "actions": "Discrete, Box",
    "observations": "array",
    "masks": "—",
    "tested": "every env traced, learning rows in returns.md",
    "notes": "MinAtar: the MLP configs `configs/*_minatar_mlp.yaml`",
}


def make(name: str) -> tuple[Any, Any]:
    """`gymnax.make(name)`; an unknown id is an EnvError with close matches and the registered ids."""
    import gymnax

    known = list(gymnax.registered_envs)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise EnvError(
            f"PPOConfig.env: unknown environment {name!r}.{hint} Registered gymnax environments: {', '.join(known)}. "
            "To use your own environment, pass it as make_train(config, env=my_env, env_params=my_params)."
        )
    return gymnax.make(name)
