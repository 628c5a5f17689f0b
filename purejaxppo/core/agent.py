"""The agent interface: how training, evaluation, rendering and `load_policy` act and re-evaluate.

An agent is stateful by design. Its acting state is a *carry* (empty for a
feed-forward network, a hidden state for a recurrent one) that travels with
the env state; `done` marks the envs whose previous step ended an episode, so
the agent resets their carry before it sees the first observation of the new
episode. Shapes (B = batch of envs, T = time):

    params = agent.init(key, obs)                       obs: pytree, leaves [B, ...]
    carry = agent.initial_carry(B)                      pytree, leaves [B, ...] (or () )
    carry, dist, value = agent.step(params, carry, obs, done)
                                                        obs leaves [B, ...], done bool [B];
                                                        dist batch [B], value [B]
    dist, value = agent.sequence(params, carry0, obs, done)
                                                        obs leaves [T, B, ...], done [T, B]: replays
                                                        T steps from carry0; dist batch [T, B], value [T, B]

`FeedForwardAgent(module)` wraps any flax module whose `__call__(obs[B, ...])`
returns `(dist, value[B])` (the networks of `purejaxppo.core.networks`, or a
user's own); its carry is `()` and `sequence` is one batched pass over T*B.

`RecurrentAgent(module)` wraps a recurrent flax module with four methods
(`purejaxppo.core.networks.RecurrentActorCritic` is the default one):
`initial_carry(B)` (no params), `embed(obs[B, ...]) -> x`,
`core(carry, x) -> (carry, y)` (one step of the recurrent cell) and
`heads(y) -> (dist[B], value[B])`. The agent does the resets and the time
loop: `sequence` runs `embed` and `heads` on all T*B steps at once and only
`core` inside a `lax.scan`. A module may also define
`core_sequence(carry0, x[T, B, ...], first[T, B]) -> y[T, B, ...]`, the same
loop in one call (the carry reset to `initial_carry` where `first`): then
`sequence` calls it instead of scanning `core` (RecurrentActorCritic does, for
its cells' hand-written backward pass). A recurrent network of another shape can
implement the Agent protocol itself and be returned by a network factory.

Reset semantics: `done[t]` (in `step`) or `first[t]` (in `sequence`) marks an
env whose previous step ended its episode (terminated or truncated); its
carry is replaced by the initial carry before the first observation of the
new episode is seen. The carry that saw an episode's last observation is kept
for the time-limit bootstrap (purejaxppo.core.train.advantages).

Action masks: when the observation is a dict with the key "action_mask"
(purejaxppo.envs.spaces.ACTION_MASK_KEY; bool `[B, A]`, True = legal), both agents
restrict the network's distribution to the legal actions
(`apply_action_mask`: `dist.masked(mask)`, which Categorical and
MultiCategorical implement) in `step` and in `sequence`, so sampling,
log-probs, entropy and KL during the rollout and the update all see the same
masked policy. The network itself also sees the mask as an input feature.

`ActingState(params, obs_norm)` is everything a trained policy needs besides
its carry: the network parameters and the observation normalizer's frozen
statistics (None when normalization is off). `make_policy` turns an agent into
the one acting function that evaluation, rendering and `load_policy` share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from purejaxppo.core.normalization import normalize_obs
from purejaxppo.envs.spaces import ACTION_MASK_KEY
from purejaxppo.errors import ConfigError


@runtime_checkable
class Agent(Protocol):
    """The interface above. Implementations must be pure (jit/vmap-able) and hashable or at least reusable."""

    def init(self, key: jax.Array, obs: Any) -> Any: ...

    def initial_carry(self, batch: int) -> Any: ...

    def step(self, params: Any, carry: Any, obs: Any, done: jax.Array | None) -> tuple[Any, Any, jax.Array]: ...

    def sequence(self, params: Any, carry: Any, obs: Any, done: jax.Array | None) -> tuple[Any, jax.Array]: ...


def apply_action_mask(dist: Any, obs: Any) -> Any:
    """`dist` restricted to the legal actions of `obs["action_mask"]` when the observation carries one, else `dist`.

    The mask's shape must equal the logits' (`[..., num_actions]`, or
    `[..., sum(nvec)]` for a multi-discrete space); a distribution without a
    `masked` method (a Gaussian) cannot take one: both are ConfigErrors at
    trace time.
    """
    if not (isinstance(obs, dict) and ACTION_MASK_KEY in obs):
        return dist
    mask = obs[ACTION_MASK_KEY]
    masked = getattr(dist, "masked", None)
    if not callable(masked):
        raise ConfigError(
            f"the env's observation has an {ACTION_MASK_KEY!r}, but the policy's distribution "
            f"{type(dist).__name__} cannot be masked (only Categorical and MultiCategorical can)"
        )
    logits = getattr(dist, "logits", None)
    if logits is not None and tuple(mask.shape) != tuple(logits.shape):
        raise ConfigError(
            f"the env's obs[{ACTION_MASK_KEY!r}] has shape {tuple(mask.shape)} but the policy has "
            f"logits of shape {tuple(logits.shape)}: the mask must hold one bool per action "
            "(per sub-action choice, concatenated, for a MultiDiscrete space)"
        )
    return masked(mask)


class FeedForwardAgent:
    """A memoryless agent around a flax module `obs[B, ...] -> (dist, value[B])`: carry `()`."""

    def __init__(self, module):
        self.module = module

    def init(self, key, obs):
        return self.module.init(key, obs)

    def initial_carry(self, batch: int):
        return ()

    def apply(self, params, obs):
        """The module itself: obs `[B, ...]` -> (dist `[B]`, value `[B]`)."""
        return self.module.apply(params, obs)

    def step(self, params, carry, obs, done=None):
        dist, value = self.module.apply(params, obs)
        return carry, apply_action_mask(dist, obs), value

    def sequence(self, params, carry, obs, done=None):
        leaf = jax.tree.leaves(obs)[0]
        t, b = leaf.shape[0], leaf.shape[1]
        flat = jax.tree.map(lambda x: x.reshape((t * b,) + x.shape[2:]), obs)
        dist, value = self.module.apply(params, flat)
        unflat = lambda x: x.reshape((t, b) + x.shape[1:])  # noqa: E731
        return apply_action_mask(jax.tree.map(unflat, dist), obs), unflat(value)

    def __repr__(self) -> str:
        return f"FeedForwardAgent({type(self.module).__name__})"


RECURRENT_METHODS = ("initial_carry", "embed", "core", "heads")


class RecurrentAgent:
    """A recurrent agent around a flax module with `initial_carry`, `embed`, `core`, `heads` (module doc)."""

    def __init__(self, module):
        self.module = module

    def init(self, key, obs):
        batch = jax.tree.leaves(obs)[0].shape[0]
        return self.module.init(key, self.module.initial_carry(batch), obs)

    def initial_carry(self, batch: int):
        return self.module.initial_carry(batch)

    def step(self, params, carry, obs, done=None):
        if done is not None:
            carry = reset_carry(self, carry, done)
        carry, y = self.module.apply(params, carry, self.module.apply(params, obs, method="embed"), method="core")
        dist, value = self.module.apply(params, y, method="heads")
        return carry, apply_action_mask(dist, obs), value

    def sequence(self, params, carry, obs, done=None):
        leaf = jax.tree.leaves(obs)[0]
        t, b = leaf.shape[0], leaf.shape[1]
        flat = lambda x: x.reshape((t * b,) + x.shape[2:])  # noqa: E731
        unflat = lambda x: x.reshape((t, b) + x.shape[1:])  # noqa: E731
        # The torso on all T * B observations at once; only the cell runs step by step.
        x = jax.tree.map(unflat, self.module.apply(params, jax.tree.map(flat, obs), method="embed"))
        first = jnp.zeros((t, b), bool) if done is None else done

        def cell_step(carry, inputs):
            x_t, first_t = inputs
            carry = reset_carry(self, carry, first_t)
            return self.module.apply(params, carry, x_t, method="core")

        if callable(getattr(self.module, "core_sequence", None)):  # the module runs the time loop itself
            y = self.module.apply(params, carry, x, first, method="core_sequence")
        else:
            _, y = jax.lax.scan(cell_step, carry, (x, first))
        dist, value = self.module.apply(params, jax.tree.map(flat, y), method="heads")
        return apply_action_mask(jax.tree.map(unflat, dist), obs), unflat(value)

    def __repr__(self) -> str:
        return f"RecurrentAgent({type(self.module).__name__})"


def as_agent(network) -> Agent:
    """An Agent as is; a recurrent flax module (initial_carry/embed/core/heads) wrapped in RecurrentAgent;
    any other flax module (or anything with `init`/`apply`) wrapped in FeedForwardAgent."""
    if all(callable(getattr(network, m, None)) for m in ("init", "initial_carry", "step", "sequence")):
        return network
    if callable(getattr(network, "init", None)) and callable(getattr(network, "apply", None)):
        if all(callable(getattr(network, m, None)) for m in RECURRENT_METHODS):
            return RecurrentAgent(network)
        return FeedForwardAgent(network)
    raise ConfigError(
        f"network_factory must return a flax module (obs[B, ...] -> (dist, value[B]), or a recurrent one with "
        f"{', '.join(RECURRENT_METHODS)}) or an Agent with init, initial_carry, step and sequence; "
        f"got {type(network).__name__}"
    )


def is_recurrent(agent: Agent) -> bool:
    """Whether the agent carries a state between steps (a non-empty carry): then it trains on whole sequences."""
    return bool(jax.tree.leaves(jax.eval_shape(lambda: agent.initial_carry(1))))


@struct.dataclass
class ActingState:
    """What a trained policy acts with (besides its carry): params and the frozen obs-normalizer statistics."""

    params: Any
    obs_norm: Any = None


def reset_carry(agent: Agent, carry: Any, done: jax.Array) -> Any:
    """Replace the carry of envs with `done` [B] by the initial carry (no-op for an empty carry)."""
    if not jax.tree.leaves(carry):
        return carry
    fresh = agent.initial_carry(done.shape[0])
    return jax.tree.map(lambda c, f: jnp.where(done.reshape((-1,) + (1,) * (c.ndim - 1)), f, c), carry, fresh)


def make_policy(agent: Agent, to_env_action: Callable) -> Callable:
    """`policy(acting, carry, obs[B, ...], done[B], key, deterministic, obs_clip) -> (carry, env_action[B, ...])`.

    Normalizes the raw observation with `acting.obs_norm` (if not None), steps
    the agent, takes the mode (`deterministic=True`, a Python bool) or a sample,
    and maps it to what the env receives (training's `to_env_action`).
    """

    def policy(acting: ActingState, carry, obs, done, key, deterministic: bool, obs_clip):
        obs = normalize_obs(acting.obs_norm, obs, obs_clip)
        carry, dist, _ = agent.step(acting.params, carry, obs, done)
        action = dist.mode() if deterministic else dist.sample(key)
        return carry, to_env_action(action)

    return policy
