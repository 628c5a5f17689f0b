"""The PPO paper's Table 1 (Schulman et al., 2017): its seven MuJoCo tasks, its eleven objective settings,
its hyperparameters, through EnvPool inside the jitted train function.

    python benchmarks/paper_table1.py                                  # everything (hours on a 2-core CPU)
    python benchmarks/paper_table1.py --tasks Hopper-v4 --seeds 3      # one task; run again to add more
    python benchmarks/paper_table1.py --report-only                    # rebuild the table from the run folders

Per task, the eleven settings (no clipping; clip eps 0.1/0.2/0.3; adaptive KL d_targ 0.003/0.01/0.03;
fixed KL beta 0.3/1/3/10) x seeds are one `sweep_run` of one compiled program: objective `clip_kl`, whose
parts are switched by traced settings, listed as the sweep's points (`SETTINGS` below: clip_eps = inf is no
clipping, exactly; kl_beta = 0 no penalty; kl_beta_min = kl_beta_max = kl_beta a fixed beta; else beta
adapts from 1 by the paper's rule). tests/test_objectives.py checks that each point trains exactly as the
paper's own objective (`clip`, `none`, `kl_fixed`, `kl_adaptive`) does. The sweep folders live under --runs
(default runs/paper_table1/<task>) and resume where they stopped. A finished task's per-seed scores and
session times are recorded in benchmarks/results/paper_table1.json (committed), so the table fills in across
sessions and checkouts: a task found there is not trained again, and the report reads it when its run folder
is gone.

Task versions: the `-v4` tasks. The paper ran gym's v1 tasks on mujoco-py; v4 has the same models and
rewards on the maintained `mujoco` bindings (v5 changes defaults such as the reset noise and healthy-reward
handling), and EnvPool ships it.

Hyperparameters (the paper's MuJoCo settings): one actor, T = 2048, Adam 3e-4 (constant), K = 10 epochs,
minibatch M = 64, gamma 0.99, lambda 0.95, 1M steps; separate 64-64 tanh actor and critic, a
state-independent log-std. Not stated by the paper and set as OpenAI Baselines' ppo1 did: observation
normalization with running statistics, advantages normalized per minibatch; no entropy bonus, no value
clipping, no gradient-norm clipping (max_grad_norm 1e9). kl_adaptive starts at beta 1.

Score of a run: the mean total reward of its last 100 episodes (the paper's), read from metrics.jsonl
(each update's mean episode return weighted by its completed episodes). Normalization as in the paper: per
task, a uniform random policy scores 0 and the best setting (mean over seeds) 1; a setting's normalized score
is the mean over tasks and seeds, with a 95% bootstrap CI over those (task, seed) scores.
Writes benchmarks/results/paper_table1.md.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import hardware_line, last_episodes  # noqa: E402

from purejaxppo import PPOConfig, configure_cpu  # noqa: E402
from purejaxppo.runs import read_metrics  # noqa: E402
from purejaxppo.sweep import build_spec  # noqa: E402
from purejaxppo.sweep.runner import sweep_run  # noqa: E402
from purejaxppo.sweep.stats import bootstrap_ci  # noqa: E402

configure_cpu()

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TASKS = ["HalfCheetah-v4", "Hopper-v4", "InvertedDoublePendulum-v4", "InvertedPendulum-v4", "Reacher-v4",
         "Swimmer-v4", "Walker2d-v4"]
INF = float("inf")
BETA_BOUNDS = (1e-4, 1e4)  # the adaptive beta's (never binding) bounds: PPOConfig's defaults


def _point(clip_eps=INF, kl_beta=0.0, kl_target=0.01, bounds=BETA_BOUNDS) -> dict:
    return {"clip_eps": clip_eps, "kl_beta": kl_beta, "kl_target": kl_target,
            "kl_beta_min": bounds[0], "kl_beta_max": bounds[1]}


# The paper's eleven settings, in its Table 1 order: label -> the clip_kl point that is that objective.
SETTINGS = {
    "No clipping or penalty": _point(),
    **{f"Clipping, eps = {e}": _point(clip_eps=e) for e in (0.1, 0.2, 0.3)},
    **{f"Adaptive KL, d_targ = {d}": _point(kl_beta=1.0, kl_target=d) for d in (0.003, 0.01, 0.03)},
    **{f"Fixed KL, beta = {b}": _point(kl_beta=b, bounds=(b, b)) for b in (0.3, 1.0, 3.0, 10.0)},
}
# The paper's Table 1 column (normalized score, averaged over the seven tasks x 3 seeds).
PAPER = {  # (its keys are SETTINGS')
    "No clipping or penalty": -0.39,
    "Clipping, eps = 0.1": 0.76, "Clipping, eps = 0.2": 0.82, "Clipping, eps = 0.3": 0.70,
    "Adaptive KL, d_targ = 0.003": 0.68, "Adaptive KL, d_targ = 0.01": 0.74, "Adaptive KL, d_targ = 0.03": 0.71,
    "Fixed KL, beta = 0.3": 0.62, "Fixed KL, beta = 1.0": 0.71, "Fixed KL, beta = 3.0": 0.72,
    "Fixed KL, beta = 10.0": 0.69,
}

# Published PPO (clip 0.2) returns at 1M steps, per task: (the PPO paper's Fig. 3 curve at 1M, as read off the
# graph in Tianshou's MuJoCo benchmark, thu-ml/tianshou examples/mujoco/README.md, "PPO" table, "PPO paper"
# column; gym v1 tasks), and CleanRL's ppo_continuous_action on the same v4 tasks at 1M steps (mean +- std of 3
# seeds, docs/benchmark/ppo_continuous_action.md, tag pr-424; None where CleanRL did not run the task).
PUBLISHED = {
    "HalfCheetah-v4": ("~1800", "1442.64 ± 46.03"),
    "Hopper-v4": ("~2330", "2382.86 ± 271.74"),
    "InvertedDoublePendulum-v4": ("~8000", None),
    "InvertedPendulum-v4": ("~1000", "963.09 ± 22.20"),
    "Reacher-v4": ("~-7", None),
    "Swimmer-v4": ("~108", None),
    "Walker2d-v4": ("~3460", "2287.95 ± 571.78"),
}


def paper_config(task: str, steps: int) -> PPOConfig:
    return PPOConfig(
        env=f"envpool/{task}", num_envs=1, num_steps=2048, total_timesteps=steps, update_epochs=10,
        num_minibatches=32, learning_rate=3e-4, anneal_lr=False, gamma=0.99, gae_lambda=0.95,
        ent_coef=0.0, vf_coef=0.5, max_grad_norm=1e9, clip_value_loss=False, normalize_obs=True,
        normalize_advantages=True, network="mlp", actor_hidden=(64, 64), critic_hidden=(64, 64),
        activation="tanh", log_every=1, objective="clip_kl",
    )


RECORD = RESULTS / "paper_table1.json"


def load_record() -> dict:
    """{task: {"scores": {label: [per seed]}, "sessions": [{wall_time_s, compile_time_s}], ...}} of finished tasks."""
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {}


def record_task(task: str, runs: pathlib.Path, steps: int, seeds: int) -> None:
    """Copy a finished task's per-seed scores and session times from its run folder into RECORD."""
    scores = task_scores(task, runs)
    if scores is None or len(scores) != len(SETTINGS):
        return
    info = json.loads((runs / task / "run.json").read_text())
    record = load_record()
    record[task] = {
        "steps": steps, "seeds": seeds, "recorded": time.strftime("%Y-%m-%d"), "hardware": hardware_line(),
        "scores": {label: [round(float(x), 3) for x in v] for label, v in scores.items()},
        "sessions": [{k: x.get(k) for k in ("wall_time_s", "compile_time_s")} for x in info.get("sessions") or []],
    }
    RECORD.write_text(json.dumps(dict(sorted(record.items())), indent=1) + "\n")


