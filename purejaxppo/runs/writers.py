"""Where a chunk's metrics go: the rows of metrics.jsonl and the writers that take them (JSONL, TensorBoard, W&B)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from purejaxppo.core.config import PPOConfig
from purejaxppo.errors import RunError


def logged_updates(first: int, last: int, log_every: int, num_updates: int) -> list[int]:
    """Update counters in (first, last] that get a metrics.jsonl row."""
    every = max(1, log_every)
    return [u for u in range(first + 1, last + 1) if u % every == 0 or u == num_updates]


def _json_value(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None  # NaN (e.g. eval_return on non-eval updates) -> null


def metric_rows(
    metrics: dict,
    done: int,
    n: int,
    log_every: int,
    num_updates: int,
    batch_size: int,
    prev_diverged: np.ndarray | None = None,
    labels=None,
) -> list[dict]:
    """metrics.jsonl rows of a chunk of `n` updates after update `done`: every log_every-th update, the
    last one, and the update at which a seed diverged (first non-finite update; `prev_diverged` [S] are
    the flags before the chunk). `labels` ([S] dicts, a sweep group's runs): each row gets "run" (the index
    in the state) and its run's labels (e.g. "setting" and "seed" within the setting)."""
    from purejaxppo.core.train import METRIC_NAMES

    names = [k for k in METRIC_NAMES if k in metrics] + sorted(k for k in metrics if k not in METRIC_NAMES)
    arrays = {k: np.asarray(v) for k, v in metrics.items()}
    num_seeds = arrays[names[0]].shape[0]
    updates = set(logged_updates(done, done + n, log_every, num_updates))
    flags = np.asarray(arrays["diverged"])[:, :n] > 0
    before = np.zeros(num_seeds, bool) if prev_diverged is None else np.asarray(prev_diverged, bool)
    turned_on = flags & ~np.concatenate([before[:, None], flags[:, :-1]], axis=1)
    updates |= {done + 1 + int(j) for j in np.flatnonzero(turned_on.any(axis=0))}
    rows = []
    for u in sorted(updates):
        j = u - done - 1
        for s in range(num_seeds):
            row = {"update": u, "env_steps": u * batch_size, "seed": s}
            if labels is not None:
                # one key order however the labels were stored (a resumed run reads them back from JSON)
                ordered = sorted(labels[s].items(), key=lambda kv: (kv[0] != "setting", kv[0]))
                row = {"update": u, "env_steps": u * batch_size, "run": s, **dict(ordered)}
            row.update({k: _json_value(arrays[k][s, j]) for k in names})
            rows.append(row)
    return rows


class JsonlWriter:
    """metrics.jsonl: one JSON object per logged update per seed, fsynced before the checkpoint that covers it."""

    def __init__(self, path: Path):
        self.path = path
        # SHA-256 of the file's bytes so far (its rows kept on resume, then every row written): checkpoints record
        # it, so a resume can check the rows it keeps are this run's (purejaxppo.runs.identity).
        self._digest = hashlib.sha256(path.read_bytes() if path.is_file() else b"")

    def write(self, rows: list[dict]) -> None:
        text = "".join(json.dumps(row) + "\n" for row in rows)
        with open(self.path, "a") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        self._digest.update(text.encode())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        pass


class TensorBoardWriter:
    """Scalars to TensorBoard (`pip install 'purejaxppo[tensorboard]'`, uses tensorboardX): mean over seeds and
    per seed."""

    def __init__(self, logdir: Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise RunError(
                "--tensorboard needs the tensorboardX package: pip install 'purejaxppo[tensorboard]'"
            ) from None
        self._w = SummaryWriter(str(logdir))

    def write(self, rows: list[dict]) -> None:
        for step, group in _group_by_update(rows):
            for k, vals in group.items():
                vals = [v for v in vals if v is not None]
                if vals:
                    self._w.add_scalar(k, float(np.mean(vals)), step)

    def close(self) -> None:
        self._w.close()


class WandbWriter:
    """Weights & Biases logging (`pip install 'purejaxppo[wandb]'`): mean over seeds, x-axis env steps."""

    def __init__(self, project: str, run_dir: Path, config: PPOConfig, resume: bool):
        try:
            import wandb
        except ImportError:
            raise RunError("--wandb needs the wandb package: pip install 'purejaxppo[wandb]'") from None
        self._wandb = wandb
        self._run = wandb.init(
            project=project,
            name=run_dir.name,
            dir=str(run_dir),
            config=config.to_dict(),
            resume="allow" if resume else None,
            id=run_dir.name if resume else None,
        )

    def write(self, rows: list[dict]) -> None:
        for step, group in _group_by_update(rows):
            data = {
                k: float(np.mean([v for v in vals if v is not None]))
                for k, vals in group.items()
                if any(v is not None for v in vals)
            }
            self._run.log(data, step=step)

    def close(self) -> None:
        self._run.finish()


def _group_by_update(rows: list[dict]):
    by: dict[int, dict[str, list]] = {}
    for r in rows:
        g = by.setdefault(r["env_steps"], {})
        for k, v in r.items():
            if k not in ("update", "env_steps", "seed"):
                g.setdefault(k, []).append(v)
    return sorted(by.items())
