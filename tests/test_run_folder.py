"""Run-folder integrity: unique names, one writer per folder, old-checkpoint resumes, owned files,
divergence in the bar and in run.json, stale temp files, no-op resumes, Ctrl-C messages, fsync order,
and the warnings for torn metric lines, edited config.yaml and corrupt run.json.

Each test reproduces a defect that existed before (issue "Run folders lose or mix data ...").
All in-process runs use the shared tiny config of tests/runs_helpers.py, so they share one compiled program.
"""

import io
import json
import os

import jax
import numpy as np
import pytest

from purejaxppo.runs import folder as run_folder
from purejaxppo.runs.checkpoints import CheckpointManager, read_checkpoint
from purejaxppo.cli import main
from purejaxppo.runs.folder import LOCK_FILE, RunError, RunLock, claim_new_run_dir
from purejaxppo.runs import RunInterrupted, train_run
from tests.runs_helpers import CHUNK, CONFIG, SEEDS

N = CONFIG.num_updates
QUIET = dict(num_seeds=SEEDS, checkpoint_every=CHUNK, progress="off", log=lambda m: None)


def rows_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def ckpt_updates(run):
    return [u for u, _ in CheckpointManager(run / "checkpoints").list()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the shared config: the rows and final params every recovery must reproduce."""
    run = tmp_path_factory.mktemp("folder") / "reference"
    res = train_run(CONFIG, run, **QUIET)
    return rows_of(run), jax.tree.map(np.asarray, res.state.params)


def assert_same_params(a, b):
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, a), jax.tree.map(np.asarray, b))


# ------------------------------------------------------------------ A: names and locks


def test_default_folder_names_are_unique_within_one_second(tmp_path, monkeypatch):
    monkeypatch.setattr(run_folder, "stamp", lambda: "20260101-000000")
    got = [claim_new_run_dir(tmp_path, "brax/ant@spring") for _ in range(3)]
    assert [p.name for p in got] == ["brax_ant_spring-20260101-000000", "brax_ant_spring-20260101-000000-2",
                                     "brax_ant_spring-20260101-000000-3"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in got)


def test_a_locked_folder_is_refused_for_new_runs_overwrite_and_resume(tmp_path, reference):
    run = tmp_path / "run"
    train_run(CONFIG, run, stop_after=CHUNK, **QUIET)
    before = (run / "metrics.jsonl").read_text()
    with RunLock(run, ["someone", "else"]):
        for kwargs in (dict(resume=True), dict(overwrite=True)):
            with pytest.raises(RunError, match=r"in use by another purejaxppo process \(pid \d+"):
                train_run(None if kwargs.get("resume") else CONFIG, run, **kwargs, **QUIET)
    assert (run / "metrics.jsonl").read_text() == before  # nothing was written by the refused runs
    # Released: the resume goes through and matches the uninterrupted run.
    res = train_run(None, run, resume=True, **QUIET)
    assert rows_of(run) == reference[0]
    assert_same_params(res.state.params, reference[1])


def test_the_lock_dies_with_a_killed_process(tmp_path):
    import signal
    import subprocess
    import sys

    code = ("import os, signal, sys; from purejaxppo.runs.folder import RunLock; "
            f"RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGKILL and "locked" in out.stdout
    assert (tmp_path / LOCK_FILE).exists()
    RunLock(tmp_path).acquire().release()  # not stuck


def test_two_processes_with_default_out_in_the_same_second_get_separate_folders(tmp_path):
    """The reported reproduction: a shell loop launching runs with the default --out at once."""
    import subprocess
    import sys

    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"))
    env.pop("PUREJAXPPO_TRACEBACK", None)
    procs = [subprocess.Popen([sys.executable, "-m", "purejaxppo", "train", "--progress", "off", "--set", "num_envs=4",
                               "--set", "num_steps=16", "--set", "num_minibatches=2", "--set", "update_epochs=1",
                               "--set", "total_timesteps=128", "--set", f"learning_rate={lr}"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for lr in (1e-4, 1e-3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2, runs
    lrs = sorted(float(next(ln for ln in (r / "config.yaml").read_text().splitlines()
                            if ln.startswith("learning_rate:")).split(":")[1]) for r in runs)
    assert lrs == [1e-4, 1e-3]
    for r in runs:
        assert [row["update"] for row in rows_of(r)] == [2]  # 2 updates, one row each: no interleaving


# ------------------------------------------------------------------ B: old-checkpoint resume


def test_resuming_an_older_checkpoint_makes_it_the_head(tmp_path, reference):
    run = tmp_path / "run"
    train_run(CONFIG, run, stop_after=4, **QUIET)
    assert ckpt_updates(run) == [2, 4]
    logs = []
    train_run(None, run, resume=run / "checkpoints" / "ckpt-00000002.msgpack", stop_after=3,
              **{**QUIET, "log": logs.append, "num_seeds": None})
    assert ckpt_updates(run) == [2, 3]  # ckpt-4 (the abandoned branch) is out of the run
    archived = [p for p in (run / "checkpoints").iterdir() if p.is_dir()]
    assert len(archived) == 1 and archived[0].name.startswith("abandoned-")
    assert sorted(p.name for p in archived[0].iterdir()) == ["ckpt-00000004.msgpack", "metrics.jsonl"]
    assert sorted({r["update"] for r in rows_of(archived[0])}) == [3, 4]
    assert any("update 2 is now the head" in m for m in logs), logs
    # Continuing the run takes the new head (update 3), not the abandoned ckpt-4: no gap, no mixed branch.
    res = train_run(None, run, resume=True, **{**QUIET, "num_seeds": None})
    assert [r["update"] for r in rows_of(run)][::SEEDS] == list(range(1, N + 1))
    assert rows_of(run) == reference[0]
    assert_same_params(res.state.params, reference[1])


def test_a_crash_while_moving_later_checkpoints_keeps_the_run_consistent(tmp_path, monkeypatch, reference):
    run = tmp_path / "run"
    train_run(CONFIG, run, checkpoint_every=1, stop_after=4, **{k: v for k, v in QUIET.items() if k != "checkpoint_every"})
    # keep=2: ckpts 3 and 4 remain; resume from 3 explicitly must move 4 -- crash right after that move.
    assert ckpt_updates(run) == [3, 4]
    real_replace = os.replace

    def crash_after_first_move(src, dst):
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(run_folder.os, "replace", crash_after_first_move)
    with pytest.raises(KeyboardInterrupt):
        train_run(None, run, resume=run / "checkpoints" / "ckpt-00000003.msgpack", **{**QUIET, "num_seeds": None})
    monkeypatch.setattr(run_folder.os, "replace", real_replace)
    assert ckpt_updates(run) == [3]
    res = train_run(None, run, resume=True, **{**QUIET, "num_seeds": None})
    assert rows_of(run) == reference[0]
    assert_same_params(res.state.params, reference[1])


# ------------------------------------------------------------------ C: divergence


def test_divergence_shows_in_the_progress_at_once_stops_and_is_recorded(tmp_path):
    buf = io.StringIO()
    cfg = CONFIG.replace(learning_rate=1e30, log_every=3)
    res = train_run(cfg, tmp_path / "div", num_seeds=SEEDS, checkpoint_every=4, progress="lines", progress_file=buf,
                    log=lambda m: None)
    assert res.status == "diverged" and res.diverged_seeds == [0, 1]
    first = json.loads((tmp_path / "div" / "run.json").read_text())
    assert first["status"] == "diverged" and first["diverged_at_update"] == 1 and first["diverged_seeds"] == [0, 1]
    # Stopped at the diverging update (not at the end of the 4-update chunk), checkpointed there.
    assert res.update == 1 and ckpt_updates(tmp_path / "div") == [1]
    # The progress line came from inside the chunk, at update 1, although log_every is 3.
    assert "update 1/5" in buf.getvalue() and "DIVERGED at update 1" in buf.getvalue(), buf.getvalue()
    assert [r["update"] for r in rows_of(tmp_path / "div")] == [1, 1]  # the diverging update gets its rows
    # The CLI: one line, exit 2, status stays "diverged".
    cont = train_run(None, tmp_path / "div", resume=True, on_diverge="continue", progress="off", log=lambda m: None)
    assert cont.status == "diverged" and cont.update == N
    assert json.loads((tmp_path / "div" / "run.json").read_text())["status"] == "diverged"


def test_cli_reports_divergence_in_one_line(tmp_path, capsys):
    rc = main(["train", "--out", str(tmp_path / "d"), "--progress", "off", "--set", "learning_rate=1e30",
               "--set", "num_envs=4", "--set", "num_steps=16", "--set", "num_minibatches=2", "--set", "update_epochs=2",
               "--set", f"total_timesteps={4 * 16 * 5}", "--set", "normalize_obs=true", "--set", "eval_every=2",
               "--set", "eval_episodes=2", "--log-every", "1", "--seeds", str(SEEDS), "--checkpoint-every", str(CHUNK)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "diverged at update 1" in err[0] and "--on-diverge continue" in err[0]


# ------------------------------------------------------------------ F, G, H, I


def test_resume_removes_stale_temp_files_it_owns_only(tmp_path, reference):
    run = tmp_path / "run"
    train_run(CONFIG, run, stop_after=CHUNK, **QUIET)
    stale = [run / "checkpoints" / ".ckpt-00000004.msgpack.k2j3h4.tmp", run / ".run.json.abc_12.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 1000)
    mine = [run / "checkpoints" / "notes.tmp", run / "checkpoints" / ".ckpt-backup.tmp", run / "keep.tmp"]
    for p in mine:
        p.write_text("user file")
    logs = []
    train_run(None, run, resume=True, **{**QUIET, "log": logs.append, "num_seeds": None})
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "user file" for p in mine)
    assert any("temp file(s) left by an interrupted write" in m for m in logs)
    assert rows_of(run) == reference[0]


def test_nothing_to_do_leaves_run_json_untouched(tmp_path):
    run = tmp_path / "run"
    train_run(CONFIG, run, **QUIET)
    before = (run / "run.json").read_bytes()
    res = train_run(None, run, resume=True, **{**QUIET, "num_seeds": None})
    assert res.status == "nothing to do" and (run / "run.json").read_bytes() == before
    info = json.loads(before)
    assert info["status"] == "finished" and all("ended" in s for s in info["sessions"])

    stopped = tmp_path / "stopped"
    train_run(CONFIG, stopped, stop_after=4, **QUIET)
    before = (stopped / "run.json").read_bytes()
    logs = []
    res = train_run(None, stopped, resume=True, stop_after=2, **{**QUIET, "log": logs.append, "num_seeds": None})
    assert res.status == "nothing to do" and (stopped / "run.json").read_bytes() == before
    assert any("already at update 4" in m and "--stop-after 2" in m for m in logs)
    assert json.loads(before)["status"] == "stopped"


def _interrupt_on_save(monkeypatch, at_call):
    real = CheckpointManager.save
    calls = {"n": 0}

    def save(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(CheckpointManager, "save", save)


def test_ctrl_c_message_before_and_after_the_first_checkpoint(tmp_path, monkeypatch, capsys):
    args = ["train", "--progress", "off", "--seeds", str(SEEDS), "--checkpoint-every", str(CHUNK), "--log-every", "1",
            "--set", "num_envs=4", "--set", "num_steps=16", "--set", "num_minibatches=2", "--set", "update_epochs=2",
            "--set", f"total_timesteps={4 * 16 * 5}", "--set", "normalize_obs=true", "--set", "eval_every=2",
            "--set", "eval_episodes=2"]
    _interrupt_on_save(monkeypatch, 1)
    assert main(args + ["--out", str(tmp_path / "early")]) == 130
    err = capsys.readouterr().err
    assert "before the first checkpoint" in err and str(tmp_path / "early") in err and "RUN" not in err
    assert json.loads((tmp_path / "early" / "run.json").read_text())["status"] == "interrupted"

    _interrupt_on_save(monkeypatch, 2)
    assert main(args + ["--out", str(tmp_path / "later")]) == 130
    err = capsys.readouterr().err
    assert "ckpt-00000002.msgpack (update 2) is intact" in err
    assert f"purejaxppo train --resume {tmp_path / 'later'}" in err


def test_overwrite_removes_only_the_files_the_run_wrote(tmp_path):
    run = tmp_path / "run"
    train_run(CONFIG, run, stop_after=CHUNK, **QUIET)
    user_files = [run / "checkpoints" / "my_best.msgpack", run / "notes.txt", run / "checkpoints" / "ckpt-best.msgpack"]
    for p in user_files:
        p.write_text("mine")
    logs = []
    train_run(CONFIG, run, overwrite=True, **{**QUIET, "log": logs.append})
    assert all(p.read_text() == "mine" for p in user_files)
    assert ckpt_updates(run) == [4, N]
    assert any("--overwrite: removed" in m and "checkpoints/ckpt-00000002.msgpack" in m for m in logs)


# ------------------------------------------------------------------ the smaller items


def test_metrics_are_fsynced_before_the_checkpoint_that_covers_them(tmp_path, monkeypatch):
    from purejaxppo.runs import writers

    events = []
    real_fsync = os.fsync

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    monkeypatch.setattr(writers.os, "fsync", fsync)
    real_save = CheckpointManager.save
    monkeypatch.setattr(CheckpointManager, "save", lambda self, *a, **k: (events.append(("save", "")), real_save(self, *a, **k))[1])
    train_run(CONFIG, tmp_path / "run", stop_after=CHUNK, **QUIET)
    kinds = [(k, p.endswith("metrics.jsonl")) for k, p in events]
    assert kinds.index(("fsync", True)) < kinds.index(("save", False))


def test_torn_metric_lines_are_reported_and_kept(tmp_path, reference):
    run = tmp_path / "run"
    train_run(CONFIG, run, stop_after=CHUNK, **QUIET)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"update": 3, "env_steps": 19')  # a write cut off by a crash
    logs = []
    train_run(None, run, resume=True, **{**QUIET, "log": logs.append, "num_seeds": None})
    assert any("1 unparsable line(s)" in m for m in logs), logs
    dropped = [p for p in run.iterdir() if p.name.startswith("metrics.jsonl.dropped-")]
    assert len(dropped) == 1 and dropped[0].read_text() == '{"update": 3, "env_steps": 19\n'
    assert rows_of(run) == reference[0]


def test_an_edited_config_yaml_is_reported_and_kept(tmp_path, reference):
    run = tmp_path / "run"
    train_run(CONFIG, run, stop_after=CHUNK, **QUIET)
    text = (run / "config.yaml").read_text().replace("learning_rate: 0.00025", "learning_rate: 0.1")
    (run / "config.yaml").write_text(text)
    logs = []
    train_run(None, run, resume=True, **{**QUIET, "log": logs.append, "num_seeds": None})
    msg = next(m for m in logs if "config.yaml" in m)
    assert "learning_rate: 0.00025 -> 0.1" in msg and "--set" in msg
    kept = [p for p in run.iterdir() if p.name.startswith("config.yaml.edited-")]
    assert len(kept) == 1 and "learning_rate: 0.1" in kept[0].read_text()
    assert rows_of(run) == reference[0]  # resumed with the checkpoint's config, as the warning says


def test_a_corrupt_run_json_is_kept_not_lost(tmp_path):
    run = tmp_path / "run"
    train_run(CONFIG, run, stop_after=CHUNK, **QUIET)
    (run / "run.json").write_text('{"sessions": [{"started": "yesterday"')
    logs = []
    train_run(None, run, resume=True, **{**QUIET, "log": logs.append, "num_seeds": None})
    kept = [p for p in run.iterdir() if p.name.startswith("run.json.corrupt-")]
    assert len(kept) == 1 and kept[0].read_text().startswith('{"sessions": [{"started": "yesterday"')
    assert any("not valid JSON" in m for m in logs)
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_checkpoint_meta_matches_after_old_checkpoint_resume(tmp_path):
    """The head checkpoint written after an old-checkpoint resume says its own update."""
    run = tmp_path / "run"
    train_run(CONFIG, run, stop_after=4, **QUIET)
    train_run(None, run, resume=run / "checkpoints" / "ckpt-00000002.msgpack", stop_after=3,
              **{**QUIET, "num_seeds": None})
    meta = read_checkpoint(run / "checkpoints" / "ckpt-00000003.msgpack")[0]
    assert meta["update"] == 3
