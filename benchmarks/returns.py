"""Returns table: N vmapped seeds per environment config, IQM with 95% bootstrap CI.

    python benchmarks/returns.py --envs cartpole acrobot pendulum          # full budgets, 16 seeds
    python benchmarks/returns.py --quick                                   # CPU: 8 seeds, classic control
    python benchmarks/returns.py --envs breakout_minatar --total-timesteps 2000000 --seeds 4
    python benchmarks/returns.py --from-run runs/breakout                 # a finished `purejaxppo train` run folder

Each name is a YAML in configs/ (without .yaml). For each it trains `--seeds`
seeds in one jit(vmap(train)), scores each run by its mean episode return over
the last 10% of updates, and writes a row (env, budget, IQM [95% CI], mean,
published reference, wall time incl. compile, hardware) to
benchmarks/results/returns.md plus a learning-curve PNG per env. Rows of earlier
runs for other envs are kept, so the table can be filled env by env (e.g. the
MinAtar rows from an accelerator run).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import final_scores, first_complete_update, hardware_line  # noqa: E402

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.sweep import stats  # noqa: E402
from purejaxppo.cli import parse_sets  # noqa: E402
from purejaxppo.cpu import configure as configure_cpu  # noqa: E402

configure_cpu()  # explicit CPU settings (XLA scheduler flag, unrolled threefry), before any JAX computation

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# Published final returns (../shared/README.md): gymnax baselines; CleanRL; PureJaxRL plots.
REFERENCE = {
    "CartPole-v1": "500 (gymnax); 490 ± 6 (CleanRL) @ 5e5",
    "Acrobot-v1": "−80 (gymnax); −86 ± 1 (CleanRL) @ 5e5",
    "Pendulum-v1": "−130 (gymnax) @ ~1e6",
    "MountainCar-v0": "−118 (gymnax); −200 (CleanRL, fails)",
    "MountainCarContinuous-v0": "target > 0 @ 1e6",
    "Breakout-MinAtar": "28 (gymnax); ~40 (PureJaxRL) @ 1e7",
    "Asterix-MinAtar": "15 (gymnax) @ 1e7",
    "Freeway-MinAtar": "58 (gymnax) @ 1e7",
    "SpaceInvaders-MinAtar": "131 (gymnax) @ 1e7",
    "playground/CartpoleBalance": "reward tops out at 1000; Playground's Brax PPO at 6e7 steps (curves only, arXiv 2502.08844)",
    "craftax/Craftax-Classic-Symbolic-v1": "Crafter PPO @ 1e6 (pixels): reward 4.2 ± 1.2 (danijar/crafter scoreboard)",
    "craftax/Craftax-Symbolic-v1": "PPO 2.2% of max 226 (~5.0) @ 1e6 (Craftax paper's Craftax-1M; README scoreboard)",
    "jumanji/Knapsack-v1": "random legal ~13.1, greedy ~20.02, optimum ~20.08 (2000 sampled instances)",
    "xminigrid/MiniGrid-Empty-8x8": "optimum 0.961 (11 steps)",
    "navix/Navix-Empty-8x8-v0": "optimum 1.0",
}
NOTES = [
    "playground/CartpoleBalance (extra `playground`, MJX on CPU): 8 seeds of configs/playground_cartpole_balance.yaml "
    "(Playground's dm_control PPO settings scaled to a CPU: 256 envs, 64x64 networks, entropy 1e-2 as Playground, "
    "lr 1e-3 annealed) at 5e6 steps, one process, 26.6k env-steps/s while a MinAtar run shared the 2 cores, 1676 s "
    "wall. Per-seed scores 780, 1000, 998, 1000, 992, 996, 997, 198: six seeds balance at ~1000 (a PD controller on "
    "the observation scores ~999, doing nothing ~695), one was still climbing (887 in its last update), and one "
    "learned the local optimum of this task: the pole falls and the cart keeps it spinning (~200). Playground "
    "reports this task as a curve over 6e7 steps on a GPU (2048 envs), not a number; its curve ends near the 1000 "
    "ceiling. The config file lists the probes that chose entropy 1e-2 and lr annealing: with entropy 1e-3 only 1 "
    "of 8 (constant lr) or 2 of 4 (annealed) seeds escaped the spinning optimum.",
    "",
    "craftax/Craftax-Classic-Symbolic-v1 (extra `craftax`): 8 seeds of configs/craftax_classic_symbolic.yaml (the "
    "Craftax paper's PPO settings, 3 x 512 tanh networks, with 64 envs instead of 1024 so that 1e6 steps make 244 "
    "updates) at 1e6 steps, one process, 2.1k env-steps/s for the 8 seeds, 3833 s wall. Per-seed scores 5.2, 5.2, "
    "5.4, 5.2, 5.3, 5.1, 5.5, 5.2 (the score is the Crafter reward: +1 per achievement unlocked, health changes "
    "+-0.1). Crafter's own PPO reaches 4.2 +- 1.2 at 1e6 steps from pixels; the Craftax paper gives Craftax-Classic "
    "only as curves over 1e9 steps, and PPO at 1e6 only for full Craftax (2.2% of 226, ~5.0).",
    "",
    "jumanji/Knapsack-v1 (extra `jumanji`; masked task): 8 seeds of configs/jumanji_knapsack.yaml (50 items, "
    "capacity 12.5; the action mask is the set of items that still fit, applied to the logits of a masked "
    "Categorical over the 50 items; MLP 2 x 128 on the concatenated dict observation; 64 envs x 64 steps, lr 1e-3 "
    "annealed, entropy 3e-3, gamma 1) at 6.4e6 steps, the budget of Jumanji's own A2C config. Two processes "
    "(`--processes 2 --mesh seed=2`), one sitting, 1054 s wall (49.3k env-steps/s for the 8 seeds, compile 8.4 s). "
    "Per-seed scores 19.1, 19.1, 19.2, 19.1, 18.9, 18.9, 19.1, 19.1 (IQM 19.1 [19.0, 19.1]). Mean over seeds along "
    "the run: 13.5 at the first update (a random legal policy scores ~13.1), 15.5 at 6.4e5 steps, 17.2 at 1.6e6, "
    "18.4 at 3.2e6, 19.0 at 4.8e6, 19.1 at the end. Reference points on the same instance distribution (2000 "
    "sampled instances): greedy by value/weight 20.02, optimum 20.08 (dynamic programming), so PPO ends at 95% of "
    "the optimum and 87% of the way from random to greedy; still creeping up at the end. The reference "
    "points are computed here, not a published PPO number.",
    "",
    "MinAtar: which network, and why. The rows come from the MLP configs (`configs/*_minatar_mlp.yaml`, "
    "gymnax-blines' setup, which gymnax's published 28 / 131 / 15 / 58 come from: 2 x 256 ReLU on the flattened "
    "10x10xC observation, gamma 0.999, constant lr 5e-4, 64 envs x 128 steps, 4 epochs x 8 minibatches). On this "
    "2-core CPU the MLP trains 8 seeds at ~12-16k env-steps/s in total (`--processes 2 --mesh seed=2`, one process "
    "per core; Breakout 14-16k, SpaceInvaders 12k, Asterix 15k, Freeway 13k), the CNN at ~500 for 4 vmapped "
    "seeds, so only the MLP reaches 1e7 steps x 8 seeds here (85-110 min a game uncontended). A PureJaxRL-like "
    "2 x 64 unit, gamma 0.99 setup was 4x faster but plateaued at Breakout 6-7 for all 8 seeds (1e6 to 7.7e6 steps: "
    "a deterministic paddle loop).",
    "",
    "Breakout-MinAtar at 1e7: per-seed scores 25.6, 31.1, 38.6, 26.8, 55.1, 23.8, 64.1, 26.3 (IQM 30.7 against "
    "gymnax's 28; PureJaxRL's CNN curve ends near 40). Trained in two sittings (the first was killed at the end of a "
    "work session and resumed from its update-122 checkpoint); its wall time is 746 s (estimated for the killed "
    "sitting up to that checkpoint: 789 s x 122/129) + 7093 s, of which ~45 min shared the 2 cores with the "
    "Playground run and its probes (10.2k env-steps/s over the second sitting, 14-16k when alone).",
    "",
    "SpaceInvaders-MinAtar at 1e7: per-seed scores 117.4, 149.2, 124.8, 138.5, 94.3, 132.5, 140.7, 143.8 (IQM 134.1 "
    "against gymnax's 131); the curve still rises at 1e7. Trained in two sittings, both timed by the run folder "
    "(wall time recorded at every checkpoint): 2409 s to the update-366 checkpoint (10.0k env-steps/s, the first "
    "part beside other jobs) and 4688 s for the rest (12.0k env-steps/s alone).",
    "",
    "Asterix-MinAtar at 1e7: per-seed scores 15.1, 14.1, 12.6, 13.2, 11.6, 10.5, 11.5, 13.0 (IQM 12.6 [11.5, 13.8], "
    "below gymnax's 15); the curve still rises at 1e7 (return 14.0 over the 8 seeds in the last update). Evaluating "
    "the final policies (`purejaxppo eval /work/runs/minatar/asterix --episodes 32`, sampled actions, 32 episodes a "
    "seed) gives an IQM over seeds of 13.5 (95% CI 11.6 .. 15.2), whose interval holds 15. One sitting, 5217 s "
    "(15.4k env-steps/s alone, compile 21.8 s).",
    "",
    "Freeway-MinAtar at 1e7: per-seed scores 59.1, 59.3, 60.0, 59.0, 60.3, 59.1, 60.5, 57.6 (IQM 59.4 [58.7, 60.1]; "
    "every seed but one above gymnax's 58); the curve flattens from ~8e6 steps (58.1 at update 1000, 59.5 at the "
    "last). One sitting, 6277 s (12.8k env-steps/s; a 1-minute Jumanji Knapsack smoke test shared the cores once; "
    "compile 12.4 s). An earlier run of the same config reached update 1190 (return 59.5) before its machine was "
    "lost; this row is a fresh run.",
    "",
    "MinAtar on CPU: the CNN configs are compute-heavy for this CPU (about 15 MFLOP of matmuls and convolutions per env step). Measured 2026-11-21 on the 2-core CPU: Breakout-MinAtar "
    "trained at about 1,200 env-steps/s for one seed (`jit(train)`), and at about 500 env-steps/s in total for 4 "
    "vmapped seeds (vmap turns the convolutions into grouped convolutions, which XLA:CPU runs slowly). Its 1e7-step "
    "budget would take over two hours per seed, so the MinAtar targets (Breakout >= 40, SpaceInvaders >= 130 at 1e7) "
    "need an accelerator: `python benchmarks/returns.py --envs breakout_minatar spaceinvaders_minatar "
    "asterix_minatar freeway_minatar`. The MinAtar rows above come from the MLP configs instead.",
    "",
    "Brax on CPU (`pip install -e '.[brax]'`; run with that environment's python): the Brax configs (2048 envs, 5e7 "
    "steps, evaluation every 100 updates) are meant for an accelerator. The brax/hopper@spring row is a reduced CPU "
    "run of configs/hopper.yaml with the overrides shown in its budget column (64 envs, 4 minibatches, the cheaper "
    "'spring' physics, no in-training evaluation); it shows learning on a Brax env end to end, not the config's "
    "intended result.",
]
CLASSIC = ["cartpole", "acrobot", "pendulum", "mountaincar", "mountaincar_continuous"]
HEADER = ["| env | budget (steps) | seeds | IQM [95% CI] | mean | published | wall s (incl. compile) | hardware |",
          "|---|---:|---:|---:|---:|---|---:|---|"]


def _file_name(env: str) -> str:
    """'brax/hopper@spring' -> 'brax_hopper_spring' (gymnax ids pass through)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", env)


