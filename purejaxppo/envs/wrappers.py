"""Partially observed versions of gymnax tasks, for recurrent policies (`network='gru'/'lstm'`).

`MaskedObservation(env, keep)` shows the agent only the entries `keep` of a
flat observation; dynamics, rewards, time limits, terminated / truncated and
auto-reset are the wrapped env's, and `info["final_observation"]` is masked
the same way. By name, `make_env("masked/<id>")` masks the velocities out of
the classic-control tasks below, so only positions are seen and a policy
must infer velocities from its memory of earlier observations:

    masked/CartPole-v1               [cart position, pole angle]
    masked/Pendulum-v1               [cos theta, sin theta]
    masked/Acrobot-v1                [cos theta1, sin theta1, cos theta2, sin theta2]
    masked/MountainCar-v0            [position]
    masked/MountainCarContinuous-v0  [position]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from purejaxppo.errors import EnvError

#: gymnax id -> indices of the observation entries the masked task keeps (the positions).

#: This suite's row of the environment table in the docs (docs/hooks.py reads it without importing the module).
SUITE = {
    "suite": "partially observed gymnax",
    "names": "`masked/CartPole-v1`, `masked/Pendulum-v1`, …",
    "actions": "as gymnax",
    "observations": "array (velocities removed)",
    "masks": "—",
    "tested": "yes",
    "notes": "for `network: gru/lstm`",
}

MASKS: dict[str, tuple[int, ...]] = {
    "CartPole-v1": (0, 2),
    "Pendulum-v1": (0, 1),
    "Acrobot-v1": (0, 1, 2, 3),
    "MountainCar-v0": (0,),
    "MountainCarContinuous-v0": (0,),
}

PREFIX = "masked/"


class MaskedObservation:
    """A gymnax-API env whose flat observations `[D]` are cut to the entries `keep` (`[len(keep)]`)."""

    def __init__(self, env: Any, keep: Sequence[int], name: str | None = None):
        self.env = env
        self.keep = tuple(int(i) for i in keep)
        if not self.keep:
            raise EnvError("MaskedObservation: keep must name at least one observation entry")
        self._name = name or f"{PREFIX}{getattr(env, 'name', type(env).__name__)}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> Any:
        return self.env.default_params

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def _mask(self, obs):
        return obs[..., np.asarray(self.keep)]

    def reset(self, key, params=None):
        obs, state = self.env.reset(key, params)
        return self._mask(obs), state

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        info = dict(info)
        info["final_observation"] = self._mask(info["final_observation"])
        return self._mask(obs), state, reward, terminated, truncated, info

    def observation_space(self, params):
        from gymnax.environments import spaces

        inner = self.env.observation_space(params)
        if len(inner.shape) != 1 or max(self.keep) >= inner.shape[0] or min(self.keep) < -inner.shape[0]:
            raise EnvError(
                f"MaskedObservation: keep={self.keep} does not index the flat observation of shape "
                f"{tuple(inner.shape)} of {getattr(self.env, 'name', type(self.env).__name__)}"
            )
        idx = np.asarray(self.keep)
        low = np.broadcast_to(np.asarray(inner.low), inner.shape)[idx]
        high = np.broadcast_to(np.asarray(inner.high), inner.shape)[idx]
        return spaces.Box(low, high, (len(self.keep),), inner.dtype)

    def action_space(self, params):
        return self.env.action_space(params)

    def __repr__(self) -> str:
        return f"MaskedObservation({self._name}, keep={self.keep})"


def make_masked_env(name: str) -> tuple[MaskedObservation, Any]:
    """`masked/<gymnax id>` -> (MaskedObservation, default params); EnvError listing the maskable ids."""
    import gymnax

    base = name[len(PREFIX) :]
    if base not in MASKS:
        raise EnvError(
            f"PPOConfig.env: {name!r} has no masked version; masked tasks: "
            f"{', '.join(PREFIX + k for k in MASKS)} (or wrap any env: "
            "purejaxppo.envs.wrappers.MaskedObservation(env, keep=...))"
        )
    env, params = gymnax.make(base)
    return MaskedObservation(env, MASKS[base], name), params


def make(name: str) -> tuple[MaskedObservation, Any]:
    """The suite entry (purejaxppo.envs.SUITES): `make("CartPole-v1")` is `make_masked_env("masked/CartPole-v1")`."""
    return make_masked_env(PREFIX + name)


def base_env_name(name: str) -> str:
    """The wrapped task's id of a masked name (for drawing its states), else the name itself."""
    return name[len(PREFIX) :] if name.startswith(PREFIX) else name
