"""Issue 33's recipes against their baseline: privileged critic, PopArt, LayerNorm, matmul precision.

    python benchmarks/recipes.py                                    # both tasks, every setting, 8 seeds
    python benchmarks/recipes.py --tasks cartpole_masked_gru --seeds 2 --total-timesteps 4096 --out /tmp/r.md

Each task is a YAML in configs/ (a recurrent policy on a masked task); it is trained with each setting:

    baseline      the config as it is
    privileged    env masked/<id>+privileged, the GRU actor on `obs`, a feed-forward critic on `obs,privileged`
    popart        value_normalization: popart
    layer_norm    layer_norm: true
    highest       matmul_precision: highest (same returns on CPU; the throughput column shows its cost on a GPU)

Every setting trains `--seeds` seeds in one jit(vmap(train)); compile and run are timed apart. A run's score is
its mean episode return over the last 10% of updates; the table gives the IQM over seeds with a 95%
percentile-bootstrap CI (purejaxppo.sweep.stats) and env-steps/s (all seeds, compile excluded). Writes the table
to --out (default benchmarks/results/recipes.md).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import final_scores, hardware_line, timed_seeds  # noqa: E402

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.cpu import configure as configure_cpu  # noqa: E402
from purejaxppo.envs.wrappers import PRIVILEGED_SUFFIX  # noqa: E402
from purejaxppo.sweep import stats  # noqa: E402

configure_cpu()  # explicit CPU settings (XLA scheduler flag, unrolled threefry), before any JAX computation

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TASKS = ["cartpole_masked_gru", "pendulum_masked_gru"]
SETTINGS = {
    "baseline": lambda c: c,
    "privileged": lambda c: c.replace(env=c.env + PRIVILEGED_SUFFIX, actor_obs_keys="obs",
                                      critic_obs_keys="obs,privileged"),
    "popart": lambda c: c.replace(value_normalization="popart"),
    "layer_norm": lambda c: c.replace(layer_norm=True),
    "highest": lambda c: c.replace(matmul_precision="highest"),
}


def run(cfg: PPOConfig, seeds: int) -> tuple[np.ndarray, float, float]:
    """(final scores [seeds], compile s, run s) of jit(vmap(train)) over `seeds` seeds."""
    out, compile_s, run_s = timed_seeds(make_train(cfg), seeds)
    return final_scores(np.asarray(out.metrics["episode_return"])), compile_s, run_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=TASKS, help="config names in configs/ (masked/<id> envs)")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--total-timesteps", type=int, default=None, help="override the configs' budgets")
    p.add_argument("--out", default=str(RESULTS / "recipes.md"))
    args = p.parse_args()
    command = "python benchmarks/recipes.py " + " ".join(sys.argv[1:])
    rows = []
    for task in args.tasks:
        base = PPOConfig.from_yaml(ROOT / "configs" / f"{task}.yaml")
        if args.total_timesteps:
            base = base.replace(total_timesteps=args.total_timesteps)
        for setting in args.settings:
            cfg = SETTINGS[setting](base)
            scores, compile_s, run_s = run(cfg, args.seeds)
            pt, lo, hi = stats.bootstrap_ci(scores, metric="iqm", reps=5000, seed=0)
            sps = args.seeds * cfg.num_updates * cfg.batch_size / run_s
            row = (f"| {base.env} | {setting} | {cfg.num_updates * cfg.batch_size:,} | {args.seeds} | "
                   f"{pt:.1f} [{lo:.1f}, {hi:.1f}] | {scores.mean():.1f} | {sps:,.0f} | {compile_s:.0f} | {run_s:.0f} |")
            print(row, f"\n  per-seed scores: {np.round(scores, 1).tolist()}", flush=True)
            rows.append(row)
    lines = ["# Recipes for hard tasks: each against the baseline", "",
             f"Produced by `{command}` ({hardware_line()}).", "",
             "Settings (docs: Recipes for hard tasks): `privileged` = the GRU actor on the masked entries and a "
             "feed-forward critic that also sees the full state; `popart` = PopArt value normalization; "
             "`layer_norm` = LayerNorm in every torso; `highest` = full float32 matmuls. Score of a run: mean "
             "episode return over its last 10% of updates; IQM over seeds with a 95% percentile-bootstrap CI. "
             "env-steps/s: all seeds together, compile excluded, settings run one after another in one process.", "",
             "| env | setting | budget (steps) | seeds | IQM [95% CI] | mean | env-steps/s | compile s | run s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|", *rows]
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