def run(name: str, seeds: int, total_timesteps: int | None, overrides: dict | None = None):
    cfg = PPOConfig.from_yaml(ROOT / "configs" / f"{name}.yaml")
    if total_timesteps:
        cfg = cfg.replace(total_timesteps=total_timesteps)
    if overrides:
        cfg = cfg.replace(**overrides)
    t = time.time()
    out = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.key(0), seeds))
    curves = np.asarray(out.metrics["episode_return"])
    wall = time.time() - t
    first = first_complete_update(out.metrics["episodes_completed"])
    steps = (np.arange(cfg.num_updates) + 1) * cfg.batch_size
    png = RESULTS / f"returns_{_file_name(cfg.env)}.png"
    stats.plot_curves({cfg.env: curves[:, first:]}, steps[first:], png, metric="iqm",
                      title=f"{cfg.env}: purejaxppo ({seeds} seeds, IQM and 95% CI)")
    scores = final_scores(curves)
    pt, lo, hi = stats.bootstrap_ci(scores, metric="iqm", reps=5000, seed=0)
    budget = f"{cfg.num_updates * cfg.batch_size:,}"
    if total_timesteps or overrides:
        budget += " (reduced" + "".join(f"; {k}={v}" for k, v in (overrides or {}).items()) + ")"
    row = (f"| {cfg.env} | {budget} | {seeds} | {pt:.1f} [{lo:.1f}, {hi:.1f}] | {scores.mean():.1f} | "
           f"{REFERENCE.get(cfg.env, '—')} | {wall:.0f} | {hardware_line()} |")
    print(row, flush=True)
    print(f"  per-seed scores: {np.round(scores, 1).tolist()}", flush=True)
    return cfg.env, row


