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

* `loop.py`: `train_run` — start or resume, the chunk loop, what a session records; `RunResult`.
* `chunks.py`: how a chunk of updates is compiled and run (`make_chunk_fn`, the per-process program
  cache, `check_run_fits`).
* What a run writes: `writers.py` (metrics.jsonl rows, TensorBoard, W&B), `files.py` (run.json,
  checkpoint metadata, config.yaml checks, write errors), `folder.py` (the folder itself: unique
  names, the lock, owned files, old-checkpoint heads).
* `axis.py`: `RunAxis`, a program's runs when they are settings x seeds (purejaxppo.sweep).
* `loading.py`: reading a run back (`load_run`, `load_policy`, `read_metrics`, `learning_curves`).
"""

from purejaxppo.errors import RunError, RunWriteError
from purejaxppo.runs.chunks import check_run_fits, make_chunk_fn
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
from purejaxppo.runs.loading import LoadedRun, learning_curves, load_policy, load_run, read_metrics, resolve_checkpoint
from purejaxppo.runs.loop import (
    LOGGING_FIELDS,
    ON_DIVERGE,
    RunInterrupted,
    RunResult,
    default_checkpoint_every,
    train_run,
)
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
    "RunLock",
    "RunResult",
    "RunWriteError",
    "TensorBoardWriter",
    "WandbWriter",
    "check_run_fits",
    "claim_new_run_dir",
    "config_diff",
    "default_checkpoint_every",
    "device_info",
    "learning_curves",
    "load_policy",
    "load_run",
    "logged_updates",
    "make_chunk_fn",
    "read_metrics",
    "resolve_checkpoint",
    "train_run",
    "versions",
]
