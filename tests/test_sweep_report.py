"""purejaxppo.sweep.report: sweep statistics, sweep.md / sweep.json and plots, on synthetic curves (no training)."""

import json
import math
import sys

import numpy as np
import pytest

from purejaxppo.sweep import stats
from purejaxppo.sweep import report as sr
from purejaxppo.sweep.report import SettingRuns, compute_report, run_scores, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPS = 300  # bootstrap resamples in these tests: enough for the assertions, keeps the file fast


def _curves(level, n_seeds=6, t=20, noise=1.0, rng=None):
    """[S, T] curves rising to `level`, plus Gaussian noise."""
    rng = np.random.default_rng(0) if rng is None else rng
    ramp = np.minimum(1.0, np.arange(1, t + 1) / (t / 2))
    return level * ramp[None] + rng.normal(0.0, noise, (n_seeds, t))


def _setting(sid, values, level=0.0, env="E", n_seeds=6, t=20, returns=None, diverged=None, rng=None):
    steps = np.arange(1, t + 1) * 100.0
    ret = _curves(level, n_seeds, t, rng=rng) if returns is None else np.asarray(returns, np.float64)
    div = np.zeros(ret.shape[0], bool) if diverged is None else np.asarray(diverged, bool)
    return SettingRuns(id=sid, values=dict(values), env=env, steps=steps, returns=ret, diverged=div)


def _by_label(rep):
    return {e["label"]: e for e in rep["settings"]}


# --------------------------------------------------------------------------- per-run scores


def test_final_is_mean_over_last_ceil_ten_percent():
    row = np.arange(20.0)
    assert run_scores(np.arange(20.0), row[None])["final"][0] == 18.5  # T=20 -> last 2
    assert run_scores(np.arange(11.0), np.arange(11.0)[None])["final"][0] == 9.5  # ceil(1.1) = 2
    assert run_scores(np.arange(10.0), np.arange(10.0)[None])["final"][0] == 9.0  # exactly 1
    assert run_scores(np.arange(5.0), np.arange(5.0)[None])["final"][0] == 4.0  # at least 1
    assert run_scores(np.arange(100.0), np.arange(100.0)[None])["final"][0] == 94.5  # last 10: 90..99


def test_final_ignores_nan_and_falls_back_to_last_finite():
    r = np.arange(20.0)
    r[-1] = np.nan
    assert run_scores(np.arange(20.0), r[None])["final"][0] == 18.0  # window {18, NaN}
    r = np.arange(10.0)
    r[-1] = np.nan  # window is only the NaN: last finite value before it
    r[-2] = np.inf
    assert run_scores(np.arange(10.0), r[None])["final"][0] == 7.0


def test_auc_trapezoid_over_steps_divided_by_span():
    steps = np.array([0.0, 10.0, 30.0])
    out = run_scores(steps, np.array([[0.0, 10.0, 10.0]]))
    assert out["auc"][0] == pytest.approx((50.0 + 200.0) / 30.0, abs=1e-12)
    # NaN in the middle: interpolate across it
    assert run_scores(np.array([0.0, 10.0, 20.0]), np.array([[0.0, np.nan, 10.0]]))["auc"][0] == 5.0
    # leading NaN: integrate over the finite points' span only
    assert run_scores(np.array([0.0, 10.0, 20.0]), np.array([[np.nan, 4.0, 8.0]]))["auc"][0] == 6.0
    # single finite point: its value; also a single logged point
    assert run_scores(np.array([0.0, 10.0, 20.0]), np.array([[np.nan, 7.0, np.nan]]))["auc"][0] == 7.0
    assert run_scores(np.array([5.0]), np.array([[3.0], [4.0]]))["auc"].tolist() == [3.0, 4.0]


