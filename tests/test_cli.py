"""`purejaxppo` end to end: train (interrupted, resumed in a new process) -> files -> eval -> render -> plot,
plus every bad-input case (one-line error on stderr, exit status 2, nothing lost) and load_policy."""

import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from purejaxppo import METRIC_NAMES, PPOConfig, load_policy, make_train
from purejaxppo.runs.checkpoints import flatten_state, save_checkpoint
from purejaxppo.cli import main
from purejaxppo.runs import load_run, train_run
from tests.runs_helpers import CHUNK, CONFIG, SEEDS, SET_ARGS, run_cli

N = CONFIG.num_updates


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def cli_run(work):
    """`python -m purejaxppo train` stopped after one chunk, then resumed by a second process."""
    run = work / "run"
    first = run_cli("train", "--out", run, "--seeds", SEEDS, "--checkpoint-every", CHUNK, "--stop-after", CHUNK,
                    *SET_ARGS, cwd=work)
    assert first.returncode == 0, first.stderr
    second = run_cli("train", "--resume", run, cwd=work)
    assert second.returncode == 0, second.stderr
    return run, first, second


def rows_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_the_run_folder(cli_run):
    run, first, second = cli_run
    # Progress lines from inside jit: one per update, aggregated over both seeds.
    progress = [ln for ln in first.stdout.splitlines() if ln.startswith("CartPole-v1 update")]
    assert [int(re.search(r"update (\d+)/", ln).group(1)) for ln in progress] == [1, 2]
    assert all("steps/s" in ln and "return" in ln and f"{SEEDS} seeds" in ln for ln in progress)
    assert f"stopped at update {CHUNK}/{N}" in first.stdout
    assert "resuming" in second.stdout and f"update {N}/{N}" in second.stdout

    assert PPOConfig.from_yaml(run / "config.yaml") == CONFIG
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["update"] == N and info["num_seeds"] == SEEDS
    assert {"jax", "flax", "optax", "gymnax", "purejaxppo"} <= set(info["versions"])
    assert info["device"]["backend"] == "cpu"
    assert info["compile_time_s"] > 0 and info["wall_time_s"] >= info["compile_time_s"]
    assert [s["start_update"] for s in info["sessions"]] == [0, CHUNK]

    rows = rows_of(run)
    assert len(rows) == N * SEEDS
    assert [(r["update"], r["seed"]) for r in rows] == [(u, s) for u in range(1, N + 1) for s in range(SEEDS)]
    for r in rows:
        assert r["env_steps"] == r["update"] * CONFIG.batch_size
        assert set(METRIC_NAMES) | {"eval_return"} <= set(r)
        assert all(np.isfinite(r[k]) for k in METRIC_NAMES)
        # In-training evaluation: after updates 2, 4 and the last; null (NaN) elsewhere.
        if r["update"] in (2, 4, N):
            assert np.isfinite(r["eval_return"]) and r["eval_return"] > 0
        else:
            assert r["eval_return"] is None
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["ckpt-00000004.msgpack", f"ckpt-{N:08d}.msgpack"]


def test_resume_across_processes_matches_uninterrupted_run(cli_run, work):
    run, _, _ = cli_run
    ref = train_run(CONFIG, work / "reference", num_seeds=SEEDS, checkpoint_every=CHUNK, progress="lines",
                    progress_file=open(os.devnull, "w"), log=lambda m: None)
    assert (work / "reference" / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    a, _ = flatten_state(ref.state)
    b, _ = flatten_state(load_run(run).state)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_eval_render_plot(cli_run, work):
    run, _, _ = cli_run
    ev = run_cli("eval", run, "--episodes", 3, "--deterministic", cwd=work)
    assert ev.returncode == 0, ev.stderr
    m = re.search(r"return: mean ([\d.]+)\s+std ([\d.]+)\s+IQM ([\d.]+).*\((\d+) episodes\)", ev.stdout)
    assert m and int(m.group(4)) == 3 * SEEDS and float(m.group(1)) >= 8

    gif = work / "episode.gif"
    rd = run_cli("render", run, "--out", gif, "--max-frames", 40, cwd=work)
    assert rd.returncode == 0, rd.stderr
    assert gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    from PIL import Image

    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames >= 1 and im.size == (480, 320)

    png = work / "curves.png"
    pl = run_cli("plot", run, work / "reference", "--out", png, cwd=work, module=False)  # the console script
    assert pl.returncode == 0, pl.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ load_policy


def test_load_policy_matches_the_network_mode(cli_run):
    run, _, _ = cli_run
    act = load_policy(run)
    loaded = load_run(run)
    obs = jax.random.normal(jax.random.key(1), (6, 4)) * 2.0
    a = act(obs)
    assert a.shape == (6,) and a.dtype == jnp.int32
    single = act(obs[0])
    assert single.shape == () and int(single) == int(a[0])
    params = jax.tree.map(lambda x: x[0], loaded.state.params)
    norm = jax.tree.map(lambda x: x[0], loaded.state.obs_norm)  # the run normalizes observations
    dist, _ = loaded.train.network.apply(params, norm.normalize(obs, CONFIG.obs_clip))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(dist.mode()))
    sampled = act(obs, key=jax.random.key(0), deterministic=False)
    assert sampled.shape == (6,) and set(np.asarray(sampled).tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="needs key"):
        act(obs, deterministic=False)
    with pytest.raises(ValueError, match="obs must have shape"):
        act(jnp.zeros((3, 5)))


