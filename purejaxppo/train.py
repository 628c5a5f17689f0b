"""The fused PPO training function.

`make_train(config)` returns `train(key, hparams=None) -> TrainOutput`, a pure
function of a PRNG key and the traced hyperparameters: jit it, vmap it over
keys (seeds) or over `HParams` (sweeps). It is built from two pieces that
research code can drive itself (e.g. in jitted chunks between checkpoints):

    state = train.init(key, hp)              # TrainState
    state, metrics = train.update(state, hp)  # one PPO iteration (Algorithm 1)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from purejaxppo.config import HParams, PPOConfig, validate_hparams
from purejaxppo.envs import (
    action_spec_from_space,
    check_env_api,
    default_env_params,
    env_spaces,
    make_action_transform,
    make_env,
    obs_shape_from_space,
)
from purejaxppo.gae import compute_gae
from purejaxppo.losses import Batch, adapt_kl_beta, ppo_loss
from purejaxppo.networks import make_network
from purejaxppo.normalization import RewardScaler, RunningMeanStd
from purejaxppo.resources import check_memory
from purejaxppo.rollout import EnvCarry, collect

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

    obs_norm / reward_scaler are None unless enabled in the config.
    diverged becomes True (and stays) once an update produced non-finite
    numbers; from then on updates leave params and optimizer state unchanged.
    """

    params: Any
    opt_state: Any
    env: EnvCarry
    obs_norm: RunningMeanStd | None
    reward_scaler: RewardScaler | None
    kl_beta: jax.Array
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
    return perm


