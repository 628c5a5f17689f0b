"""The PPO paper's Atari settings on Pong and Breakout through EnvPool, trained in resumable slices.

    python benchmarks/paper_atari.py --updates 40            # 40 more updates (40,960 env steps) per game
    python benchmarks/paper_atari.py --games Pong --updates 200
    python benchmarks/paper_atari.py --report-only           # rebuild the report from the run folders

Settings: configs/atari_pong.yaml and configs/atari_breakout.yaml (the paper's Table 5: 8 actors, T = 128,
Adam 2.5e-4 x alpha, K = 3, minibatch 32 x 8, clip 0.1 x alpha, c1 = 1, c2 = 0.01, alpha annealed 1 -> 0 over
the paper's 10M steps = 40M frames; episodic lives and clipped rewards for the learner, the unclipped score of
whole games reported). The schedule is the full budget's, so a slice of it is the start of the paper's run,
not a shorter run with its own schedule. One seed per game (a CPU cannot afford more).

Each invocation adds --updates updates to each game's run folder (runs/paper_atari/<game>, resumed where it
stopped: the env stream restarts with new episodes on resume, the parameters and optimizer exactly). The
report gives the frames reached, the env steps per second of this invocation, the mean score of the last
games, the score of a uniform random policy measured the same way, a learning curve, and the scores beside a
published PPO learning curve (OpenAI Baselines' ppo2, `BASELINES_PPO2` below) at each of its points the runs
reached.

conv_impl: 'patches' by default. With one seed nothing is vmapped, but the update's gradient is what costs:
measured 2026-12-02 on this CPU (Nature CNN, a 256-frame minibatch, forward + backward) 0.70 s with patches vs
1.19 s with XLA's convolution, whose kernel gradient for the 8x8 stride-4 layer XLA:CPU runs slowly (the
forward alone is the other way round: 0.42 s vs 0.14 s).
Writes benchmarks/results/paper_atari.md.
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
from purejaxppo.runs import read_metrics, train_run  # noqa: E402

configure_cpu()

ROOT = pathlib.Path(__file__).resolve().parent.parent
GAMES = {"Pong": "atari_pong.yaml", "Breakout": "atari_breakout.yaml"}
FRAMES_PER_STEP = 4  # EnvPool's frame skip
STEPS_PER_UPDATE = 8 * 128  # the configs' 8 actors x T = 128
# The paper's Table 6: PPO's score averaged over the last 100 episodes of training, at 40M frames.
PAPER_40M = {"Pong": 20.7, "Breakout": 274.8}
# A published PPO learning curve: OpenAI Baselines' Atari benchmark page (benchmarks_atari10M.htm in
# github.com/openai/baselines, "Atari10M Comparison", ppo2 at commit 7bfbcf1 on PongNoFrameskip-v4 and
# BreakoutNoFrameskip-v4, OpenAI's PPO from the paper's authors' library; its curves are the reward "avg. over 6 runs"
# against timesteps of 4 frames, up to 10M). The page draws each curve as an SVG polyline of 100 points,
# one every 1/99 of the 10M timesteps; these are its first five points, in (timesteps, score), converted from
# pixels through the page's own axis ticks (x: 0 to 1e7; y: Pong -20 / 0 / 20, Breakout 0 / 200 / 400).
BASELINES_PPO2 = {
    "Pong": [(0, -20.24), (101_008, -20.20), (202_016, -20.06), (303_024, -19.69), (404_032, -18.77)],
    "Breakout": [(0, 3.03), (101_007, 4.22), (202_014, 6.70), (303_022, 9.31), (404_029, 11.55)],
}


def train_slice(game: str, updates: int, runs: pathlib.Path, conv_impl: str) -> tuple[int, float]:
    """Add `updates` updates to the game's run; returns (updates done now in total, wall seconds of this slice)."""
    out = runs / game
    config = PPOConfig.from_yaml(ROOT / "configs" / GAMES[game]).replace(conv_impl=conv_impl)
    done = _updates_done(out)
    t = time.time()
    train_run(config, out, resume=(out / "run.json").is_file(), stop_after=done + updates, checkpoint_every=10,
              progress="lines")
    return _updates_done(out), time.time() - t


def _updates_done(out: pathlib.Path) -> int:
    return max((r["update"] for r in read_metrics(out)), default=0) if (out / "metrics.jsonl").is_file() else 0


def random_score(game: str, games: int = 10) -> float:
    """Mean unclipped score of a uniform random policy over whole games (EnvPool, on the host)."""
    import envpool

    env = envpool.make(f"{game}-v5", env_type="gymnasium", num_envs=games, seed=1)
    rng = np.random.default_rng(0)
    env.reset()
    score, finished, over = np.zeros(games), np.zeros(games), np.zeros(games, bool)
    while not over.all():
        _, _, _, trunc, info = env.step(rng.integers(0, env.action_space.n, games))
        order = np.argsort(info["env_id"])  # EnvPool returns the envs in any order
        reward, trunc, game_over = info["reward"][order], trunc[order], info["terminated"][order].astype(bool)
        score += np.where(over, 0.0, reward)
        ended = (game_over | trunc) & ~over
        finished[ended], over = score[ended], over | ended
    return float(finished.mean())


CURVE_BUCKET = 100_000  # frames


def ended_games(rows: list[dict]):
    """(last frame of the update, mean score, games) of each update in which whole games ended."""
    for r in rows:
        n = int(r.get("episodes_completed") or 0)
        if n and r.get("episode_return") is not None:
            yield r["update"] * STEPS_PER_UPDATE * FRAMES_PER_STEP, r["episode_return"], n


