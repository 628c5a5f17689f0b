"""Recurrent PPO throughput, old code vs this checkout, side by side in one run.

    python benchmarks/recurrent_speed.py --old <commit>           # configs/cartpole_masked_gru.yaml, 1 seed
    python benchmarks/recurrent_speed.py --old <commit> --seeds 1 8 --updates 8 2 --rounds 6 \
        --out benchmarks/results/recurrent_speed.md

`--old` is checked out into a temporary git worktree (removed at the end). Each side runs in its own long-lived
worker process (this script with `--worker`, importing `purejaxppo` from its tree through PYTHONPATH; the script
checks where each imported it from): both compile the same config's updates, then the timed calls alternate old,
new, old, new, ... one at a time, so both see the same machine load. A timed call is `--updates` PPO updates
(`train.update` in a `lax.scan`, vmapped over the seeds) from a state initialized once, untimed. Reported: the
median over rounds of each side's env-steps/s (every env step of every seed), the median of the per-round ratios
new / old with a percentile-bootstrap 95% CI over the rounds, GFLOP/s, and the machine's large-matmul rate.

FLOPs are counted analytically (`update_flops`: the matmuls of one update, 2 m k n each, elementwise work left
out): XLA's cost analysis counts a while loop's body once, not once per iteration. "Useful" FLOPs are the
matmuls this checkout runs (the rollout's steps with both heads, the bootstrap values, K epochs of forward and
backward, the exact-KL pass); the old code also replays the rollout's segment through the whole network once
before the first epoch, which its "executed" column adds. Not a test: the numbers hold only for the machine,
and the load, they were measured under.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


# --------------------------------------------------------------------------- worker (one per side)
def worker() -> None:
    """JSON lines on stdin: {"cmd": "setup", ...} -> compile; {"cmd": "run"} -> one timed call; "quit"."""
    import jax

    import purejaxppo
    from purejaxppo import PPOConfig, make_train
    from purejaxppo.cpu import configure as configure_cpu

    configure_cpu()
    compiled = states = None
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "setup":
            cfg = PPOConfig.from_yaml(msg["config"])
            cfg = cfg.replace(total_timesteps=msg["updates"] * cfg.batch_size)
            train = make_train(cfg)
            seeds = msg["seeds"]
            # The updates alone are timed, from a state initialized once: init (once per run) is left out, its
            # LAPACK QRs (orthogonal initializers) take up to seconds on a loaded machine.
            states = jax.jit(jax.vmap(train.init))(jax.random.split(jax.random.key(0), seeds))

            def updates(state, train=train, n=cfg.num_updates):
                return jax.lax.scan(lambda s, _: train.update(s), state, None, length=n)

            t = time.perf_counter()
            compiled = jax.jit(jax.vmap(updates)).lower(states).compile()
            compile_s = time.perf_counter() - t
            jax.block_until_ready(compiled(states))  # warm-up call, untimed
            obs_dim = sum(int(x.size) for x in jax.tree.leaves(train.obs_spec))
            reply = dict(compile_s=compile_s, module=purejaxppo.__file__, num_updates=cfg.num_updates,
                         batch_size=cfg.batch_size, obs_dim=obs_dim, num_actions=train.action_spec.size)
        elif msg["cmd"] == "run":
            t, c = time.perf_counter(), time.process_time()
            _, metrics = jax.block_until_ready(compiled(states))
            seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - c
            reply = dict(seconds=seconds, cpu_seconds=cpu_seconds,
                         final_return=float(metrics["episode_return"][..., -1].mean()))
        else:
            return
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


class Worker:
    def __init__(self, tree: pathlib.Path):
        env = dict(os.environ, PYTHONPATH=str(tree) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.tree = tree
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=str(tree))

    def ask(self, **msg) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker for {self.tree} died (see its stderr above)")
        return json.loads(line)

    def close(self):
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(dict(cmd="quit")) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


# --------------------------------------------------------------------------- FLOPs
def update_flops(cfg, obs_dim: int, num_actions: int, *, replay: bool) -> float:
    """Matmul FLOPs of one PPO update of a recurrent config (2 m k n per matmul; M = num_steps * num_envs samples).

    Per sample: torso layers, the cell's input projection [F, G H] and hidden matmul [H, G H] (G = 3 for the GRU,
    4 for the LSTM; twice with separate cores), actor and critic MLPs. Rollout: every part (the step keeps both
    heads); bootstrap values: all but the actor; K epochs: forward plus backward (weight gradients of every
    layer, input gradients of every layer but the first); exact KL: all but the critic. `replay=True` adds the old
    code's replay of the segment (all parts) before the first epoch.
    """
    g = 3 if cfg.network == "gru" else 4
    h = cfg.rnn_size
    cores = 1 if cfg.rnn_shared_core else 2
    widths = [obs_dim, *cfg.rnn_torso]
    torso = [(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)] + [(widths[-1], g * h), (h, g * h)]
    actor = list(zip([h, *cfg.actor_hidden], [*cfg.actor_hidden, num_actions], strict=True))
    critic = list(zip([h, *cfg.critic_hidden], [*cfg.critic_hidden, 1], strict=True))

    def fwd(layers):
        return sum(2 * a * b for a, b in layers)

    core = cores * fwd(torso)
    first = cores * 2 * widths[0] * widths[1] if len(widths) > 1 else cores * 2 * widths[0] * g * h
    per_sample = {
        "rollout": core + fwd(actor) + fwd(critic),
        "bootstrap": core + fwd(critic),
        "epochs": cfg.update_epochs * (3 * (core + fwd(actor) + fwd(critic)) - first),
        "kl": core + fwd(actor),
    }
    total = sum(per_sample.values()) + (core + fwd(actor) + fwd(critic) if replay else 0)
    return float(total * cfg.num_steps * cfg.num_envs)


# --------------------------------------------------------------------------- controller
def measure(sides: dict, tree: dict, config: str, seeds: int, updates: int, rounds: int) -> dict:
    """Both sides compiled for `seeds` seeds, then `rounds` rounds of one timed call each, old then new."""
    setup = {}
    for name, w in sides.items():
        setup[name] = w.ask(cmd="setup", config=config, updates=updates, seeds=seeds)
        if not pathlib.Path(setup[name]["module"]).resolve().is_relative_to(tree[name].resolve()):
            raise RuntimeError(f"the {name} worker imported purejaxppo from {setup[name]['module']}, not {tree[name]}")
        print(f"# {seeds} seed(s), {name}: compiled in {setup[name]['compile_s']:.1f} s ({setup[name]['module']})",
              flush=True)
    steps = seeds * setup["new"]["num_updates"] * setup["new"]["batch_size"]
    times: dict[str, list] = {"old": [], "new": []}  # (wall s, process CPU s) of each timed call
    for r in range(rounds):
        for name in ("old", "new"):
            got = sides[name].ask(cmd="run")
            times[name].append((got["seconds"], got["cpu_seconds"]))
        print(f"# round {r + 1}: env-steps/s old {steps / times['old'][-1][0]:,.0f}, new "
              f"{steps / times['new'][-1][0]:,.0f}", flush=True)
    return dict(setup=setup, steps=steps, times=times)


def rows_of(m: dict, cfg, seeds: int, labels: dict) -> tuple[list[str], list[float], float]:
    """Table rows (old, new) of one `measure`, the per-round ratios new / old of env-steps/s, and the new code's
    useful GFLOP/s."""
    dims = dict(obs_dim=m["setup"]["new"]["obs_dim"], num_actions=m["setup"]["new"]["num_actions"])
    flops = {"new": update_flops(cfg, **dims, replay=False), "old": update_flops(cfg, **dims, replay=True)}
    per_call = seeds * cfg.num_updates
    times = m["times"]
    per_round = [o[0] / n[0] for o, n in zip(times["old"], times["new"], strict=True)]  # seconds: old / new
    rows, useful = [], {}
    for name in ("old", "new"):
        wall = statistics.median(w for w, _ in times[name])
        cpu = statistics.median(c for _, c in times[name])
        useful[name] = flops["new"] * per_call / wall / 1e9
        rows.append(f"| {seeds} | {labels[name]} | {m['steps'] / wall:,.0f} | {m['steps'] / cpu:,.0f} | "
                    f"{useful[name]:.1f} | {flops[name] * per_call / wall / 1e9:.1f} | "
                    f"{m['setup'][name]['compile_s']:.0f} |")
    return rows, per_round, useful["new"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--old", help="the commit to compare against (checked out into a temporary worktree)")
    p.add_argument("--config", default="configs/cartpole_masked_gru.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="vmapped seeds; several: one measurement each")
    p.add_argument("--updates", type=int, nargs="+", default=[8],
                   help="updates per timed call (one value, or one per --seeds value)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=None, help="write the result as markdown here")
    p.add_argument("--note", default="", help="a paragraph added to --out (e.g. the machine's load)")
    args = p.parse_args()
    if args.worker:
        return worker()
    if not args.old:
        p.error("--old <commit> is required")
    updates = args.updates * len(args.seeds) if len(args.updates) == 1 else args.updates
    if len(updates) != len(args.seeds):
        p.error("--updates takes one value or one per --seeds value")
    sys.path.insert(0, str(HERE))
    from _common import format_ratio, hardware_line

    from purejaxppo import PPOConfig

    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()

    old_sha, new_sha = git("rev-parse", args.old), git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "purejaxppo"))
    labels = {"old": f"old ({old_sha[:12]})",
              "new": f"new ({new_sha[:12]}{' + uncommitted changes' if dirty else ''})"}
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="purejaxppo-old-")) / "tree"
    git("worktree", "add", "--detach", "--quiet", str(tmp), old_sha)
    tree = {"old": tmp, "new": ROOT}
    sides: dict[str, Worker] = {}
    config = str((ROOT / args.config).resolve())
    try:
        sides = {name: Worker(path) for name, path in tree.items()}
        results = [measure(sides, tree, config, s, u, args.rounds) for s, u in zip(args.seeds, updates, strict=True)]
    finally:
        for w in sides.values():
            w.close()
        subprocess.run(["git", "worktree", "remove", "--force", str(tmp)], cwd=ROOT, check=False)

    rows = ["| seeds | code | env-steps/s | env-steps per CPU-second | GFLOP/s useful | GFLOP/s executed | compile s |",
            "|---:|---|---:|---:|---:|---:|---:|"]
    summary, best = [], 0.0
    base = PPOConfig.from_yaml(ROOT / args.config)
    for m, s, u in zip(results, args.seeds, updates, strict=True):
        cfg = base.replace(total_timesteps=u * base.batch_size)
        r, per_round, gflops = rows_of(m, cfg, s, labels)
        rows, best = rows + r, max(best, gflops)
        dims = dict(obs_dim=m["setup"]["new"]["obs_dim"], num_actions=m["setup"]["new"]["num_actions"])
        cell, rounds = format_ratio(per_round)
        summary.append(
            f"- {s} seed{'s' if s > 1 else ''}, {u} updates per call: new / old env-steps/s {cell} (median of "
            f"{args.rounds} rounds' ratios [percentile-bootstrap 95% CI over the rounds]; rounds: {rounds})"
        )
    from roofline import big_matmul_flops  # after the workers are gone: the machine is otherwise idle

    peak = big_matmul_flops() / 1e9
    flops_line = (f"FLOPs per update and seed: {update_flops(base, **dims, replay=False) / 1e9:.3f} G useful (what the "
                  f"new code runs), {update_flops(base, **dims, replay=True) / 1e9:.3f} G executed by the old code "
                  "(its replay of the segment before the first epoch added). env-steps/s and GFLOP/s: medians of "
                  "each side's timed calls, wall-clock. The machine's large-matmul rate (one float32 2048^3 matmul "
                  f"on all cores, best of 5, measured after the rounds): {peak:.1f} GFLOP/s; the new code's useful "
                  f"GFLOP/s reach {100 * best / peak:.0f}% of it at best.")
    print("\n".join(rows + summary + [flops_line]))
    if args.out:
        argv = sys.argv[1:]
        if "--note" in argv:  # the note is printed below the table, not repeated in the command
            argv[argv.index("--note") + 1] = "..."
        command = "python benchmarks/recurrent_speed.py " + " ".join(argv)
        lines = ["# Recurrent PPO throughput: old vs new code", "", "Produced by `benchmarks/recurrent_speed.py`:", "",
                 f"`{command}`", "", f"{hardware_line()}; `{args.config}`, {args.rounds} alternating rounds.", "",
                 *rows, "", *summary, "", flops_line, ""]
        if args.note:
            lines += [args.note, ""]
        pathlib.Path(args.out).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