def test_load_policy_clips_continuous_actions(tmp_path):
    cfg = PPOConfig(env="Pendulum-v1", num_envs=2, num_steps=8, num_minibatches=1, total_timesteps=16)
    train = make_train(cfg)
    state = jax.vmap(train.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 1), cfg.hparams())
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 100.0 if "actor" in jax.tree_util.keystr(p) and "Dense_2" in jax.tree_util.keystr(p)
        and "bias" in jax.tree_util.keystr(p) else x, state.params)
    state = state.replace(params=params)
    save_checkpoint(tmp_path / "checkpoints" / "ckpt-00000000.msgpack", state,
                    {"config": cfg.to_dict(), "update": 0, "num_seeds": 1, "seed": 0})
    act = load_policy(tmp_path)
    a = act(jnp.zeros((3,)))
    assert a.shape == (1,) and a.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(a), [2.0])  # the mode (~100) clipped to the box [-2, 2]


# ---------------------------------------------------------------- bad input


def fails(capsys, argv, *patterns):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("purejaxppo: error: "), err
    assert "Traceback" not in err
    for p in patterns:
        assert re.search(p, lines[0]), (p, lines[0])
    return lines[0]


def test_bad_config_input(capsys, tmp_path):
    out = tmp_path / "never"
    fails(capsys, ["train", "--out", out, "--set", "lerning_rate=1e-3"], "unknown config field 'lerning_rate'",
          "Did you mean 'learning_rate'")
    fails(capsys, ["train", "--out", out, "--set", "num_envs=four"], "'num_envs' expects an integer")
    fails(capsys, ["train", "--out", out, "--set", "gamma=2"], r"PPOConfig.gamma: must be in \(0, 1\]")
    fails(capsys, ["train", "--out", out, "--set", "num_envs"], "FIELD=VALUE")
    fails(capsys, ["train", "--out", out, "--set", "env=CartPoal-v1"], "unknown environment 'CartPoal-v1'",
          "Did you mean 'CartPole-v1'")
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("env: CartPole-v1\nclip_epsilon: 0.2\n")
    fails(capsys, ["train", "--out", out, "--config", bad_key], "unknown config field 'clip_epsilon'")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("env: [CartPole\n")
    fails(capsys, ["train", "--out", out, "--config", bad_yaml], "")
    fails(capsys, ["train", "--out", out, "--config", tmp_path / "missing.yaml"], "No such file")
    fails(capsys, ["train", "--out", out, "--seeds", 0], "--seeds must be >= 1")
    import importlib.util

    if importlib.util.find_spec("tensorboardX") is None:  # optional extra, not installed for the tests
        fails(capsys, ["train", "--out", out, "--tensorboard"], r"pip install 'purejaxppo\[tensorboard\]'")
    if importlib.util.find_spec("wandb") is None:
        fails(capsys, ["train", "--out", out, "--wandb", "proj"], r"pip install 'purejaxppo\[wandb\]'")
    assert not out.exists()  # nothing was created for a rejected run