def test_failed_run_scores_nan_and_is_excluded():
    ret = np.array([[1.0] * 10, [np.nan] * 10, [3.0] * 10, [5.0] * 10])
    sc = run_scores(np.arange(10.0), ret)
    assert np.isnan(sc["final"][1]) and np.isnan(sc["auc"][1])
    rep = compute_report([_setting(0, {"lr": 0.1}, returns=ret, t=10),
                          _setting(1, {"lr": 0.2}, returns=np.zeros((4, 10)), t=10)], ["lr"], reps=REPS)
    e = _by_label(rep)["lr=0.1"]
    assert (e["n_failed"], e["n_used"], e["n_seeds"], e["n_runs"]) == (1, 3, 4, 4)
    assert e["run_scores"]["E"]["final"] == [1.0, None, 3.0, 5.0]
    assert e["scores"]["final"]["iqm"] == list(stats.bootstrap_ci([1.0, 3.0, 5.0], "iqm", reps=REPS, seed=0))
    assert e["scores"]["final"]["mean"][0] == 3.0
    assert any("`lr=0.1`: 1 of 4 runs failed" in n for n in rep["notes"])


def test_all_failed_setting_is_unranked_last():
    runs = [_setting(0, {"lr": 0.1}, returns=np.full((3, 10), np.nan), t=10),
            _setting(1, {"lr": 0.2}, level=5.0, n_seeds=3, t=10),
            _setting(2, {"lr": 0.3}, level=9.0, n_seeds=3, t=10)]
    rep = compute_report(runs, ["lr"], reps=REPS)
    assert [e["label"] for e in rep["settings"]] == ["lr=0.3", "lr=0.2", "lr=0.1"]
    last = rep["settings"][-1]
    assert last["rank"] is None and last["scores"] is None and last["n_failed"] == 3
    assert last["prob_improvement_of_best"] is None and last["not_distinguishable_from_best"] is None
    assert any("it is unranked" in n for n in rep["notes"])


# --------------------------------------------------------------------------- ranking and flags


def _three_levels():
    rng = np.random.default_rng(1)
    return [_setting(i, {"learning_rate": lr}, level=lvl, n_seeds=8, rng=rng)
            for i, (lr, lvl) in enumerate([(3e-4, 100.0), (1e-3, 300.0), (3e-3, 200.0)])]


def test_ranking_and_probability_of_improvement_when_one_is_clearly_better():
    runs = _three_levels()
    rep = compute_report(runs, ["learning_rate"], reps=REPS)
    assert [e["label"] for e in rep["settings"]] == ["learning_rate=0.001", "learning_rate=0.003",
                                                     "learning_rate=0.0003"]
    assert [e["rank"] for e in rep["settings"]] == [1, 2, 3]
    best, second, third = rep["settings"]
    assert best["setting_ids"] == [1] and best["prob_improvement_of_best"] is None
    assert best["not_distinguishable_from_best"] is False and best["overlapping_ranks"] == []
    for e in (second, third):
        p, lo, hi = e["prob_improvement_of_best"]
        assert p > 0.9 and lo > 0.9
        assert p == 1.0  # noise 1 vs gaps of 100: every run of #1 beats every other run
        assert e["not_distinguishable_from_best"] is False
    # P(best > this) is stats.probability_of_improvement on the raw final scores
    sc = {r.id: run_scores(r.steps, r.returns)["final"] for r in runs}
    assert second["prob_improvement_of_best"] == list(stats.probability_of_improvement(sc[1], sc[2], reps=REPS, seed=0))
    assert "is ahead of every other setting with non-overlapping 95% CIs" in rep["verdict"]
    assert rep["verdict"].startswith("#1 `learning_rate=0.001`")