def curve(rows: list[dict]) -> dict[int, tuple[float, int]]:
    """{bucket: (mean score, games)} of whole games by the frame count at which they ended (bucket b holds
    frames (b * CURVE_BUCKET, (b + 1) * CURVE_BUCKET]), from each update's mean and count of ended games."""
    sums: dict[int, list] = {}
    for frames, score, n in ended_games(rows):
        acc = sums.setdefault((frames - 1) // CURVE_BUCKET, [0.0, 0])
        acc[0], acc[1] = acc[0] + score * n, acc[1] + n
    return {b: (t / n, n) for b, (t, n) in sums.items()}


def window_score(rows: list[dict], lo: int, hi: int) -> tuple[float, int]:
    """(mean score, games) of the whole games that ended in updates whose last frame is in (lo, hi]."""
    games = [(score, n) for frames, score, n in ended_games(rows) if lo < frames <= hi]
    n = sum(k for _, k in games)
    return (sum(score * k for score, k in games) / n if n else float("nan")), n


def published_rows(rows_by_game: dict[str, list[dict]]) -> list[str]:
    """The report's comparison with BASELINES_PPO2 at each of its points (after 0) that the runs reached, from each
    game's metrics.jsonl rows."""
    lines = [
        "",
        "## Against a published PPO learning curve at the same frame counts",
        "",
        "Published: OpenAI Baselines' ppo2 (OpenAI's PPO, from the paper's authors' library), its Atari benchmark page "
        "(`benchmarks_atari10M.htm` in github.com/openai/baselines, commit 7bfbcf1; NoFrameskip-v4 games; "
        "mean of 6 runs, smoothed by the page), read off its learning curve, which has a point every 101,008 "
        "timesteps (404,032 frames). Ours: the mean score of the whole games that ended in the "
        f"{CURVE_BUCKET:,} frames before that point (one seed). ppo2's Atari defaults at that commit "
        "(baselines/ppo2/defaults.py and ppo2.py) are the paper's but for K = 4 epochs and c1 = 0.5; its number "
        "of envs is the machine's CPU count unless given, and the page does not say it.",
        "",
        "| game | frames | ours (games) | Baselines ppo2 | Baselines ppo2 at 0 frames |",
        "|---|---:|---:|---:|---:|",
    ]
    for game, rows in rows_by_game.items():
        reached = max((r["update"] for r in rows), default=0) * STEPS_PER_UPDATE * FRAMES_PER_STEP
        start = BASELINES_PPO2[game][0][1]
        for steps, score in BASELINES_PPO2[game][1:]:
            frames = steps * FRAMES_PER_STEP
            if frames <= reached:
                ours, n = window_score(rows, frames - CURVE_BUCKET, frames)
                lines.append(f"| {game} | {frames:,} | {ours:.1f} ({n}) | {score:.2f} | {start:.2f} |")
    return lines


def write_report(games: list[str], runs: pathlib.Path, walls: dict, path: pathlib.Path) -> None:
    lines = [
        "# The PPO paper's Atari settings (EnvPool), trained in slices on this machine",
        "",
        f"Measured on {hardware_line()} with `python benchmarks/paper_atari.py` (settings: the script's "
        "docstring and configs/atari_*.yaml; one seed).",
        "",
        "| game | updates | env steps | frames | score, last games (n) | random policy | paper at 40M frames |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    rows_by_game = {g: read_metrics(runs / g) if (runs / g / "metrics.jsonl").is_file() else [] for g in games}
    for game, rows in rows_by_game.items():
        n_updates = max((r["update"] for r in rows), default=0)
        steps = n_updates * STEPS_PER_UPDATE
        score, n = last_episodes(rows)  # whole games: the env's episode_end
        lines.append(
            f"| {game} | {n_updates} | {steps:,} | {steps * FRAMES_PER_STEP:,} | {score:.1f} ({n}) | "
            f"{random_score(game):.1f} | {PAPER_40M[game]} |"
        )
    lines += ["", f"## Learning curve (mean score of the games that ended in each {CURVE_BUCKET:,}-frame span)", "",
              "| frames | " + " | ".join(games) + " |", "|---:|" + "---|" * len(games)]
    curves = {g: curve(rows) for g, rows in rows_by_game.items()}
    for b in sorted({b for c in curves.values() for b in c}):
        cells = [f"{curves[g][b][0]:.1f} ({curves[g][b][1]})" if b in curves[g] else "" for g in games]
        lines.append(f"| {b * CURVE_BUCKET:,} – {(b + 1) * CURVE_BUCKET:,} | " + " | ".join(cells) + " |")
    lines += published_rows(rows_by_game)
    if walls:
        lines += ["", "## This invocation", "", "| game | updates added | wall s | env steps/s |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {g} | {u} | {w:.0f} | {u * STEPS_PER_UPDATE / w:.1f} |" for g, (u, w) in walls.items()]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", default=list(GAMES), choices=list(GAMES))
    p.add_argument("--updates", type=int, default=40, help="updates to add to each game's run (1,024 steps each)")
    p.add_argument("--conv-impl", choices=("xla", "patches"), default="patches")
    p.add_argument("--runs", default=str(ROOT / "runs" / "paper_atari"))
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "paper_atari.md"))
    args = p.parse_args()
    runs, walls = pathlib.Path(args.runs), {}
    if not args.report_only:
        for game in args.games:
            before = _updates_done(runs / game)
            after, wall = train_slice(game, args.updates, runs, args.conv_impl)
            walls[game] = (after - before, wall)
            print(json.dumps({"game": game, "updates": after, "added": after - before, "wall_s": round(wall)}))
    write_report(args.games, runs, walls, pathlib.Path(args.out))


if __name__ == "__main__":
    main()
