"""Moved to the package `purejaxppo.runs` (split by job: loop, chunks, writers, files, folder, loading).

This module re-exports the names it used to hold so old imports keep working.
Patching an attribute here does not reach the code that uses it: patch the
module in `purejaxppo.runs` that holds it.
"""

from purejaxppo.checkpoint import CheckpointError, CheckpointManager  # noqa: F401
from purejaxppo.runs import *  # noqa: F401,F403  (train_run, load_run, RunResult, ...: purejaxppo.runs.__all__)
from purejaxppo.runs.chunks import AXIS  # noqa: F401
from purejaxppo.runs.folder import (  # noqa: F401  # noqa: F401
    is_empty_but_lock,
    make_head,
    read_run_info,
    remove_owned,
    remove_stale_temp_files,
    safe_name,
    stamp,
)
