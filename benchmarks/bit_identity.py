"""Are two checkouts' feed-forward training runs bit-identical? Every metric of every update, side by side.

    git worktree add /tmp/before <commit>
    python benchmarks/bit_identity.py --before /tmp/before [--after .] --seeds 16 --total-timesteps 51200

Each checkout trains the same config (the defaults of --env) in its own process with
its own package on PYTHONPATH (and purejaxppo.cpu.configure() where it exists); the table says, per metric,
whether all [seeds, updates] values are equal bit for bit, and if not, where they first differ and by how much.
tests/test_golden.py checks the same at a small size against a stored file on every CI run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WORKER = r'''
import sys, numpy as np, jax, purejaxppo
if hasattr(purejaxppo, "configure_cpu"):
    purejaxppo.configure_cpu()
from purejaxppo import PPOConfig, make_train
out_path, env, steps, seeds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = PPOConfig(env=env, total_timesteps=steps)
out = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.key(0), seeds))
np.savez(out_path, **{k: np.asarray(v) for k, v in out.metrics.items()})
print(purejaxppo.__file__)
'''


def run(checkout: Path, out: Path, args) -> None:
    env = dict(os.environ, PYTHONPATH=str(checkout.resolve()))
    res = subprocess.run([sys.executable, "-c", WORKER, str(out), args.env, str(args.total_timesteps), str(args.seeds)],
                         cwd=checkout, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{checkout}: {res.stderr[-2000:]}")
    imported = res.stdout.strip().splitlines()[-1]
    if not Path(imported).resolve().is_relative_to(checkout.resolve()):
        sys.exit(f"{checkout}: imported purejaxppo from {imported}, not from the checkout")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, type=Path)
    p.add_argument("--after", default=Path("."), type=Path)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--total-timesteps", type=int, default=51_200)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "before.npz", Path(tmp) / "after.npz"
        run(args.before, a, args)
        run(args.after, b, args)
        before, after = np.load(a), np.load(b)
        print(f"# {args.env}, {args.seeds} seeds, {args.total_timesteps} steps: {args.before} vs {args.after}")
        print("| metric | bit-identical | first difference [seed, update] | max abs difference |")
        print("|---|---|---|---:|")
        for k in sorted(set(before.files) | set(after.files)):
            if k not in before.files or k not in after.files:
                print(f"| {k} | only in {'after' if k in after.files else 'before'} | | |")
                continue
            x, y = before[k], after[k]
            same = np.array_equal(x, y, equal_nan=True)
            where = np.argwhere(~((x == y) | (np.isnan(x) & np.isnan(y))))
            diff = float(np.nanmax(np.abs(x.astype(np.float64) - y))) if not same else 0.0
            print(f"| {k} | {'yes' if same else 'no'} | {'' if same else where[0].tolist()} | {diff:.3g} |")


if __name__ == "__main__":
    main()