def explained_variance(values: jax.Array, targets: jax.Array) -> jax.Array:
    """1 - Var[target - V] / Var[target] (0 when the targets have no variance)."""
    var_t = jnp.var(targets)
    return jnp.where(var_t > 0, 1.0 - jnp.var(targets - values) / jnp.where(var_t > 0, var_t, 1.0), 0.0)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train(
    config: PPOConfig,
    env: Any = None,
    env_params: Any = None,
    network_factory: Callable | None = None,
) -> Callable[..., TrainOutput]:
    """Build the pure training function for `config`.

    Args:
      config: static configuration (and default hyperparameters).
      env, env_params: any gymnax-API environment and its params (default
        `env.default_params`); by default the env named by `config.env`. A
        string env is an environment id like `config.env` ("CartPole-v1",
        "brax/ant"), made with `purejaxppo.envs.make_env`. Params that do not
        fit the env raise ValueError.
      network_factory: `f(config, obs_shape, action_spec) -> flax module` whose
        `__call__(obs [B, ...])` returns `(dist, value [B])`; default
        `purejaxppo.networks.make_network`.

    Returns:
      `train(key, hparams=None) -> TrainOutput`, with attributes `init`,
      `update`, `config`, `env`, `env_params`, `network`. Hyperparameters
      passed to train/init/update are checked by `validate_hparams` when
      concrete (eager calls); under jit/vmap they are tracers and unchecked.
    """
    if not isinstance(config, PPOConfig):
        raise ValueError(f"make_train: config must be a PPOConfig, got {type(config).__name__}")
    if network_factory is not None and not callable(network_factory):
        raise ValueError(
            "make_train: network_factory must be callable as f(config, obs_shape, action_spec) -> flax module, "
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
    obs_shape = obs_shape_from_space(obs_space)
    action_spec = action_spec_from_space(action_space)
    check_memory(config, obs_shape, action_spec)  # one run must fit the device: refuse now, not deep inside XLA
    network = (network_factory or make_network)(config, obs_shape, action_spec)
    apply_fn = network.apply
    to_env_action = make_action_transform(action_spec, config.action_handling)

    N, T = config.num_envs, config.num_steps
    num_updates = config.num_updates
    evaluate = None
    if config.eval_every > 0:  # in-training evaluation (purejaxppo.evaluate); adds metrics["eval_return"]
        from purejaxppo.evaluate import build_evaluate

        evaluate = build_evaluate(env, env_params, apply_fn, action_spec, obs_clip=config.obs_clip,
                                  to_env_action=to_env_action)
    batch_size, num_minibatches = config.batch_size, config.num_minibatches

    # ------------------------------------------------------------------ init
    def init(key: jax.Array, hp: HParams | None = None) -> TrainState:
        hp = config.hparams() if hp is None else validate_hparams(hp, objective=config.objective)
        k_params, k_reset, k_state = jax.random.split(key, 3)
        params = network.init(k_params, jnp.zeros((1,) + obs_shape, jnp.float32))
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, N), env_params)
        zero = jnp.zeros((), jnp.float32)
        return TrainState(
            params=params,
            opt_state=make_optimizer(hp, hp.learning_rate).init(params),
            env=EnvCarry(env_state, obs, jnp.zeros((N,), jnp.float32), jnp.zeros((N,), jnp.int32)),
            obs_norm=RunningMeanStd.create(obs_shape) if config.normalize_obs else None,
            reward_scaler=RewardScaler.create(N) if config.normalize_reward else None,
            kl_beta=jnp.asarray(hp.kl_beta, jnp.float32),
            key=k_state,
            update_step=jnp.zeros((), jnp.int32),
            last_episode_return=zero,
            last_episode_length=zero,
            diverged=jnp.asarray(False),
        )

    # ---------------------------------------------------------------- update
    def update(state: TrainState, hp: HParams | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
        hp = config.hparams() if hp is None else validate_hparams(hp, objective=config.objective)
        key, k_rollout, k_epochs = jax.random.split(state.key, 3)

        # 1. Rollout: N envs x T steps with the current policy.
        env_carry, obs_norm, reward_scaler, traj, ep = collect(
            k_rollout, state.env, state.params, apply_fn, env, env_params,
            num_steps=T, to_env_action=to_env_action,
            obs_norm=state.obs_norm, reward_scaler=state.reward_scaler,
            gamma=hp.gamma, obs_clip=hp.obs_clip, reward_clip=hp.reward_clip,
        )

        # 2. Advantages: V(s'_t) from the pre-reset observation, then GAE.
        flat_final = traj.final_obs.reshape((T * N,) + traj.final_obs.shape[2:])
        next_values = apply_fn(state.params, flat_final)[1].reshape(T, N)
        terminated = traj.terminated
        if config.truncation_as_termination:
            terminated = jnp.logical_or(terminated, traj.truncated)
        advantages, targets = compute_gae(
            traj.reward, traj.value, next_values, terminated, traj.truncated, hp.gamma, hp.gae_lambda
        )

        # 3. K epochs of shuffled minibatch updates.
        lr = hp.learning_rate
        if config.anneal_lr:
            lr = lr * (1.0 - state.update_step.astype(jnp.float32) / num_updates)
        optimizer = make_optimizer(hp, lr)
        batch = jax.tree.map(
            lambda x: x.reshape((batch_size,) + x.shape[2:]),
            Batch(traj.obs, traj.action, traj.log_prob, traj.value, advantages, targets, traj.dist),
        )

        def loss_fn(params, mb):
            return ppo_loss(
                params, apply_fn, mb, hp, state.kl_beta, objective=config.objective,
                clip_value_loss=config.clip_value_loss, normalize_advantages=config.normalize_advantages,
            )

        def minibatch_step(carry, mb):
            params, opt_state = carry
            (_, m), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, mb)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            m["grad_norm"] = optax.tree_utils.tree_norm(grads)
            return (optax.apply_updates(params, updates), opt_state), m

        def run_epoch(params, opt_state, epoch):
            perm = permutation(jax.random.fold_in(k_epochs, epoch), batch_size)
            shuffled = jax.tree.map(lambda x: x[perm].reshape((num_minibatches, -1) + x.shape[1:]), batch)
            (params, opt_state), m = jax.lax.scan(minibatch_step, (params, opt_state), shuffled)
            return params, opt_state, jax.tree.map(jnp.mean, m)

        metric_keys = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm")

        def epoch_step(carry, epoch):
            params, opt_state, stopped = carry
            if config.use_target_kl:
                # Early stop: once stopped, the remaining epochs are no-ops.
                def skip(p, o, e):
                    return p, o, {k: jnp.zeros((), jnp.float32) for k in metric_keys}

                params, opt_state, m = jax.lax.cond(stopped, skip, run_epoch, params, opt_state, epoch)
                ran = jnp.logical_not(stopped)
                stopped = jnp.logical_or(stopped, m["approx_kl"] > hp.target_kl)
            else:
                params, opt_state, m = run_epoch(params, opt_state, epoch)
                ran = jnp.asarray(True)
            return (params, opt_state, stopped), (m, ran)

        (params, opt_state, _), (epoch_metrics, ran) = jax.lax.scan(
            epoch_step, (state.params, state.opt_state, jnp.asarray(False)), jnp.arange(config.update_epochs)
        )
        ran = ran.astype(jnp.float32)
        epochs_completed = ran.sum()
        metrics = {k: jnp.sum(v * ran) / jnp.maximum(epochs_completed, 1.0) for k, v in epoch_metrics.items()}

        # 4. Exact KL(pi_old || pi_new) over the batch; adaptive-beta rule.
        new_dist, _ = apply_fn(params, batch.obs)
        kl = jnp.mean(batch.old_dist.kl(new_dist))
        kl_beta = state.kl_beta
        if config.objective == "kl_adaptive":
            kl_beta = adapt_kl_beta(state.kl_beta, kl, hp.kl_target, hp.kl_beta_min, hp.kl_beta_max)

        # 5. Divergence guard: a non-finite update is not applied, and the run stops learning.
        ok = _all_finite((params, metrics, kl)) & jnp.logical_not(state.diverged)
        params, opt_state = jax.tree.map(
            lambda new, old: jnp.where(ok, new, old), (params, opt_state), (state.params, state.opt_state)
        )
        kl_beta = jnp.where(ok, kl_beta, state.kl_beta)

        # 6. Per-update metrics (scalars only).
        has_eps = ep.count > 0
        ep_return = jnp.where(has_eps, ep.return_sum / jnp.maximum(ep.count, 1.0), state.last_episode_return)
        ep_length = jnp.where(has_eps, ep.length_sum / jnp.maximum(ep.count, 1.0), state.last_episode_length)
        metrics.update(
            episode_return=ep_return,
            episode_length=ep_length,
            episodes_completed=ep.count,
            kl=kl,
            kl_beta=state.kl_beta,
            explained_variance=explained_variance(traj.value, targets),
            learning_rate=jnp.asarray(lr, jnp.float32),
            epochs_completed=epochs_completed,
            diverged=jnp.logical_not(ok).astype(jnp.float32),
        )
        metrics = {k: jnp.asarray(metrics[k], jnp.float32) for k in METRIC_NAMES}
        if evaluate is not None:
            # Deterministic policy after this update, every eval_every updates and after the last; NaN otherwise.
            # Its key is folded from state.key, so the training RNG stream is untouched. `enabled` stops the
            # evaluation's while_loop at once when off (a cond would become a select under vmap over seeds).
            step = state.update_step + 1
            do_eval = jnp.logical_or(step % config.eval_every == 0, step == num_updates)
            returns = evaluate(params, obs_norm, jax.random.fold_in(state.key, 0x0E7A1), config.eval_episodes,
                               obs_clip=hp.obs_clip, enabled=do_eval)
            metrics["eval_return"] = jnp.where(do_eval, jnp.mean(returns), jnp.nan).astype(jnp.float32)

        new_state = TrainState(
            params=params,
            opt_state=opt_state,
            env=env_carry,
            obs_norm=obs_norm,
            reward_scaler=reward_scaler,
            kl_beta=kl_beta,
            key=key,
            update_step=state.update_step + 1,
            last_episode_return=ep_return,
            last_episode_length=ep_length,
            diverged=jnp.logical_not(ok),
        )
        return new_state, metrics

    # ----------------------------------------------------------------- train
    def train(key: jax.Array, hparams: HParams | None = None) -> TrainOutput:
        """Run config.num_updates PPO iterations from `key`. Pure; jit/vmap freely."""
        hp = config.hparams() if hparams is None else validate_hparams(hparams, objective=config.objective)
        state = init(key, hp)
        state, metrics = jax.lax.scan(lambda s, _: update(s, hp), state, None, length=num_updates)
        return TrainOutput(state, metrics)

    train.init = init
    train.update = update
    train.config = config
    train.env = env
    train.env_params = env_params
    train.network = network
    train.action_spec = action_spec
    train.to_env_action = to_env_action
    return train


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
        raise FloatingPointError(
            f"training diverged: {len(runs)} of {flat.shape[0]} run(s) produced non-finite losses or parameters "
            f"(run {int(runs[0])} first at update {first}); their params were frozen at the last finite values. "
            "Lower learning_rate, enable normalize_obs/normalize_reward, or check the environment's rewards/observations."
        )
