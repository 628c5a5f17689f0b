"""Can PPO on CPU use the second core? Ways to run seeds in parallel, measured side by side.

    python benchmarks/parallel_cpu.py                  # CartPole-v1, compare.py's shape, 4 seeds
    python benchmarks/parallel_cpu.py --seeds 64       # may hang (see below)

One XLA:CPU program at this network size runs its small matmuls on one thread
(benchmarks/roofline.py), so a 2-core machine is half idle. Rows, each in
env-steps/s (all seeds together) with CPU-seconds per wall-second:

  1 seed, 1 program            jit(train) from the main thread
  1 seed x 2 host threads      the same compiled program called from two Python threads at once
  S seeds vmapped              jit(vmap(train)) over S seeds: what users and compare.py run
  S seeds on 2 CPU devices     S/2 vmapped seeds per device (jax_num_cpu_devices=2), dispatched
                               to both devices before waiting on either
  S seeds, 2 host threads      S/2 vmapped seeds per thread, both threads at once
  ... with a 1-thread pool     1 seed and S vmapped seeds, CPU affinity one core while JAX starts
                               its backend (JAX sizes XLA's intra-op thread pool from the
                               affinity), then all cores again

Each row runs in its own process, one after another, under --timeout: on jax 0.10.2 the
two-thread and two-device rows sometimes deadlocked (0% CPU), more often with more seeds.

Not a test: the numbers hold only for the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import threading

import jax


def _before_backend(mode: str | None) -> None:
    """Process-wide settings a row needs; they only take effect before JAX starts its backend."""
    if mode == "devices":
        jax.config.update("jax_num_cpu_devices", 2)
    if mode == "pool1":
        # JAX sizes XLA's intra-op pool from the CPU affinity when the backend starts.
        cores = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cores)})
        jax.numpy.zeros(()).block_until_ready()
        os.sched_setaffinity(0, cores)


if "--child" in sys.argv:
    _before_backend(sys.argv[sys.argv.index("--child") + 1])

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import best_of, hardware_line  # noqa: E402

from purejaxppo import PPOConfig, configure_cpu, make_train  # noqa: E402

configure_cpu()  # explicit CPU settings (XLA scheduler flag, unrolled threefry), before any JAX computation in the parent;
# each --child inherits the flag through XLA_FLAGS


def config(total_timesteps: int) -> PPOConfig:
    """compare.py's CartPole shape (the PPOConfig defaults: 4 envs x 128 steps, 4 epochs x 4 minibatches), constant lr."""
    return PPOConfig(anneal_lr=False, log_every=0, total_timesteps=total_timesteps)


def measure(launch, steps: int, repeats: int) -> tuple[float, float]:
    """Best env-steps/s over `repeats` calls of `launch()` (which blocks until done), and its CPU/wall."""
    wall, cpu_per_wall = best_of(launch, repeats)
    return steps / wall, cpu_per_wall


def in_threads(fns) -> None:
    """Run the callables concurrently, one Python thread each (compiled calls release the GIL)."""
    threads = [threading.Thread(target=f) for f in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_mode(mode: str, cfg: PPOConfig, seeds: int, repeats: int):
    """One row, measured in this (child) process: [(label, seeds, (env-steps/s, CPU/wall)), ...]."""
    train = make_train(cfg)
    keys = jax.random.split(jax.random.key(0), seeds)
    per_seed = cfg.num_updates * cfg.batch_size
    single = lambda: jax.jit(train).lower(keys[0]).compile()  # noqa: E731
    vmapped = lambda k: jax.jit(jax.vmap(train)).lower(k).compile()  # noqa: E731
    halves = [keys[: seeds // 2], keys[seeds // 2:]]

    if mode == "single":
        c = single()
        return [("1 seed, 1 program", 1, measure(lambda: jax.block_until_ready(c(keys[0])), per_seed, repeats))]
    if mode == "single-threads":
        c = single()
        run = lambda: in_threads([lambda k=k: jax.block_until_ready(c(k)) for k in keys[:2]])  # noqa: E731
        return [("1 seed x 2 host threads", 2, measure(run, 2 * per_seed, repeats))]
    if mode == "vmapped":
        c = vmapped(keys)
        return [(f"{seeds} seeds vmapped", seeds, measure(lambda: jax.block_until_ready(c(keys)), seeds * per_seed,
                                                          repeats))]
    if mode == "devices":
        halves = [jax.device_put(h, d) for h, d in zip(halves, jax.devices()[:2])]
        cs = [vmapped(h) for h in halves]
        run = lambda: jax.block_until_ready([c(h) for c, h in zip(cs, halves)])  # noqa: E731
        return [(f"{seeds} seeds on 2 CPU devices", seeds, measure(run, seeds * per_seed, repeats))]
    if mode == "threaded-vmap":
        c = vmapped(halves[0])
        run = lambda: in_threads([lambda h=h: jax.block_until_ready(c(h)) for h in halves])  # noqa: E731
        return [(f"{seeds} seeds, 2 host threads", seeds, measure(run, seeds * per_seed, repeats))]
    if mode == "pool1":
        c1, cv = single(), vmapped(keys)
        return [("1 seed, 1-thread XLA pool", 1, measure(lambda: jax.block_until_ready(c1(keys[0])), per_seed,
                                                          repeats)),
                (f"{seeds} seeds vmapped, 1-thread XLA pool", seeds,
                 measure(lambda: jax.block_until_ready(cv(keys)), seeds * per_seed, repeats))]
    raise ValueError(f"unknown mode {mode!r}")


MODES = ("single", "single-threads", "vmapped", "devices", "threaded-vmap", "pool1")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=4, help="seeds for the vmapped rows (even)")
    p.add_argument("--total-timesteps", type=int, default=50_000, help="per seed")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row (best is reported)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds before a row's process is declared hung")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.seeds < 2 or args.seeds % 2:
        p.error("--seeds must be even and at least 2")
    cfg = config(args.total_timesteps)
    if args.child:
        print(json.dumps(run_mode(args.child, cfg, args.seeds, args.repeats)))
        return

    rows = []
    for mode in MODES:  # one process per row, one at a time: a hang costs only that row
        cmd = [sys.executable, __file__, "--child", mode, "--seeds", str(args.seeds),
               "--total-timesteps", str(args.total_timesteps), "--repeats", str(args.repeats)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            if out.returncode == 0:
                rows += json.loads(out.stdout.strip().splitlines()[-1])
            else:
                rows.append((mode, "-", "failed: " + out.stderr.strip().splitlines()[-1][:200]))
        except subprocess.TimeoutExpired:
            rows.append((mode, "-", f"hung: no result after {args.timeout:.0f} s (process killed)"))

    per_seed = cfg.num_updates * cfg.batch_size
    print(f"# parallel seeds on CPU — {hardware_line()}")
    print(f"# command: python benchmarks/parallel_cpu.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"# {cfg.env}, {cfg.num_envs} envs x {cfg.num_steps} steps, {cfg.update_epochs} epochs x "
          f"{cfg.num_minibatches} minibatches, {per_seed:,} env steps per seed")
    print("| how | seeds | env-steps/s (all seeds) | CPU s per wall s |")
    print("|---|---:|---:|---:|")
    for name, seeds, r in rows:
        if isinstance(r, (list, tuple)):
            print(f"| {name} | {seeds} | {r[0]:,.0f} | {r[1]:.2f} |")
        else:
            print(f"| {name} | {seeds} | {r} | — |")


if __name__ == "__main__":
    main()