def run_task(task: str, steps: int, seeds: int, runs: pathlib.Path) -> float:
    """Train (or continue) one task's eleven settings x seeds as one sweep; returns the wall seconds it took."""
    out = runs / task
    t = time.time()
    if (out / "sweep.yaml").is_file():
        sweep_run(None, out, resume=True, report=False, progress="lines")
    else:
        spec = build_spec(paper_config(task, steps), points=list(SETTINGS.values()), seeds=seeds, seed=0)
        sweep_run(spec, out, report=False, progress="lines", checkpoint_every=25)
    return time.time() - t


def task_scores(task: str, runs: pathlib.Path) -> dict[str, np.ndarray] | None:
    """{label: scores [seeds]} of one finished task, or None when it has not finished."""
    out = runs / task
    info = out / "run.json"
    if not info.is_file() or json.loads(info.read_text()).get("status") != "finished":
        return None
    by_setting: dict[int, dict[int, list]] = {}
    for gdir in sorted((out / "groups").iterdir()):
        for r in read_metrics(gdir):
            by_setting.setdefault(r["setting"], {}).setdefault(r["seed"], []).append(r)
    labels = list(SETTINGS)
    return {labels[s]: np.array([last_episodes(by_seed[k])[0] for k in sorted(by_seed)])
            for s, by_seed in sorted(by_setting.items())}


