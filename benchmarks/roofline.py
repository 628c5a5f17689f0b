"""How close PPO training runs to this machine's limits.

    python benchmarks/roofline.py                        # CartPole-v1 default shape, 1 and 64 seeds
    python benchmarks/roofline.py --seeds 1 16 64 --total-timesteps 102400

For the configuration (default: CartPole-v1, the shape compare.py uses) it reports:

* FLOPs per env step, counted from the network sizes (matmuls only: 2 * in * out
  per layer and sample; the backward pass counted as 2x the forward):
    rollout   policy forward per step, then one batched actor+critic forward over
              the T*N stored observations (values, log-probs) and a critic forward
              over the T*N final observations;
    update    K epochs of forward + backward of actor and critic over all T*N
              samples, plus one actor forward for the post-update exact KL.
* The machine's matmul FLOP/s: a large square `jnp.dot` (all cores), and a
  matmul of the training shape itself (minibatch x hidden x hidden, batched over
  the seeds as vmap makes it), repeated inside a `fori_loop`.
* Pure env stepping at the same number of envs (random actions, same scan
  structure; benchmarks/throughput.py's env-only loop).
* PPO's measured env-steps/s, and the fraction of each limit it reaches:
    flop_frac  = PPO FLOP/s / matmul FLOP/s at the training shape
    env_frac   = PPO env-steps/s / pure-stepping env-steps/s.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo import PPOConfig, configure_cpu, make_train

configure_cpu()  # explicit CPU settings (XLA scheduler flag, unrolled threefry), before any JAX computation

from _common import best_of, hardware_line  # noqa: E402  (run as a script from the repo root or benchmarks/)
from throughput import make_env_only, timed  # noqa: E402


def mlp_flops(sizes: list[int]) -> int:
    """Forward FLOPs per sample of a dense MLP with layer widths `sizes` (2 * in * out per layer)."""
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def flops_per_env_step(config: PPOConfig, obs_dim: int, out_dim: int) -> dict[str, float]:
    actor = mlp_flops([obs_dim, *config.actor_hidden, out_dim])
    critic = mlp_flops([obs_dim, *config.critic_hidden, 1])
    rollout = actor + (actor + critic) + critic  # per-step policy, batched actor+critic, V(final obs)
    update = config.update_epochs * 3 * (actor + critic) + actor  # fwd + 2x bwd per epoch, KL forward
    return {"actor_fwd": actor, "critic_fwd": critic, "rollout": rollout, "update": update, "total": rollout + update}


def matmul_flops(m: int, k: int, n: int, batch: int, iters: int = 50) -> float:
    """FLOP/s of `tanh(x @ w)` with x [batch, m, k], w [batch, k, n], `iters` times inside one fori_loop."""
    x = jnp.ones((batch, m, k), jnp.float32)
    w = jnp.full((batch, k, n), 0.01, jnp.float32)
    f = jax.jit(lambda x, w: jax.lax.fori_loop(0, iters, lambda i, y: jnp.tanh(jnp.einsum("bmk,bkn->bmn", y, w)), x))
    return 2.0 * batch * m * k * n * iters / best_of(lambda: jax.block_until_ready(f(x, w)), repeats=3)[0]


def big_matmul_flops(n: int = 2048) -> float:
    a = jnp.ones((n, n), jnp.float32)
    square = jax.jit(lambda a: a @ a)
    return 2.0 * n**3 / best_of(lambda: jax.block_until_ready(square(a)), repeats=5)[0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="YAML config (default: CartPole-v1 in compare.py's shape)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 64])
    p.add_argument("--total-timesteps", type=int, default=102_400)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    config = (PPOConfig.from_yaml(args.config) if args.config else PPOConfig(anneal_lr=False))
    config = config.replace(total_timesteps=args.total_timesteps)
    if config.network == "cnn":
        raise SystemExit("roofline.py counts MLP FLOPs only; pass an MLP config")
    train = make_train(config)
    spec = train.action_spec
    obs_dim = int(np.prod(train.env.observation_space(train.env_params).shape))
    out_dim = spec.num_actions if spec.discrete else int(np.prod(spec.shape))
    fl = flops_per_env_step(config, obs_dim, out_dim)
    steps = config.num_updates * config.batch_size
    mb = config.batch_size // config.num_minibatches
    hidden = max([*config.actor_hidden, *config.critic_hidden])

    print(f"# roofline: {config.env}, {config.num_envs} envs x {config.num_steps} steps, {config.update_epochs} epochs x "
          f"{config.num_minibatches} minibatches, actor {list(config.actor_hidden)} / critic {list(config.critic_hidden)}")
    print(f"# {hardware_line()}")
    print(f"# FLOPs per env step: rollout {fl['rollout']:,} + update {fl['update']:,} = {fl['total']:,} "
          f"(actor forward {fl['actor_fwd']:,}, critic forward {fl['critic_fwd']:,} per sample)")
    peak = big_matmul_flops()
    print(f"# large matmul (2048^3, all cores): {peak / 1e9:.1f} GFLOP/s")
    print("| seeds | matmul GFLOP/s at training shape | PPO env-steps/s | PPO GFLOP/s | flop_frac | flop_frac vs large matmul "
          "| env-only env-steps/s | env_frac | FLOP-limited env-steps/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    env_only = make_env_only(train, config)
    for s in args.seeds:
        shape_flops = matmul_flops(mb, hidden, hidden, s)
        keys = jax.random.split(jax.random.key(0), s)
        ppo_fn, env_fn, arg = (train, env_only, keys[0]) if s == 1 else (jax.vmap(train), jax.vmap(env_only), keys)
        _, t_ppo, _ = timed(ppo_fn, arg, args.repeats)
        _, t_env, _ = timed(env_fn, arg, args.repeats)
        sps, sps_env = s * steps / t_ppo, s * steps / t_env
        ppo_flops = sps * fl["total"]
        print(f"| {s} | {shape_flops / 1e9:.1f} | {sps:,.0f} | {ppo_flops / 1e9:.1f} | {ppo_flops / shape_flops:.2f} | "
              f"{ppo_flops / peak:.2f} | {sps_env:,.0f} | {sps / sps_env:.3f} | {shape_flops / fl['total']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