def test_overlapping_ci_flag_for_same_distribution():
    rng = np.random.default_rng(2)
    same = _curves(50.0, 8, 20, noise=5.0, rng=rng)
    runs = [_setting(0, {"clip": 0.1}, returns=same),
            _setting(1, {"clip": 0.2}, returns=same[::-1].copy()),  # the same runs: identical distribution
            _setting(2, {"clip": 0.3}, level=500.0, n_seeds=8, rng=rng)]
    rep = compute_report(runs, ["clip"], reps=REPS)
    by = _by_label(rep)
    assert by["clip=0.3"]["rank"] == 1
    a, b = by["clip=0.1"], by["clip=0.2"]
    assert {a["rank"], b["rank"]} == {2, 3}
    assert a["scores"]["final"]["iqm"][0] == b["scores"]["final"]["iqm"][0]
    assert a["overlapping_ranks"] == [b["rank"]] and b["overlapping_ranks"] == [a["rank"]]
    assert a["not_distinguishable_from_best"] is False and b["not_distinguishable_from_best"] is False
    # now make #1 the same distribution too: the flag turns on
    runs[2] = _setting(2, {"clip": 0.3}, returns=same[::2].repeat(2, axis=0))
    rep = compute_report(runs, ["clip"], reps=REPS)
    flagged = [e for e in rep["settings"][1:] if e["not_distinguishable_from_best"]]
    assert len(flagged) == 2
    assert rep["verdict"].endswith("is not distinguishable from #2, #3 (overlapping 95% CIs of the final-score IQM).")
    assert rep["settings"][0]["overlapping_ranks"] == [2, 3]


def test_auc_score_ranks_by_auc():
    t = 20
    fast = np.tile(np.minimum(1.0, np.arange(1, t + 1) / 2.0) * 100, (4, 1))  # reaches 100 early
    slow = np.tile(np.arange(1, t + 1) / t * 110, (4, 1))  # ends higher, lower on average
    runs = [_setting(0, {"lr": 1}, returns=fast, t=t), _setting(1, {"lr": 2}, returns=slow, t=t)]
    assert compute_report(runs, ["lr"], reps=REPS)["settings"][0]["label"] == "lr=2"
    rep = compute_report(runs, ["lr"], score="auc", reps=REPS)
    assert rep["settings"][0]["label"] == "lr=1" and rep["score"] == "auc"


def test_diverged_runs_are_counted_and_still_score():
    runs = [_setting(0, {"lr": 1}, level=10.0, n_seeds=4, diverged=[True, False, True, False]),
            _setting(1, {"lr": 2}, level=20.0, n_seeds=4)]
    e = _by_label(compute_report(runs, ["lr"], reps=REPS))["lr=1"]
    assert e["n_diverged"] == 2 and e["n_failed"] == 0 and e["n_used"] == 4


# --------------------------------------------------------------------------- several envs


def _two_env_runs(rng=None):
    rng = np.random.default_rng(3) if rng is None else rng
    runs, sid = [], 0
    for env, scale in (("A-v0", 1.0), ("brax/B", 10.0)):
        for lr, lvl in ((0.001, 3.0), (0.01, 1.0)):
            runs.append(_setting(sid, {"lr": lr, "env": env} if sid % 2 else {"lr": lr}, level=lvl * scale,
                                 env=env, n_seeds=5, rng=rng))
            sid += 1
    return runs


def test_env_varied_reference_normalization_and_stratified_aggregate():
    runs = _two_env_runs()
    refs = {"A-v0": (0.0, 4.0), "brax/B": (-10.0, 40.0)}
    rep = compute_report(runs, ["lr", "env"], reference_scores=refs, reps=REPS, seed=7)
    assert rep["num_envs"] == 2 and rep["envs"] == ["A-v0", "brax/B"]
    assert rep["normalization"]["method"] == "reference_scores"
    assert rep["normalization"]["bounds"]["brax/B"]["auc"] == [-10.0, 40.0]
    assert rep["num_comparison_settings"] == 2 and rep["num_settings"] == 4
    best = rep["settings"][0]
    assert best["label"] == "lr=0.001" and best["setting_ids"] == [0, 2] and best["envs"] == ["A-v0", "brax/B"]
    by_id = {r.id: r for r in runs}
    for s in ("final", "auc"):
        mat = np.stack([(run_scores(by_id[0].steps, by_id[0].returns)[s] - 0.0) / 4.0,
                        (run_scores(by_id[2].steps, by_id[2].returns)[s] + 10.0) / 50.0], axis=1)
        for m in ("iqm", "mean", "median"):
            assert best["scores"][s][m] == list(stats.bootstrap_ci(mat, m, reps=REPS, seed=7))
    # per-env raw stats
    raw = run_scores(by_id[2].steps, by_id[2].returns)["final"]
    assert best["per_env"]["brax/B"]["final"]["iqm"] == list(stats.bootstrap_ci(raw, "iqm", reps=REPS, seed=7))
    assert best["per_env"]["brax/B"]["setting_id"] == 2
    # P(best > other) on the [S, K] normalized matrices
    other = rep["settings"][1]
    assert other["setting_ids"] == [1, 3]
    best_mat = np.stack([run_scores(by_id[0].steps, by_id[0].returns)["final"] / 4.0,
                         (run_scores(by_id[2].steps, by_id[2].returns)["final"] + 10.0) / 50.0], axis=1)
    other_mat = np.stack([run_scores(by_id[1].steps, by_id[1].returns)["final"] / 4.0,
                          (run_scores(by_id[3].steps, by_id[3].returns)["final"] + 10.0) / 50.0], axis=1)
    p = other["prob_improvement_of_best"]
    assert p == list(stats.probability_of_improvement(best_mat, other_mat, reps=REPS, seed=7))
    assert p[0] > 0.9


