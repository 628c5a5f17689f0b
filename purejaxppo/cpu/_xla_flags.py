"""CPU safety: the XLA scheduler flag against the XLA:CPU deadlock seen with vmapped PPO.

On jax 0.10.2's CPU backend, `jax.jit(jax.vmap(train))` of a PPO over several
seeds was observed to hang forever (0% CPU, every thread waiting) unless the
concurrency-optimized scheduler is turned off:

    XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false

A hang of the same look was later traced to jaxlib 0.10.2's batched CPU LAPACK
kernels (a vmapped orthogonal init: every XLA pool thread inside a batched QR,
waiting on pieces queued behind it). The flag does not prevent that one (a
vmapped Craftax-sized init still hung 2 times in 3 with it);
`purejaxppo.core.networks.orthogonal` does, by never batching a QR.

XLA reads XLA_FLAGS once, when the first backend compiles; so the flag only
takes effect if it is in the environment before any JAX computation. Nothing
here runs on import: `purejaxppo.cpu.configure()` calls `apply_scheduler_flag`.
The flag only concerns the CPU backend; GPU/TPU runs are unaffected.

Version range (`FLAG_JAX_RANGE`): from jax 0.4.35, the oldest jax purejaxppo
supports (the flag is in jaxlib 0.4.35's XLA, checked in its binary; an XLA
that does not know a flag in XLA_FLAGS aborts the process, so older versions
are left alone), up to and including 0.10.x, where the hang was seen. From
jaxlib 0.9.1 on XLA lists the flag as deprecated (the new
`--xla_cpu_scheduler_type` replaces it), yet on 0.10.2 `...=false` still selects
the memory-optimized schedule. Nothing is known about 0.11 and later, so
nothing is set there.
"""

from __future__ import annotations

import os
import re
import warnings

FLAG_NAME = "--xla_cpu_enable_concurrency_optimized_scheduler"
FLAG = f"{FLAG_NAME}=false"
OPT_OUT_ENV = "PUREJAXPPO_KEEP_XLA_FLAGS"
FLAG_JAX_RANGE = ((0, 4, 35), (0, 11, 0))  # [first, end): jaxlib versions that get the flag

_state = {"applied": False, "warned": False}  # this process: did we append the flag; did we warn too late


def env_flag(name: str) -> bool:
    """True when environment variable `name` is set to something other than '', '0', 'false', 'no' or 'off'."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def parse_version(text: str) -> tuple[int, ...]:
    """'0.10.2' -> (0, 10, 2); suffixes are dropped ('0.4.36.dev20241122+cuda' -> (0, 4, 36))."""
    parts = []
    for piece in text.split(".")[:3]:
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def in_flag_range(version: tuple[int, ...]) -> bool:
    """Whether the scheduler flag is applied for this jaxlib version (see FLAG_JAX_RANGE)."""
    first, end = FLAG_JAX_RANGE
    return first <= tuple(version) < end


def jaxlib_version() -> str:
    """The installed jaxlib's version (XLA and its flags live in jaxlib). Imports no backend."""
    try:
        from jaxlib.version import __version__
    except ImportError:  # pragma: no cover - jax always brings jaxlib
        import jax

        return jax.__version__
    return __version__


def backends_started() -> bool:
    """Whether JAX has created its backends (after which XLA_FLAGS no longer takes effect)."""
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # private API moved: assume started, so we only ever warn
        return True


def _cpu_backend_in_use() -> bool:
    try:
        import jax

        return jax.default_backend() == "cpu"
    except Exception:
        return True


def decide(
    *, enabled: bool, xla_flags: str, opt_out: bool, version: str, started: bool, applied: bool
) -> tuple[str, str]:
    """Pure decision: (status, reason) for the scheduler flag, and whether to append it (status 'append').

    Statuses: 'disabled' (caller passed scheduler_flag=False), 'opt-out' (PUREJAXPPO_KEEP_XLA_FLAGS),
    'set' (appended by purejaxppo, now or earlier in this process), 'user' (XLA_FLAGS already names the
    flag, either value), 'not-needed' (jaxlib outside FLAG_JAX_RANGE), 'too-late' (a backend started),
    'append' (append it now; reported as 'set').
    """
    if not enabled:
        return "disabled", "scheduler_flag=False: XLA_FLAGS left as it is"
    if applied and FLAG_NAME in xla_flags:
        return "set", f"{FLAG} already appended to XLA_FLAGS by an earlier configure() in this process"
    if FLAG_NAME in xla_flags:
        return "user", f"XLA_FLAGS already names {FLAG_NAME} (set by you or inherited); left as it is"
    if opt_out:
        return "opt-out", f"{OPT_OUT_ENV} is set; XLA_FLAGS left as it is"
    if not in_flag_range(parse_version(version)):
        first, end = (".".join(map(str, v)) for v in FLAG_JAX_RANGE)
        return "not-needed", (
            f"jaxlib {version} is outside [{first}, {end}), the versions where the XLA:CPU "
            "hang was seen or cannot be ruled out; XLA_FLAGS left as it is"
        )
    if started:
        return "too-late", (
            "JAX's backend already started and XLA reads XLA_FLAGS only once, so the flag can "
            "no longer take effect; call purejaxppo.cpu.configure() before any JAX computation, "
            "or put the flag in XLA_FLAGS before starting Python"
        )
    return "append", f"appended {FLAG} to XLA_FLAGS (jaxlib {version}; avoids the XLA:CPU deadlock of vmapped PPO)"


def apply_scheduler_flag(enabled: bool = True) -> tuple[str, str]:
    """Append the scheduler flag to os.environ['XLA_FLAGS'] if `decide` says so. Returns (status, reason).

    A 'too-late' result warns once per process (RuntimeWarning) when the CPU backend is in use.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    status, reason = decide(
        enabled=enabled,
        xla_flags=flags,
        opt_out=env_flag(OPT_OUT_ENV),
        version=jaxlib_version(),
        started=backends_started(),
        applied=_state["applied"],
    )
    if status == "append":
        os.environ["XLA_FLAGS"] = (flags + " " + FLAG).strip()
        _state["applied"] = True
        return "set", reason
    if status == "too-late" and not _state["warned"] and _cpu_backend_in_use():
        _state["warned"] = True
        warnings.warn(
            f"purejaxppo.cpu.configure() could not set XLA_FLAGS={FLAG}: {reason}. vmapped training "
            "on CPU may deadlock (observed on jax 0.10.2).",
            RuntimeWarning,
            stacklevel=3,
        )
    return status, reason
