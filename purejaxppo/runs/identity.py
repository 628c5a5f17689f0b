"""Run identity: each run folder's id, and the checks that what a run reads back is its own.

A run gets an id (`new_run_id`) when its folder is created. It is stored in `run.json` (`"run_id"`), in the
first line of `config.yaml` (a YAML comment, so the file stays a plain config: `--config RUN/config.yaml`
starts a new run from it) and in every checkpoint's metadata. `metrics.jsonl` keeps its row format; instead
every checkpoint records the SHA-256 of the metrics file's bytes up to that checkpoint (`"metrics_sha256"`),
so the rows a resume keeps are checked to be the ones this run wrote.

Resume, load, eval, render and `load_policy` call `check_*` before anything in the folder changes; a file whose
identity is not the folder's is a `RunError` naming that file. Folders written before run ids existed (no id
in run.json, config.yaml or the checkpoint) are accepted as they are and stay without one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

from purejaxppo.errors import RunError
from purejaxppo.runs.folder import CONFIG_FILE, METRICS_FILE, RUN_FILE

RUN_ID = "run_id"
METRICS_SHA256 = "metrics_sha256"
_CONFIG_PREFIX = "# purejaxppo run_id: "


def new_run_id() -> str:
    """A fresh id: 16 random hex digits."""
    return uuid.uuid4().hex[:16]


def config_yaml_text(body: str, run_id: str | None) -> str:
    """config.yaml's text: the id line (when the run has one), then the config's YAML."""
    if run_id is None:
        return body
    return f"{_CONFIG_PREFIX}{run_id}  (this run's identity; --config FILE starts a new run from this file)\n{body}"


def config_yaml_id(path: Path) -> str | None:
    """The run id in a config.yaml's first line, or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
    except OSError:
        return None
    return first[len(_CONFIG_PREFIX) :].split()[0] if first.startswith(_CONFIG_PREFIX) else None


def folder_id(run_dir: Path) -> str | None:
    """The folder's run id: run.json's, else config.yaml's (run.json may be corrupt), else None (an older run)."""
    try:
        info = json.loads((run_dir / RUN_FILE).read_text())
        if isinstance(info, dict) and isinstance(info.get(RUN_ID), str):
            return info[RUN_ID]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    return config_yaml_id(run_dir / CONFIG_FILE)


def metrics_digest(lines: list[str]) -> str:
    """SHA-256 of metrics.jsonl's lines (each ending in a newline), as written."""
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def check_checkpoint(run_dir: Path, run_id: str | None, meta: dict, path: Path) -> None:
    """A checkpoint belongs to the folder: same run id (or neither has one)."""
    theirs = meta.get(RUN_ID)
    if theirs != run_id:
        raise RunError(
            f"{path} was written by another run (run id {theirs or 'none'}; {run_dir} is run {run_id or 'none'}): "
            "a run continues only from its own checkpoints; nothing was changed"
        )


def check_config_file(run_dir: Path, run_id: str | None) -> None:
    """config.yaml, when it names a run id, names the folder's."""
    theirs = config_yaml_id(run_dir / CONFIG_FILE)
    if theirs is not None and theirs != run_id:
        raise RunError(
            f"{run_dir / CONFIG_FILE} was written by another run (run id {theirs}; {run_dir} is run "
            f"{run_id or 'none'}): restore this run's config.yaml or remove the file; nothing was changed"
        )


def check_metrics(run_dir: Path, meta: dict, kept_lines: list[str], path: Path) -> None:
    """The metrics rows a resume from checkpoint `path` keeps are the ones this run wrote up to it."""
    want = meta.get(METRICS_SHA256)
    if want is None or not (run_dir / METRICS_FILE).exists():  # an older checkpoint; no file: nothing to adopt
        return
    if metrics_digest(kept_lines) != want:
        raise RunError(
            f"{run_dir / METRICS_FILE} does not hold the rows this run wrote up to {path.name} (its rows up to "
            f"update {meta.get('update')} differ from the ones recorded in the checkpoint: another run's file, "
            "or edited); restore it, or move it away to continue without the earlier rows; nothing was changed"
        )
