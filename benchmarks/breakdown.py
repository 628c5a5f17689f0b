"""Where one PPO update's time goes: each piece timed as its own compiled program.

    python benchmarks/breakdown.py                 # CartPole-v1, compare.py's shape, 1 seed
    python benchmarks/breakdown.py --seeds 64

Per update (ms), each piece a separate `jit` of a `lax.scan` over the same number of updates:
  full          train.update (K epochs x M minibatches), as in train()
  one epoch     the same with update_epochs=1 (full minus this, over K-1, is one epoch's cost)
  rollout       rollout.collect alone (policy forward, env step, the batched value/log-prob pass)
  env only      the env's auto-resetting step for T steps, constant actions, no network
Not a test: the numbers hold only for the machine they were measured on.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import hardware_line  # noqa: E402

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.core.rollout import collect  # noqa: E402
from purejaxppo.cpu import configure as configure_cpu  # noqa: E402

configure_cpu()  # explicit CPU settings (XLA scheduler flag, unrolled threefry), before any JAX computation


def per_update_ms(fn, arg, num_updates: int, repeats: int) -> float:
    compiled = jax.jit(fn).lower(arg).compile()
    jax.block_until_ready(compiled(arg))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(compiled(arg))
        times.append(time.perf_counter() - t)
    return float(np.median(times)) / num_updates * 1e3


def pieces(config: PPOConfig):
    train = make_train(config)
    U, T, N = config.num_updates, config.num_steps, config.num_envs
    hp = config.hparams()
    step_env = jax.vmap(train.env.step, in_axes=(0, 0, 0, None))

    def full(key):
        return jax.lax.scan(lambda s, _: train.update(s), train.init(key), None, length=U)[1]["policy_loss"]

    def rollout(key):
        def body(state, k):
            carry, obs_norm, scaler, traj, _ = collect(
                k, state.env, state.params, train.agent, train.env, train.env_params, num_steps=T,
                to_env_action=train.to_env_action, obs_norm=state.obs_norm, reward_scaler=state.reward_scaler,
                gamma=hp.gamma, obs_clip=hp.obs_clip, reward_clip=hp.reward_clip)
            state = state.replace(env=carry, obs_norm=obs_norm, reward_scaler=scaler)
            return state, traj.value.sum() + traj.log_prob.sum()

        return jax.lax.scan(body, train.init(key), jax.random.split(key, U))[1]

    def env_only(key):
        state = train.init(key).env.env_state
        action = jax.vmap(train.to_env_action)(jnp.zeros((N,) + train.action_spec.shape,
                                                          jnp.int32 if train.action_spec.discrete else jnp.float32))

        def body(s, k):
            _, s, r, _, _, _ = step_env(jax.random.split(k, N), s, action, train.env_params)
            return s, r.sum()

        return jax.lax.scan(body, state, jax.random.split(key, U * T))[1]

    return full, rollout, env_only


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="YAML config (default: CartPole-v1, anneal_lr off, as compare.py)")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--updates", type=int, default=40)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    config = PPOConfig.from_yaml(args.config) if args.config else PPOConfig(anneal_lr=False)
    config = config.replace(total_timesteps=args.updates * config.batch_size)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    arg = keys[0] if args.seeds == 1 else keys
    wrap = (lambda f: f) if args.seeds == 1 else jax.vmap

    full, rollout, env_only = pieces(config)
    one_epoch_full, _, _ = pieces(config.replace(update_epochs=1))
    U, K = config.num_updates, config.update_epochs
    t_full = per_update_ms(wrap(full), arg, U, args.repeats)
    t_k1 = per_update_ms(wrap(one_epoch_full), arg, U, args.repeats)
    t_roll = per_update_ms(wrap(rollout), arg, U, args.repeats)
    t_env = per_update_ms(wrap(env_only), arg, U, args.repeats)
    epoch = (t_full - t_k1) / max(K - 1, 1)
    print(f"# breakdown: {config.env}, {args.seeds} seed(s), {config.num_envs} envs x {config.num_steps} steps, "
          f"{K} epochs x {config.num_minibatches} minibatches; {hardware_line()}")
    print("| piece | ms per update | share of full |")
    print("|---|---:|---:|")
    for name, t in [("full update", t_full), ("update with 1 epoch", t_k1), ("one epoch (derived)", epoch),
                    ("rollout (collect)", t_roll), ("env stepping only", t_env)]:
        print(f"| {name} | {t:.2f} | {t / t_full:.0%} |")
    print(f"# env-steps/s of the full update: {args.seeds * config.batch_size / t_full * 1e3:,.0f}")


if __name__ == "__main__":
    main()
