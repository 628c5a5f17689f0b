"""The run folder on disk: naming, locking, the files a run owns, and making a checkpoint the head of a run.

Everything here is host-side file handling; nothing imports JAX. What it guarantees:

* **Unique default names.** `claim_new_run_dir(root, env)` creates
  `root/<env>-<YYYYmmdd-HHMMSS>` with an exclusive `mkdir`, adding `-2`,
  `-3`, ... when another run claimed that name first (runs launched in the
  same second, e.g. by a shell loop or a sweep launcher, never share a folder).
* **One writer per folder.** `RunLock` holds an exclusive `flock` on
  `RUN/.lock` for as long as a process trains into the folder. The kernel
  drops the lock when the process dies (also on SIGKILL), so a killed run never
  leaves a stale lock; the file's text (pid, host, start time, command) is only
  there to name the holder in the error message.
* **Owned files only.** `--overwrite` and clean-ups remove files by the exact
  name patterns the run writes (`OWNED`), never anything else in the folder.
* **Old-checkpoint resume.** `make_head(...)` moves every checkpoint newer
  than the one a resume starts from, and the metric rows after it, into
  `checkpoints/abandoned-<stamp>/` — newest first, so that after a crash at
  any point the newest remaining checkpoint still matches the rows kept.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from purejaxppo.errors import RunError

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
LOCK_FILE = ".lock"
RUN_FILES = (CONFIG_FILE, RUN_FILE, METRICS_FILE)

_CKPT_RE = re.compile(r"^ckpt-\d{8}\.msgpack$")
# Temp files of atomic writes: tempfile.mkstemp(prefix=".<name>.", suffix=".tmp") in checkpoint.atomic_write_bytes.
_TMP_RE = re.compile(r"^\.(ckpt-\d{8}\.msgpack|config\.yaml|run\.json|metrics\.jsonl)\.[A-Za-z0-9_]+\.tmp$")
_ABANDONED_RE = re.compile(r"^abandoned-\d{8}-\d{6}(-\d+)?$")
_BACKUP_RE = re.compile(r"^(run\.json\.corrupt|config\.yaml\.edited|metrics\.jsonl\.dropped)-\d{8}-\d{6}(-\d+)?$")


def stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def _unique(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`, ... : the first name that does not exist yet."""
    if not path.exists():
        return path
    i = 2
    while path.with_name(f"{path.name}-{i}").exists():
        i += 1
    return path.with_name(f"{path.name}-{i}")


# ------------------------------------------------------------------------ naming


def safe_name(env: str) -> str:
    """An env id as one folder-name component ('brax/ant@spring' -> 'brax_ant_spring')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", env).strip("._") or "run"


def claim_new_run_dir(root: str | os.PathLike, env: str) -> Path:
    """Create and return a new, empty `root/<env>-<stamp>[-k]` folder; unique even under concurrent launches."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{safe_name(env)}-{stamp()}"
    for k in range(1, 10_000):
        path = root / (base if k == 1 else f"{base}-{k}")
        try:
            path.mkdir()  # atomic: exactly one process succeeds for a name
            return path
        except FileExistsError:
            continue
    raise RunError(f"could not find a free run folder name {base}-k in {root}; pass --out")


# ------------------------------------------------------------------------ locking


def _busy(run_dir: Path, holder: str) -> RunError:
    try:
        info = json.loads(holder)
        who = f"pid {info.get('pid')} on {info.get('host')}, since {info.get('started')}"
    except (json.JSONDecodeError, AttributeError):
        who = "another process"
    return RunError(
        f"run folder {run_dir} is in use by another purejaxppo process ({who}); "
        "wait for it to finish, or choose another --out"
    )


class RunLock:
    """An exclusive, non-blocking lock on a run folder (`RUN/.lock`, `fcntl.flock`).

    `acquire()` raises RunError naming the holder when another process has the
    folder. The lock dies with its process (no stale locks after a kill).
    On platforms without `fcntl` it does nothing.
    """

    def __init__(self, run_dir: str | os.PathLike, command: list[str] | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.command = command
        self._fh: TextIO | None = None

    @staticmethod
    def busy_error(run_dir: str | os.PathLike) -> RunError | None:
        """The in-use RunError if another process holds `run_dir`'s lock (checked read-only), else None."""
        path = Path(run_dir) / LOCK_FILE
        try:
            import fcntl

            fh = open(path)
        except (ImportError, OSError):
            return None
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return _busy(Path(run_dir), fh.read().strip())
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            raise _busy(self.run_dir, holder) from None
        fh.seek(0)
        fh.truncate()
        fh.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "command": self.command,
                }
            )
            + "\n"
        )
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            try:
                import fcntl

                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ------------------------------------------------------------------ owned files


def owned_files(run_dir: str | os.PathLike) -> list[Path]:
    """The files and folders of `run_dir` that purejaxppo wrote (by exact name pattern), excluding the lock."""
    run_dir = Path(run_dir)
    out = [run_dir / n for n in RUN_FILES if (run_dir / n).is_file()]
    out += (
        [p for p in run_dir.iterdir() if p.is_file() and (_TMP_RE.match(p.name) or _BACKUP_RE.match(p.name))]
        if run_dir.is_dir()
        else []
    )
    ck = run_dir / CHECKPOINT_DIR
    if ck.is_dir():
        for p in sorted(ck.iterdir()):
            if p.is_file() and (_CKPT_RE.match(p.name) or _TMP_RE.match(p.name)):
                out.append(p)
            elif p.is_dir() and _ABANDONED_RE.match(p.name):
                out.append(p)
    return out


