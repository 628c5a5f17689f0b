"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import pathlib
import platform
import time
from collections.abc import Sequence

import jax
import numpy as np

from purejaxppo.sweep.stats import bootstrap_ci

BOOTSTRAP_REPS = 10_000


def cpu_name() -> str:
    """The host CPU as /proc/cpuinfo names it, with its core count: 'Intel(R) Xeon(R) Processor (family 6,
    model 167), 2 cores' (ratios measured on one CPU kind need not hold on another); '' where unknown."""
    try:
        info = pathlib.Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    name = fields.get("model name", platform.processor())
    return f"{name} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}), {os.cpu_count()} cores"


def hardware_line() -> str:
    """'cpu (cpu, x86_64, 1 device(s); AMD EPYC ... (family 26, model 2), 2 cores), jax 0.10.2, 2026-11-21' — where
    and when a result was measured."""
    dev = jax.devices()[0]
    host = cpu_name() if jax.default_backend() == "cpu" else ""
    return (f"{jax.default_backend()} ({dev.device_kind}, {platform.machine()}, {len(jax.devices())} device(s)"
            f"{'; ' + host if host else ''}), jax {jax.__version__}, {time.strftime('%Y-%m-%d')}")


def ratio_ci(ratios: Sequence[float], reps: int = BOOTSTRAP_REPS, seed: int = 0) -> tuple[float, float, float]:
    """(median, low, high): the median of per-pair (or per-round) ratios and its percentile-bootstrap 95% CI over
    the pairs."""
    return bootstrap_ci(list(ratios), metric="median", reps=reps, confidence=0.95, seed=seed)


def format_ratio(ratios: Sequence[float], reps: int = BOOTSTRAP_REPS) -> tuple[str, str]:
    """('**1.09×** [0.98, 1.10]', '0.98, 1.09, 1.10, ...'): the ratio cell and the pair-ratios cell."""
    med, low, high = ratio_ci(ratios, reps=reps)
    return f"**{med:.2f}×** [{low:.2f}, {high:.2f}]", ", ".join(f"{r:.2f}" for r in ratios)


def best_of(launch, repeats: int, warmup: bool = True) -> tuple[float, float]:
    """Fastest of `repeats` timed calls of `launch()` (which must block until its work is done).

    Returns (wall seconds, CPU-seconds per wall-second of that call). With `warmup`, one untimed
    call comes first.
    """
    if warmup:
        launch()
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        launch()
        wall = time.perf_counter() - t
        if wall < best[0]:
            best = (wall, (time.process_time() - c) / wall)
    return best


def first_complete_update(episodes_completed: np.ndarray) -> int:
    """First update index by which every run `[..., num_updates]` has completed an episode.

    Before it, a run's episode_return metric is a placeholder (0), so curves start there.
    """
    done = np.cumsum(np.asarray(episodes_completed), axis=-1) > 0
    return int(np.argmax(done, axis=-1).max())


def final_scores(curves: np.ndarray, frac: float = 0.1) -> np.ndarray:
    """Mean of the last `frac` of updates of each run: `[..., num_updates]` -> `[...]`."""
    tail = max(1, int(round(curves.shape[-1] * frac)))
    return curves[..., -tail:].mean(axis=-1)


def last_episodes(rows: list[dict], episodes: int = 100) -> tuple[float, int]:
    """(mean return, count) of a run's last `episodes` episodes, from its metric rows (metrics.jsonl): each
    update's mean episode return weighted by its completed episodes, newest first, until `episodes` are counted
    (NaN, 0 when none completed)."""
    total, count = 0.0, 0
    for r in reversed(rows):
        n = int(r.get("episodes_completed") or 0)
        if n and r.get("episode_return") is not None:
            total, count = total + r["episode_return"] * n, count + n
        if count >= episodes:
            break
    return (total / count if count else float("nan")), count


def timed_seeds(train, seeds: int, seed: int = 0):
    """(output, compile s, run s) of jit(vmap(train)) over `seeds` keys split from jax.random.key(seed)."""
    keys = jax.random.split(jax.random.key(seed), seeds)
    t = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    return out, compile_s, time.perf_counter() - t

