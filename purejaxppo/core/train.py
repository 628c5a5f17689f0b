"""The fused PPO training function.

`make_train(config)` returns a `Train`: calling it, `train(key, hparams=None)
-> TrainOutput`, is a pure function of a PRNG key and the traced
hyperparameters: jit it, vmap it over keys (seeds) or over `HParams`
(sweeps). It is built from two pieces that research code can drive itself
(e.g. in jitted chunks between checkpoints):

    state = train.init(key, hp)              # TrainState
    state, metrics = train.update(state, hp)  # one PPO iteration (Algorithm 1)

One update reads top to bottom as the paper's Algorithm 1, each step a named
function: `collect` (rollout, purejaxppo.core.rollout) -> `advantages`
(bootstrap values + GAE) -> `run_epochs` (K epochs of shuffled minibatches;
both in purejaxppo.core.update) -> exact KL and the objective's post-update
rule -> divergence guard -> per-update metrics.

The objective is resolved once, by `make_train(config, objective=None)`: it looks
`config.objective` up in the registry (purejaxppo.core.objectives), or is given
the `Objective` itself. The env, spaces, agent, evaluation and randomizer of a
`Train` are resolved in purejaxppo.core.train_setup.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.core import collectives, randomization
from purejaxppo.core.agent import ActingState, Agent, is_recurrent
from purejaxppo.core.config import HParams, PPOConfig, validate_hparams
from purejaxppo.core.losses import Batch, ppo_loss
from purejaxppo.core.normalization import RewardScaler, create_obs_norm
from purejaxppo.core.objectives import Objective
from purejaxppo.core.popart import PopArtStats, preserve_outputs, update_stats
from purejaxppo.core.precision import matmul_precision
from purejaxppo.core.rollout import EnvCarry, EpisodeStats, collect
from purejaxppo.core.train_setup import train_parts
from purejaxppo.core.train_state import METRIC_NAMES, TrainOutput, TrainState, raise_if_diverged  # noqa: F401
from purejaxppo.core.update import (  # noqa: F401 (the update's building blocks, importable from here too)
    advantages,
    all_finite,
    bootstrap_values,
    explained_variance,
    make_optimizer,
    minibatches,
    permutation,
    rollout_batch,
    run_epochs,
)
from purejaxppo.envs.spaces import ActionSpec, zeros_obs
from purejaxppo.errors import ConfigError


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
    # Per-env domain randomization (purejaxppo.core.randomization): fn(key, env_params) -> env_params, and the
    # (name, leaf index) of the params it changes (reported as metrics); None and () without.
    randomize: Callable | None = None
    randomized: tuple = ()

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
        """The state before the first update: params, optimizer state, env states after reset, normalizers."""
        with matmul_precision(self.config):
            return self._init(key, hp)

    def _init(self, key: jax.Array, hp: HParams | None) -> TrainState:
        config, n = self.config, self.local_num_envs
        hp = config.hparams() if hp is None else validate_hparams(hp, objective=config.objective)
        k_params, k_reset, k_state = jax.random.split(key, 3)
        params = self.agent.init(k_params, zeros_obs(self.obs_spec))
        reset_keys = jax.random.split(k_reset, config.num_envs)
        if self.data_shards > 1:  # this device's envs are its slice of the run's num_envs
            reset_keys = jax.lax.dynamic_slice_in_dim(reset_keys, collectives.axis_index(self.data_axis) * n, n)
        env_params, params_axis = self.env_params, None
        if self.randomize is not None:  # one params set per env, drawn before the first reset
            param_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0xD0))(reset_keys)
            env_params = randomization.draw(self.randomize, self.env_params, param_keys)
            params_axis = 0
        obs, env_state = jax.vmap(self.env.reset, in_axes=(0, params_axis))(reset_keys, env_params)
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
                env_params if self.randomize is not None else None,
            ),
            obs_norm=create_obs_norm(self.obs_spec) if config.normalize_obs else None,
            reward_scaler=RewardScaler.create(n) if config.normalize_reward else None,
            objective_state=self.objective.init(hp),
            key=k_state,
            update_step=jnp.zeros((), jnp.int32),
            last_episode_return=zero,
            last_episode_length=zero,
            diverged=jnp.asarray(False),
            value_norm=PopArtStats.create() if config.value_normalization == "popart" else None,
        )

    # ---------------------------------------------------------------- update
    def update(self, state: TrainState, hp: HParams | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
        """One PPO iteration (Algorithm 1) -> (new state, dict of float32 scalar metrics)."""
        with matmul_precision(self.config):
            return self._update(state, hp)

    def _update(self, state: TrainState, hp: HParams | None) -> tuple[TrainState, dict[str, jax.Array]]:
        config, axis = self.config, self.data_axis
        hp = config.hparams() if hp is None else validate_hparams(hp, objective=config.objective)
        key, k_rollout, k_epochs = jax.random.split(state.key, 3)

        # 1. Rollout: N envs x T steps with the current policy (data-parallel: this device's N / D envs).
        env_carry, obs_norm, reward_scaler, traj, ep = self._rollout(state, hp, k_rollout)

        # 2. Advantages: V(s'_t) from the pre-reset observation, then GAE.
        old_norm = state.value_norm
        if old_norm is not None:  # PopArt: the network's values are normalized; GAE works in values
            traj = traj._replace(value=old_norm.denormalize(traj.value))
        adv, targets = advantages(
            self.agent,
            state.params,
            traj,
            hp,
            truncation_as_termination=config.truncation_as_termination,
            denormalize=None if old_norm is None else old_norm.denormalize,
        )

        # 3. K epochs of shuffled minibatch updates.
        alpha = 1.0 - state.update_step.astype(jnp.float32) / config.num_updates  # 1 -> 0 over the run
        lr = hp.learning_rate * alpha if config.anneal_lr else hp.learning_rate
        epoch_hp = dataclasses.replace(hp, clip_eps=hp.clip_eps * alpha) if config.anneal_clip_eps else hp
        start_params, value_norm, batch = self._value_targets(state, hp, traj, adv, targets)
        params, opt_state, metrics = self._epochs(
            dataclasses.replace(state, params=start_params), epoch_hp, batch, lr, k_epochs
        )

        # 4. Exact KL(pi_old || pi_new) over the batch; the objective's post-update rule (e.g. adaptive beta).
        new_dist, _ = self.agent.sequence(params, batch.carry0, batch.obs, batch.first)
        kl = collectives.mean(jnp.ravel(batch.old_dist.kl(new_dist)), axis)
        objective_state = self.objective.update_state(state.objective_state, kl, hp)

        # 5. Divergence guard: a non-finite update is not applied, and the run stops learning.
        ok = collectives.all_true(all_finite((params, metrics, kl)), axis) & jnp.logical_not(state.diverged)
        params, opt_state, objective_state, value_norm = jax.tree.map(
            lambda new, old: jnp.where(ok, new, old),
            (params, opt_state, objective_state, value_norm),
            (state.params, state.opt_state, state.objective_state, state.value_norm),
        )

        # 6. Per-update metrics (scalars only): the losses' own, the objective's, these, and the evaluation's.
        has_eps = ep.count > 0
        ep_return = jnp.where(has_eps, ep.return_sum / jnp.maximum(ep.count, 1.0), state.last_episode_return)
        ep_length = jnp.where(has_eps, ep.length_sum / jnp.maximum(ep.count, 1.0), state.last_episode_length)
        metrics = self._metrics(state, hp, metrics, ep, ep_return, ep_length, kl, traj.value, targets, lr, ok)
        if value_norm is not None:
            metrics.update(value_target_mean=value_norm.mean, value_target_std=value_norm.std)
        if self.randomized:  # the randomized env params of the envs now: mean and spread
            metrics.update(randomization.param_metrics(env_carry.env_params, self.randomized, axis))
        if self.evaluate is not None:
            metrics["eval_return"] = self._eval_return(state, hp, ActingState(params, obs_norm))

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
            value_norm=value_norm,
        )
        return new_state, metrics

    def _value_targets(self, state: TrainState, hp: HParams, traj, adv: jax.Array, targets: jax.Array):
        """(params the epochs start from, value statistics, the epochs' batch).

        Plain values: the state's params and the rollout's values and targets. PopArt: the statistics absorb
        this batch's targets, the critic's output layer is rescaled so that every value it predicts is
        preserved (`purejaxppo.core.popart`), and the batch holds the rollout's values and the targets
        normalized with the new statistics (what the rescaled network's value output is compared with).
        """
        if state.value_norm is None:
            return state.params, None, rollout_batch(traj, adv, targets)
        old = state.value_norm
        new = update_stats(old, targets, hp.popart_beta, self.data_axis)
        params = preserve_outputs(state.params, old, new)
        batch = rollout_batch(traj._replace(value=new.normalize(traj.value)), adv, new.normalize(targets))
        return params, new, batch

    def _rollout(self, state: TrainState, hp: HParams, key: jax.Array):
        """Step 1 of the update: `collect` from the state's envs with the current params."""
        return collect(
            collectives.device_key(key, self.data_axis),
            state.env,
            state.params,
            self.agent,
            self.env,
            self.env_params,
            num_steps=self.config.num_steps,
            to_env_action=self.to_env_action,
            obs_norm=state.obs_norm,
            reward_scaler=state.reward_scaler,
            gamma=hp.gamma,
            obs_clip=hp.obs_clip,
            reward_clip=hp.reward_clip,
            data_axis=self.data_axis,
            randomize=self.randomize,
        )

    def _epochs(self, state: TrainState, hp: HParams, batch: Batch, lr: jax.Array, key: jax.Array):
        """Step 3 of the update: `run_epochs` on the PPO loss of this config -> (params, opt_state, metrics)."""
        config, agent = self.config, self.agent

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
                objective=self.objective,
                clip_value_loss=config.clip_value_loss,
                normalize_advantages=config.normalize_advantages,
                data_axis=self.data_axis,
            )

        return run_epochs(
            loss_fn,
            make_optimizer(hp, lr),
            state.params,
            state.opt_state,
            batch,
            key,
            hp,
            update_epochs=config.update_epochs,
            num_minibatches=config.num_minibatches,
            use_target_kl=config.use_target_kl,
            sequences=self.recurrent,
            data_axis=self.data_axis,
        )

    def _metrics(self, state, hp, metrics, ep: EpisodeStats, ep_return, ep_length, kl, values, targets, lr, ok):
        """Step 6 of the update: the epochs' metrics plus the update's own and the objective's, as float32."""
        metrics.update(
            episode_return=ep_return,
            episode_length=ep_length,
            episodes_completed=ep.count,
            kl=kl,
            explained_variance=explained_variance(values, targets, self.data_axis),
            learning_rate=jnp.asarray(lr, jnp.float32),
            diverged=jnp.logical_not(ok).astype(jnp.float32),
        )
        metrics.update(self.objective.metrics(state.objective_state, hp))
        return {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

    def _eval_return(self, state: TrainState, hp: HParams, acting: ActingState) -> jax.Array:
        """The in-training evaluation of the updated policy: its mean return every eval_every updates and after
        the last, NaN on other updates.

        Its key is folded from state.key, so the training RNG stream is untouched. `enabled` stops the
        evaluation's while_loop at once when off (a cond would become a select under vmap over seeds).
        Data-parallel: each device plays its share of the episodes (with its own key) and the means are averaged.
        """
        assert self.evaluate is not None
        config, axis = self.config, self.data_axis
        step = state.update_step + 1
        do_eval = jnp.logical_or(step % config.eval_every == 0, step == config.num_updates)
        episodes = -(-config.eval_episodes // self.data_shards)
        returns = self.evaluate(
            acting,
            collectives.device_key(jax.random.fold_in(state.key, 0x0E7A1), axis),
            episodes,
            obs_clip=hp.obs_clip,
            enabled=do_eval,
        )
        return jnp.where(do_eval, collectives.mean(returns, axis), jnp.nan).astype(jnp.float32)

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
    objective: Objective | None = None,
    randomize: Callable | None = None,
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
      objective: the policy objective (`purejaxppo.core.objectives.Objective`),
        used without being registered; its name must equal `config.objective`
        (the name a run folder records). Default: the objective registered
        under `config.objective` (an unknown name raises ConfigError here).
      randomize: per-env domain randomization, `fn(key, env_params) ->
        env_params` applied to each env at each reset inside the compiled
        program (purejaxppo.core.randomization); default: the shipped
        randomizer `config.domain_randomization` names, or none.

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
    return Train(config, **train_parts(config, env, env_params, network_factory, objective, randomize))