def test_env_varied_min_max_default_normalization():
    runs = _two_env_runs()
    rep = compute_report(runs, ["env", "lr"], reps=REPS)
    assert rep["normalization"]["method"] == "min-max"
    sc = {r.id: run_scores(r.steps, r.returns) for r in runs}
    for env, ids in (("A-v0", (0, 1)), ("brax/B", (2, 3))):
        for s in ("final", "auc"):
            allv = np.concatenate([sc[i][s] for i in ids])
            assert rep["normalization"]["bounds"][env][s] == [allv.min(), allv.max()]
    best = rep["settings"][0]
    lo, hi = rep["normalization"]["bounds"]["A-v0"]["final"]
    mat = np.stack([(sc[0]["final"] - lo) / (hi - lo),
                    (sc[2]["final"] - rep["normalization"]["bounds"]["brax/B"]["final"][0])
                    / np.subtract(*rep["normalization"]["bounds"]["brax/B"]["final"][::-1])], axis=1)
    assert best["scores"]["final"]["iqm"] == list(stats.bootstrap_ci(mat, "iqm", reps=REPS, seed=0))
    assert mat.max() == 1.0  # the sweep's best run on each env normalizes to 1 (lr=0.001 is better everywhere)


def test_env_varied_unequal_usable_counts_drop_to_minimum():
    runs = _two_env_runs()
    runs[0].returns[1] = np.nan  # setting 0 (lr=0.001, A-v0) loses its second run
    rep = compute_report(runs, ["lr", "env"], reference_scores={"A-v0": (0, 1), "brax/B": (0, 1)}, reps=REPS)
    e = _by_label(rep)["lr=0.001"]
    assert e["n_used"] == 4 and e["n_failed"] == 1
    mat = np.stack([run_scores(runs[0].steps, runs[0].returns)["final"][[0, 2, 3, 4]],
                    run_scores(runs[2].steps, runs[2].returns)["final"][:4]], axis=1)
    assert e["scores"]["final"]["mean"] == list(stats.bootstrap_ci(mat, "mean", reps=REPS, seed=0))
    assert any("keeps the first 4 usable runs" in n for n in rep["notes"])


# --------------------------------------------------------------------------- validation


def test_settings_logged_at_different_steps(tmp_path):
    """Static fields such as num_envs change the env steps per update: each setting keeps its own x axis."""
    a = _setting(0, {"lr": 1}, n_seeds=3)
    b = _setting(1, {"lr": 2}, n_seeds=3)
    b.steps = b.steps * 2
    rep = compute_report([a, b], ["lr"], reps=REPS)
    assert [e["rank"] for e in rep["settings"]] and all(e["rank"] is not None for e in rep["settings"])
    paths = write_report(rep, [a, b], tmp_path)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and tmp_path / "curves.png" in paths


