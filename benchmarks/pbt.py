"""Population-based training vs a random-search sweep of the same budget: returns and wall time.

    python benchmarks/pbt.py                                  # CartPole, 8 members / 8 draws, configs/cartpole.yaml
    python benchmarks/pbt.py --total-timesteps 4096 --set num_envs=4 --set num_steps=16 --population 4 \
        --ready-every 2 --out /tmp/pbt.md                     # a tiny smoke run (seconds of training)

Both sides run one after another in fresh processes (import, compile, training and report all timed), with
the same base config, the same ranges, the same number of runs and env steps:

* pbt: `purejaxppo pbt --population P --ready-every K --range ...`: P members, exploit/explore every K updates.
* sweep: `purejaxppo sweep --random P --range ... --seeds 1`: P fixed random draws of the same ranges.

Reported per side: wall time, the best run's final score (its mean return over the last K updates for PBT,
the sweep's final score of its rank-1 setting), the mean over runs of the final scores with a 95% bootstrap CI
(both from the sides' own reports), and for PBT the number of exploit steps and the best member's schedule.
Writes benchmarks/results/pbt.md (or --out) and copies the PBT plots next to it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import hardware_line  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RANGES = ("learning_rate=log:1e-4:3e-3", "ent_coef=0:0.03")


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _mean_ci(x: np.ndarray) -> tuple[float, float, float]:
    from purejaxppo.sweep.stats import bootstrap_ci

    x = x[np.isfinite(x)]
    return bootstrap_ci(x, "mean") if x.size > 1 else (float(np.mean(x)),) * 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/cartpole.yaml")
    ap.add_argument("--total-timesteps", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="more base config overrides")
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--ready-every", type=int, default=10)
    ap.add_argument("--range", action="append", default=None, help=f"explored ranges (default {' '.join(RANGES)})")
    ap.add_argument("--out", default=str(RESULTS / "pbt.md"))
    args = ap.parse_args()

    sets = list(args.set) + ([f"total_timesteps={args.total_timesteps}"] if args.total_timesteps else [])
    base = ["--config", args.config] + [x for s in sets for x in ("--set", s)]
    ranges = [x for r in (args.range or RANGES) for x in ("--range", r)]
    cli = [sys.executable, "-m", "purejaxppo"]
    p, k = args.population, args.ready_every
    with tempfile.TemporaryDirectory() as tmp:
        pbt_dir, sweep_dir = pathlib.Path(tmp) / "pbt", pathlib.Path(tmp) / "sweep"
        pbt_s = _run(cli + ["pbt", *base, "--population", str(p), "--ready-every", str(k), *ranges,
                            "--progress", "off", "--out", str(pbt_dir)])  # fmt: skip
        sweep_s = _run(cli + ["sweep", *base, "--random", str(p), "--seeds", "1", *ranges,
                              "--progress", "off", "--out", str(sweep_dir)])  # fmt: skip
        pbt = json.loads((pbt_dir / "pbt.json").read_text())
        sweep = json.loads((sweep_dir / "sweep.json").read_text())
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        for png in pbt_dir.glob("pbt_*.png"):
            shutil.copy(png, out.parent / png.name)

    pbt_scores = np.asarray([np.nan if e["score"] is None else e["score"] for e in pbt["final"]], float)
    # one seed per setting: a setting's mean final score is its run's (the point of its (point, low, high))
    sweep_scores = np.asarray([s["scores"]["final"]["mean"][0] if s["scores"] else np.nan for s in sweep["settings"]])
    best_sweep = next(s for s in sweep["settings"] if s.get("rank") == 1)
    pm, plo, phi = _mean_ci(pbt_scores)
    sm, slo, shi = _mean_ci(sweep_scores)
    best = pbt["final"][pbt["best"]]
    lines = [
        "# Population-based training vs a random-search sweep",
        "",
        f"`python benchmarks/pbt.py {' '.join(sys.argv[1:])}`; {hardware_line()}.",
        f"Base config `{args.config}` with {', '.join(sets) or 'no overrides'}; "
        f"ranges {', '.join(args.range or RANGES)}; "
        f"{p} runs per side; PBT: exploit/explore every {k} updates (truncation 0.25, perturb x0.8/x1.2, "
        "resample probability 0.25). Wall time includes import, compile, training and the report.",
        "",
        "| side | wall (s) | best run's final score | mean final score over runs (95% CI) |",
        "|---|---:|---:|---|",
        f"| pbt | {pbt_s:.1f} | {best['score']:.1f} (member {pbt['best']}) | {pm:.1f} ({plo:.1f} .. {phi:.1f}) |",
        f"| sweep | {sweep_s:.1f} | {np.nanmax(sweep_scores):.1f} ({best_sweep.get('label')}) | "
        f"{sm:.1f} ({slo:.1f} .. {shi:.1f}) |",
        "",
        f"PBT: {len(pbt['lineage'])} exploit(s); the best member's final hyperparameters: "
        + ", ".join(f"{f}={v:.4g}" for f, v in best["hparams"].items())
        + ". Final score: PBT's is a member's mean return over its last ready_every updates; the sweep's is its "
        "own `final` score (the last 10% of logged points). They are close but not the same window.",
        "",
        "![every member's return](pbt_curves.png)",
        "![the population's hyperparameters](pbt_hparams.png)",
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
