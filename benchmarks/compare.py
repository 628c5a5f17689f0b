"""Side-by-side PPO throughput: purejaxppo vs rejax, same hyperparameters, same machine, same run.

    python benchmarks/compare.py --quick                         # CPU: CartPole 1/16/64 seeds + short Pendulum, MinAtar
    python benchmarks/compare.py --envs cartpole --seeds 1 16 64 --rounds 3
    python benchmarks/compare.py --envs cartpole --seeds 1 64 256 1024 4096   # GPU sweep
    python benchmarks/compare.py --envs cartpole --num-envs 2048 --total-timesteps 10000000  # GPU, many envs

rejax lives in its own virtualenv (default benchmarks/.venv-rejax, created on
first use with `pip install rejax==0.1.3` plus the jax version of this
interpreter; or pass --rejax-python). Each implementation runs in a long-lived
worker process (benchmarks/_compare_worker.py); for every (env, seeds) both
workers compile first, then the timed runs alternate A B A B ... so both see
the same machine load. The table reports the median env-steps/s of each, their
ratio (purejaxppo / rejax), compile seconds and final returns.

Final return: purejaxppo: mean training episode return over the last 10% of
updates; rejax: its own `evaluate` of the final policy (128 episodes,
stochastic policy), untimed. Both averaged over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_compare_worker.py"
DEFAULT_VENV = HERE / ".venv-rejax"

# Shared hyperparameters (both implementations get exactly these). CartPole is our default config.
BASE = dict(gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
            hidden=[64, 64], activation="tanh", normalize_obs=False, normalize_reward=False)
SPECS = {
    "cartpole": dict(BASE, env="CartPole-v1", total_timesteps=500_000, num_envs=4, num_steps=128, epochs=4,
                     minibatches=4, lr=2.5e-4),
    "pendulum": dict(BASE, env="Pendulum-v1", total_timesteps=1_000_000, num_envs=16, num_steps=128, epochs=10,
                     minibatches=8, lr=1e-3, gamma=0.95, ent_coef=0.0, normalize_obs=True, normalize_reward=True),
    # MLP on the flattened 10x10xC grid for both (rejax 0.1.3's PPO has no CNN).
    "breakout": dict(BASE, env="Breakout-MinAtar", total_timesteps=5_000_000, num_envs=64, num_steps=128, epochs=4,
                     minibatches=8, lr=5e-4, hidden=[128, 128], activation="relu"),
}
QUICK_STEPS = {"cartpole": 500_000, "pendulum": 200_000, "breakout": 262_144}


def ensure_rejax_python(path: str | None) -> str:
    if path:
        return path
    py = DEFAULT_VENV / "bin" / "python"
    if not py.exists():
        import jax

        print(f"# creating {DEFAULT_VENV} (rejax==0.1.3, jax=={jax.__version__})", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DEFAULT_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "rejax==0.1.3", f"jax=={jax.__version__}"], check=True)
    return str(py)


class Worker:
    def __init__(self, impl: str, python: str):
        self.impl = impl
        env = dict(os.environ)
        self.proc = subprocess.Popen([python, str(WORKER), impl], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=str(HERE.parent))

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.impl} worker died")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"{self.impl}: {out['error']}\n{out.get('traceback', '')}")
        return out

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["cartpole", "pendulum", "breakout"], choices=sorted(SPECS))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--rounds", type=int, default=3, help="timed A B pairs per (env, seeds); medians are reported")
    p.add_argument("--quick", action="store_true", help="CPU budgets: CartPole 5e5, Pendulum 2e5, Breakout 2.6e5 steps")
    p.add_argument("--total-timesteps", type=int, default=None, help="override every env's budget")
    p.add_argument("--num-envs", type=int, default=None, help="override every env's num_envs")
    p.add_argument("--rejax-python", default=None, help="python of a virtualenv with rejax (default: benchmarks/.venv-rejax)")
    args = p.parse_args()

    import jax

    from purejaxppo.cpu import configure as configure_cpu

    configure_cpu()  # sets XLA_FLAGS before any JAX computation; both workers inherit it (rejax too, as before)
    from _common import hardware_line

    rejax_py = ensure_rejax_python(args.rejax_python)
    ours, theirs = Worker("purejaxppo", sys.executable), Worker("rejax", rejax_py)
    print(f"# purejaxppo vs rejax 0.1.3 — {hardware_line()}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print("| env | seeds | envs x steps | steps/seed | purejaxppo env-steps/s | rejax env-steps/s | ratio | "
          "compile s (ours / rejax) | final return (ours / rejax) |")
    print("|---|---:|---|---:|---:|---:|---:|---|---|", flush=True)
    try:
        for name in args.envs:
            spec = dict(SPECS[name])
            if args.quick:
                spec["total_timesteps"] = QUICK_STEPS[name]
            if args.total_timesteps:
                spec["total_timesteps"] = args.total_timesteps
            if args.num_envs:
                spec["num_envs"] = args.num_envs
            for seeds in args.seeds:
                a = ours.ask(cmd="setup", spec=spec, seeds=seeds)
                b = theirs.ask(cmd="setup", spec=spec, seeds=seeds)
                ta, tb, ra, rb = [], [], [], []
                ours.ask(cmd="run", returns=False)  # warm-up (first execution allocates)
                theirs.ask(cmd="run", returns=False)
                for r in range(args.rounds):
                    last = r == args.rounds - 1
                    x = ours.ask(cmd="run", returns=last)
                    y = theirs.ask(cmd="run", returns=last)
                    ta.append(x["seconds"]); tb.append(y["seconds"])  # noqa: E702
                    ra.append(x["final_return"]); rb.append(y["final_return"])  # noqa: E702
                sa = seeds * a["steps_per_seed"] / statistics.median(ta)
                sb = seeds * b["steps_per_seed"] / statistics.median(tb)
                pair_ratios = [tb_i / ta_i for ta_i, tb_i in zip(ta, tb)]
                print(f"| {spec['env']} | {seeds} | {spec['num_envs']} x {spec['num_steps']} | {a['steps_per_seed']:,} | "
                      f"{sa:,.0f} | {sb:,.0f} | **{sa / sb:.2f}×** (pairs {', '.join(f'{q:.2f}' for q in pair_ratios)}) | "
                      f"{a['compile_s']:.1f} / {b['compile_s']:.1f} | {ra[-1]:.1f} / {rb[-1]:.1f} |", flush=True)
    finally:
        ours.close()
        theirs.close()
    del jax


if __name__ == "__main__":
    main()