def is_empty_but_lock(run_dir: Path) -> bool:
    return not any(p.name != LOCK_FILE for p in run_dir.iterdir())


def remove_owned(run_dir: str | os.PathLike) -> list[str]:
    """`--overwrite`: remove the run files purejaxppo wrote; everything else stays. Returns what was removed."""
    run_dir = Path(run_dir)
    removed = []
    for p in owned_files(run_dir):
        rel = p.relative_to(run_dir).as_posix()
        if p.is_dir():
            _remove_abandoned(p)
        else:
            p.unlink()
        removed.append(rel)
    return removed


def _remove_abandoned(folder: Path) -> None:
    """Remove an abandoned-<stamp> archive: only the checkpoint and metrics files make_head put there."""
    for p in folder.iterdir():
        if p.is_file() and (_CKPT_RE.match(p.name) or p.name == METRICS_FILE):
            p.unlink()
    try:
        folder.rmdir()
    except OSError:
        pass  # the user put something else there: keep it


def remove_stale_temp_files(run_dir: str | os.PathLike) -> list[str]:
    """Delete temp files of atomic writes that a killed process left behind (call while holding the lock)."""
    run_dir = Path(run_dir)
    gone = []
    for folder in (run_dir, run_dir / CHECKPOINT_DIR):
        if folder.is_dir():
            for p in folder.iterdir():
                if p.is_file() and _TMP_RE.match(p.name):
                    try:
                        p.unlink()
                        gone.append(p.relative_to(run_dir).as_posix())
                    except OSError:
                        pass
    return gone


# ------------------------------------------------------------------- run.json


def read_run_info(run_dir: Path, log: Callable[[str], None]) -> dict:
    """run.json as a dict; a corrupt one is kept as run.json.corrupt-<stamp> (with a warning) and {} returned."""
    path = run_dir / RUN_FILE
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text())
        if isinstance(info, dict):
            return info
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    backup = _unique(run_dir / f"{RUN_FILE}.corrupt-{stamp()}")
    shutil.copyfile(path, backup)
    log(f"warning: {path} is not valid JSON; kept it as {backup.name} and started a new session history")
    return {}


# ---------------------------------------------------------------- metrics rows


def split_metrics(path: Path, update: int) -> tuple[list[str], list[str], list[tuple[int, str]]]:
    """Lines of metrics.jsonl: (rows with update <= `update`, rows after it, [(line number, unparsable line)])."""
    keep: list[str] = []
    later: list[str] = []
    bad: list[tuple[int, str]] = []
    if not path.exists():
        return keep, later, bad
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, 1):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if not line.strip():
                continue
            try:
                u = int(json.loads(line)["update"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                bad.append((i, line))
                continue
            (keep if u <= update else later).append(line + "\n")
    return keep, later, bad


def make_head(
    run_dir: Path,
    start: int,
    checkpoints: list[tuple[int, Path]],
    log: Callable[[str], None],
    write_atomic: Callable[[Path, bytes], None],
) -> None:
    """Make the checkpoint at update `start` the head of the run before training continues from it.

    Checkpoints newer than `start` are moved into `checkpoints/abandoned-<stamp>/`
    (newest first: a crash midway leaves the newest remaining checkpoint
    consistent with the rows kept), then the rows after `start` are moved to
    that folder's metrics.jsonl and metrics.jsonl keeps rows `<= start`.
    Unparsable (torn) lines are kept in `metrics.jsonl.dropped-<stamp>` with a warning.
    """
    metrics = run_dir / METRICS_FILE
    later_ckpts = sorted(((u, p) for u, p in checkpoints if u > start), reverse=True)
    keep, later_rows, bad = split_metrics(metrics, start)
    archive = None
    if later_ckpts:  # an explicit older checkpoint: keep the abandoned branch, out of the run's way
        archive = _unique(run_dir / CHECKPOINT_DIR / f"abandoned-{stamp()}")
        archive.mkdir(parents=True)
        for _, p in later_ckpts:
            os.replace(p, archive / p.name)
        if later_rows:
            write_atomic(archive / METRICS_FILE, "".join(later_rows).encode())
    # Without later checkpoints, rows after `start` were written by a run that stopped before its next
    # checkpoint: training from `start` writes the same rows again, bit for bit.
    if bad:
        dropped = _unique(run_dir / f"{METRICS_FILE}.dropped-{stamp()}")
        write_atomic(dropped, "".join(line + "\n" for _, line in bad).encode())
        log(
            f"warning: {metrics.name} had {len(bad)} unparsable line(s) (line {', '.join(str(i) for i, _ in bad[:5])}"
            f"{', ...' if len(bad) > 5 else ''}; e.g. a write cut off by a crash); kept them in {dropped.name}"
        )
    if later_rows or bad:
        write_atomic(metrics, "".join(keep).encode())
    if archive is not None:
        log(
            f"resuming from an older checkpoint (update {start}): moved {len(later_ckpts)} later checkpoint(s) "
            f"(up to update {later_ckpts[0][0]}) and {len(later_rows)} later metric row(s) to "
            f"{archive.relative_to(run_dir).as_posix()}/; update {start} is now the head of the run"
        )