def from_run(run_dir: str, note: str | None = None):
    """A row from a finished `purejaxppo train` run folder (e.g. one trained with --processes 2), its curve PNG,
    and the run's exact command."""
    import json

    from purejaxppo.runs.loading import learning_curves

    info = json.loads((pathlib.Path(run_dir) / "run.json").read_text())
    cfg = PPOConfig.from_yaml(pathlib.Path(run_dir) / "config.yaml")
    steps, curves = learning_curves(run_dir)
    if info.get("status") != "finished" or len(steps) != cfg.num_updates:
        raise SystemExit(f"{run_dir}: not a finished run with every update logged (status {info.get('status')!r}, "
                         f"{len(steps)} of {cfg.num_updates} updates in metrics.jsonl; train with --log-every 1)")
    sessions = info["sessions"]
    wall = sum(s.get("wall_time_s", 0.0) for s in sessions)
    command = " ".join(a for a in sessions[0]["command"] if a != "--distributed")
    processes = info.get("processes") or 1
    if processes > 1:
        command = command.replace("purejaxppo train", f"purejaxppo train --processes {processes}", 1)
    dev = info["device"]
    hardware = (f"{dev['backend']} ({dev['device_kind']}, {dev['device_count']} device(s)"
                f"{f', {processes} processes' if processes > 1 else ''}), "
                f"jax {info['versions']['jax']}, {sessions[-1]['ended'][:10]}")
    seeds = curves.shape[0]
    png = RESULTS / f"returns_{_file_name(cfg.env)}.png"
    first = first_complete_update(learning_curves(run_dir, "episodes_completed")[1])  # before it: no return yet
    stats.plot_curves({cfg.env: curves[:, first:]}, steps[first:], png, metric="iqm",
                      title=f"{cfg.env}: purejaxppo ({seeds} seeds, IQM and 95% CI)")
    scores = final_scores(curves)
    pt, lo, hi = stats.bootstrap_ci(scores, metric="iqm", reps=5000, seed=0)
    budget = f"{cfg.num_updates * cfg.batch_size:,}" + (f" ({note})" if note else "")
    row = (f"| {cfg.env} | {budget} | {seeds} | {pt:.1f} [{lo:.1f}, {hi:.1f}] | {scores.mean():.1f} | "
           f"{REFERENCE.get(cfg.env, '—')} | {wall:.0f} | {hardware} |")
    print(row, flush=True)
    print(f"  per-seed scores: {np.round(scores, 1).tolist()}", flush=True)
    return cfg.env, row, command


