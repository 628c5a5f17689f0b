"""`RunAxis`: what each run of a run folder is, when the runs are not plain seeds of one config (a sweep group).

A plain `train_run` with `num_seeds=S` trains runs `r = 0..S-1` with the keys
`jax.random.split(jax.random.key(seed), S)` and the config's hyperparameters.
A sweep group trains R = settings x seeds runs in the same vmapped program: run
`r` takes seed key `seed_index[r]` of `jax.random.split(jax.random.key(seed),
key_count)` and its own traced hyperparameters `hparams[field][r]`, and its
metrics.jsonl rows carry `labels[r]` (the setting id and the seed within it).
So seed `s` of a setting is bit-for-bit the run `purejaxppo train --seeds
key_count --seed SEED` would give as its seed `s` with that setting's values.

The axis is saved in every checkpoint's metadata (`to_json`), so a resume
needs nothing but the folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from purejaxppo.core.config import HPARAM_FIELDS, HParams, validate_hparams
from purejaxppo.errors import ConfigError

if TYPE_CHECKING:
    import jax


@dataclasses.dataclass(frozen=True)
class RunAxis:
    """The runs of one program beyond plain seeds (see the module docstring).

    key_count: the N of `jax.random.split(jax.random.key(seed), N)`.
    seed_index: `[R]` which of those keys each run uses.
    hparams: {HParams field: `[R]` float32-exact Python floats}, every field.
    labels: `[R]` dicts of extra metrics.jsonl columns (JSON-able).
    """

    key_count: int
    seed_index: tuple[int, ...]
    hparams: dict[str, tuple[float, ...]]
    labels: tuple[dict, ...]

    def __post_init__(self):
        r = len(self.seed_index)
        if r < 1:
            raise ConfigError("RunAxis: needs at least one run")
        if not all(0 <= int(i) < self.key_count for i in self.seed_index):
            raise ConfigError(f"RunAxis: seed indices must lie in [0, {self.key_count}), got {list(self.seed_index)}")
        if set(self.hparams) != set(HPARAM_FIELDS):
            raise ConfigError(
                f"RunAxis: hparams must hold every HParams field, missing "
                f"{sorted(set(HPARAM_FIELDS) - set(self.hparams))}, unknown "
                f"{sorted(set(self.hparams) - set(HPARAM_FIELDS))}"
            )
        if any(len(v) != r for v in self.hparams.values()) or len(self.labels) != r:
            raise ConfigError(f"RunAxis: every hparams field and the labels need {r} entries (one per run)")

    @property
    def num_runs(self) -> int:
        return len(self.seed_index)

    def keys(self, seed: int):
        """`[R]` PRNG keys of the runs."""
        import jax

        return jax.random.split(jax.random.key(seed), self.key_count)[np.asarray(self.seed_index)]

    def hp(self) -> HParams:
        """`HParams` with `[R]` float32 NumPy fields (validated: ConfigError naming field and run)."""
        # A host-side HParams: NumPy leaves stand in for the jax.Array fields (jit/vmap convert them on entry).
        hp = HParams(**{n: cast("jax.Array", np.asarray(self.hparams[n], np.float32)) for n in HPARAM_FIELDS})
        return validate_hparams(hp)

    @classmethod
    def build(cls, key_count: int, seed_index, hparams: Sequence[HParams | dict], labels) -> RunAxis:
        """From one `HParams` (or {field: value}) per run; values are stored as float32."""
        cols: dict[str, list[float]] = {n: [] for n in HPARAM_FIELDS}
        for hp in hparams:
            for n in HPARAM_FIELDS:
                v = hp[n] if isinstance(hp, dict) else getattr(hp, n)
                cols[n].append(float(np.float32(v)))
        return cls(
            int(key_count),
            tuple(int(i) for i in seed_index),
            {n: tuple(v) for n, v in cols.items()},
            tuple(dict(x) for x in labels),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "key_count": self.key_count,
            "seed_index": list(self.seed_index),
            "hparams": {n: list(v) for n, v in self.hparams.items()},
            "labels": [dict(x) for x in self.labels],
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "checkpoint") -> RunAxis | None:
        if data is None:
            return None
        try:
            return cls(
                int(data["key_count"]),
                tuple(int(i) for i in data["seed_index"]),
                {n: tuple(float(x) for x in v) for n, v in data["hparams"].items()},
                tuple(dict(x) for x in data["labels"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{source}: malformed run axis ({e})") from None


def is_batched(hp) -> bool:
    """True when `hp` holds one value per run (`[R]` fields), False for scalars shared by all runs."""
    import jax

    return np.ndim(jax.tree.leaves(hp)[0]) > 0
