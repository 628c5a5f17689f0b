"""Scaling out over processes (jax.distributed) and mesh axes, measured side by side in one run.

    python benchmarks/scaling.py                     # both rows below -> benchmarks/results/scaling.md
    python benchmarks/scaling.py --quick             # tiny budgets, to check the script

Rows (CartPole-v1), each run as 1 process and as P processes (one per core, joined by
jax.distributed on loopback, one CPU device each), the same total work:

  seeds   64 seeds x (4 envs x 128 steps): the "seed" axis, 64 / P seeds per process
  data    one agent with 1024 envs x 32 steps: the "data" axis, 1024 / P envs per process;
          final returns of both (same budget, same seed) are reported too

Every configuration is started as fresh worker processes of this script (so 1 and P processes
pay the same start-up), compiled ahead of time, then timed; env-steps/s counts every env step of
every seed. Not a test: the numbers hold only for the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _configs(quick: bool):
    from purejaxppo import PPOConfig

    seeds = PPOConfig(env="CartPole-v1", num_envs=4, num_steps=128, num_minibatches=4, update_epochs=4,
                      total_timesteps=4 * 128 * (8 if quick else 100))
    data = PPOConfig(env="CartPole-v1", num_envs=1024, num_steps=32, num_minibatches=4, update_epochs=4,
                     total_timesteps=1024 * 32 * (3 if quick else 40))
    return {"seeds": (seeds, 64), "data": (data, 1)}


def worker(row: str, out: str, quick: bool) -> None:
    """One process of a measurement: join the others (if any), compile, run, report (process 0)."""
    from purejaxppo.cpu import configure

    configure()
    procs = int(os.environ.get("PUREJAXPPO_NUM_PROCESSES", "1"))
    if procs > 1:
        from purejaxppo.parallel.distributed import initialize

        initialize()
    import jax
    import numpy as np

    from purejaxppo.parallel import gather, make_mesh, make_sharded_train

    config, seeds = _configs(quick)[row]
    mesh = make_mesh(seed=procs, data=1) if row == "seeds" else make_mesh(seed=1, data=procs)
    strain = make_sharded_train(config, mesh, seeds)
    keys = strain.seed_keys(0)
    t = time.perf_counter()
    compiled = jax.jit(strain).lower(keys).compile()
    compile_s = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    result = compiled(keys)
    jax.block_until_ready(result)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    returns = gather(result.metrics["episode_return"])  # [S, num_updates]
    if jax.process_index() == 0:
        tail = max(1, returns.shape[1] // 10)
        pathlib.Path(out).write_text(json.dumps({
            "processes": procs, "devices": jax.device_count(), "seeds": seeds, "num_envs": config.num_envs,
            "env_steps": config.num_updates * config.batch_size * seeds, "compile_s": compile_s, "run_s": wall,
            "cpu_per_wall_process0": cpu / wall, "final_return": float(np.mean(returns[:, -tail:])),
        }))


def measure(row: str, processes: int, quick: bool, timeout: int) -> dict:
    from purejaxppo.parallel.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID, free_port

    out = ROOT / "benchmarks" / f".scaling-{row}-{processes}.json"
    out.unlink(missing_ok=True)
    port = free_port()
    procs = []
    for i in range(processes):
        env = dict(os.environ, PYTHONPATH=str(ROOT), **{ENV_COORDINATOR: f"127.0.0.1:{port}",
                                                        ENV_NUM_PROCESSES: str(processes), ENV_PROCESS_ID: str(i)})
        argv = [sys.executable, __file__, "--worker", row, str(out)] + (["--quick"] if quick else [])
        procs.append(subprocess.Popen(argv, env=env))
    try:
        for p in procs:
            if p.wait(timeout=timeout) != 0:
                raise RuntimeError(f"{row} with {processes} process(es): a worker exited {p.returncode}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    result = json.loads(out.read_text())
    out.unlink()
    result["env_steps_per_s"] = result["env_steps"] / result["run_s"]
    print(f"{row:5s} {processes} process(es): {result['env_steps_per_s']:,.0f} env-steps/s "
          f"(run {result['run_s']:.1f}s, compile {result['compile_s']:.1f}s, return {result['final_return']:.1f})",
          flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=2, help="processes of the scaled-out rows (default 2: one per core)")
    ap.add_argument("--quick", action="store_true", help="tiny budgets (checks the script; numbers meaningless)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per measurement before giving up")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scaling.md"))
    ap.add_argument("--rows", nargs="+", choices=("seeds", "data"), default=("seeds", "data"))
    args = ap.parse_args()

    import platform

    rows = {}
    for row in args.rows:
        one = measure(row, 1, args.quick, args.timeout)
        many = measure(row, args.processes, args.quick, args.timeout)
        rows[row] = (one, many)
    if args.quick or len(rows) < 2:
        return
    cores = len(os.sched_getaffinity(0))
    s1, sp = rows["seeds"]
    d1, dp = rows["data"]
    p = args.processes
    import jax

    lines = [
        "# Scaling out: processes and mesh axes (CPU)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on this project's CI-class machine: {cores} CPU cores "
        f"({platform.processor() or platform.machine()}), jax {jax.__version__}, no GPU. "
        f"Command: `python benchmarks/scaling.py` (one run; rows one after another, never two at once).",
        "",
        f"Each configuration runs as fresh worker processes joined by `jax.distributed` on loopback "
        f"(gloo collectives, one CPU device per process); compile time is excluded from env-steps/s and listed apart.",
        "",
        "| row | work | 1 process env-steps/s | " + f"{p} processes env-steps/s | ratio | goal | compile 1 / {p} (s) |",
        "|---|---|---:|---:|---:|---:|---|",
        f"| seed axis | 64 CartPole seeds x 4 envs x 128 steps, {s1['env_steps']:,} env steps | "
        f"{s1['env_steps_per_s']:,.0f} | {sp['env_steps_per_s']:,.0f} | "
        f"**{sp['env_steps_per_s'] / s1['env_steps_per_s']:.2f}x** | >= 1.8x | {s1['compile_s']:.1f} / {sp['compile_s']:.1f} |",
        f"| data axis | 1 agent x 1024 envs x 32 steps, {d1['env_steps']:,} env steps | "
        f"{d1['env_steps_per_s']:,.0f} | {dp['env_steps_per_s']:,.0f} | "
        f"**{dp['env_steps_per_s'] / d1['env_steps_per_s']:.2f}x** | >= 1.6x | {d1['compile_s']:.1f} / {dp['compile_s']:.1f} |",
        "",
        f"Returns at the same budget (mean episode return over the last 10% of updates): seed axis "
        f"{s1['final_return']:.1f} (1 process) vs {sp['final_return']:.1f} ({p} processes; the same 64 runs, "
        f"so equal up to float rounding); data axis {d1['final_return']:.1f} (1 process) vs {dp['final_return']:.1f} "
        f"({p} processes: the same algorithm, but each device shuffles and samples with its own keys, so the "
        "two runs are different random draws of it).",
        "",
        f"CPU-seconds per wall-second of process 0: {s1['cpu_per_wall_process0']:.2f} (seeds, 1 process), "
        f"{sp['cpu_per_wall_process0']:.2f} (seeds, {p} processes), {d1['cpu_per_wall_process0']:.2f} (data, 1 process), "
        f"{dp['cpu_per_wall_process0']:.2f} (data, {p} processes).",
    ]
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if "--worker" in sys.argv:
        i = sys.argv.index("--worker")
        sys.path.insert(0, str(ROOT))
        worker(sys.argv[i + 1], sys.argv[i + 2], "--quick" in sys.argv)
    else:
        main()
