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

`PrivilegedObservation(env, keep)` (by name `masked/<id>+privileged`, e.g.
`masked/CartPole-v1+privileged`) is the same task with a dict observation:
`obs`, the masked entries, and `privileged`, the env's full observation, which
for these tasks is their whole state (positions and velocities). With
`actor_obs_keys: obs` and `critic_obs_keys: obs,privileged` the actor acts on
what the masked task shows and the critic sees the state (docs: Recipes).

`ScaleReward(env, scale)` multiplies any gymnax-API env's reward by `scale` and
keeps the unscaled reward as `info["score"]` (what the episode returns report).
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
    "names": "`masked/CartPole-v1`, `masked/Pendulum-v1`, …, each also `…+privileged`",
    "actions": "as gymnax",
    "observations": "array (velocities removed); `+privileged`: dict `obs` / `privileged` (the full state)",
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
PRIVILEGED_SUFFIX = "+privileged"
OBS_KEY, PRIVILEGED_KEY = "obs", "privileged"  # the two entries of PrivilegedObservation's observation


class _Wrapper:
    """What a wrapper of a gymnax-API env `self.env` passes through unchanged: its default params, number of
    actions and action space."""

    env: Any

    @property
    def default_params(self) -> Any:
        return self.env.default_params

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def action_space(self, params):
        return self.env.action_space(params)


class MaskedObservation(_Wrapper):
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

    def __repr__(self) -> str:
        return f"MaskedObservation({self._name}, keep={self.keep})"


class PrivilegedObservation(MaskedObservation):
    """A gymnax-API env with a flat observation `[D]` seen as a dict: `obs` the entries `keep` (`[len(keep)]`, what
    `MaskedObservation` shows) and `privileged` the whole observation `[D]` (the env's full state, for a critic
    that may see more than the actor). `info["final_observation"]` is the same dict."""

    def __init__(self, env: Any, keep: Sequence[int], name: str | None = None):
        default = f"{PREFIX}{getattr(env, 'name', type(env).__name__)}{PRIVILEGED_SUFFIX}"
        super().__init__(env, keep, name or default)

    def _split(self, obs) -> dict:
        return {OBS_KEY: self._mask(obs), PRIVILEGED_KEY: obs}

    def reset(self, key, params=None):
        obs, state = self.env.reset(key, params)
        return self._split(obs), state

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        info = dict(info)
        info["final_observation"] = self._split(info["final_observation"])
        return self._split(obs), state, reward, terminated, truncated, info

    def observation_space(self, params):
        from gymnax.environments import spaces

        return spaces.Dict(
            {OBS_KEY: super().observation_space(params), PRIVILEGED_KEY: self.env.observation_space(params)}
        )

    def __repr__(self) -> str:
        return f"PrivilegedObservation({self._name}, keep={self.keep})"


class ScaleReward(_Wrapper):
    """A gymnax-API env whose reward is the wrapped env's times `scale` (a Python float), for training at another
    reward scale (e.g. to test value normalization: PopArt, `value_normalization: popart`). Observations, spaces,
    terminated / truncated and auto-reset are the wrapped env's. `info["score"]` is the wrapped env's own score
    where it gives one, else its unscaled reward, so the episode returns that training and evaluation report
    (purejaxppo.core.rollout.EnvStep.score) stay in the task's units while the agent learns from the scaled reward.

        make_train(config, env=ScaleReward(gymnax.make("CartPole-v1")[0], 1000.0))
    """

    def __init__(self, env: Any, scale: float):
        scale = float(scale)
        if not np.isfinite(scale) or scale == 0.0:
            raise EnvError(f"ScaleReward: scale must be a finite nonzero number, got {scale!r}")
        self.env = env
        self.scale = scale

    @property
    def name(self) -> str:
        return f"{getattr(self.env, 'name', type(self.env).__name__)}*{self.scale:g}"

    def reset(self, key, params=None):
        return self.env.reset(key, params)

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        info = dict(info)
        info.setdefault("score", reward)
        return obs, state, reward * self.scale, terminated, truncated, info

    def observation_space(self, params):
        return self.env.observation_space(params)

    def __repr__(self) -> str:
        return f"ScaleReward({getattr(self.env, 'name', type(self.env).__name__)}, scale={self.scale:g})"


def make_masked_env(name: str) -> tuple[MaskedObservation, Any]:
    """`masked/<gymnax id>` -> (MaskedObservation, default params), `masked/<gymnax id>+privileged` ->
    (PrivilegedObservation, default params); EnvError listing the maskable ids."""
    import gymnax

    base = name[len(PREFIX) :]
    privileged = base.endswith(PRIVILEGED_SUFFIX)
    base = base[: -len(PRIVILEGED_SUFFIX)] if privileged else base
    if base not in MASKS:
        raise EnvError(
            f"PPOConfig.env: {name!r} has no masked version; masked tasks: "
            f"{', '.join(PREFIX + k for k in MASKS)}, each also with {PRIVILEGED_SUFFIX!r} (the full state as a "
            "'privileged' observation entry) (or wrap any env: purejaxppo.envs.wrappers.MaskedObservation(env, "
            "keep=...) or PrivilegedObservation(env, keep=...))"
        )
    env, params = gymnax.make(base)
    wrapper = PrivilegedObservation if privileged else MaskedObservation
    return wrapper(env, MASKS[base], name), params


def make(name: str) -> tuple[MaskedObservation, Any]:
    """The suite entry (purejaxppo.envs.SUITES): `make("CartPole-v1")` is `make_masked_env("masked/CartPole-v1")`."""
    return make_masked_env(PREFIX + name)


def base_env_name(name: str) -> str:
    """The wrapped task's id of a masked name (for drawing its states), else the name itself."""
    if not name.startswith(PREFIX):
        return name
    base = name[len(PREFIX) :]
    return base[: -len(PRIVILEGED_SUFFIX)] if base.endswith(PRIVILEGED_SUFFIX) else base
