"""Population-based training vs a random-search sweep of the same budget, repeated: final returns and wall time.

    python benchmarks/pbt.py          # Pendulum-v1, P=8, 3 repetitions, 600k steps a run: ~15 min alone on 2 cores
    python benchmarks/pbt.py --total-timesteps 8192 --set num_envs=4 --population 4 --ready-every 2 \
        --repeats 2 --out /tmp/pbt.md  # a smoke run (a few minutes, mostly compiling)

Each repetition r = 0 .. R-1 runs both sides one after the other (alternating which goes first), each in a
fresh process (import, compile, training and report all timed), with the same base config, the same ranges,
the same number of runs P and the same env steps per run, and its own seed r on both sides:

* pbt: `purejaxppo pbt --population P --ready-every K --range ... --seed r --pbt-seed r`: P members, exploit and
  explore every K updates (truncation 0.25, perturb x0.8/x1.2, resample probability 0.25).
* sweep: `purejaxppo sweep --random P --range ... --seeds 1 --seed r --sweep-seed r`: P fixed random draws of
  the same ranges (random search).

Score: every run's (member's) final score is computed here, by one rule for both sides, from its folder's
metrics.jsonl: the mean episode return over the last ceil(10%) of the logged updates (the sweep's own "final"
rule, purejaxppo.sweep.scores.run_scores; the default logs every update). Per repetition: PBT's best member vs
the sweep's best fixed setting, and the population's mean vs the sweep's mean. Across repetitions: IQM and mean
with 95% percentile-bootstrap CIs (purejaxppo.sweep.stats.bootstrap_ci; over the R best scores, and over the
P x R run scores stratified by repetition), and the paired PBT - sweep differences; wall times averaged.

Why Pendulum-v1 (configs/pendulum.yaml, an MLP): this is a 2-core CPU machine. MinAtar Breakout's budget
(millions of frames x 8 members x 2 sides x 3 repetitions) would take hours here; Pendulum reaches its
plateau (about -150) within a few hundred thousand steps, 8 vmapped runs of 300k steps train in ~47 s, so
R=3 repetitions of both sides at 600k steps a run fit ~15 minutes. And its best fixed setting is not obvious:
the learning rate spans two decades around the config's 1e-3 (too small learns slowly, too large is
unstable), the entropy coefficient 0 .. 0.02 (0 in the config).

Writes benchmarks/results/pbt.md (or --out) and copies the first repetition's PBT plots next to it
(<out stem>_curves.png, <out stem>_hparams.png).
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
CONFIG = "configs/pendulum.yaml"
TOTAL_TIMESTEPS = 600_000
BASE_SETS = ("log_every=1",)  # a metrics row every update: the score window is the last 10% of all updates
RANGES = ("learning_rate=log:1e-4:1e-2", "ent_coef=0:0.02")


def window_scores(rows: list[dict], key: str = "run") -> np.ndarray:
    """Each run's final score `[R]` from a folder's metrics.jsonl rows: its mean episode return over the last
    ceil(10%) of the folder's logged updates (NaN values skipped; NaN if it has none), the same rule for a PBT
    folder and a sweep group (purejaxppo.sweep.scores.run_scores' "final")."""
    from purejaxppo.runs import metric_table
    from purejaxppo.sweep.scores import run_scores

    steps, values = metric_table(rows, "episode_return", key, x="env_steps")
    return run_scores(steps, values)["final"]


def _ci(x: np.ndarray, metric: str) -> tuple[float, float, float]:
    """(point, 95% CI) of `metric` over `x` `[N]` or `[N, R]` (stratified by column); non-finite values are
    dropped (then pooled); a single value is its own interval; none is NaN."""
    from purejaxppo.sweep.stats import bootstrap_ci

    x = np.asarray(x, float)
    if not np.isfinite(x).all():
        x = x[np.isfinite(x)]
    if x.size == 0:
        return (float("nan"),) * 3
    if x.size == 1 or (x.ndim == 2 and x.shape[0] == 1 and x.shape[1] == 1):
        return (float(x.ravel()[0]),) * 3
    return bootstrap_ci(x, metric)


def summarize(pbt: list[np.ndarray], sweep: list[np.ndarray]) -> dict:
    """The comparison of R repetitions: `pbt[r]`, `sweep[r]` are the `[P]` final scores of repetition r's PBT
    members and sweep runs. Returns per repetition the best and mean of each side, and across repetitions
    {quantity: {"pbt"|"sweep"|"diff": {"iqm"|"mean": (point, low, high)}}} for quantity "best" (the R best
    scores) and "population" (the P x R run scores, stratified by repetition; its "diff" is over the R
    per-repetition mean differences). "diff" is PBT - sweep, paired by repetition."""
    per_rep = []
    for a, b in zip(pbt, sweep, strict=True):
        a, b = np.asarray(a, float), np.asarray(b, float)
        per_rep.append(
            {
                "pbt_best": float(np.nanmax(a)),
                "pbt_best_index": int(np.nanargmax(a)),
                "sweep_best": float(np.nanmax(b)),
                "sweep_best_index": int(np.nanargmax(b)),
                "pbt_mean": float(np.nanmean(a)),
                "sweep_mean": float(np.nanmean(b)),
            }
        )
    col = {k: np.asarray([r[k] for r in per_rep]) for k in ("pbt_best", "sweep_best", "pbt_mean", "sweep_mean")}
    stats = ("iqm", "mean")
    best = {
        "pbt": {m: _ci(col["pbt_best"], m) for m in stats},
        "sweep": {m: _ci(col["sweep_best"], m) for m in stats},
        "diff": {m: _ci(col["pbt_best"] - col["sweep_best"], m) for m in stats},
    }
    population = {
        "pbt": {m: _ci(np.stack(pbt, axis=1), m) for m in stats},
        "sweep": {m: _ci(np.stack(sweep, axis=1), m) for m in stats},
        "diff": {m: _ci(col["pbt_mean"] - col["sweep_mean"], m) for m in stats},
    }
    return {"per_repetition": per_rep, "best": best, "population": population}


# ------------------------------------------------------------------------------------------ running


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _sweep_side(sweep_dir: pathlib.Path) -> tuple[np.ndarray, list[str]]:
    """([P] final scores, [P] setting labels) of a sweep folder, over all its groups (programs)."""
    from purejaxppo.runs import read_metrics

    info = json.loads((sweep_dir / "sweep.json").read_text())
    label = {i: s["label"] for s in info["settings"] for i in s["setting_ids"]}
    scores, labels = [], []
    for group in sorted((sweep_dir / "groups").iterdir()):
        rows = read_metrics(group)
        setting = {int(r["run"]): int(r["setting"]) for r in rows}
        scores.append(window_scores(rows))
        labels += [label.get(setting[i], f"setting {setting[i]}") for i in sorted(setting)]
    return np.concatenate(scores), labels


def _repetition(r: int, cli: list[str], base: list[str], ranges: list[str], args, tmp: pathlib.Path) -> dict:
    from purejaxppo.runs import read_metrics

    pbt_dir, sweep_dir = tmp / f"pbt{r}", tmp / f"sweep{r}"
    seeds = ["--seed", str(r)]
    pbt_cmd = cli + ["pbt", *base, "--population", str(args.population), "--ready-every", str(args.ready_every),
                     *ranges, *seeds, "--pbt-seed", str(r), "--progress", "off", "--out", str(pbt_dir)]  # fmt: skip
    sweep_cmd = cli + ["sweep", *base, "--random", str(args.population), "--seeds", "1", *ranges, *seeds,
                       "--sweep-seed", str(r), "--progress", "off", "--out", str(sweep_dir)]  # fmt: skip
    if r % 2 == 0:  # alternate the order, so that a drift of the machine's load does not favour one side
        pbt_s, sweep_s = _run(pbt_cmd), _run(sweep_cmd)
    else:
        sweep_s, pbt_s = _run(sweep_cmd), _run(pbt_cmd)
    rep = json.loads((pbt_dir / "pbt.json").read_text())
    run_info = json.loads((pbt_dir / "run.json").read_text())
    sweep_scores, sweep_labels = _sweep_side(sweep_dir)
    out = {
        "seed": r,
        "pbt_s": pbt_s,
        "sweep_s": sweep_s,
        "pbt": window_scores(read_metrics(pbt_dir)),
        "pbt_hparams": [e["hparams"] for e in rep["final"]],
        "exploits": len(rep["lineage"]),
        "divergences": len(run_info.get("pbt_divergences") or []),
        "pbt_status": run_info.get("status"),
        "sweep": sweep_scores,
        "sweep_labels": sweep_labels,
        "env_steps": int(run_info["num_updates"]) * int(run_info["batch_size"]),
    }
    if r == 0:
        out_md = pathlib.Path(args.out)
        for png in pbt_dir.glob("pbt_*.png"):  # pbt_curves.png -> <out stem>_curves.png
            shutil.copy(png, out_md.parent / png.name.replace("pbt", out_md.stem, 1))
    print(
        f"repetition {r}: pbt {pbt_s:.0f} s (best {np.nanmax(out['pbt']):.1f}), "
        f"sweep {sweep_s:.0f} s (best {np.nanmax(sweep_scores):.1f})",
        flush=True,
    )
    return out


# ------------------------------------------------------------------------------------------ report


def _cell(t: tuple[float, float, float]) -> str:
    return f"{t[0]:.1f} [{t[1]:.1f}, {t[2]:.1f}]"


def _markdown(args, sets: list[str], reps: list[dict], summary: dict, total_s: float) -> str:
    p, k, ranges = args.population, args.ready_every, args.range or list(RANGES)
    steps = reps[0]["env_steps"]
    lines = [
        "# Population-based training vs a random-search sweep",
        "",
        f"`python benchmarks/pbt.py {' '.join(sys.argv[1:])}`; {hardware_line()}; total {total_s:.0f} s.",
        "",
        f"Base config `{args.config}` with {', '.join(sets)}; ranges {', '.join(f'`{x}`' for x in ranges)}. "
        f"{len(reps)} repetitions; in each, seed r on both sides: PBT with {p} members (`--seed r --pbt-seed r`; "
        f"exploit/explore every {k} updates: truncation 0.25, perturb x0.8/x1.2, resample probability 0.25) and "
        f"a sweep of {p} random draws of the same ranges (`--seeds 1 --seed r --sweep-seed r`). Equal budgets: "
        f"{p} runs x {steps:,} env steps = {p * steps:,} env steps per side per repetition. Wall time is a "
        "side's whole process (import, compile, training, report); the sides alternate which runs first.",
        "",
        "Final score of a run (member): its mean episode return over the last ceil(10%) of the logged updates, "
        "computed by this script from the folder's metrics.jsonl, the same rule for both sides.",
        "",
        "Why this task: the machine has 2 CPU cores. Pendulum-v1 (configs/pendulum.yaml, an MLP) plateaus within "
        "a few hundred thousand steps, so both sides x 3 repetitions fit about 15 minutes; MinAtar Breakout would "
        "take hours here. The ranges make the best fixed setting not obvious: the learning rate spans two decades "
        "around the config's 1e-3 and the entropy coefficient goes from the config's 0 to 0.02.",
        "",
        "## Per repetition",
        "",
        "| rep | PBT best member (final hparams) | sweep best setting | PBT population mean | sweep mean "
        "| PBT wall (s) | sweep wall (s) | PBT copies | PBT divergences (status) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for rep, s in zip(reps, summary["per_repetition"], strict=True):
        hp = rep["pbt_hparams"][s["pbt_best_index"]]
        hps = ", ".join(f"{f}={v:.3g}" for f, v in hp.items())
        lines.append(
            f"| {rep['seed']} | {s['pbt_best']:.1f} (member {s['pbt_best_index']}: {hps}) | {s['sweep_best']:.1f} "
            f"({rep['sweep_labels'][s['sweep_best_index']]}) | {s['pbt_mean']:.1f} | {s['sweep_mean']:.1f} | "
            f"{rep['pbt_s']:.0f} | {rep['sweep_s']:.0f} | {rep['exploits']} | {rep['divergences']} "
            f"({rep['pbt_status']}) |"
        )
    best, pop = summary["best"], summary["population"]
    lines += [
        "",
        f"## Across the {len(reps)} repetitions (95% bootstrap CIs)",
        "",
        "| quantity | statistic | PBT | sweep | PBT - sweep (paired by repetition) |",
        "|---|---|---:|---:|---:|",
    ]
    for name, q, over in (("best run", best, "the best runs"), ("population", pop, "all runs")):
        for m in ("iqm", "mean"):
            lines.append(
                f"| {name} ({over}) | {m.upper() if m == 'iqm' else m} | {_cell(q['pbt'][m])} | "
                f"{_cell(q['sweep'][m])} | {_cell(q['diff'][m])} |"
            )
    pbt_wall = np.mean([r["pbt_s"] for r in reps])
    sweep_wall = np.mean([r["sweep_s"] for r in reps])

    def verdict(diffs: np.ndarray, ci: tuple[float, float, float]) -> str:
        wins = int(np.sum(diffs > 0))
        where = f"PBT higher in {wins} of {len(diffs)} repetitions"
        if len(diffs) < 3:
            return where + " (too few repetitions for a verdict)"
        if ci[1] > 0 or ci[2] < 0:
            return where + f"; the bootstrap CI of the mean difference excludes 0 ({_cell(ci)})"
        return where + f"; no difference resolved: the CI of the mean difference includes 0 ({_cell(ci)})"

    per = summary["per_repetition"]
    d_best = np.asarray([r["pbt_best"] - r["sweep_best"] for r in per])
    d_pop = np.asarray([r["pbt_mean"] - r["sweep_mean"] for r in per])
    lines += [
        "",
        f"The population row's PBT and sweep columns pool the {p} x {len(reps)} run scores (stratified by "
        "repetition); its difference column is over the per-repetition differences of the means. With "
        f"{len(reps)} repetitions the CIs are coarse.",
        "",
        f"Best run: {verdict(d_best, best['diff']['mean'])}. Population: {verdict(d_pop, pop['diff']['mean'])}. "
        "(With a handful of repetitions a percentile-bootstrap CI excludes 0 as soon as all differences share a "
        "sign, so read the counts with it.) Wall time, mean over repetitions: PBT "
        f"{pbt_wall:.0f} s, sweep {sweep_wall:.0f} s (ratio {pbt_wall / sweep_wall:.2f}).",
        "",
        "PBT copies: how many times a member copied another's learner (the lineage). The first repetition's PBT run:",
        "",
        f"![every member's return]({pathlib.Path(args.out).stem}_curves.png)",
        f"![the population's hyperparameters]({pathlib.Path(args.out).stem}_hparams.png)",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=CONFIG)
    ap.add_argument("--total-timesteps", type=int, default=TOTAL_TIMESTEPS)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help=f"more base config overrides (always: {' '.join(BASE_SETS)}, unless overridden)")  # fmt: skip
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--ready-every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="independent repetitions (seed r on both sides)")
    ap.add_argument("--range", action="append", default=None, help=f"explored ranges (default {' '.join(RANGES)})")
    ap.add_argument("--out", default=str(RESULTS / "pbt.md"))
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")

    given = {s.split("=", 1)[0] for s in args.set}
    sets = [s for s in BASE_SETS if s.split("=", 1)[0] not in given] + list(args.set)
    sets.append(f"total_timesteps={args.total_timesteps}")
    base = ["--config", args.config] + [x for s in sets for x in ("--set", s)]
    ranges = [x for r in (args.range or RANGES) for x in ("--range", r)]
    cli = [sys.executable, "-m", "purejaxppo"]
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        reps = [_repetition(r, cli, base, ranges, args, pathlib.Path(tmp)) for r in range(args.repeats)]
    summary = summarize([r["pbt"] for r in reps], [r["sweep"] for r in reps])
    out.write_text(_markdown(args, sets, reps, summary, time.perf_counter() - t0))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