@pytest.mark.parametrize("case,match", [
    ("empty", "empty"),
    ("score", "`score` must be one of"),
    ("seeds", "different numbers of seeds"),
    ("missing", "varied field 'clip' is missing from setting 1"),
    ("envs", "'env' is not in `varied`"),
    ("counterpart", "no counterpart on env"),
    ("reference", "no entry for env"),
    ("duplicate", "have the same varied values"),
])
def test_validation_errors(case, match):
    a = _setting(0, {"lr": 1, "clip": 0.1}, n_seeds=3)
    b = _setting(1, {"lr": 2, "clip": 0.2}, n_seeds=3)
    runs, varied, kw = [a, b], ["lr", "clip"], {}
    if case == "empty":
        runs = []
    elif case == "score":
        kw = {"score": "best"}
    elif case == "seeds":
        runs = [a, _setting(1, {"lr": 2, "clip": 0.2}, n_seeds=4)]
    elif case == "missing":
        del b.values["clip"]
    elif case == "envs":
        b.env = "F"
    elif case == "counterpart":
        runs, varied = [a, b, _setting(2, {"lr": 1, "clip": 0.1}, env="F", n_seeds=3)], ["lr", "clip", "env"]
    elif case == "reference":
        runs = [a, _setting(2, {"lr": 1, "clip": 0.1}, env="F", n_seeds=3)]
        varied, kw = ["lr", "clip", "env"], {"reference_scores": {"E": (0, 1)}}
    elif case == "duplicate":
        b.values = dict(a.values)
    with pytest.raises(ValueError, match=match):
        compute_report(runs, varied, reps=REPS, **kw)


# --------------------------------------------------------------------------- writing


def _grid_runs():
    rng = np.random.default_rng(4)
    runs, sid = [], 0
    for lr in (3e-4, 1e-3, 3e-3):
        for ne in (8, 16):
            lvl = {3e-4: 100.0, 1e-3: 300.0, 3e-3: 200.0}[lr] + (30.0 if ne == 16 else 0.0)
            runs.append(_setting(sid, {"learning_rate": lr, "num_envs": ne}, level=lvl, n_seeds=5, rng=rng))
            sid += 1
    runs[5].returns[0, 3] = np.nan  # a missing point: JSON gets null, plots interpolate
    runs[5].returns[1] = np.nan  # a failed run
    return runs


def test_write_report_files(tmp_path):
    runs = _grid_runs()
    rep = compute_report(runs, ["learning_rate", "num_envs"], reps=REPS)
    paths = write_report(rep, runs, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == ["curves.png", "sensitivity_learning_rate.png", "sensitivity_num_envs.png", "sweep.json",
                     "sweep.md"]
    for p in paths:
        assert p.exists() and p.parent == tmp_path / "out"
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG_MAGIC
    md = (tmp_path / "out" / "sweep.md").read_text()
    assert md.startswith("# Sweep: E\n")
    assert ("| rank | setting | final IQM [95% CI] | final mean [CI] | final median [CI] | AUC IQM [CI] "
            "| P(#1 > this) [CI] | ≈ #1 | overlaps | runs | diverged / failed |") in md
    assert "**Verdict:** #1 `learning_rate=0.001, num_envs=16` is ahead of every other setting" in md
    assert "| 1 | `learning_rate=0.001, num_envs=16` |" in md
    assert "`learning_rate` ∈ {0.0003, 0.001, 0.003}; `num_envs` ∈ {8, 16}" in md
    assert "5 seeds per setting" in md and "ceil(10%)" in md
    assert "![curves](curves.png)" in md and "![sensitivity_num_envs](sensitivity_num_envs.png)" in md
    assert "1 of 5 runs failed" in md
    text = (tmp_path / "out" / "sweep.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} in sweep.json"))
    assert data == rep
    assert data["settings"][0]["scores"]["final"]["iqm"] == rep["settings"][0]["scores"]["final"]["iqm"]
    row = _by_label(data)["learning_rate=0.003, num_envs=16"]
    assert row["run_scores"]["E"]["final"][1] is None and row["n_failed"] == 1


