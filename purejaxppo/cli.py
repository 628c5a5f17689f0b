"""Command line: `purejaxppo train` / `python -m purejaxppo train`.

Training runs in jitted chunks of updates (one compile, reused); progress is
printed on the host between chunks, so the loop itself never leaves the device.
"""

from __future__ import annotations

import argparse
import sys
import time

from purejaxppo.config import PPOConfig, coerce_field


def _parse_sets(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects FIELD=VALUE, got {pair!r}")
        name, value = pair.split("=", 1)
        out[name.strip()] = coerce_field(name.strip(), value.strip(), source="--set")
    return out


def cmd_train(args) -> int:
    import jax
    import numpy as np

    from purejaxppo.train import make_train, raise_if_diverged

    config = PPOConfig.from_yaml(args.config) if args.config else PPOConfig()
    config = config.replace(**_parse_sets(args.set))
    train = make_train(config)
    hp = config.hparams()
    n_up = config.num_updates
    chunk = max(1, min(args.log_every, n_up))

    def run(state, length):
        return jax.lax.scan(lambda s, _: train.update(s, hp), state, None, length=length)

    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    init = jax.jit(jax.vmap(train.init))
    chunk_fns = {}

    compile_s = 0.0

    def run_chunk(state, length):
        nonlocal compile_s
        if length not in chunk_fns:  # at most two compiles: the chunk and a shorter remainder
            tc = time.time()
            chunk_fns[length] = jax.jit(jax.vmap(lambda s: run(s, length))).lower(state).compile()
            compile_s += time.time() - tc
        return chunk_fns[length](state)

    print(f"purejaxppo: {config.env}, {config.total_timesteps:,} steps x {args.seeds} seed(s), "
          f"{n_up} updates of {config.num_envs} envs x {config.num_steps} steps", flush=True)
    t0 = time.time()
    state = init(keys)
    done, rows = 0, []
    while done < n_up:
        length = min(chunk, n_up - done)
        c0 = compile_s
        t_chunk = time.time()
        state, m = run_chunk(state, length)
        m = jax.tree.map(np.asarray, m)
        rows.append(m)
        done += length
        sps = length * config.batch_size * args.seeds / max(time.time() - t_chunk - (compile_s - c0), 1e-9)
        ret = m["episode_return"][:, -1]
        print(f"update {done:>6}/{n_up}  env steps {done * config.batch_size:>10,}  "
              f"return {ret.mean():9.2f} (min {ret.min():.1f}, max {ret.max():.1f})  "
              f"steps/s {sps:,.0f}", flush=True)
    metrics = {k: np.concatenate([r[k] for r in rows], axis=-1) for k in rows[0]}
    from purejaxppo.train import TrainOutput

    out = TrainOutput(state, metrics)
    final = metrics["episode_return"][:, -10:].mean(axis=-1)
    print(f"final mean return (last 10 updates): {final.mean():.2f} over {args.seeds} seed(s); "
          f"wall time {time.time() - t0:.1f}s (compile {compile_s:.1f}s)", flush=True)
    raise_if_diverged(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="purejaxppo", description="PPO end to end in JAX.")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("train", help="train on a config (default: CartPole-v1)")
    p.add_argument("--config", help="YAML config file (default: built-in CartPole-v1 defaults)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds, vmapped")
    p.add_argument("--seed", type=int, default=0, help="base PRNG seed")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field")
    p.add_argument("--log-every", type=int, default=100, help="updates per jitted chunk / progress line")
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["train"] + (argv or []))
    try:
        return cmd_train(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"purejaxppo: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
