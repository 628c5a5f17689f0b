"""Run folders: chunked training with checkpoints, metric logs, resume, and loading a run back.

`train_run(config, out_dir, ...)` trains `num_seeds` vmapped seeds in jitted
chunks of `checkpoint_every` updates, appending each chunk's metrics to
`metrics.jsonl` (fsynced), then saving a full-state checkpoint and refreshing
`run.json`; `resume=True` continues bit-identically. `load_run(run_dir)`
returns the config, the `make_train` result and the restored state;
`load_policy(run_dir)` a jitted `act` function.

Run folder::

    runs/NAME/
      config.yaml        the resolved PPOConfig
      run.json           versions, device, seeds, chunking, compile/wall time, status, sessions
      metrics.jsonl      {"update", "env_steps", "seed", <every metric>} per logged update per seed
                         (a sweep program's: {"update", "env_steps", "run", "setting", "seed", ...} per run)
      checkpoints/ckpt-00000098.msgpack   the newest two full-state checkpoints
      .lock              held (flock) while a process trains into the folder

Which file holds what:

* `run.py`: `train_run`, the one-call form: claim and lock the folder, start or resume, run a session.
* `options.py`: `RunOptions`, how a run is carried out (seeds, chunking, resume, progress, writers, mesh, ...).
* `build.py`: how the run's Train is made again (its config, a `"module:function"` builder, or an object).
* `start.py`: where a session starts (a new run's first state, or a checkpoint checked to be this run's).
* `session.py`: `RunSession`, the chunk loop and what a session records; `RunResult`.
* `chunks.py`: how a chunk of updates is compiled and run (`make_chunk_fn`, `ProgramCache`, `check_run_fits`).
* `mesh.py`, `follower.py`: a run on a device mesh and across processes.
* What a run writes: `writers.py` (metrics.jsonl rows, TensorBoard, W&B), `files.py` (run.json,
  checkpoint metadata, config.yaml checks, write errors), `folder.py` (the folder itself: unique
  names, the lock, owned files, old-checkpoint heads), `identity.py` (the run id in every file),
  `checkpoints.py` (the checkpoint format), `progress.py` (the live progress bar).
* `axis.py`: `RunAxis`, a program's runs when they are settings x seeds (purejaxppo.sweep).
* `loading.py`: reading a run back (`load_run`, `load_policy`, `read_metrics`, `learning_curves`, `metric_table`).
"""

from purejaxppo.errors import RunError, RunWriteError
from purejaxppo.runs.build import TrainSource
from purejaxppo.runs.chunks import PROCESS_CACHE, ProgramCache, check_run_fits, make_chunk_fn
from purejaxppo.runs.files import config_diff, device_info, versions
from purejaxppo.runs.folder import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    RUN_FILE,
    RUN_FILES,
    RunLock,
    claim_new_run_dir,
)
from purejaxppo.runs.loading import (
    LoadedRun,
    learning_curves,
    load_policy,
    load_run,
    metric_table,
    read_metrics,
    resolve_checkpoint,
)
from purejaxppo.runs.options import ON_DIVERGE, RunOptions
from purejaxppo.runs.result import RunInterrupted, RunResult
from purejaxppo.runs.run import train_run
from purejaxppo.runs.session import RunSession
from purejaxppo.runs.start import LOGGING_FIELDS, default_checkpoint_every
from purejaxppo.runs.writers import JsonlWriter, TensorBoardWriter, WandbWriter, logged_updates

__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "JsonlWriter",
    "LOGGING_FIELDS",
    "LoadedRun",
    "METRICS_FILE",
    "ON_DIVERGE",
    "RUN_FILE",
    "RUN_FILES",
    "RunError",
    "RunInterrupted",
    "PROCESS_CACHE",
    "ProgramCache",
    "RunLock",
    "RunOptions",
    "RunSession",
    "RunResult",
    "RunWriteError",
    "TensorBoardWriter",
    "TrainSource",
    "WandbWriter",
    "check_run_fits",
    "claim_new_run_dir",
    "config_diff",
    "default_checkpoint_every",
    "device_info",
    "learning_curves",
    "metric_table",
    "load_policy",
    "load_run",
    "logged_updates",
    "make_chunk_fn",
    "read_metrics",
    "resolve_checkpoint",
    "train_run",
    "versions",
]
