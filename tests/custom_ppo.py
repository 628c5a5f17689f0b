"""A researcher's own module, as tests/test_build.py uses it: an environment, a network and an objective that
purejaxppo does not ship, and the builder that puts them together (`--build tests.custom_ppo:build`).

Nothing here is registered in purejaxppo's own modules except through the public API at import time
(`register_objective`), so a process that never imports this module does not know the objective: the
builder is what makes every process, later command and sweep program see the same Train.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from purejaxppo import Categorical, PPOConfig, make_train
from purejaxppo.core.objectives import Objective, clipped_surrogate, register_objective

# ------------------------------------------------------------------ the environment


@struct.dataclass
class WalkState:
    pos: jax.Array  # int32, 0..length-1
    goal: jax.Array  # int32, the end the agent should walk to (0 or length-1)
    time: jax.Array


@struct.dataclass
class WalkParams:
    length: int = 7
    max_steps_in_episode: int = 24


class GoalWalk:
    """Walk left or right on a line to the goal end shown in the observation: +1 and terminated there,
    -0.01 per step otherwise, truncated after `max_steps_in_episode`. Auto-resets inside `step` (gymnax 1.0 API)."""

    name = "GoalWalk"

    @property
    def default_params(self) -> WalkParams:
        return WalkParams()

    def _obs(self, s: WalkState, p: WalkParams) -> jax.Array:
        scale = jnp.float32(p.length - 1)
        t = s.time / jnp.float32(p.max_steps_in_episode)
        return jnp.stack([s.pos / scale, s.goal / scale, t]).astype(jnp.float32)

    def reset(self, key, params: WalkParams):
        goal = jax.random.bernoulli(key).astype(jnp.int32) * (params.length - 1)
        s = WalkState(jnp.int32(params.length // 2), goal, jnp.int32(0))
        return self._obs(s, params), s

    def step(self, key, state: WalkState, action, params: WalkParams):
        pos = jnp.clip(state.pos + 2 * action.astype(jnp.int32) - 1, 0, params.length - 1)
        moved = WalkState(pos, state.goal, state.time + 1)
        terminated = pos == state.goal
        truncated = jnp.logical_and(~terminated, moved.time >= params.max_steps_in_episode)
        reward = jnp.where(terminated, 1.0, -0.01).astype(jnp.float32)
        final_obs = self._obs(moved, params)
        reset_obs, reset_state = self.reset(key, params)
        done = terminated | truncated
        state = jax.tree.map(lambda r, m: jnp.where(done, r, m), reset_state, moved)
        obs = jnp.where(done, reset_obs, final_obs)
        return obs, state, reward, terminated, truncated, {"final_observation": final_obs}

    def observation_space(self, params: WalkParams):
        return spaces.Box(0.0, 1.0, (3,), jnp.float32)

    def action_space(self, params: WalkParams):
        return spaces.Discrete(2)


# ------------------------------------------------------------------ the network


class TinyActorCritic(nn.Module):
    """One shared hidden layer, a Categorical policy head and a value head."""

    num_actions: int
    hidden: int = 16

    @nn.compact
    def __call__(self, obs):
        x = nn.tanh(nn.Dense(self.hidden)(obs))
        logits = nn.Dense(self.num_actions, kernel_init=nn.initializers.zeros)(x)
        value = nn.Dense(1)(x)[..., 0]
        return Categorical(logits=logits), value


def tiny_network(obs_spec, action_spec):
    return TinyActorCritic(num_actions=action_spec.num_actions)


# ------------------------------------------------------------------ the objective


def _clip_with_ratio_penalty(ratio, adv, kl, hp, state):
    """L^CLIP minus a small quadratic penalty on the ratio's distance from 1."""
    return (clipped_surrogate(ratio, adv, hp.clip_eps) - 0.1 * (ratio - 1.0) ** 2).mean()


CLIP_PENALTY = register_objective(Objective("clip_ratio_penalty", _clip_with_ratio_penalty), replace=True)


# ------------------------------------------------------------------ the builder


def build(config: PPOConfig):
    """`--build tests.custom_ppo:build`: the config's objective is looked up by name (registered above)."""
    return make_train(config, env=GoalWalk(), network_factory=tiny_network)


def build_wider(config: PPOConfig):
    """The same env with a wider network: a Train whose state does not fit `build`'s checkpoints."""
    return make_train(config, env=GoalWalk(), network_factory=lambda o, a: TinyActorCritic(a.num_actions, 32))


def build_other_config(config: PPOConfig):
    """A builder that does not pass on the config it is given (an error)."""
    return make_train(config.replace(num_envs=config.num_envs * 2), env=GoalWalk(), network_factory=tiny_network)


def not_a_train(config: PPOConfig):
    return "not a Train"


CONFIG = PPOConfig(
    env="GoalWalk",
    objective="clip_ratio_penalty",
    num_envs=4,
    num_steps=16,
    num_minibatches=2,
    update_epochs=2,
    total_timesteps=4 * 16 * 6,
    log_every=1,
)
