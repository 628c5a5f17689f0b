"""`purejaxppo sweep` / `purejaxppo report`: the CLI end to end, per-run identity, resume, validation, mesh.

Budgets are tiny (CartPole, 4 envs x 16 steps, 4 updates); the statistics themselves are tested in
tests/test_sweep_report.py and tests/test_stats.py (against rliable).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.runs.checkpoints import flatten_state
from purejaxppo.cli import main
from purejaxppo.core.config import PPOConfig
from purejaxppo.runs import load_run, read_metrics, train_run
from purejaxppo.sweep import build_spec, plan_sweep
from purejaxppo.sweep.runner import sweep_run
from purejaxppo.core.train import make_train

ROOT = Path(__file__).resolve().parents[1]
BASE = PPOConfig(total_timesteps=4 * 16 * 4, num_envs=4, num_steps=16, log_every=1)
SETS = ["--set", "total_timesteps=256", "--set", "num_steps=16", "--set", "log_every=1"]
QUIET = dict(log=lambda m: None, progress="off")


def _state_arrays(run_dir):
    flat, _ = flatten_state(load_run(run_dir).state)
    return flat


# ------------------------------------------------------------------ the CLI end to end


@pytest.fixture(scope="module")
def cli_sweep(tmp_path_factory):
    """A two-program sweep (num_envs is static) from a sweep file plus flags, with its output."""
    work = tmp_path_factory.mktemp("sweep")
    (work / "base.yaml").write_text("env: CartPole-v1\nnum_envs: 4\n")
    (work / "s.yaml").write_text("config: base.yaml\nseeds: 5\ngrid:\n  learning_rate: [1.0e-3, 3.0e-3]\n")
    out = work / "sw"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["sweep", str(work / "s.yaml"), "--grid", "num_envs=2,4", "--seeds", "2", *SETS,
                     "--out", str(out), "--progress", "lines"])
    assert code == 0, buf.getvalue()
    return out, buf.getvalue()


def test_cli_sweep_writes_groups_metrics_and_report(cli_sweep):
    out, text = cli_sweep
    # Settings: the grid's product, last field fastest; num_envs (static) splits them into two programs.
    saved = __import__("yaml").safe_load((out / "sweep.yaml").read_text())
    assert [s["values"] for s in saved["settings"]] == [
        {"learning_rate": 1e-3, "num_envs": 2}, {"learning_rate": 1e-3, "num_envs": 4},
        {"learning_rate": 3e-3, "num_envs": 2}, {"learning_rate": 3e-3, "num_envs": 4}]
    assert [g["settings"] for g in saved["groups"]] == [[0, 2], [1, 3]]
    assert saved["spec"]["seeds"] == 2  # --seeds overrides the file's 5
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and [g["status"] for g in info["groups"]] == ["finished", "finished"]
    # One bar for the sweep ("lines" style here): every line says which program it is.
    progress = [ln for ln in text.splitlines() if " update " in ln and "env steps" in ln]
    assert progress and all(ln.startswith(("sweep 1/2 ", "sweep 2/2 ")) for ln in progress)
    # metrics.jsonl rows carry the run, the setting id and the seed within the setting, and its own hyperparameters.
    for gdir, settings, lrs, envs in ((out / "groups/g0", [0, 2], [1e-3, 3e-3], 2), (out / "groups/g1", [1, 3], [1e-3, 3e-3], 4)):
        rows = read_metrics(gdir)
        first = [r for r in rows if r["update"] == 1]
        assert [(r["run"], r["setting"], r["seed"]) for r in first] == [
            (0, settings[0], 0), (1, settings[0], 1), (2, settings[1], 0), (3, settings[1], 1)]
        assert [r["learning_rate"] for r in first] == [float(np.float32(lr)) for lr in lrs for _ in range(2)]
        assert load_run(gdir).config.num_envs == envs
    report = json.loads((out / "sweep.json").read_text())
    assert sorted(e["rank"] for e in report["settings"]) == [1, 2, 3, 4]
    md = (out / "sweep.md").read_text()
    assert "| rank | setting | final IQM" in md and "**Verdict:**" in md
    for png in ("curves.png", "sensitivity_learning_rate.png", "sensitivity_num_envs.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_report_command_rewrites_the_same_report(cli_sweep, capsys):
    out, _ = cli_sweep
    before = (out / "sweep.json").read_text()
    (out / "sweep.json").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "sweep.json").read_text() == before  # fixed bootstrap seed: the same numbers
    assert main(["report", str(out), "--score", "auc"]) == 0
    assert json.loads((out / "sweep.json").read_text())["score"] == "auc"
    assert main(["report", str(out)]) == 0


def test_a_group_folder_is_an_ordinary_run(cli_sweep, capsys):
    out, _ = cli_sweep
    assert main(["eval", str(out / "groups/g1"), "--episodes", "2"]) == 0
    assert "4 seed(s) x 2 episode(s)" in capsys.readouterr().out  # 2 settings x 2 seeds


# ------------------------------------------------------------------ the runs are the runs


def test_sweep_runs_are_bit_identical_to_vmapped_train(tmp_path):
    """The sweep's chunked, checkpointed program computes exactly `jax.vmap(make_train(config))` over the same
    runs (same keys, per-run hyperparameters, same batch)."""
    spec = build_spec(BASE, grid={"learning_rate": [1e-3, 3e-3], "clip_eps": [0.1, 0.3]}, seeds=2)
    sweep_run(spec, tmp_path / "sw", checkpoint_every=3, report=False, **QUIET)
    train = make_train(BASE)
    keys = jnp.tile(jax.random.split(jax.random.key(0), 2), 4)
    lrs = np.repeat(np.float32([1e-3, 1e-3, 3e-3, 3e-3]), 2)
    eps = np.repeat(np.float32([0.1, 0.3, 0.1, 0.3]), 2)
    hp = jax.tree.map(lambda x: jnp.full((8,), x), BASE.hparams()).replace(learning_rate=lrs, clip_eps=eps)
    ref = jax.jit(jax.vmap(train))(keys, hp)
    got = load_run(tmp_path / "sw/groups/g0").state
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, got.params),
                 jax.tree.map(np.asarray, ref.state.params))
    rows = read_metrics(tmp_path / "sw/groups/g0")
    ret = np.array([[r["episode_return"] for r in rows if r["run"] == i] for i in range(8)], np.float32)
    np.testing.assert_array_equal(ret, np.asarray(ref.metrics["episode_return"]))


def test_each_setting_matches_a_plain_train_run(tmp_path):
    """Seed s of a setting is `train --seeds S` with that setting's values, up to float32 rounding (XLA:CPU
    sums in another order for another vmapped batch size): the same keys and hyperparameters."""
    spec = build_spec(BASE, grid={"learning_rate": [1e-3, 3e-3]}, seeds=2)
    sweep_run(spec, tmp_path / "sw", report=False, **QUIET)
    rows = read_metrics(tmp_path / "sw/groups/g0")
    for p, lr in enumerate((1e-3, 3e-3)):
        train_run(BASE.replace(learning_rate=lr), tmp_path / f"t{p}", num_seeds=2, **QUIET)
        plain = [r for r in read_metrics(tmp_path / f"t{p}") if r["update"] == 1]
        mine = [r for r in rows if r["update"] == 1 and r["setting"] == p]
        for a, b in zip(mine, plain):
            assert a["seed"] == b["seed"] and a["episode_return"] == b["episode_return"]
            for k in ("policy_loss", "value_loss", "approx_kl", "grad_norm", "learning_rate"):
                assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-7), k


# ------------------------------------------------------------------ resume


def test_stopped_sweep_resumes_bit_identically(tmp_path, capsys):
    spec = build_spec(BASE, grid={"learning_rate": [1e-3, 3e-3], "num_envs": [2, 4]}, seeds=2)
    straight = sweep_run(spec, tmp_path / "a", checkpoint_every=1, **QUIET)
    assert straight.status == "finished"
    first = sweep_run(spec, tmp_path / "b", checkpoint_every=1, stop_after=2, **QUIET)
    assert first.status == "stopped" and not (tmp_path / "b/sweep.md").exists()
    assert json.loads((tmp_path / "b/run.json").read_text())["status"] == "stopped"
    # Continue from the CLI: flags that would change the sweep are refused.
    assert main(["sweep", "--resume", str(tmp_path / "b"), "--grid", "clip_eps=0.1,0.2"]) == 2
    assert "do not pass --grid" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(tmp_path / "b"), "--progress", "off"]) == 0
    for g in ("g0", "g1"):
        assert (tmp_path / f"b/groups/{g}/metrics.jsonl").read_text() == (tmp_path / f"a/groups/{g}/metrics.jsonl").read_text()
        a, b = _state_arrays(tmp_path / f"a/groups/{g}"), _state_arrays(tmp_path / f"b/groups/{g}")
        assert sorted(a) == sorted(b)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (tmp_path / "b/sweep.json").read_text() == (tmp_path / "a/sweep.json").read_text()
    info = json.loads((tmp_path / "b/run.json").read_text())
    assert info["status"] == "finished" and len(info["sessions"]) == 2
    # A finished sweep resumed again has nothing to train; it rewrites the same report.
    again = sweep_run(None, tmp_path / "b", resume=True, **QUIET)
    assert again.status == "finished" and again.group_results == []


def test_existing_folder_needs_resume_or_overwrite(tmp_path):
    spec = build_spec(BASE, grid={"learning_rate": [1e-3]}, seeds=1)
    sweep_run(spec, tmp_path / "a", report=False, **QUIET)
    with pytest.raises(ValueError, match="--resume"):
        sweep_run(spec, tmp_path / "a", **QUIET)
    res = sweep_run(spec, tmp_path / "a", overwrite=True, report=False, **QUIET)
    assert res.status == "finished"


# ------------------------------------------------------------------ validation, before anything is made


@pytest.mark.parametrize("args,match", [
    (["--grid", "learning_rat=1e-3"], "unknown config field 'learning_rat'. Did you mean 'learning_rate'"),
    (["--grid", "learning_rate=1e-3,abc"], "'learning_rate' expects a number, got 'abc'"),
    (["--grid", "learning_rate="], "grid learning_rate has no values"),
    (["--grid", "clip_eps=0.1,0.1"], "grid clip_eps lists 0.1 twice"),
    (["--grid", "num_minibatches=3"], "sweep setting 0 (num_minibatches=3): PPOConfig.num_minibatches"),
    (["--grid", "gamma=0.9,1.5"], "sweep setting 1 (gamma=1.5): PPOConfig.gamma: must be in (0, 1]"),
    (["--random", "2", "--range", "gamma=log:0.5:1.5"], "range gamma: log:0.5:1.5 leaves the field's allowed range"),
    (["--random", "2", "--range", "num_envs=1:8"], "random ranges are for the traced float hyperparameters"),
    (["--random", "2", "--range", "ent_coef=foo"], "expected 'log:LOW:HIGH'"),
    (["--random", "2", "--range", "ent_coef=log:0:0.1"], "a log range needs LOW > 0"),
    (["--random", "2", "--range", "ent_coef=0.1:0.01"], "needs finite LOW < HIGH"),
    (["--random", "2"], "needs at least one range"),
    (["--range", "ent_coef=log:1e-4:1e-2"], "need a number of random draws: --random N"),
    ([], "nothing varies"),
    (["--point", "clip_eps=0.1", "--point", "kl_beta=0"], "points[1] sets ['kl_beta'] but points[0] sets ['clip_eps']"),
    (["--point", "clip_eps=0.1", "--point", "clip_eps=0.10"], "points[1] repeats points[0]"),
    (["--point", "clip_eps=0.1", "--grid", "clip_eps=0.2,0.3"], "clip_eps in both the grid and the points"),
    (["--point", "clip_ep=0.1"], "points[0]: unknown config field 'clip_ep'. Did you mean 'clip_eps'"),
    (["--point", "clip_eps"], "--point expects FIELD=VALUE"),
    (["--point", "learning_rate=inf"], "PPOConfig.learning_rate: must be a finite number"),
    (["--grid", "learning_rate=1e-3", "--seeds", "0"], "seeds must be an integer >= 1"),
])
def test_bad_sweeps_are_one_line_errors_before_any_folder(tmp_path, capsys, args, match):
    out = tmp_path / "sw"
    assert main(["sweep", *args, *SETS, "--out", str(out), "--progress", "off"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("purejaxppo: error: ") and match in err and err.count("\n") == 1, err
    assert not out.exists()


def test_bad_sweep_file(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("grids:\n  learning_rate: [1e-3]\n")
    assert main(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "sw")]) == 2
    assert "unknown sweep key 'grids'. Did you mean 'grid'?" in capsys.readouterr().err


def test_a_sweep_too_large_for_memory_is_refused_before_compiling(tmp_path, monkeypatch, capsys):
    import purejaxppo.core.resources as resources

    monkeypatch.setattr(resources, "available_memory", lambda device=None: (400_000_000, "host memory"))
    args = ["sweep", "--grid", "learning_rate=1e-4,1e-3", "--grid", "num_envs=4,4096", "--seeds", "64",
            "--set", "total_timesteps=1000000", "--set", "num_steps=128", "--out", str(tmp_path / "sw")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "sweep program 1 (num_envs=4096)" in err and "2 setting(s) x 64 seed(s) = 128 runs at once" in err
    assert not (tmp_path / "sw").exists()


def test_random_search_draws_are_reproducible_and_in_range():
    spec = build_spec(BASE, grid={"clip_eps": [0.1, 0.2]}, ranges={"learning_rate": "log:1e-4:1e-2",
                                                                   "gae_lambda": "0.9:1.0"}, random=3, seeds=2)
    plan = plan_sweep(spec, check_memory=False)
    vals = [s.values for s in plan.settings]
    assert len(vals) == 6 and [v["clip_eps"] for v in vals] == [0.1] * 3 + [0.2] * 3
    assert [v["learning_rate"] for v in vals[:3]] == [v["learning_rate"] for v in vals[3:]]  # the draws cross the grid
    assert all(1e-4 <= v["learning_rate"] <= 1e-2 and 0.9 <= v["gae_lambda"] <= 1.0 for v in vals)
    assert all(float(f"{v['learning_rate']:.3g}") == v["learning_rate"] for v in vals)
    assert len({v["learning_rate"] for v in vals}) == 3 and len(plan.groups) == 1
    assert [s.values for s in plan_sweep(spec, check_memory=False).settings] == vals
    other = plan_sweep(build_spec(BASE, ranges={"learning_rate": "log:1e-4:1e-2"}, random=3, sweep_seed=1),
                       check_memory=False)
    assert [s.values["learning_rate"] for s in other.settings] != [v["learning_rate"] for v in vals[:3]]


def test_points_are_listed_settings_crossed_with_the_grid(tmp_path):
    inf = float("inf")
    points = [{"clip_eps": 0.1, "kl_beta": 0.0}, {"clip_eps": inf, "kl_beta": 3.0}]
    spec = build_spec(BASE.replace(objective="clip_kl"), grid={"learning_rate": [1e-3, 3e-3]}, points=points, seeds=1)
    assert spec.varied == ["learning_rate", "clip_eps", "kl_beta"]
    plan = plan_sweep(spec, check_memory=False)
    assert [s.values for s in plan.settings] == [{"learning_rate": lr, **p} for lr in (1e-3, 3e-3) for p in points]
    assert len(plan.groups) == 1 and plan.settings[1].label() == "learning_rate=0.001, clip_eps=inf, kl_beta=3"
    import yaml

    again = type(spec).from_dict(yaml.safe_load(yaml.safe_dump(spec.to_dict())))  # how sweep.yaml keeps it
    assert again.points == spec.points and again.grid == spec.grid
    # From the command line: one program, each run with its point's traced values.
    out = tmp_path / "sw"
    args = ["sweep", "--set", "objective=clip_kl", "--set", "learning_rate=0.01", "--point", "clip_eps=0.1,kl_beta=0,kl_beta_min=1e-4,kl_beta_max=1e4",
            "--point", "clip_eps=inf,kl_beta=3,kl_beta_min=3,kl_beta_max=3", *SETS, "--out", str(out),
            "--progress", "off"]  # (the second: a fixed beta, its bounds pinned)
    assert main(args) == 0
    rows = [r for r in read_metrics(out / "groups/g0") if r["update"] == 4]
    assert [(r["setting"], r["kl_beta"]) for r in rows] == [(0, 0.0), (1, 3.0)]
    every = read_metrics(out / "groups/g0")
    clipped = [max(r["clip_fraction"] for r in every if r["setting"] == s) for s in (0, 1)]
    assert clipped[0] > 0 and clipped[1] == 0.0, clipped  # inf: nothing is ever clipped
    assert "clip_eps=inf" in (out / "sweep.md").read_text()


def test_one_progress_bar_spans_every_program():
    import io

    from purejaxppo.runs.progress import ProgressReporter

    bar = ProgressReporter(4, 10, 2, style="bar", file=io.StringIO(), bar_total_steps=4 * 10 * 2 + 2 * 30 * 3)
    bar.start()
    for u in range(1, 5):
        bar(np.int32(u), np.bool_(True), {"episode_return": np.ones(2)})
    bar.stage(2, 30, 3, desc="sweep 2/2")
    for u in range(1, 3):
        bar(np.int32(u), np.bool_(True), {"episode_return": np.ones(3)})
    assert bar._bar.n == bar._bar.total == 4 * 10 * 2 + 2 * 30 * 3
    bar.close()


# ------------------------------------------------------------------ the seed axis of a device mesh


def test_sweep_on_a_two_device_mesh(tmp_path):
    """The runs of a sweep shard over the mesh's seed axis (one process, two CPU devices)."""
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip(),
               PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "purejaxppo", "sweep", "--grid", "learning_rate=1e-3,3e-3", "--seeds", "2", *SETS,
           "--mesh", "seed=2", "--out", str(tmp_path / "mesh"), "--progress", "off"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "on a mesh of seed=2 x data=1 devices" in proc.stdout
    spec = build_spec(BASE, grid={"learning_rate": [1e-3, 3e-3]}, seeds=2)
    sweep_run(spec, tmp_path / "one", report=False, **QUIET)
    mesh_rows, one_rows = read_metrics(tmp_path / "mesh/groups/g0"), read_metrics(tmp_path / "one/groups/g0")
    assert [(r["setting"], r["seed"], r["update"]) for r in mesh_rows] == [(r["setting"], r["seed"], r["update"])
                                                                         for r in one_rows]
    for a, b in zip(mesh_rows, one_rows):
        if a["update"] == 1:
            assert a["learning_rate"] == b["learning_rate"] and a["episode_return"] == b["episode_return"]
            assert a["value_loss"] == pytest.approx(b["value_loss"], rel=1e-4)
    assert (tmp_path / "mesh/sweep.md").is_file()
