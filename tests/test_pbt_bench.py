"""The pure parts of benchmarks/pbt.py: the one score window both sides get (from metrics.jsonl rows) and the
per-repetition and across-repetition comparison. Nothing here trains; benchmarks/ is not a package, so the
script is loaded from its path."""

import runpy
import types
from pathlib import Path

import numpy as np
import pytest

from purejaxppo.sweep.stats import iqm

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    return types.SimpleNamespace(**runpy.run_path(str(BENCH / "pbt.py"), run_name="_bench_pbt"))


def _rows(values: dict[int, list], key: str = "run", batch: int = 512) -> list[dict]:
    """metrics.jsonl-like rows, newest first (any order must do): values[run][u - 1] at update u (None: missing)."""
    rows = [
        {"update": u, "env_steps": u * batch, key: run, "episode_return": v}
        for run, vals in values.items()
        for u, v in enumerate(vals, 1)
    ]
    return rows[::-1]


def test_window_is_the_last_ceil_tenth_of_the_logged_updates_for_every_run(bench):
    t = 21  # ceil(10% of 21) = 3 updates: 19, 20, 21
    a = [float(u) for u in range(1, t + 1)]
    b = [-1.0] * (t - 2) + [None, 5.0]  # a missing value in the window is skipped, not a reason to drop the update
    c = [7.0] * (t - 3) + [None] * 3  # no value in the window: its last finite value
    d = [None] * t  # no value at all: NaN
    scores = bench.window_scores(_rows({0: a, 1: b, 2: c, 3: d}))
    np.testing.assert_allclose(scores[:3], [20.0, (-1.0 + 5.0) / 2, 7.0])
    assert np.isnan(scores[3])
    # a PBT folder ("run" = member) and a plain run ("seed") get the same window over the same updates
    np.testing.assert_allclose(bench.window_scores(_rows({0: a}, key="seed"), key="seed"), [20.0])


def test_metric_table_keeps_an_update_where_one_run_has_no_value(bench):
    from purejaxppo.runs import metric_table

    steps, values = metric_table(_rows({0: [1.0, None, 3.0], 1: [4.0, 5.0, 6.0]}), "episode_return", x="env_steps")
    np.testing.assert_array_equal(steps, [512, 1024, 1536])
    np.testing.assert_array_equal(values, [[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]])


def test_summary_per_repetition_and_across_repetitions(bench):
    rng = np.random.default_rng(0)
    pbt = [rng.normal(-200, 30, 8) for _ in range(3)]
    sweep = [rng.normal(-300, 80, 8) for _ in range(3)]
    pbt[1][4] = np.nan  # a member without a score: skipped
    s = bench.summarize(pbt, sweep)
    for rep, a, b in zip(s["per_repetition"], pbt, sweep, strict=True):
        assert rep["pbt_best"] == np.nanmax(a) and a[rep["pbt_best_index"]] == rep["pbt_best"]
        assert rep["sweep_best"] == b.max() and b[rep["sweep_best_index"]] == rep["sweep_best"]
        assert rep["pbt_mean"] == pytest.approx(np.nanmean(a)) and rep["sweep_mean"] == pytest.approx(b.mean())
    best_p = np.asarray([np.nanmax(a) for a in pbt])
    best_s = np.asarray([b.max() for b in sweep])
    assert s["best"]["pbt"]["mean"][0] == pytest.approx(best_p.mean())
    assert s["best"]["sweep"]["iqm"][0] == pytest.approx(iqm(best_s))
    assert s["best"]["diff"]["mean"][0] == pytest.approx((best_p - best_s).mean())
    pooled = np.concatenate(pbt)
    assert s["population"]["pbt"]["iqm"][0] == pytest.approx(iqm(pooled[np.isfinite(pooled)]))
    assert s["population"]["sweep"]["mean"][0] == pytest.approx(np.mean(sweep))
    diffs = [np.nanmean(a) - b.mean() for a, b in zip(pbt, sweep, strict=True)]
    assert s["population"]["diff"]["mean"][0] == pytest.approx(np.mean(diffs))
    for q in ("best", "population"):
        for side in ("pbt", "sweep", "diff"):
            for m in ("iqm", "mean"):
                point, lo, hi = s[q][side][m]
                assert lo <= point <= hi
    assert s["population"]["diff"]["mean"][1] > 0  # PBT's population is clearly higher in this data
    one = bench.summarize([np.asarray([1.0, 2.0])], [np.asarray([0.0, 3.0])])  # one repetition: no interval
    assert one["best"]["diff"]["mean"] == (-1.0, -1.0, -1.0)


def test_markdown_reports_every_repetition_and_the_paired_verdict(bench):
    import argparse

    pbt = [np.asarray([-150.0, -170.0, -400.0, -180.0]) + i for i in range(3)]
    sweep = [np.asarray([-160.0, -900.0, -1200.0, -300.0]) + i for i in range(3)]
    reps = [
        {"seed": i, "pbt_s": 100.0, "sweep_s": 80.0, "pbt_hparams": [{"learning_rate": 1e-3, "ent_coef": 0.0}] * 4,
         "exploits": 5, "divergences": 1, "pbt_status": "finished", "sweep_labels": [f"s{j}" for j in range(4)],
         "env_steps": 1000, "pbt": pbt[i], "sweep": sweep[i]}
        for i in range(3)
    ]  # fmt: skip
    args = argparse.Namespace(population=4, ready_every=10, range=None, config="configs/pendulum.yaml",
                              out="benchmarks/results/pbt_low.md")
    text = bench._markdown(args, ["log_every=1"], reps, bench.summarize(pbt, sweep), 500.0)
    assert text.count("| 1 (finished) |") == 3  # every repetition has its row
    assert "-150.0 (member 0: learning_rate=0.001, ent_coef=0) | -160.0 (s0)" in text
    assert "Best run: PBT higher in 3 of 3 repetitions" in text and "Population: PBT higher in 3 of 3" in text
    assert "4 runs x 1,000 env steps = 4,000 env steps per side" in text
    assert "PBT 100 s, sweep 80 s (ratio 1.25)" in text
    assert "(pbt_low_curves.png)" in text and "(pbt_low_hparams.png)" in text  # the plots are named after --out