def random_score(task: str, episodes: int = 100) -> float:
    """Mean total reward of a uniform random policy over `episodes` episodes (EnvPool, on the host)."""
    import envpool

    env = envpool.make(task, env_type="gymnasium", num_envs=10, seed=1)
    space = env.action_space
    rng = np.random.default_rng(0)
    env.reset()
    returns, running = [], np.zeros(10)
    while len(returns) < episodes:
        action = rng.uniform(space.low, space.high, (10,) + space.shape)
        _, r, term, trunc, _ = env.step(action)
        running += r
        for i in np.flatnonzero(term | trunc):
            returns.append(running[i])
            running[i] = 0.0
    return float(np.mean(returns[:episodes]))


def write_report(tasks: list[str], runs: pathlib.Path, seeds: int, steps: int, walls: dict, path: pathlib.Path):
    for t in tasks:
        record_task(t, runs, steps, seeds)
    record = load_record()
    raw = {t: ({k: np.asarray(v) for k, v in record[t]["scores"].items()} if t in record else {}) for t in tasks}
    done = [t for t in tasks if len(raw[t]) == len(PAPER)]
    lines = [
        "# The PPO paper's Table 1, reproduced (MuJoCo through EnvPool)",
        "",
        f"Measured on {hardware_line()} with `python benchmarks/paper_table1.py` "
        f"({seeds} seeds, {steps:,} steps per run). Method, versions and hyperparameters: the script's docstring.",
        "",
        f"Tasks finished (all 11 settings): {', '.join(done) or 'none yet'}; "
        f"not yet: {', '.join(t for t in tasks if t not in done) or 'none'}.",
        "",
    ]
    if done:
        rand = {t: random_score(t) for t in done}
        norm: dict[str, list] = {label: [] for label in PAPER}
        for t in done:
            best = max(float(np.mean(v)) for v in raw[t].values())
            for label in PAPER:
                norm[label] += list((raw[t][label] - rand[t]) / (best - rand[t]))
        lines += ["## Normalized score (random policy 0, best setting 1; mean over tasks x seeds, 95% bootstrap CI)",
                  "", f"| setting | ours ({len(done)} task(s)) | 95% CI | paper (7 tasks) |", "|---|---|---|---|"]
        for label, values in norm.items():
            point, lo, hi = bootstrap_ci(np.asarray(values), "mean")
            lines.append(f"| {label} | {point:.2f} | [{lo:.2f}, {hi:.2f}] | {PAPER[label]:.2f} |")
        lines += ["", "## Final score per task (mean of the last 100 episodes; mean over seeds, min..max)", "",
                  "| task | random | " + " | ".join(PAPER) + " |", "|---" * (len(PAPER) + 2) + "|"]
        for t in done:
            cells = [f"{np.mean(raw[t][label]):.0f} ({np.min(raw[t][label]):.0f}..{np.max(raw[t][label]):.0f})"
                     for label in PAPER]
            lines.append(f"| {t} | {rand[t]:.0f} | " + " | ".join(cells) + " |")
        clip = "Clipping, eps = 0.2"
        lines += ["", "## Clipping, eps = 0.2, against published PPO at 1M steps", "",
                  "| task | ours (mean ± std over seeds) | PPO paper, Fig. 3 (read off by Tianshou) | CleanRL v4 |",
                  "|---|---|---|---|"]
        for t in done:
            paper, cleanrl = PUBLISHED[t]
            lines.append(f"| {t} | {np.mean(raw[t][clip]):.1f} ± {np.std(raw[t][clip]):.1f} | {paper} | "
                         f"{cleanrl or 'not run'} |")
        lines += ["", "Sources: the PPO paper's curves at 1M steps as read off its Fig. 3 in Tianshou's MuJoCo "
                  "benchmark (github.com/thu-ml/tianshou, examples/mujoco/README.md, table \"PPO\", column "
                  "\"PPO paper\"; gym v1 tasks); CleanRL's `ppo_continuous_action.py` at 1M steps on the v4 "
                  "tasks, 3 seeds (github.com/vwxyzjn/cleanrl, docs/benchmark/ppo_continuous_action.md, tag "
                  "pr-424). CleanRL anneals the learning rate and clips gradients and value loss; its score is "
                  "the episodic return at the end of training."]
    lines += ["", "## Wall time (every session of each task's sweep)", "",
              "| task (11 settings x seeds, one program) | sessions | wall s | compile s | env steps/s |",
              "|---|---:|---:|---:|---:|"]
    for t in tasks:
        info = runs / t / "run.json"
        if t in record:
            sessions = record[t]["sessions"]
        elif info.is_file():
            sessions = json.loads(info.read_text()).get("sessions") or []
        else:
            continue
        wall = sum(x.get("wall_time_s") or 0.0 for x in sessions)
        comp = sum(x.get("compile_time_s") or 0.0 for x in sessions)
        rate = f"{len(PAPER) * seeds * steps / wall:,.0f}" if t in done and wall else "(running)"
        lines.append(f"| {t} | {len(sessions)} | {wall:.0f} | {comp:.0f} | {rate} |")
    notes: dict[str, list] = {}
    for t in done:
        if record[t].get("note"):
            notes.setdefault(record[t]["note"], []).append(t)
    lines += ["", "Sessions ran beside other work on the same 2 cores (tests, other benchmarks), so the walls are "
              "upper bounds. This invocation: "
              + (", ".join(f"{k} {v:.0f} s" for k, v in walls.items()) or "report only") + "."]
    lines += ["", *(f"{', '.join(ts)}: {n}" for n, ts in notes.items())]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--runs", default=str(ROOT / "runs" / "paper_table1"), help="the sweep folders (resumable)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "paper_table1.md"))
    args = p.parse_args()
    runs = pathlib.Path(args.runs)
    walls = {}
    if not args.report_only:
        for task in args.tasks:
            if task in load_record():
                print(f"{task}: recorded in {RECORD.name}, not trained again", flush=True)
                continue
            walls[task] = run_task(task, args.steps, args.seeds, runs)
            record_task(task, runs, args.steps, args.seeds)
            print(f"{task}: {walls[task]:.0f}s", flush=True)
    write_report(args.tasks, runs, args.seeds, args.steps, walls, pathlib.Path(args.out))


if __name__ == "__main__":
    main()
