"""`RunOptions`: everything about *how* a run is carried out, as one frozen value.

What is trained (the config, env, network, objective) is the `Train`; how it is
run (seeds, chunking, resume, progress, writers, mesh, what to do on divergence)
is this. A new run option is one field here and the code that uses it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable, Sequence
from typing import Any

from purejaxppo.errors import RunError

ON_DIVERGE = ("stop", "continue")
PROGRESS = ("bar", "lines", "off")

# Optional metric writers: (option, package, pip extra).
_WRITER_PACKAGES = (("tensorboard", "tensorboardX", "tensorboard"), ("wandb_project", "wandb", "wandb"))


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How `train_run` carries out a run (see `purejaxppo.runs.train_run` for each option's meaning).

    num_seeds: seeds to train side by side (None: 1, or on resume the checkpoint's).
    seed: the seeds' keys are `jax.random.split(jax.random.key(seed), num_seeds)`.
    checkpoint_every: updates per jitted chunk and checkpoint (None: about ten per run).
    resume: False, True (the newest checkpoint) or a checkpoint file.
    overwrite: a non-empty folder's own files are removed first.
    progress: "bar", "lines" or "off".
    stop_after: stop (after checkpointing) once this many updates are done in total.
    on_diverge: "stop" or "continue".
    tensorboard, wandb_project: extra metric writers.
    command: the command line recorded in run.json.
    log: where messages go.
    progress_file: the stream of the progress bar (None: stderr).
    runs_root: where a new folder is claimed when no out_dir is given.
    mesh: {"seed": s, "data": d} sizes, or None (purejaxppo.parallel).
    runs: a sweep group's runs (purejaxppo.runs.axis.RunAxis); num_seeds must then be None.
    pbt: population-based training (purejaxppo.core.pbt.PBTConfig): `runs` are the population and the Train is
      wrapped by make_pbt_train; recorded in the folder, so a resume takes it from there (purejaxppo.pbt).
    reporter: a ProgressReporter owned by the caller (a sweep's one bar).
    """

    num_seeds: int | None = None
    seed: int = 0
    checkpoint_every: int | None = None
    resume: bool | str | os.PathLike = False
    overwrite: bool = False
    progress: str = "off"
    stop_after: int | None = None
    on_diverge: str = "stop"
    tensorboard: bool = False
    wandb_project: str | None = None
    command: Sequence[str] | None = None
    log: Callable[[str], None] = print
    progress_file: Any = None
    runs_root: str | os.PathLike = "runs"
    mesh: dict | None = None
    runs: Any = None
    reporter: Any = None
    pbt: Any = None

    def __post_init__(self):
        for name, flag in (
            ("num_seeds", "--seeds"),
            ("checkpoint_every", "--checkpoint-every"),
            ("stop_after", "--stop-after"),
        ):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise RunError(f"{flag} must be >= 1, got {value!r}")
        if self.on_diverge not in ON_DIVERGE:
            raise RunError(f"--on-diverge must be one of {ON_DIVERGE}, got {self.on_diverge!r}")
        if self.progress not in PROGRESS:
            raise RunError(f"progress must be one of {PROGRESS}, got {self.progress!r}")
        if self.runs is not None and self.num_seeds is not None:
            raise RunError("train_run: pass either num_seeds or runs (a sweep group's runs), not both")
        if isinstance(self.mesh, str):
            from purejaxppo.parallel import parse_mesh

            object.__setattr__(self, "mesh", parse_mesh(self.mesh))
        if self.command is not None:
            object.__setattr__(self, "command", tuple(self.command))

    def check_writers(self) -> None:
        """RunError before anything is written if an optional writer's package is missing."""
        for option, module, extra in _WRITER_PACKAGES:
            if getattr(self, option) and importlib.util.find_spec(module) is None:
                raise RunError(f"--{extra} needs the {module} package: pip install 'purejaxppo[{extra}]'")

    def seeds_of_new_run(self) -> int:
        """The number of runs a new run trains: the sweep group's, else num_seeds (default 1)."""
        if self.runs is not None:
            return int(self.runs.num_runs)
        return 1 if self.num_seeds is None else self.num_seeds