def test_existing_output_folder_is_refused_then_overwritten_explicitly(capsys, cli_run, work):
    run, _, _ = cli_run
    copy = work / "copy"
    shutil.copytree(run, copy)
    before = {p.name: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    fails(capsys, ["train", "--out", copy, "--seeds", SEEDS, "--checkpoint-every", CHUNK, *SET_ARGS],
          "already exists", "--overwrite")
    assert {p.name: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    # --overwrite replaces the run (same settings: the chunk program compiled in this process is reused).
    (copy / "notes.txt").write_text("mine")
    rc = main(["train", "--out", str(copy), "--seeds", str(SEEDS), "--checkpoint-every", str(CHUNK), "--overwrite",
               "--progress", "off", *SET_ARGS])
    out = capsys.readouterr().out
    assert rc == 0 and "--overwrite: removed the previous run's files" in out
    assert (copy / "notes.txt").read_text() == "mine"  # files that are not run files are left alone
    assert len(json.loads((copy / "run.json").read_text())["sessions"]) == 1
    assert (copy / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()


def test_bad_resume(capsys, cli_run, work):
    run, _, _ = cli_run
    fails(capsys, ["train", "--resume", work / "nope"], "does not exist")
    fails(capsys, ["train", "--resume", run, "--set", "num_envs=8"], "changes the shapes", r"num_envs: 4 -> 8")
    fails(capsys, ["train", "--resume", run, "--set", "actor_hidden=[32]"], "changes the shapes", "actor_hidden")
    fails(capsys, ["train", "--resume", run, "--seeds", 3], "holds 2 seed")
    fails(capsys, ["train", "--resume", run, "--out", work / "elsewhere"], "own folder")
    # Finished run: resuming does nothing and says so.
    assert main(["train", "--resume", str(run)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_corrupt_or_missing_checkpoint(capsys, cli_run, work):
    run, _, _ = cli_run
    broken = work / "broken"
    shutil.copytree(run, broken)
    latest = broken / "checkpoints" / f"ckpt-{N:08d}.msgpack"
    latest.write_bytes(latest.read_bytes()[:1000])
    line = fails(capsys, ["eval", broken], "corrupt or truncated", "ckpt-00000004.msgpack is intact")
    assert str(latest) in line
    fails(capsys, ["train", "--resume", broken], "corrupt or truncated")
    fails(capsys, ["render", broken, "--out", work / "x.gif"], "corrupt or truncated")
    # The previous good checkpoint still loads (by file path).
    prev = load_run(broken / "checkpoints" / "ckpt-00000004.msgpack")
    assert prev.meta["update"] == 4 and int(np.asarray(prev.state.update_step)[0]) == 4

    empty = work / "empty_run"
    empty.mkdir()
    fails(capsys, ["eval", empty], "no checkpoint in")
    fails(capsys, ["eval", work / "missing_run"], "does not exist")
    fails(capsys, ["plot", empty], "has no metrics.jsonl")
    fails(capsys, ["plot", run, "--metric", "nope"], "metric 'nope' is not in")


def test_checkpoint_of_another_config_is_a_clear_error(capsys, cli_run, work):
    run, _, _ = cli_run
    meta_run = work / "mismatch"
    shutil.copytree(run, meta_run)
    loaded = load_run(run)
    meta = dict(loaded.meta, config=CONFIG.replace(critic_hidden=(16,)).to_dict())
    save_checkpoint(meta_run / "checkpoints" / f"ckpt-{N + 1:08d}.msgpack", loaded.state, meta)
    fails(capsys, ["eval", meta_run], "does not match|is float32", "critic")


def test_render_refuses_envs_it_cannot_draw(capsys, work, cli_run):
    run, _, _ = cli_run
    fake = work / "undrawable"
    (fake / "checkpoints").mkdir(parents=True)
    save_checkpoint(fake / "checkpoints" / "ckpt-00000001.msgpack", {},
                    {"config": PPOConfig(env="Reacher-misc").to_dict(), "update": 1, "num_seeds": 1, "seed": 0})
    fails(capsys, ["render", fake, "--out", work / "r.gif"], "'Reacher-misc' cannot be drawn", "CartPole-v1")
    fails(capsys, ["render", run, "--out", work / "r.mp4"], r"must be a \.gif")


def test_config_yaml_round_trip_is_what_train_used(cli_run):
    run, _, _ = cli_run
    data = yaml.safe_load((run / "config.yaml").read_text())
    assert data["num_envs"] == 4 and data["eval_every"] == 2 and data["log_every"] == 1


# ------------------------------------------------------------------ --build (the plumbing only)


def test_build_reaches_train_run_sweep_run_and_every_worker(monkeypatch, tmp_path):
    """`--build MODULE:FUNCTION` is passed on as `build=` to train_run and sweep_run (new and resumed), and a
    `--processes` run gives it to every worker. Stand-ins record the calls: nothing trains."""
    from types import SimpleNamespace

    import purejaxppo.parallel.distributed as distributed
    import purejaxppo.runs as runs
    import purejaxppo.sweep.runner as runner

    calls = []

    def train_run_stub(config, out_dir, **kw):
        calls.append(("train", kw.get("build", "(missing)")))
        return None  # what a follower process of a multi-process run gets: the command prints nothing

    def sweep_run_stub(spec, out_dir, **kw):
        calls.append(("sweep", kw.get("build", "(missing)")))
        return SimpleNamespace(status="stopped", sweep_dir=tmp_path / "sweep")

    monkeypatch.setattr(runs, "train_run", train_run_stub)
    monkeypatch.setattr(runner, "sweep_run", sweep_run_stub)
    monkeypatch.chdir(tmp_path)
    quiet = ["--progress", "off"]
    assert main(["train", "--build", "my_envs:make", *quiet]) == 0
    assert main(["train", *quiet]) == 0
    assert main(["train", "--resume", str(tmp_path), "--build", "my_envs:make", *quiet]) == 0
    assert main(["sweep", "--grid", "learning_rate=1e-3,3e-4", "--build", "my_envs:make", *quiet]) == 0
    assert main(["sweep", "--resume", str(tmp_path / "sweep"), "--build", "my_envs:make", *quiet]) == 0
    assert calls == [("train", "my_envs:make"), ("train", None), ("train", "my_envs:make"),
                     ("sweep", "my_envs:make"), ("sweep", "my_envs:make")]

    launched = []
    monkeypatch.setattr(distributed, "launch", lambda argv, n: launched.append((list(argv), n)) or 0)
    assert main(["train", "--processes", "2", "--build", "my_envs:make", "--seeds", "2"]) == 0
    assert launched == [(["train", "--build", "my_envs:make", "--seeds", "2"], 2)]
