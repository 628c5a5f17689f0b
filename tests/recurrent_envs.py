"""Tiny envs and a counting network for the recurrent-policy tests.

CueRecall     a cue (0 or 1) is shown only at the first step; the episode ends
              after `length` steps; the last step pays 1 if the action equals
              the cue, else 0. Without memory the best policy is a coin flip
              (expected return 0.5); with memory it is 1.
RandomLengths observation = steps since the episode began; episodes end by
              termination after a random 1..6 steps, or by the time limit of
              4 steps (truncation), so boundaries fall at irregular times.
CountingNet   a recurrent module (purejaxppo.core.agent.RecurrentAgent interface)
              whose carry counts the observations seen since its last reset:
              any carry that leaks across an episode boundary shows up as a
              count that disagrees with RandomLengths' observation.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from purejaxppo.core.distributions import Categorical


@struct.dataclass
class CueState(environment.EnvState):
    cue: jax.Array
    time: int


@struct.dataclass
class Params(environment.EnvParams):
    max_steps_in_episode: int = 1000


class CueRecall(environment.Environment):
    def __init__(self, length: int = 4):
        super().__init__()
        self.length = length

    @property
    def default_params(self) -> Params:
        return Params()

    def _obs(self, state):
        first = state.time == 0
        return jnp.stack([jnp.where(first & (state.cue == 0), 1.0, 0.0), jnp.where(first & (state.cue == 1), 1.0, 0.0),
                          jnp.where(state.time == self.length - 1, 1.0, 0.0)])

    def reset_env(self, key, params):
        state = CueState(cue=jax.random.bernoulli(key).astype(jnp.int32), time=0)
        return self._obs(state), state

    def step_env(self, key, state, action, params):
        last = state.time == self.length - 1
        reward = jnp.where(last & (jnp.reshape(action, ()) == state.cue), 1.0, 0.0)
        state = CueState(cue=state.cue, time=state.time + 1)
        return self._obs(state), state, reward, last, {}

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (3,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)


@struct.dataclass
class LengthState(environment.EnvState):
    length: jax.Array
    time: int


class RandomLengths(environment.Environment):
    @property
    def default_params(self) -> Params:
        return Params(max_steps_in_episode=4)

    def reset_env(self, key, params):
        state = LengthState(length=jax.random.randint(key, (), 1, 7), time=0)
        return jnp.zeros((1,)), state

    def step_env(self, key, state, action, params):
        state = LengthState(length=state.length, time=state.time + 1)
        return jnp.reshape(state.time, (1,)).astype(jnp.float32), state, jnp.asarray(1.0), state.time >= state.length, {}

    def observation_space(self, params):
        return spaces.Box(0.0, 100.0, (1,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)


class CountingNet(nn.Module):
    """carry = number of observations seen since the last reset; value = that count; logits from one parameter."""

    @nn.nowrap
    def initial_carry(self, batch: int):
        return jnp.zeros((batch,), jnp.float32)

    def embed(self, obs):
        return obs[:, 0]

    def core(self, carry, x):
        carry = carry + 1.0
        return carry, carry

    @nn.compact
    def heads(self, y):
        bias = self.param("bias", nn.initializers.zeros, (2,))
        return Categorical(logits=jnp.zeros((y.shape[0], 2)) + bias), y

    def __call__(self, carry, obs):
        carry, y = self.core(carry, self.embed(obs))
        return (carry, *self.heads(y))
