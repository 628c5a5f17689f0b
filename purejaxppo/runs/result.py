"""What a run session returns (`RunResult`) or raises when interrupted (`RunInterrupted`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from purejaxppo.core.config import PPOConfig


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during `train_run`; says which folder and which checkpoint (if any) to continue from."""

    def __init__(self, run_dir: Path, checkpoint: Path | None, update: int | None):
        super().__init__()
        self.run_dir, self.checkpoint, self.update = run_dir, checkpoint, update


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    config: PPOConfig
    state: Any
    update: int
    finished: bool
    compile_s: float
    wall_s: float
    env_steps_per_s: float
    progress_calls: int = 0  # host callbacks received by the progress reporter
    progress_reports: list = dataclasses.field(default_factory=list)  # [(update, {metric: values over seeds})]
    status: str = "finished"  # finished | stopped | diverged | nothing to do
    diverged_seeds: list = dataclasses.field(default_factory=list)
    diverged_at_update: int | None = None  # the first update at which a seed diverged
