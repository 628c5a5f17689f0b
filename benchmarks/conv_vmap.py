"""Vmapped seeds of a CNN: conv_impl 'patches' (patches + one matmul) vs 'xla' (XLA's convolution).

    python benchmarks/conv_vmap.py                  # both rows -> benchmarks/results/conv_vmap.md
    python benchmarks/conv_vmap.py --quick          # tiny budgets, to check the script (prints, writes nothing)

Under `jax.vmap` over per-seed parameters XLA's convolution becomes a grouped convolution (its kernel gradient a
batch_group_count one), which XLA:CPU runs slowly; conv_impl='patches' (purejaxppo.core.conv) runs batched
matmuls instead. Rows:

  minatar  make_train on configs/breakout_minatar.yaml (CNN, 64 envs x 128 steps, 8 minibatches, 4 epochs),
           `--updates` updates per seed: jit(train) of 1 seed and jit(vmap(train)) of `--seeds` seeds
           (jax.random.split keys); total env-steps/s (every env step of every seed).
  atari    one forward + backward of NatureActorCritic (network='nature_cnn') on a `--atari-batch` batch of
           uint8 frames [4, 84, 84]: 1 parameter set, and `--atari-sets` vmapped sets (each its own batch);
           samples/s (every sample of every set).

All programs are compiled first (compile seconds listed apart), then timed in rounds: each round runs every
program once, one after another (never two at once), with `jax.block_until_ready`. Ratios are taken within a
round and the median over `--rounds` rounds is reported, so slow drift of the machine cancels. Not a test: the
numbers hold only for the machine they were measured on.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from purejaxppo import PPOConfig, configure_cpu, make_train

configure_cpu()  # explicit CPU settings (XLA scheduler flag, unrolled threefry), before any JAX computation

from _common import format_ratio, hardware_line  # noqa: E402  (run as a script from the repo root or benchmarks/)

ROOT = pathlib.Path(__file__).resolve().parents[1]
IMPLS = ("patches", "xla")  # every conv_impl; --impls picks some


def minatar_programs(seeds: int, updates: int, quick: bool, impls: tuple[str, ...] = IMPLS) -> dict:
    """(impl, n) -> (compiled program, its argument, env steps per call, compile s), n = 1 or `seeds`."""
    config = PPOConfig.from_yaml(ROOT / "configs" / "breakout_minatar.yaml")
    if quick:
        config = config.replace(num_envs=8, num_steps=16, num_minibatches=2, update_epochs=1)
    config = config.replace(total_timesteps=config.batch_size * updates)
    out = {}
    for impl in impls:
        train = make_train(config.replace(conv_impl=impl))
        for n in (1, seeds):
            fn, arg = train, jax.random.key(0)
            if n > 1:
                fn, arg = jax.vmap(train), jax.random.split(arg, n)
            t = time.perf_counter()
            compiled = jax.jit(fn).lower(arg).compile()
            out[impl, n] = (compiled, arg, n * config.num_updates * config.batch_size, time.perf_counter() - t)
    return out


def atari_programs(sets: int, batch: int, impls: tuple[str, ...] = IMPLS) -> dict:
    """(impl, n) -> (compiled forward+backward, its arguments, samples per call, compile s), n = 1 or `sets`."""
    from purejaxppo.core.networks import make_network
    from purejaxppo.envs.spaces import ActionSpec

    spec, frames = ActionSpec(True, 6, ()), jax.ShapeDtypeStruct((4, 84, 84), jnp.uint8)
    out = {}
    for impl in impls:
        net = make_network(frames, spec, network="nature_cnn", conv_impl=impl)

        def grad(params, obs, actions, net=net):
            def loss(p):
                dist, value = net.apply(p, obs)
                return jnp.mean(value**2) - jnp.mean(dist.log_prob(actions))

            return jax.grad(loss)(params)

        for n in (1, sets):
            k_obs, k_act, k_init = jax.random.split(jax.random.key(n), 3)
            obs = jax.random.randint(k_obs, (n, batch, 4, 84, 84), 0, 256).astype(jnp.uint8)
            actions = jax.random.randint(k_act, (n, batch), 0, 6)
            params = jax.vmap(net.init, in_axes=(0, None))(jax.random.split(k_init, n), obs[0])
            fn, args = (jax.vmap(grad), (params, obs, actions))
            if n == 1:
                fn, args = grad, jax.tree.map(lambda x: x[0], args)
            t = time.perf_counter()
            compiled = jax.jit(fn).lower(*args).compile()
            out[impl, n] = (compiled, args, n * batch, time.perf_counter() - t)
    return out


def timed_rounds(programs: dict, rounds: int) -> dict:
    """Run every program once per round, in a fixed order, after one untimed warm-up call each:
    (impl, n) -> list of per-round rates (units per second)."""

    def call(key):
        compiled, args, _, _ = programs[key]
        args = args if isinstance(args, tuple) else (args,)
        jax.block_until_ready(compiled(*args))

    for key in programs:
        call(key)
    rates = {key: [] for key in programs}
    for r in range(rounds):
        for key in programs:
            t = time.perf_counter()
            call(key)
            rates[key].append(programs[key][2] / (time.perf_counter() - t))
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{i} x{n} {rates[i, n][-1]:,.0f}/s" for i, n in programs),
              flush=True)
    return rates


def median_ratio(a: list[float], b: list[float]) -> str:
    """The median over rounds of a[r] / b[r] with its percentile-bootstrap 95% CI over the rounds (as compare.py)."""
    return format_ratio([x / y for x, y in zip(a, b, strict=True)])[0]


def table(title: str, unit: str, n: int, programs: dict, rates: dict) -> list[str]:
    lines = [f"### {title}", "",
             f"| conv_impl | 1: {unit}/s | {n} vmapped: total {unit}/s | {n} vmapped / 1 (median ratio [95% CI]) | "
             "compile 1 / vmapped (s) |",
             "|---|---:|---:|---:|---|"]
    impls = [impl for impl in IMPLS if (impl, 1) in programs]  # the ones measured
    for impl in impls:
        one, many = rates[impl, 1], rates[impl, n]
        lines.append(f"| {impl} | {statistics.median(one):,.0f} | {statistics.median(many):,.0f} | "
                     f"{median_ratio(many, one)} | {programs[impl, 1][3]:.1f} / {programs[impl, n][3]:.1f} |")
    lines.append("")
    if len(impls) == 2:
        speedup = {k: median_ratio(rates["patches", k], rates["xla", k]) for k in (1, n)}
        lines += [f"patches / xla (median ratio of rates [95% CI]): 1: {speedup[1]}, {n} vmapped: {speedup[n]}.", ""]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny budgets (checks the script; numbers meaningless)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (each runs every program once)")
    ap.add_argument("--seeds", type=int, default=8, help="vmapped seeds of the MinAtar row")
    ap.add_argument("--updates", type=int, default=4, help="PPO updates per seed in each timed MinAtar call")
    ap.add_argument("--atari-sets", type=int, default=4, help="vmapped parameter sets of the Atari row")
    ap.add_argument("--atari-batch", type=int, default=256, help="frames per parameter set in the Atari row")
    ap.add_argument("--rows", nargs="+", choices=("minatar", "atari"), default=("minatar", "atari"))
    ap.add_argument("--impls", nargs="+", choices=IMPLS, default=IMPLS,
                    help="conv_impl values to measure (xla's vmapped MinAtar call takes minutes a round on 2 cores)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "conv_vmap.md"))
    args = ap.parse_args()
    impls = tuple(args.impls)
    if args.quick:
        args.rounds, args.seeds, args.updates, args.atari_sets, args.atari_batch = 2, 2, 1, 2, 8

    hardware = hardware_line()
    command = "python benchmarks/conv_vmap.py " + " ".join(sys.argv[1:])
    lines = ["# Vmapped seeds of a CNN: conv_impl patches vs xla", "",
             f"Command: `{command.strip()}`. Measured on {hardware}.", "",
             "Rates are medians over the rounds; ratios are medians of per-round ratios with a percentile-bootstrap "
             f"95% CI over the {args.rounds} rounds (every program runs once per round, one after another; compile "
             "excluded). With a few rounds the bootstrap of a median can only return values between the per-round "
             "ratios, so read the CI as their spread.", ""]
    if "minatar" in args.rows:
        print(f"minatar: compiling 1 and {args.seeds} seeds x {impls}", flush=True)
        programs = minatar_programs(args.seeds, args.updates, args.quick, impls)
        rates = timed_rounds(programs, args.rounds)
        lines += table(f"Breakout-MinAtar CNN (configs/breakout_minatar.yaml), {args.updates} update(s) per seed per "
                       f"call: 1 seed vs {args.seeds} vmapped seeds", "env-steps", args.seeds, programs, rates)
    if "atari" in args.rows:
        print(f"atari: compiling 1 and {args.atari_sets} parameter sets x {impls}", flush=True)
        programs = atari_programs(args.atari_sets, args.atari_batch, impls)
        rates = timed_rounds(programs, args.rounds)
        title = (f"Nature CNN forward + backward, {args.atari_batch} uint8 frames [4, 84, 84] per set: "
                 f"1 parameter set vs {args.atari_sets} vmapped sets")
        lines += table(title, "samples", args.atari_sets, programs, rates)
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        pathlib.Path(args.out).write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
