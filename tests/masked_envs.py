"""Tiny gymnax envs with action masks, multi-discrete actions and dict observations (for tests).

`ChoiceEnv(nvec)`: one-step episodes. Each sub-action k has a target in
`[0, nvec[k])` and a random set of legal choices that always contains the
target. The observation is a dict:

    {"target": float32 [sum(nvec)]  one-hot targets, concatenated,
     "action_mask": bool [sum(nvec)] legal choices, concatenated}

and, with `image=True`, also `"board": float32 [5, 5, 2]` (noise, so the CNN
route has a leaf to take). Reward: +1 per sub-action on its target, 0 for
another legal choice, and -100 for an illegal one, which a correctly masked
policy never takes. `nvec=(A,)` gives a plain `Discrete(A)` action space,
longer `nvec` a `purejaxppo.envs.spaces.MultiDiscrete`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purejaxppo.envs.spaces import MultiDiscrete


@struct.dataclass
class ChoiceState(environment.EnvState):
    target: jax.Array  # int32 [K]
    mask: jax.Array  # bool [sum(nvec)]
    board: jax.Array
    time: int


@struct.dataclass
class ChoiceParams(environment.EnvParams):
    max_steps_in_episode: int = 1


class ChoiceEnv(environment.Environment):
    def __init__(self, nvec=(6,), image: bool = False, legal_prob: float = 0.4):
        super().__init__()
        self.nvec = tuple(int(n) for n in nvec)
        self.image = image
        self.legal_prob = legal_prob
        self._bounds = np.cumsum((0,) + self.nvec)

    @property
    def default_params(self) -> ChoiceParams:
        return ChoiceParams()

    @property
    def name(self) -> str:
        return f"Choice-{'x'.join(map(str, self.nvec))}{'-image' if self.image else ''}"

    def _new(self, key):
        k_t, k_m, k_b = jax.random.split(key, 3)
        target = jax.random.randint(k_t, (len(self.nvec),), 0, jnp.asarray(self.nvec))
        onehot = jnp.concatenate([jax.nn.one_hot(target[k], n, dtype=bool) for k, n in enumerate(self.nvec)])
        mask = jnp.logical_or(jax.random.bernoulli(k_m, self.legal_prob, onehot.shape), onehot)
        board = jax.random.normal(k_b, (5, 5, 2))
        return ChoiceState(target=target, mask=mask, board=board, time=0)

    def _obs(self, state):
        onehot = jnp.concatenate([jax.nn.one_hot(state.target[k], n) for k, n in enumerate(self.nvec)])
        obs = {"target": onehot.astype(jnp.float32), "action_mask": state.mask}
        if self.image:
            obs["board"] = state.board
        return obs

    def reset_env(self, key, params):
        state = self._new(key)
        return self._obs(state), state

    def step_env(self, key, state, action, params):
        action = jnp.reshape(action, (len(self.nvec),))
        reward = jnp.asarray(0.0)
        for k, lo in enumerate(self._bounds[:-1]):
            legal = state.mask[lo + action[k]]
            reward += jnp.where(legal, jnp.where(action[k] == state.target[k], 1.0, 0.0), -100.0)
        state = state.replace(time=state.time + 1)
        return self._obs(state), state, reward, jnp.asarray(True), {}

    def observation_space(self, params):
        size = int(sum(self.nvec))
        d = {"target": spaces.Box(0.0, 1.0, (size,), jnp.float32),
             "action_mask": spaces.Box(0, 1, (size,), jnp.bool_)}
        if self.image:
            d["board"] = spaces.Box(-jnp.inf, jnp.inf, (5, 5, 2), jnp.float32)
        return spaces.Dict(d)

    def action_space(self, params):
        return spaces.Discrete(self.nvec[0]) if len(self.nvec) == 1 else MultiDiscrete(self.nvec)
