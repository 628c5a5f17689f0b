"""How the command line shows an exception: one line for a user error or Ctrl-C, the traceback for a bug."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, cast

from purejaxppo.errors import PureJaxPPOError

if TYPE_CHECKING:
    from purejaxppo.runs import RunInterrupted


def interrupted_message(e: KeyboardInterrupt) -> str:
    """What Ctrl-C left behind: the checkpoint (or sweep) to continue from, or that there is none yet."""
    sweep_dir = getattr(e, "sweep_dir", None)  # a SweepInterrupted
    if sweep_dir is not None:
        return (
            f"interrupted; every finished chunk is checkpointed; continue with: purejaxppo sweep --resume {sweep_dir}"
        )
    run_dir, ck = getattr(e, "run_dir", None), getattr(e, "checkpoint", None)
    if run_dir is None:
        return "interrupted"
    if ck is None:
        return (
            f"interrupted before the first checkpoint of {run_dir}; nothing to resume yet "
            f"(start again, with --overwrite to reuse the folder: purejaxppo train ... --out {run_dir} --overwrite)"
        )
    update = cast("RunInterrupted", e).update  # a run folder and a checkpoint: train_run's RunInterrupted
    return (
        f"interrupted; the newest checkpoint {ck.name} (update {update}) is intact; "
        f"continue with: purejaxppo train --resume {run_dir}"
    )


def user_error_message(e: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None for a bug (shown with its traceback).

    User errors are purejaxppo's own (`PureJaxPPOError`: config, env, extra, run folder, checkpoint, memory
    estimate, divergence) and the machine's: files, disks, permissions and the network (`OSError`), and host or
    device memory running out. Anything else (a ValueError, TypeError, KeyError, ... raised inside purejaxppo,
    JAX or an env) is a bug and keeps its traceback."""
    text = _one_line(e)
    if isinstance(e, PureJaxPPOError):
        return text
    try:
        from urllib.error import URLError

        if isinstance(e, URLError):
            return (
                f"could not download data the environment needs ({' '.join(str(e.reason).split())}); "
                "this machine looks offline: use another env, or fetch the data on a machine with network first"
            )
    except ImportError:  # pragma: no cover
        pass
    if isinstance(e, OSError):
        hints: dict[int | None, str] = {  # (e.errno may be None)
            errno.ENOSPC: "free disk space",
            errno.EROFS: "the file system is read-only: choose another --out",
            errno.EDQUOT: "the disk quota is exceeded: free space",
        }
        hint = hints.get(e.errno)
        return f"{text} ({hint}; an interrupted run continues with: purejaxppo train --resume RUN)" if hint else text
    if isinstance(e, MemoryError):
        return "out of host memory; reduce num_envs, num_steps or --seeds"
    if "RESOURCE_EXHAUSTED" in str(e) or "Out of memory" in str(e):
        first = next(
            (ln.strip() for ln in str(e).splitlines() if "RESOURCE_EXHAUSTED" in ln or "memory" in ln.lower()), ""
        )
        return (
            f"out of device memory while running the training program ({first[:200]}); reduce num_envs, "
            "num_steps or --seeds (a resumed run continues from its newest checkpoint)"
        )
    return None


def _one_line(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.filename and e.strerror:
        msg = f"{e.strerror}: {e.filename}"
    return " ".join(msg.split())
