"""Run identity (purejaxppo.runs.identity): a run's id in run.json, config.yaml and every checkpoint, a digest
of metrics.jsonl in every checkpoint, and another run's files refused on resume, load and eval with the file
named and the folder left unchanged."""

import hashlib
import json
import shutil

import pytest

from purejaxppo.runs.checkpoints import read_checkpoint, save_checkpoint
from purejaxppo.cli import main
from purejaxppo.errors import RunError
from purejaxppo.runs import load_run, train_run
from purejaxppo.runs.identity import config_yaml_id
from tests.runs_helpers import CHUNK, CONFIG, SEEDS

QUIET = dict(num_seeds=SEEDS, checkpoint_every=CHUNK, progress="off", log=lambda m: None)
RESUME = dict(QUIET, num_seeds=None)


def snapshot(folder):
    """Every file's bytes, but the lock (each attempt takes and releases it)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".lock")
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def ckpt(run, update):
    return run / "checkpoints" / f"ckpt-{update:08d}.msgpack"


@pytest.fixture
def two_runs(tmp_path):
    """Two runs of the same config and seed count, seeds 0 and 1, both stopped after one chunk."""
    a, b = tmp_path / "a", tmp_path / "b"
    train_run(CONFIG, a, stop_after=CHUNK, seed=0, **QUIET)
    train_run(CONFIG, b, stop_after=CHUNK, seed=1, **QUIET)
    return a, b


def test_a_run_names_its_id_everywhere_and_its_checkpoints_digest_the_metrics(tmp_path):
    run = tmp_path / "r"
    train_run(CONFIG, run, stop_after=2 * CHUNK, **QUIET)
    run_id = json.loads((run / "run.json").read_text())["run_id"]
    assert len(run_id) == 16 and config_yaml_id(run / "config.yaml") == run_id
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    for update in (CHUNK, 2 * CHUNK):
        meta = read_checkpoint(ckpt(run, update))[0]
        assert meta["run_id"] == run_id
        upto = "".join(line for line in lines if json.loads(line)["update"] <= update)
        assert meta["metrics_sha256"] == hashlib.sha256(upto.encode()).hexdigest()
    # a second run in another folder is another run
    train_run(CONFIG, tmp_path / "s", stop_after=CHUNK, **QUIET)
    assert json.loads((tmp_path / "s" / "run.json").read_text())["run_id"] != run_id


@pytest.mark.parametrize("name", ["checkpoint", "config.yaml", "metrics.jsonl"])
def test_another_runs_file_is_refused_naming_it_and_nothing_changes(two_runs, name):
    a, b = two_runs
    path = {"checkpoint": ckpt(a, CHUNK), "config.yaml": a / "config.yaml", "metrics.jsonl": a / "metrics.jsonl"}[name]
    shutil.copyfile(b / path.relative_to(a), path)
    before = snapshot(a)
    with pytest.raises(RunError, match=str(path.relative_to(a.parent)).replace("/", ".")):
        train_run(None, a, resume=True, **RESUME)
    assert snapshot(a) == before


def test_load_and_eval_refuse_another_runs_checkpoint(two_runs, capsys):
    a, b = two_runs
    shutil.copyfile(ckpt(b, CHUNK), ckpt(a, CHUNK))
    with pytest.raises(RunError, match="written by another run"):
        load_run(a)
    assert main(["eval", str(a), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ckpt-00000002.msgpack was written by another run" in err


def test_a_run_folder_from_before_run_ids_still_resumes(tmp_path):
    run = tmp_path / "old"
    train_run(CONFIG, run, stop_after=CHUNK, **QUIET)
    loaded = load_run(run)
    info = json.loads((run / "run.json").read_text())
    del info["run_id"]
    (run / "run.json").write_text(json.dumps(info))
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.split("\n", 1)[1])
    meta = {k: v for k, v in loaded.meta.items() if k not in ("run_id", "metrics_sha256")}
    save_checkpoint(ckpt(run, CHUNK), loaded.state, meta)
    res = train_run(None, run, resume=True, **RESUME)
    assert res.finished and "run_id" not in json.loads((run / "run.json").read_text())
