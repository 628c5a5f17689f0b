"""Full-state checkpoints: one msgpack file per checkpoint, written atomically.

A checkpoint holds the whole (possibly vmapped-over-seeds) `TrainState` —
params, optimizer state, env states and observations, normalizer statistics,
KL beta, PRNG keys, update counter, divergence flag — plus metadata (the
resolved config, the update counter, the number of seeds, ...), so training
continues bit-identically after a restart.

File format (`flax.serialization` msgpack, no extra dependency)::

    {"format": "purejaxppo-checkpoint", "version": 1,
     "sha256": <hex digest of payload>, "payload": <bytes>}
    payload = msgpack({"meta": {...}, "leaves": {path: ndarray}, "keys": {path: impl name}})

`path` is the leaf's key path in the state (e.g.
`opt_state/1/mu/params/actor/Dense_0/kernel`). Typed PRNG keys are stored as
their `jax.random.key_data` (uint32) with the key implementation's name and
re-wrapped with `jax.random.wrap_key_data` on load.

Writing goes to a temporary file in the same folder, is flushed and fsynced,
then `os.replace`d over the final name, so a crash mid-write never leaves a
half-written checkpoint under a checkpoint name. `CheckpointManager` keeps the
newest `keep` (default 2) checkpoints, removing older ones only after the new
one is in place. Loading verifies the format tag, the checksum and — against
a template state from the config — every leaf's path, shape and dtype, and
raises `CheckpointError` (a `ValueError`) saying what is wrong.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from purejaxppo.core.keys import is_key
from purejaxppo.errors import CheckpointError, ConfigError

FORMAT = "purejaxppo-checkpoint"
VERSION = 1
SUFFIX = ".msgpack"
_NAME_RE = re.compile(r"^ckpt-(\d+)\.msgpack$")


# ----------------------------------------------------------------------------- leaves


def _path_str(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator="/")


def flatten_state(state: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """State pytree -> ({path: host array}, {path: PRNG impl name} for typed-key leaves)."""
    leaves, keys = {}, {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = _path_str(path)
        if name in leaves:
            raise CheckpointError(f"state has two leaves at the same path {name!r}; cannot checkpoint it")
        if is_key(leaf):
            keys[name] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        leaves[name] = np.asarray(jax.device_get(leaf))
    return leaves, keys


def unflatten_state(
    template: Any, leaves: dict[str, np.ndarray], keys: dict[str, str], source: str = "checkpoint"
) -> Any:
    """Rebuild a state shaped like `template` (arrays or ShapeDtypeStructs) from stored leaves.

    Checks that both hold exactly the same paths, shapes and dtypes.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    expected = {_path_str(p) for p, _ in flat}
    missing = sorted(expected - set(leaves))
    extra = sorted(set(leaves) - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"is missing {len(missing)} leaf/leaves (e.g. {missing[0]!r})")
        if extra:
            parts.append(f"has {len(extra)} unexpected leaf/leaves (e.g. {extra[0]!r})")
        raise CheckpointError(f"{source} does not match the state of this config: it {' and '.join(parts)}")
    out = []
    for path, want in flat:
        name = _path_str(path)
        arr = leaves[name]
        if is_key(want):
            impl = keys.get(name)
            if impl is None:
                raise CheckpointError(f"{source}: leaf {name!r} should be a PRNG key but is stored as a plain array")
            key_shape = jax.random.key_data(jax.random.key(0, impl=impl)).shape
            want_shape, want_dtype = tuple(want.shape) + tuple(key_shape), np.dtype(np.uint32)
        else:
            want_shape, want_dtype = tuple(want.shape), np.dtype(want.dtype)
        if tuple(arr.shape) != want_shape or arr.dtype != want_dtype:
            raise CheckpointError(
                f"{source}: leaf {name!r} is {arr.dtype}{list(arr.shape)} in the checkpoint "
                f"but {want_dtype}{list(want_shape)} for this config"
            )
        if is_key(want):
            out.append(jax.random.wrap_key_data(arr, impl=keys[name]))  # type: ignore[arg-type]  # takes NumPy too
        else:
            out.append(arr)
    return jax.tree_util.tree_unflatten(treedef, out)


