"""Recurrent policies on partially observed tasks: GRU vs LSTM vs MLP, IQM with 95% CI, curves, throughput.

    python benchmarks/recurrent.py                       # masked CartPole and masked Pendulum, 8 seeds
    python benchmarks/recurrent.py --tasks cartpole_masked_gru --seeds 4 --total-timesteps 100000

Each task is a YAML in configs/ with a recurrent network; it is trained with
`network` set to gru, lstm and mlp (the memoryless baseline, whose MLP gets the
torso and head widths: rnn_torso + actor_hidden / critic_hidden), and, as the
score the masked task should approach, with the MLP on the fully observed env.
Every setting trains `--seeds` seeds in one jit(vmap(train)); compile and run
are timed apart. A run's score is its mean episode return over the last 10% of
updates; the table gives the IQM over seeds with a 95% percentile-bootstrap
CI (purejaxppo.sweep.stats), and the throughput column env-steps/s of the run
(compile excluded), all settings measured one after another in this one
process. Writes benchmarks/results/recurrent.md and a curve PNG per task.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import final_scores, first_complete_update, hardware_line, timed_seeds  # noqa: E402

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.sweep import stats  # noqa: E402
from purejaxppo.cpu import configure as configure_cpu  # noqa: E402
from purejaxppo.envs.wrappers import base_env_name  # noqa: E402

configure_cpu()  # explicit CPU settings (XLA scheduler flag, unrolled threefry), before any JAX computation

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TASKS = ["cartpole_masked_gru", "pendulum_masked_gru"]
SETTINGS = ["gru", "lstm", "mlp", "mlp, full obs"]


def setting_config(base: PPOConfig, setting: str) -> PPOConfig:
    if setting in ("gru", "lstm"):
        return base.replace(network=setting)
    mlp = base.replace(network="mlp", actor_hidden=base.rnn_torso + base.actor_hidden,
                       critic_hidden=base.rnn_torso + base.critic_hidden)
    return mlp.replace(env=base_env_name(base.env)) if setting == "mlp, full obs" else mlp


def run(cfg: PPOConfig, seeds: int):
    """(curves [seeds, updates], compile s, run s) of jit(vmap(train)) over `seeds` seeds."""
    out, compile_s, run_s = timed_seeds(make_train(cfg), seeds)
    curves = np.asarray(out.metrics["episode_return"])
    first = first_complete_update(out.metrics["episodes_completed"])
    return curves, first, compile_s, run_s


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=TASKS, help="config names in configs/")
    p.add_argument("--settings", nargs="+", default=SETTINGS, choices=SETTINGS)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--total-timesteps", type=int, default=None, help="override the configs' budgets")
    p.add_argument("--out", default=str(RESULTS / "recurrent.md"))
    p.add_argument("--append", action="store_true", help="keep the rows, throughput lines and commands of other "
                   "tasks already in --out (fill the table task by task)")
    args = p.parse_args()
    command = "python benchmarks/recurrent.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows, throughput = [], {}
    for task in args.tasks:
        base = PPOConfig.from_yaml(ROOT / "configs" / f"{task}.yaml")
        if args.total_timesteps:
            base = base.replace(total_timesteps=args.total_timesteps)
        curves_by = {}
        steps = (np.arange(base.num_updates) + 1) * base.batch_size
        first_all = 0
        for setting in args.settings:
            cfg = setting_config(base, setting)
            curves, first, compile_s, run_s = run(cfg, args.seeds)
            scores = final_scores(curves)
            pt, lo, hi = stats.bootstrap_ci(scores, metric="iqm", reps=5000, seed=0)
            sps = args.seeds * cfg.num_updates * cfg.batch_size / run_s
            throughput[(task, setting)] = sps
            row = (f"| {cfg.env} | {setting} | {cfg.num_updates * cfg.batch_size:,} | {args.seeds} | "
                   f"{pt:.1f} [{lo:.1f}, {hi:.1f}] | {scores.mean():.1f} | {sps:,.0f} | {compile_s:.0f} | {run_s:.0f} |")
            print(row, flush=True)
            print(f"  per-seed scores: {np.round(scores, 1).tolist()}", flush=True)
            rows.append(row)
            curves_by[f"{setting}"] = curves
            first_all = max(first_all, first)
        png = RESULTS / f"recurrent_{task}.png"
        stats.plot_curves({k: v[:, first_all:] for k, v in curves_by.items()}, steps[first_all:], png, metric="iqm",
                          title=f"{base.env}: {args.seeds} seeds, IQM and 95% CI")
    envs = {base_env_name(PPOConfig.from_yaml(ROOT / "configs" / f"{t}.yaml").env) for t in args.tasks}
    kept_rows, kept_notes, kept_tasks, commands = [], [], [], [f"`{command}` ({hardware_line()})"]
    out = pathlib.Path(args.out)
    if args.append and out.exists():
        for line in out.read_text().splitlines():
            cells = [c.strip() for c in line.split("|")]
            if line.startswith("| ") and len(cells) > 3 and cells[1] not in ("env", "---") \
                    and base_env_name(cells[1]) not in envs:
                kept_rows.append(line)
            elif line.startswith("Throughput, ") and line.split(",")[1].split(":")[0].strip() not in args.tasks:
                kept_notes.append(line)
            elif line.startswith("- `python benchmarks/recurrent.py"):
                commands.insert(0, line[2:])
            elif line.startswith("![") and line[2:].split("]")[0] not in args.tasks:
                kept_tasks.append(line[2:].split("]")[0])
    lines = ["# Recurrent policies on partially observed tasks", "",
             "Produced by `benchmarks/recurrent.py`:", "", *[f"- {c}" for c in commands], "",
             "`masked/<id>` shows only positions (the velocities "
             "are masked out, purejaxppo.envs.wrappers); `mlp, full obs` is the same budget on the unmasked env, the "
             "score the masked task should approach. Score of a run: mean episode return over its last 10% of "
             "updates; IQM over seeds with a 95% percentile-bootstrap CI. env-steps/s: all seeds together, "
             "compile excluded, settings run one after another in one process.", "",
             "| env | network | budget (steps) | seeds | IQM [95% CI] | mean | env-steps/s | compile s | run s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|", *kept_rows, *rows, "", *kept_notes]
    for task in args.tasks:
        if (task, "gru") in throughput and (task, "mlp") in throughput:
            ratio = throughput[(task, "gru")] / throughput[(task, "mlp")]
            lines.append(f"Throughput, {task}: GRU {throughput[(task, 'gru')]:,.0f} vs MLP "
                         f"{throughput[(task, 'mlp')]:,.0f} env-steps/s: the GRU runs at **{ratio:.2f}x** the MLP's "
                         "speed (same config, same process).")
            print(lines[-1])
    lines += [""] + [f"![{t}](recurrent_{t}.png)" for t in kept_tasks + args.tasks]
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