def write_table(path: pathlib.Path, rows: dict[str, str], command: str, commands: dict[str, str] | None = None) -> None:
    old, old_commands = {}, {}
    if path.exists():
        for line in path.read_text().splitlines():
            m = re.match(r"\| ([^|]+?) \| [0-9,]", line)
            if m:
                old[m.group(1)] = line
            m = re.match(r"- `([^`]+)`: `(.+)`$", line)
            if m:
                old_commands[m.group(1)] = m.group(2)
    old.update(rows)
    old_commands.update(commands or {})
    order = list(REFERENCE) + sorted(set(old) - set(REFERENCE))
    lines = ["# purejaxppo returns", "",
             "Score of a run: mean episode return over its last 10% of updates. IQM over seeds with a 95% "
             "percentile-bootstrap CI (`purejaxppo.sweep.stats`). Budgets marked (reduced) are below the budget the config "
             "is meant for. Produced by `benchmarks/returns.py`; the last command was:", "", f"    {command}", "",
             *HEADER, *[old[e] for e in order if e in old], "", *NOTES, ""]
    if old_commands:
        lines += ["Commands of the rows trained as run folders (`--from-run`):", "",
                  *[f"- `{e}`: `{old_commands[e]}`" for e in order if e in old_commands], ""]
    lines += [f"![{e}](returns_{_file_name(e)}.png)" for e in order if e in old]
    path.write_text("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=None, help=f"config names in configs/ (default: {' '.join(CLASSIC)})")
    p.add_argument("--seeds", type=int, default=None, help="vmapped seeds (default 16; 8 with --quick)")
    p.add_argument("--quick", action="store_true", help="8 seeds (CPU)")
    p.add_argument("--total-timesteps", type=int, default=None, help="override the budget (row marked reduced)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field for a smaller CPU run (row marked reduced, with the overrides)")
    p.add_argument("--from-run", nargs="+", default=None, metavar="RUN",
                   help="make the rows from finished `purejaxppo train --log-every 1` run folders instead of training")
    p.add_argument("--note", default=None, help="with --from-run: a note for the budget column (e.g. 'reduced')")
    p.add_argument("--out", default=str(RESULTS / "returns.md"))
    args = p.parse_args()
    if args.from_run:
        rows, commands = {}, {}
        for run_dir in args.from_run:
            env, row, command = from_run(run_dir, args.note)
            rows[env], commands[env] = row, command
        write_table(pathlib.Path(args.out), rows, "python benchmarks/returns.py " + " ".join(sys.argv[1:]), commands)
        return
    overrides = parse_sets(args.set)
    seeds = args.seeds or (8 if args.quick else 16)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name in args.envs or CLASSIC:
        env, row = run(name, seeds, args.total_timesteps, overrides)
        rows[env] = row
    write_table(pathlib.Path(args.out), rows, "python benchmarks/returns.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