# ------------------------------------------------------------------------------ files


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a fsynced temp file in the same folder and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def save_checkpoint(path: str | os.PathLike, state: Any, meta: dict) -> Path:
    """Write `state` (any pytree of arrays / typed keys) and `meta` (msgpack-able) atomically to `path`."""
    leaves, keys = flatten_state(state)
    payload = serialization.msgpack_serialize({"meta": meta, "leaves": leaves, "keys": keys})
    blob = serialization.msgpack_serialize(
        {"format": FORMAT, "version": VERSION, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}
    )
    atomic_write_bytes(path, blob)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray], dict[str, str]]:
    """(meta, leaves, key impls) of a checkpoint file, after checking its format and checksum."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    try:
        outer = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises several types for truncated/garbled input
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({len(data)} bytes; msgpack: {type(e).__name__})"
        ) from None
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a purejaxppo checkpoint (no {FORMAT!r} format tag)")
    if outer.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {outer.get('version')!r}; this purejaxppo reads version {VERSION}"
        )
    payload = outer.get("payload")
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != outer.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupt: its checksum does not match its contents")
    try:
        inner = serialization.msgpack_restore(payload)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt ({type(e).__name__} while decoding)") from None
    meta, leaves, keys = inner.get("meta"), inner.get("leaves"), inner.get("keys", {})
    if not isinstance(meta, dict) or not isinstance(leaves, dict):
        raise CheckpointError(f"checkpoint {path} is corrupt: no metadata or state")
    return meta, {k: np.asarray(v) for k, v in leaves.items()}, dict(keys or {})


def load_checkpoint(path: str | os.PathLike, template: Any) -> tuple[Any, dict]:
    """(state shaped like `template`, meta) from a checkpoint file; see `unflatten_state` for the checks."""
    meta, leaves, keys = read_checkpoint(path)
    return unflatten_state(template, leaves, keys, source=f"checkpoint {path}"), meta


# --------------------------------------------------------------------------- manager


def checkpoint_name(update: int) -> str:
    return f"ckpt-{int(update):08d}{SUFFIX}"


class CheckpointManager:
    """Numbered checkpoints `ckpt-<update>.msgpack` in one folder, newest `keep` kept."""

    def __init__(self, directory: str | os.PathLike, keep: int = 2):
        if keep < 1:
            raise ConfigError(f"CheckpointManager: keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    def list(self) -> list[tuple[int, Path]]:
        """[(update, path)] sorted by update, oldest first (temp files ignored)."""
        if not self.directory.is_dir():
            return []
        found = []
        for p in self.directory.iterdir():
            m = _NAME_RE.match(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> Path | None:
        found = self.list()
        return found[-1][1] if found else None

    def save(self, state: Any, meta: dict, update: int) -> Path:
        path = save_checkpoint(self.directory / checkpoint_name(update), state, meta)
        for _, old in self.list()[: -self.keep]:
            try:
                old.unlink()
            except OSError:
                pass
        return path

    def read_latest(self) -> tuple[Path, dict, dict, dict]:
        """(path, meta, leaves, keys) of the newest checkpoint.

        If the newest is unreadable, the error names the newest older one that
        is intact, so the user can resume from it explicitly.
        """
        found = self.list()
        if not found:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        path = found[-1][1]
        try:
            return (path, *read_checkpoint(path))
        except CheckpointError as e:
            for _, older in reversed(found[:-1]):
                try:
                    read_checkpoint(older)
                except CheckpointError:
                    continue
                raise CheckpointError(
                    f"{e}; the previous checkpoint {older} is intact: pass that file to use it"
                ) from None
            raise