def test_write_report_several_envs(tmp_path):
    runs = _two_env_runs()
    rep = compute_report(runs, ["lr", "env"], reps=REPS)
    paths = write_report(rep, runs, tmp_path, title="Two envs", plots=True)
    assert sorted(p.name for p in paths) == ["curves_A-v0.png", "curves_brax_B.png", "sensitivity_lr.png",
                                             "sweep.json", "sweep.md"]
    md = (tmp_path / "sweep.md").read_text()
    assert md.startswith("# Two envs\n")
    assert "final IQM (norm.) [95% CI]" in md
    assert "the min and max of that env's run scores over this sweep" in md
    assert "**brax/B**" in md and "Per-env raw scores" in md


def test_random_search_points_and_grid_lines():
    rng = np.random.default_rng(5)
    lrs = 10 ** rng.uniform(-5, -2, 6)
    clips = rng.uniform(0.1, 0.3, 6)
    runs = [_setting(i, {"lr": float(lrs[i]), "clip": float(clips[i])}, level=float(i), n_seeds=3, rng=rng)
            for i in range(6)]
    rep = compute_report(runs, ["lr", "clip"], reps=REPS)
    for f in ("lr", "clip"):
        as_lines, groups = sr.sensitivity_series(rep, f)
        assert not as_lines and len(groups) == 6  # every setting its own group of one: plain points
    grid = compute_report(_grid_runs(), ["learning_rate", "num_envs"], reps=REPS)
    as_lines, groups = sr.sensitivity_series(grid, "learning_rate")
    assert as_lines and sorted(groups) == ["num_envs=16", "num_envs=8"]
    assert all(len(g) == 3 for g in groups.values())
    as_lines, groups = sr.sensitivity_series(grid, "num_envs")
    assert as_lines and len(groups) == 3 and all(len(g) == 2 for g in groups.values())
    with pytest.raises(ValueError, match="not a varied field"):
        sr.sensitivity_series(grid, "env")


def test_random_search_writes_plots(tmp_path):
    rng = np.random.default_rng(6)
    runs = [_setting(i, {"lr": float(10 ** rng.uniform(-5, -2)), "act": ["tanh", "relu"][i % 2]},
                     level=float(i), n_seeds=3, rng=rng) for i in range(5)]
    rep = compute_report(runs, ["lr", "act"], reps=REPS)
    paths = write_report(rep, runs, tmp_path)
    for name in ("sensitivity_lr.png", "sensitivity_act.png", "curves.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    assert len(paths) == 5


def test_curves_capped_at_top_12(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(stats, "plot_curves", lambda curves, steps, path, **kw: calls.append((curves, kw)) or path)
    runs = [_setting(i, {"lr": i + 1}, level=float(i), n_seeds=3, t=10) for i in range(14)]
    rep = compute_report(runs, ["lr"], reps=50)
    write_report(rep, runs, tmp_path)
    (curves, kw), = calls
    assert list(curves) == [f"#{r} lr={14 - r + 1}" for r in range(1, 13)]
    assert "(top 12 of 14 settings by rank)" in kw["title"]


def test_no_matplotlib_skips_plots(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    runs = _three_levels()
    rep = compute_report(runs, ["learning_rate"], reps=REPS)
    paths = write_report(rep, runs, tmp_path)
    assert sorted(p.name for p in paths) == ["sweep.json", "sweep.md"]
    md = (tmp_path / "sweep.md").read_text()
    assert md.count("matplotlib is not installed") == 1 and ".png" not in md
    assert not list(tmp_path.glob("*.png"))


def test_plots_false_and_json_is_strict(tmp_path):
    runs = _three_levels()
    runs[0].returns[:, 0] = np.nan
    rep = compute_report(runs, ["learning_rate"], reps=REPS)
    paths = write_report(rep, runs, tmp_path, plots=False)
    assert [p.name for p in paths] == ["sweep.md", "sweep.json"]
    json.dumps(rep, allow_nan=False)
    assert rep["confidence"] == 0.95 and rep["reps"] == REPS and rep["seed"] == 0
    assert set(rep["definitions"]) >= {"final", "auc", "failed"}
    assert not math.isnan(rep["settings"][0]["scores"]["auc"]["iqm"][0])
