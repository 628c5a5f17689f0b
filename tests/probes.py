"""Probe environments: tiny gymnax envs whose correct values / actions are known.

Each is a real subclass of `gymnax.environments.environment.Environment`, so
using them also tests that make_train accepts a user's own env.

kinds:
  constant     obs 0, reward 1, terminates after 1 step           -> V(0) = 1
  reward_obs   obs +-1 at random, reward = obs, 1 step             -> V(o) = o
  two_step     obs 0 then 1; reward 0 then 1; terminates after 2   -> V(0) = gamma, V(1) = 1
  best_action  obs 0; reward +1 for the good action, -1 otherwise  -> picks it
  obs_action   obs +-1; reward +1 if the action matches the obs    -> picks per obs
  truncated    obs 0, reward 1 forever, cut by a time limit of 5   -> V(0) = 1 / (1 - gamma)

continuous=True gives a Box(-2, 2, (1,)) action: best_action rewards -(a - 1)^2
(best a = 1), obs_action rewards -(a - obs)^2 (best a = obs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProbeState(environment.EnvState):
    obs: jax.Array
    time: int


@struct.dataclass
class ProbeParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


class ProbeEnv(environment.Environment):
    def __init__(self, kind: str, continuous: bool = False):
        super().__init__()
        self.kind = kind
        self.continuous = continuous

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams(max_steps_in_episode=5 if self.kind == "truncated" else 1000)

    def _initial_obs(self, key):
        if self.kind in ("reward_obs", "obs_action"):
            return jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        return jnp.asarray(0.0)

    def reset_env(self, key, params):
        obs = self._initial_obs(key)
        state = ProbeState(obs=obs, time=0)
        return jnp.reshape(obs, (1,)), state

    def step_env(self, key, state, action, params):
        obs = state.obs
        a = jnp.reshape(action, ()).astype(jnp.float32)
        time = state.time + 1
        next_obs, terminated = obs, jnp.asarray(True)
        if self.kind == "constant":
            reward = jnp.asarray(1.0)
        elif self.kind == "reward_obs":
            reward = obs
        elif self.kind == "two_step":
            reward = obs  # 0 at the first step, 1 at the second
            next_obs = jnp.asarray(1.0)
            terminated = obs > 0.5
        elif self.kind == "best_action":
            reward = -jnp.square(a - 1.0) if self.continuous else jnp.where(a == 1, 1.0, -1.0)
        elif self.kind == "obs_action":
            reward = -jnp.square(a - obs) if self.continuous else jnp.where((a * 2 - 1) == obs, 1.0, -1.0)
        elif self.kind == "truncated":
            reward = jnp.asarray(1.0)
            terminated = jnp.asarray(False)
        else:
            raise ValueError(self.kind)
        new_state = ProbeState(obs=next_obs, time=time)
        return jnp.reshape(next_obs, (1,)), new_state, reward, terminated, {}

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def action_space(self, params):
        if self.continuous:
            return spaces.Box(-2.0, 2.0, (1,), jnp.float32)
        return spaces.Discrete(2)

    @property
    def name(self) -> str:
        return f"Probe-{self.kind}{'-cont' if self.continuous else ''}"
