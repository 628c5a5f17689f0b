"""The fused PPO training function.

`make_train(config)` returns a `Train`: calling it, `train(key, hparams=None)
-> TrainOutput`, is a pure function of a PRNG key and the traced
hyperparameters: jit it, vmap it over keys (seeds) or over `HParams`
(sweeps). It is built from two pieces that research code can drive itself
(e.g. in jitted chunks between checkpoints):

    state = train.init(key, hp)              # TrainState
    state, metrics = train.update(state, hp)  # one PPO iteration (Algorithm 1)

One update reads top to bottom as the paper's Algorithm 1, each step a named
function of this module: `collect` (rollout, purejaxppo.core.rollout) ->
`advantages` (bootstrap values + GAE) -> `run_epochs` (K epochs of shuffled
minibatches) -> exact KL and the objective's post-update rule -> divergence
guard -> per-update metrics.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from purejaxppo.core import collectives
from purejaxppo.core.agent import ActingState, Agent, as_agent, is_recurrent
from purejaxppo.core.config import HParams, PPOConfig, validate_hparams
from purejaxppo.core.gae import compute_gae
from purejaxppo.core.losses import Batch, ppo_loss
from purejaxppo.core.networks import make_network, network_options
from purejaxppo.core.normalization import ObsNorm, RewardScaler, create_obs_norm
from purejaxppo.core.objectives import Objective, get_objective
from purejaxppo.core.resources import check_memory
from purejaxppo.core.rollout import EnvCarry, Transition, collect
from purejaxppo.envs import check_env_api, default_env_params, env_spaces, make_action_transform, make_env
from purejaxppo.envs.spaces import ActionSpec, action_spec_from_space, obs_spec_from_space, zeros_obs
from purejaxppo.errors import ConfigError, DivergedError

METRIC_NAMES = (
    "episode_return",
    "episode_length",
    "episodes_completed",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "kl",
    "kl_beta",
    "explained_variance",
    "grad_norm",
    "learning_rate",
    "epochs_completed",
    "diverged",
)


@struct.dataclass
class TrainState:
    """Everything a run carries between updates (checkpoint this to resume).

    obs_norm / reward_scaler are None unless enabled in the config (obs_norm
    is one RunningMeanStd per observation leaf). objective_state is the
    objective's own state (the adaptive beta for kl_adaptive, `()` for the
    others). diverged becomes True (and stays) once an update produced
    non-finite numbers; from then on updates leave params and optimizer state
    unchanged.
    """

    params: Any
    opt_state: Any
    env: EnvCarry
    obs_norm: ObsNorm | None
    reward_scaler: RewardScaler | None
    objective_state: Any
    key: jax.Array
    update_step: jax.Array
    last_episode_return: jax.Array
    last_episode_length: jax.Array
    diverged: jax.Array


class TrainOutput(NamedTuple):
    """state: final `TrainState`; metrics: dict of float32 `[num_updates]` (per-update reductions)."""

    state: TrainState
    metrics: dict[str, jax.Array]


def make_optimizer(hp: HParams, learning_rate: jax.Array) -> optax.GradientTransformation:
    """Global-norm gradient clipping then Adam, built from traced hyperparameters.

    Its state structure does not depend on the values, so it can be rebuilt
    inside each traced update with that update's learning rate.
    """
    return optax.chain(
        optax.clip_by_global_norm(hp.max_grad_norm),
        optax.scale_by_adam(eps=hp.adam_eps),
        optax.scale(-learning_rate),
    )


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A uniformly random permutation of `range(n)`, int32 `[n]`, by sorting packed random keys.

    Each round sorts one uint32 array whose high bits are random and whose low
    ceil(log2 n) bits hold the index, then reads the indices back from the low
    bits. That is one single-operand sort instead of the key-value sort of
    `jax.random.permutation` (about 10% of the update at 64 vmapped seeds on a
    2-core CPU). Equal random keys keep their index order, so rounds (each
    re-shuffling the last) are added until there are at least 2 * log2(n)
    random bits in all: then the expected number of index pairs tied in every
    round is below 1/2. `jax.random.permutation` applies the same kind of rule
    with its own margin.
    """
    index_bits = max(1, (n - 1).bit_length())
    random_bits = 32 - index_bits
    if random_bits < 8:
        return jax.random.permutation(key, n)  # n >= 2^24: the packing leaves too few random bits
    rounds = -(-2 * index_bits // random_bits)
    perm = None
    for k in jax.random.split(key, rounds):
        packed = (jax.random.bits(k, (n,), jnp.uint32) << index_bits) | jnp.arange(n, dtype=jnp.uint32)
        order = (jnp.sort(packed) & ((1 << index_bits) - 1)).astype(jnp.int32)
        perm = order if perm is None else perm[order]
    assert perm is not None  # rounds >= 1 (index_bits >= 1)
    return perm


def explained_variance(values: jax.Array, targets: jax.Array, data_axis: collectives.Axis = None) -> jax.Array:
    """1 - Var[target - V] / Var[target] (0 when the targets have no variance), over every device on data_axis."""
    return collectives.explained_variance(values, targets, data_axis)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def advantages(
    agent: Agent, params: Any, traj: Transition, hp: HParams, *, truncation_as_termination: bool = False
) -> tuple[jax.Array, jax.Array]:
    """GAE advantages and value targets `[T, N]` of a rollout.

    The bootstrap value of step t is V(final_obs_t), the observation its step
    reached before any auto-reset, evaluated from traj.carry[t], the agent's
    carry after it saw obs_t (for a recurrent agent: the hidden state that
    would have seen final_obs_t, not the reset one). All T * N bootstrap values
    come from one batched agent step. At a truncation GAE bootstraps from it;
    at a termination it does not (`truncation_as_termination` treats both as
    terminations).
    """
    next_values = bootstrap_values(agent, params, traj)
    terminated = traj.terminated
    if truncation_as_termination:
        terminated = jnp.logical_or(terminated, traj.truncated)
    return compute_gae(traj.reward, traj.value, next_values, terminated, traj.truncated, hp.gamma, hp.gae_lambda)


def bootstrap_values(agent: Agent, params: Any, traj: Transition) -> jax.Array:
    """V(final_obs_t) `[T, N]` from the carry after step t (traj.carry; `()` for a feed-forward agent)."""
    t, n = traj.reward.shape
    flat = lambda x: x.reshape((t * n,) + x.shape[2:])  # noqa: E731
    _, _, value = agent.step(params, jax.tree.map(flat, traj.carry), jax.tree.map(flat, traj.final_obs), None)
    return value.reshape((t, n))


def rollout_batch(traj: Transition, adv: jax.Array, targets: jax.Array) -> Batch:
    """The update's batch: the rollout's `[T, N]` fields with advantages and targets, plus the segment-start
    carry `[N, ...]` and the reset mask `first` `[T, N]` a recurrent agent replays the segment with."""
    return Batch(traj.obs, traj.action, traj.log_prob, traj.value, adv, targets, traj.dist, traj.carry0, traj.first)


def minibatches(batch: Batch, key: jax.Array, num_minibatches: int, *, sequences: bool) -> Batch:
    """Shuffle a rollout batch `[T, N]` into num_minibatches minibatches: leaves `[num_minibatches, T', B', ...]`.

    sequences=False (feed-forward): the T * N transitions are shuffled one by
    one, T' = 1 and B' = T * N / num_minibatches. sequences=True (recurrent):
    whole env sequences are shuffled (env indices permuted, time order kept),
    T' = T and B' = N / num_minibatches, each with its env's segment-start
    carry (carry0 `[num_minibatches, B', ...]`) and reset mask, so the agent
    replays it exactly as the rollout ran.
    """
    if not sequences:  # T * N sequences of length 1
        one_step = lambda x: x.reshape((1, -1) + x.shape[2:])  # noqa: E731
        batch = batch._replace(**{f: jax.tree.map(one_step, getattr(batch, f)) for f in Batch._fields if f != "carry0"})
    n = batch.log_prob.shape[1]
    perm = permutation(key, n)

    def split_envs(x):  # [T', n, ...] -> [num_minibatches, T', n / num_minibatches, ...]
        x = x[:, perm].reshape((x.shape[0], num_minibatches, n // num_minibatches) + x.shape[2:])
        return jnp.swapaxes(x, 0, 1)

    carry0 = jax.tree.map(lambda c: c[perm].reshape((num_minibatches, -1) + c.shape[1:]), batch.carry0)
    return batch._replace(
        **{f: jax.tree.map(split_envs, getattr(batch, f)) for f in Batch._fields if f != "carry0"}, carry0=carry0
    )


def run_epochs(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    batch: Batch,
    key: jax.Array,
    hp: HParams,
    *,
    update_epochs: int,
    num_minibatches: int,
    use_target_kl: bool,
    sequences: bool = False,
    data_axis: collectives.Axis = None,
):
    """K epochs of shuffled minibatch gradient steps on one rollout batch (`rollout_batch`: leaves `[T, N, ...]`).

    Each epoch reshuffles the batch with `minibatches` (single transitions, or
    whole env sequences when `sequences`).

    loss_fn(params, minibatch) -> (loss, metrics dict of scalars). With
    use_target_kl, once an epoch's mean approx KL exceeds hp.target_kl the
    remaining epochs are skipped (`lax.cond`). Returns (params, opt_state,
    metrics averaged over the epochs that ran, plus grad_norm and
    epochs_completed).

    Data-parallel (`data_axis`, the batch is this device's shard): each device
    shuffles its own shard with its own key (`collectives.device_key`) into
    num_minibatches local minibatches; step j's gradient and metrics are
    averaged over the devices, i.e. they are those of the union of the
    devices' j-th minibatches, and every device applies the same update.
    """
    key = collectives.device_key(key, data_axis)

    def minibatch_step(carry, mb):
        params, opt_state = carry
        (_, m), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, mb)
        grads, m = collectives.pmean((grads, m), data_axis)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        m["grad_norm"] = optax.tree_utils.tree_norm(grads)
        return (optax.apply_updates(params, updates), opt_state), m

    def run_epoch(params, opt_state, epoch):
        shuffled = minibatches(batch, jax.random.fold_in(key, epoch), num_minibatches, sequences=sequences)
        (params, opt_state), m = jax.lax.scan(minibatch_step, (params, opt_state), shuffled)
        return params, opt_state, jax.tree.map(jnp.mean, m)

    def epoch_step(carry, epoch):
        params, opt_state, stopped = carry
        if use_target_kl:
            # Early stop: once stopped, the remaining epochs are no-ops (their metrics' schema from eval_shape).
            def skip(p, o, e):
                shapes = jax.eval_shape(run_epoch, p, o, e)[2]
                return p, o, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

            params, opt_state, m = jax.lax.cond(stopped, skip, run_epoch, params, opt_state, epoch)
            ran = jnp.logical_not(stopped)
            stopped = jnp.logical_or(stopped, m["approx_kl"] > hp.target_kl)
        else:
            params, opt_state, m = run_epoch(params, opt_state, epoch)
            ran = jnp.asarray(True)
        return (params, opt_state, stopped), (m, ran)

    (params, opt_state, _), (epoch_metrics, ran) = jax.lax.scan(
        epoch_step, (params, opt_state, jnp.asarray(False)), jnp.arange(update_epochs)
    )
    ran = ran.astype(jnp.float32)
    epochs_completed = ran.sum()
    metrics = {k: jnp.sum(v * ran) / jnp.maximum(epochs_completed, 1.0) for k, v in epoch_metrics.items()}
    metrics["epochs_completed"] = epochs_completed
    return params, opt_state, metrics


def _make_agent(config: PPOConfig, obs_spec: Any, action_spec: ActionSpec, network_factory: Callable | None):
    """(agent, network) from the factory `f(obs_spec, action_spec)` (default: `make_network`)."""
    if network_factory is None:
        network = make_network(obs_spec, action_spec, **network_options(config))
    else:
        try:
            inspect.signature(network_factory).bind(obs_spec, action_spec)
        except TypeError as e:
            raise ConfigError(
                f"make_train: network_factory must take (obs_spec, action_spec) ({e}); bind other options with "
                "functools.partial (the form f(config, obs_shape, action_spec) of 0.1 is gone)"
            ) from None
        except ValueError:  # no signature to inspect (some builtins): just call it
            pass
        network = network_factory(obs_spec, action_spec)
    agent = as_agent(network)
    return agent, network


@dataclasses.dataclass(frozen=True, eq=False)
class Train:
    """The training function of one config and everything built for it (from `make_train`).

    Call it like a function: `train(key, hparams=None) -> TrainOutput` (jit/vmap it).
    `init(key, hp)` and `update(state, hp)` are its two pieces. `agent` acts and
    re-evaluates (purejaxppo.core.agent); `network` is what the factory returned;
    `obs_spec` is the observation spec (pytree of ShapeDtypeStruct, one env
    step); `to_env_action` maps a policy sample to the env's action;
    `objective` is the policy objective (purejaxppo.core.objectives).
    """

    config: PPOConfig
    env: Any
    env_params: Any
    agent: Agent
    network: Any
    obs_spec: Any
    action_spec: ActionSpec
    objective: Objective
    to_env_action: Callable
    evaluate: Callable | None = None  # the in-training evaluation (config.eval_every > 0), else None
    # Data-parallel training (purejaxppo.parallel): init/update then run on one of `data_shards` devices of the
    # mesh axis `data_axis`, on its num_envs // data_shards envs, and average every cross-env statistic over it.
    data_axis: str | None = None
    data_shards: int = 1

    @property
    def local_num_envs(self) -> int:
        """Envs stepped by one device: num_envs, or its share of them when data-parallel."""
        return self.config.num_envs // self.data_shards

    @property
    def recurrent(self) -> bool:
        """Whether the agent carries a hidden state (then minibatches are whole env sequences)."""
        return is_recurrent(self.agent)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation (single-array observations only)."""
        from purejaxppo.envs.spaces import obs_shape

        return obs_shape(self.obs_spec)

    # ------------------------------------------------------------------ init
    def init(self, key: jax.Array, hp: HParams | None = None) -> TrainState:
        config, n = self.config, self.local_num_envs
        hp = config.hparams() if hp is None else validate_hparams(hp, objective=config.objective)
        k_params, k_reset, k_state = jax.random.split(key, 3)
        params = self.agent.init(k_params, zeros_obs(self.obs_spec))
        reset_keys = jax.random.split(k_reset, config.num_envs)
        if self.data_shards > 1:  # this device's envs are its slice of the run's num_envs
            reset_keys = jax.lax.dynamic_slice_in_dim(reset_keys, collectives.axis_index(self.data_axis) * n, n)
        obs, env_state = jax.vmap(self.env.reset, in_axes=(0, None))(reset_keys, self.env_params)
        zero = jnp.zeros((), jnp.float32)
        return TrainState(
            params=params,
            opt_state=make_optimizer(hp, hp.learning_rate).init(params),
            env=EnvCarry(
                env_state,
                obs,
                jnp.zeros((n,), jnp.float32),
                jnp.zeros((n,), jnp.int32),
                self.agent.initial_carry(n),
                jnp.zeros((n,), bool),
            ),
            obs_norm=create_obs_norm(self.obs_spec) if config.normalize_obs else None,
            reward_scaler=RewardScaler.create(n) if config.normalize_reward else None,
            objective_state=self.objective.init(hp),
            key=k_state,
            update_step=jnp.zeros((), jnp.int32),
            last_episode_return=zero,
            last_episode_length=zero,
            diverged=jnp.asarray(False),
        )

    # ---------------------------------------------------------------- update
    def update(self, state: TrainState, hp: HParams | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
        """One PPO iteration (Algorithm 1) -> (new state, dict of float32 scalar metrics)."""
        config, agent, objective, axis = self.config, self.agent, self.objective, self.data_axis
        hp = config.hparams() if hp is None else validate_hparams(hp, objective=config.objective)
        key, k_rollout, k_epochs = jax.random.split(state.key, 3)

        # 1. Rollout: N envs x T steps with the current policy (data-parallel: this device's N / D envs).
        env_carry, obs_norm, reward_scaler, traj, ep = collect(
            collectives.device_key(k_rollout, axis),
            state.env,
            state.params,
            agent,
            self.env,
            self.env_params,
            num_steps=config.num_steps,
            to_env_action=self.to_env_action,
            obs_norm=state.obs_norm,
            reward_scaler=state.reward_scaler,
            gamma=hp.gamma,
            obs_clip=hp.obs_clip,
            reward_clip=hp.reward_clip,
            data_axis=axis,
        )

        # 2. Advantages: V(s'_t) from the pre-reset observation, then GAE.
        adv, targets = advantages(
            agent, state.params, traj, hp, truncation_as_termination=config.truncation_as_termination
        )

        # 3. K epochs of shuffled minibatch updates.
        lr = hp.learning_rate
        if config.anneal_lr:
            lr = lr * (1.0 - state.update_step.astype(jnp.float32) / config.num_updates)
        batch = rollout_batch(traj, adv, targets)

        def loss_fn(params, mb):
            # The agent replays the minibatch: single steps, or (recurrent) whole sequences from their carry0.
            def evaluate(p, obs):
                return agent.sequence(p, mb.carry0, obs, mb.first)

            return ppo_loss(
                params,
                evaluate,
                mb,
                hp,
                state.objective_state,
                objective=objective,
                clip_value_loss=config.clip_value_loss,
                normalize_advantages=config.normalize_advantages,
                data_axis=axis,
            )

        params, opt_state, metrics = run_epochs(
            loss_fn,
            make_optimizer(hp, lr),
            state.params,
            state.opt_state,
            batch,
            k_epochs,
            hp,
            update_epochs=config.update_epochs,
            num_minibatches=config.num_minibatches,
            use_target_kl=config.use_target_kl,
            sequences=self.recurrent,
            data_axis=axis,
        )

        # 4. Exact KL(pi_old || pi_new) over the batch; the objective's post-update rule (e.g. adaptive beta).
        new_dist, _ = agent.sequence(params, batch.carry0, batch.obs, batch.first)
        kl = collectives.mean(jnp.ravel(batch.old_dist.kl(new_dist)), axis)
        objective_state = objective.update_state(state.objective_state, kl, hp)

        # 5. Divergence guard: a non-finite update is not applied, and the run stops learning.
        ok = collectives.all_true(_all_finite((params, metrics, kl)), axis) & jnp.logical_not(state.diverged)
        params, opt_state, objective_state = jax.tree.map(
            lambda new, old: jnp.where(ok, new, old),
            (params, opt_state, objective_state),
            (state.params, state.opt_state, state.objective_state),
        )

        # 6. Per-update metrics (scalars only): the losses' own, the objective's, and these.
        has_eps = ep.count > 0
        ep_return = jnp.where(has_eps, ep.return_sum / jnp.maximum(ep.count, 1.0), state.last_episode_return)
        ep_length = jnp.where(has_eps, ep.length_sum / jnp.maximum(ep.count, 1.0), state.last_episode_length)
        metrics.update(
            episode_return=ep_return,
            episode_length=ep_length,
            episodes_completed=ep.count,
            kl=kl,
            explained_variance=explained_variance(traj.value, targets, axis),
            learning_rate=jnp.asarray(lr, jnp.float32),
            diverged=jnp.logical_not(ok).astype(jnp.float32),
        )
        metrics.update(objective.metrics(state.objective_state, hp))
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        if self.evaluate is not None:
            # Deterministic policy after this update, every eval_every updates and after the last; NaN otherwise.
            # Its key is folded from state.key, so the training RNG stream is untouched. `enabled` stops the
            # evaluation's while_loop at once when off (a cond would become a select under vmap over seeds).
            step = state.update_step + 1
            do_eval = jnp.logical_or(step % config.eval_every == 0, step == config.num_updates)
            # Data-parallel: each device plays its share of the episodes (with its own key) and the means are averaged.
            episodes = -(-config.eval_episodes // self.data_shards)
            returns = self.evaluate(
                ActingState(params, obs_norm),
                collectives.device_key(jax.random.fold_in(state.key, 0x0E7A1), axis),
                episodes,
                obs_clip=hp.obs_clip,
                enabled=do_eval,
            )
            metrics["eval_return"] = jnp.where(do_eval, collectives.mean(returns, axis), jnp.nan).astype(jnp.float32)

        new_state = TrainState(
            params=params,
            opt_state=opt_state,
            env=env_carry,
            obs_norm=obs_norm,
            reward_scaler=reward_scaler,
            objective_state=objective_state,
            key=key,
            update_step=state.update_step + 1,
            last_episode_return=ep_return,
            last_episode_length=ep_length,
            diverged=jnp.logical_not(ok),
        )
        return new_state, metrics

    # ----------------------------------------------------------------- train
    def __call__(self, key: jax.Array, hparams: HParams | None = None) -> TrainOutput:
        """Run config.num_updates PPO iterations from `key`. Pure; jit/vmap freely."""
        config = self.config
        hp = config.hparams() if hparams is None else validate_hparams(hparams, objective=config.objective)
        state = self.init(key, hp)
        state, metrics = jax.lax.scan(lambda s, _: self.update(s, hp), state, None, length=config.num_updates)
        return TrainOutput(state, metrics)


def make_train(
    config: PPOConfig,
    env: Any = None,
    env_params: Any = None,
    network_factory: Callable | None = None,
) -> Train:
    """Build the pure training function for `config`.

    Args:
      config: static configuration (and default hyperparameters).
      env: any gymnax-API environment; by default the env named by
        `config.env`. A string env is an environment id like `config.env`
        ("CartPole-v1", "brax/ant"), made with `purejaxppo.envs.make_env`.
        Observations may be arrays or pytrees (dict/tuple spaces).
      env_params: the env's params (default `env.default_params`). Params
        that do not fit the env raise ConfigError.
      network_factory: `f(obs_spec, action_spec) -> flax module` whose
        `__call__(obs [B, ...])` returns `(dist, value [B])` (obs_spec: a
        pytree of ShapeDtypeStruct, see purejaxppo.envs.spaces); bind your own
        options with functools.partial. Default:
        `purejaxppo.core.networks.make_network` with the config's network options.

    Returns:
      a `Train`: `train(key, hparams=None) -> TrainOutput`, with `init`,
      `update`, `config`, `env`, `env_params`, `agent`, `network`, `obs_spec`,
      `action_spec`, `objective`. Hyperparameters passed to train/init/update
      are checked by `validate_hparams` when concrete (eager calls); under
      jit/vmap they are tracers and unchecked.
    """
    if not isinstance(config, PPOConfig):
        raise ConfigError(f"make_train: config must be a PPOConfig, got {type(config).__name__}")
    if network_factory is not None and not callable(network_factory):
        raise ConfigError(
            "make_train: network_factory must be callable as f(obs_spec, action_spec) -> flax module, "
            f"got {type(network_factory).__name__} {network_factory!r:.60}"
        )
    params_given = env_params is not None
    if env is None or isinstance(env, str):
        env, default_params = make_env(config.env if env is None else env)
        env_params = default_params if env_params is None else env_params
    else:
        check_env_api(env)
        env_params = default_env_params(env) if env_params is None else env_params

    obs_space, action_space = env_spaces(env, env_params, trace_reset=params_given)
    obs_spec = obs_spec_from_space(obs_space)
    action_spec = action_spec_from_space(action_space)
    check_memory(config, obs_spec, action_spec)  # one run must fit: refuse now, not deep in XLA
    agent, network = _make_agent(config, obs_spec, action_spec, network_factory)
    to_env_action = make_action_transform(action_spec, config.action_handling)
    evaluate = None
    if config.eval_every > 0:  # in-training evaluation (purejaxppo.core.evaluate); adds metrics["eval_return"]
        from purejaxppo.core.evaluate import build_evaluate

        evaluate = build_evaluate(
            env, env_params, agent, action_spec, obs_clip=config.obs_clip, to_env_action=to_env_action
        )
    return Train(
        config,
        env,
        env_params,
        agent,
        network,
        obs_spec,
        action_spec,
        get_objective(config.objective),
        to_env_action,
        evaluate,
    )


def raise_if_diverged(out: TrainOutput) -> None:
    """Raise FloatingPointError if any run in `out` (possibly vmapped) produced non-finite numbers.

    Inside jit a run cannot raise; instead an update that yields NaN/inf
    losses or parameters is not applied, `metrics["diverged"]` becomes 1 from
    that update on, and the final params are the last finite ones. Call this
    on the host after training to turn that report into an error.
    """
    diverged = np.asarray(out.metrics["diverged"]) > 0
    if diverged.any():
        flat = diverged.reshape(-1, diverged.shape[-1])
        runs = np.flatnonzero(flat.any(axis=-1))
        first = int(np.argmax(flat[runs[0]])) + 1  # metrics[..., j] belong to update j + 1
        raise DivergedError(
            f"training diverged: {len(runs)} of {flat.shape[0]} run(s) produced non-finite losses or parameters "
            f"(run {int(runs[0])} first at update {first}); their params were frozen at the last finite values. "
            "Lower learning_rate, enable normalize_obs/normalize_reward, or check the environment's "
            "rewards/observations."
        )
