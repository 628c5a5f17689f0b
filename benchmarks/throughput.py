"""Throughput of the fused PPO train function vs pure environment stepping.

    python benchmarks/throughput.py                      # CartPole-v1, 5e5 steps, 1 and 64 seeds
    python benchmarks/throughput.py --seeds 1 16 64 --total-timesteps 200000

For each seed count S it times, after compilation (compile seconds reported
separately; every result is `block_until_ready`-ed):
  * PPO:  jit(vmap(train)) over S keys (S=1: jit(train), no vmap);
  * env:  the same number of envs stepped with random actions in the same
          structure (scan over updates of a scan over num_steps), no network.
It prints env-steps/s for both and PPO's fraction of the pure-stepping rate.
Not a test: absolute numbers only hold for the machine they were measured on.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo import PPOConfig, configure_cpu, make_train

configure_cpu()  # explicit CPU settings (XLA scheduler flag, unrolled threefry), before any JAX computation

from _common import best_of  # noqa: E402  (run as a script from the repo root or benchmarks/)


def make_env_only(train, config):
    """Random-action stepping of config.num_envs envs, same scan structure as train()."""
    env, env_params = train.env, train.env_params
    N, T = config.num_envs, config.num_steps
    space = env.action_space(env_params)

    def run(key):
        k_reset, key = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, N), env_params)

        def step(carry, k):
            state, acc = carry
            k_a, k_s = jax.random.split(k)
            action = jax.vmap(space.sample)(jax.random.split(k_a, N))
            obs, state, reward, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_s, N), state, action, env_params)
            return (state, acc + jnp.sum(reward)), None

        def update(carry, k):
            carry, _ = jax.lax.scan(step, carry, jax.random.split(k, T))
            return carry, carry[1]

        (_, total), per_update = jax.lax.scan(update, (state, jnp.zeros(())), jax.random.split(key, config.num_updates))
        return total, per_update

    return run


def timed(fn, arg, repeats):
    """(compile seconds, best of `repeats` run seconds, the last run's output) of `jit(fn)(arg)`."""
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(arg).compile()
    compile_s = time.perf_counter() - t
    last = {}

    def launch():
        last["out"] = jax.block_until_ready(compiled(arg))

    best, _ = best_of(launch, repeats, warmup=False)
    return compile_s, best, last["out"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="YAML config (default: CartPole-v1 defaults)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 64])
    p.add_argument("--total-timesteps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=2, help="timed runs per measurement (best is reported)")
    args = p.parse_args()

    config = PPOConfig.from_yaml(args.config) if args.config else PPOConfig()
    if args.total_timesteps:
        config = config.replace(total_timesteps=args.total_timesteps)
    train = make_train(config)
    env_only = make_env_only(train, config)
    steps = config.num_updates * config.batch_size

    print(f"# purejaxppo throughput: {config.env}, {steps:,} steps/seed, {config.num_envs} envs x {config.num_steps} steps, "
          f"{config.update_epochs} epochs x {config.num_minibatches} minibatches")
    print(f"# jax {jax.__version__}, backend {jax.default_backend()}, device {jax.devices()[0].device_kind}, "
          f"{platform.processor() or platform.machine()}, date {time.strftime('%Y-%m-%d')}")
    print("| seeds | PPO compile s | PPO env-steps/s | env-only env-steps/s | PPO / env-only | final return (mean) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for s in args.seeds:
        keys = jax.random.split(jax.random.key(0), s)
        if s == 1:
            ppo_fn, env_fn, arg = train, env_only, keys[0]
        else:
            ppo_fn, env_fn, arg = jax.vmap(train), jax.vmap(env_only), keys
        c_ppo, t_ppo, out = timed(ppo_fn, arg, args.repeats)
        _, t_env, _ = timed(env_fn, arg, args.repeats)
        sps_ppo, sps_env = s * steps / t_ppo, s * steps / t_env
        final = float(np.mean(np.asarray(out.metrics["episode_return"])[..., -10:]))
        print(f"| {s} | {c_ppo:.1f} | {sps_ppo:,.0f} | {sps_env:,.0f} | {sps_ppo / sps_env:.3f} | {final:.1f} |", flush=True)


if __name__ == "__main__":
    main()
