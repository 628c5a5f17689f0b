"""What a run writes about itself: run.json (versions, device, sessions), checkpoint metadata, config.yaml checks.

Also the user-facing errors about these files: a folder that already holds a
run (`exists_error`) and a write that failed (`RunWriteError`, `write_error`).
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any

import jax

from purejaxppo.core.config import PPOConfig
from purejaxppo.errors import RunError, RunWriteError
from purejaxppo.runs.checkpoints import CheckpointManager, atomic_write_bytes
from purejaxppo.runs.folder import CONFIG_FILE, stamp
from purejaxppo.runs.identity import METRICS_SHA256, RUN_ID


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("purejaxppo", "jax", "jaxlib", "flax", "optax", "gymnax", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def device_info() -> dict[str, Any]:
    d = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": str(d),
        "device_kind": d.device_kind,
        "device_count": jax.device_count(),
        "platform": platform.platform(),
    }


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def save_info(path: Path, info: dict, log) -> None:
    try:
        write_json(path, info)
    except OSError as e:
        log(f"warning: could not update {path} ({e.strerror or e})")


def checkpoint_meta(
    config: PPOConfig,
    done: int,
    num_seeds: int,
    seed: int,
    chunk_len: int,
    runs=None,
    run_id: str | None = None,
    metrics_sha256: str | None = None,
    source: dict | None = None,
) -> dict:
    meta = {
        "purejaxppo": versions()["purejaxppo"],
        RUN_ID: run_id,  # the run's identity (purejaxppo.runs.identity)
        METRICS_SHA256: metrics_sha256,  # metrics.jsonl's bytes up to this checkpoint
        "config": config.to_dict(),
        "update": done,
        "num_updates": config.num_updates,
        "env_steps": done * config.batch_size,
        "num_seeds": num_seeds,
        "seed": seed,
        "checkpoint_every": chunk_len,
        "saved": now(),
    }
    if source is not None:  # how the run's Train is rebuilt (purejaxppo.runs.build.TrainSource)
        meta.update(source)
    if runs is not None:  # a sweep group's runs (purejaxppo.runs.axis.RunAxis)
        meta["runs"] = runs.to_json()
    return meta


def config_diff(old: PPOConfig, new: PPOConfig) -> dict[str, tuple[Any, Any]]:
    a, b = old.to_dict(), new.to_dict()
    return {k: (a[k], b[k]) for k in a if a[k] != b.get(k)}


def describe_diff(diff: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())


def note_edited_config_file(run_dir: Path, saved: PPOConfig, explicit_config: bool, log) -> None:
    """Say so when RUN/config.yaml no longer matches the checkpoint's config (it is rewritten on resume)."""
    path = run_dir / CONFIG_FILE
    if explicit_config or not path.is_file():
        return
    try:
        on_disk = PPOConfig.from_yaml(path)
        changed = config_diff(saved, on_disk)
        what = f"differs from the checkpoint's config ({describe_diff(changed)})" if changed else ""
    except Exception as e:  # unparsable or invalid: also an edit
        what = f"cannot be read ({' '.join(str(e).split())[:200]})"
    if not what:
        return
    keep = run_dir / f"{CONFIG_FILE}.edited-{stamp()}"
    keep.write_bytes(path.read_bytes())
    log(
        f"warning: {path} {what}; a resume uses the checkpoint's config, so the file is rewritten (your version "
        f"is kept as {keep.name}); to apply changes, pass them with --set FIELD=VALUE (or --config FILE)"
    )


def exists_error(run_dir: Path) -> RunError:
    return RunError(
        f"output folder {run_dir} already exists and is not empty; pass --overwrite to replace "
        f"its run files, --resume {run_dir} to continue it, or choose another --out"
    )


def write_error(e: OSError, run_dir: Path, manager: CheckpointManager) -> RunWriteError:
    what = e.filename or "a run file"
    latest = manager.latest()
    intact = (
        f"the newest checkpoint {latest.name} is intact" if latest is not None else "no checkpoint had been written yet"
    )
    return RunWriteError(
        f"could not write {what} ({e.strerror or e}); {intact}. Free disk space (or fix the "
        f"folder's permissions), then continue with: purejaxppo train --resume {run_dir}"
    )
