"""benchmarks/paper_atari.py's comparison with the published learning curve: which games fall in the window before
each published point, and which points a run has reached (no EnvPool needed: the metrics.jsonl rows are made here)."""

import math
import runpy
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
FRAMES_PER_UPDATE = 8 * 128 * 4


@pytest.fixture(scope="module")
def pa():
    return types.SimpleNamespace(**runpy.run_path(str(BENCH / "paper_atari.py"), run_name="_bench_paper_atari"))


def test_window_score_weights_each_update_by_its_games_and_keeps_to_the_window(pa):
    # update u ends at frame u * 4096: the window (4096, 12288] holds updates 2 and 3 only.
    rows = [
        {"update": 1, "episode_return": -21.0, "episodes_completed": 5},
        {"update": 2, "episode_return": -20.0, "episodes_completed": 1},
        {"update": 3, "episode_return": -17.0, "episodes_completed": 3},
        {"update": 4, "episode_return": 0.0, "episodes_completed": 7},
        {"update": 3, "episode_return": 99.0, "episodes_completed": 0},  # no game ended: not counted
    ]
    score, n = pa.window_score(rows, FRAMES_PER_UPDATE, 3 * FRAMES_PER_UPDATE)
    assert n == 4
    assert score == pytest.approx((-20.0 * 1 + -17.0 * 3) / 4)
    empty, none = pa.window_score(rows, 10 * FRAMES_PER_UPDATE, 20 * FRAMES_PER_UPDATE)
    assert none == 0 and math.isnan(empty)


def test_published_rows_list_only_the_points_a_run_reached(pa):
    first = pa.BASELINES_PPO2["Pong"][1][0] * 4  # the first published point after 0, in frames
    last_update = first // FRAMES_PER_UPDATE + 1  # just past it
    rows = [
        {"update": u, "episode_return": -20.0 + u / 100, "episodes_completed": 1} for u in range(1, last_update + 1)
    ]
    lines = pa.published_rows({"Pong": rows})
    table = [line for line in lines if line.startswith("| Pong |")]
    assert len(table) == 1  # the second point (808k frames) is not reached
    in_window = [r for r in rows if first - pa.CURVE_BUCKET < r["update"] * FRAMES_PER_UPDATE <= first]
    expected = sum(r["episode_return"] for r in in_window) / len(in_window)
    assert table[0] == (
        f"| Pong | {first:,} | {expected:.1f} ({len(in_window)}) | {pa.BASELINES_PPO2['Pong'][1][1]:.2f} | "
        f"{pa.BASELINES_PPO2['Pong'][0][1]:.2f} |"
    )


def test_published_curve_is_in_timesteps_of_four_frames_at_the_pages_spacing(pa):
    for points in pa.BASELINES_PPO2.values():
        steps = [s for s, _ in points]
        assert steps[0] == 0
        gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
        assert all(abs(g - 10_000_000 / 99) < 10 for g in gaps)  # 100 points over 10M timesteps (pixel rounding)
