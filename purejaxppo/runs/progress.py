"""Live progress from inside the jitted training loop.

`with_progress(train.update, log_every, reporter, axis_name=...)` wraps one
PPO update so that every `log_every` updates (and after update
`total_updates`) it sends the update counter and a few metrics to the host
with `jax.debug.callback`; `ProgressReporter` turns those calls into a tqdm
bar (or plain lines) showing env steps, steps/s and the recent return.
With `log_every == 0` the update is returned unchanged: no callback exists in
the compiled program.

How callbacks behave under `vmap` (jax 0.10.2), and what this module does about it
---------------------------------------------------------------------------------
* `jax.debug.callback` under `vmap` is unrolled: the jaxpr holds one slice +
  callback per batch element, so the host function runs once per seed with
  that seed's unbatched values (and nothing says which seed it is). Compile
  size grows with the number of seeds.
* `io_callback(ordered=False)` under `vmap` becomes a `scan` over the batch:
  also one host call per element. `ordered=True` cannot be vmapped at all
  ("Cannot `vmap` ordered IO callback").
* `pure_callback` requires a `vmap_method`; `"expand_dims"` /
  `"broadcast_all"` give one call with the batched arrays, but a pure
  callback whose result is unused is dead code and may be removed, so it is
  no tool for side effects.
* `lax.cond` whose predicate is batched becomes a `select`: both branches
  run, so a callback inside a `cond(step % log_every == 0, ...)` would fire on
  every update for every seed.

The design therefore takes a named vmap axis. Under
`jax.vmap(..., axis_name=axis_name)`, `lax.pmax(update_step, axis_name)` is
*unbatched* and `lax.all_gather(metrics, axis_name)` is an unbatched
`[num_seeds]` array, so the gate stays a real branch and the host gets
exactly ONE call per logged update carrying every seed's values. The gate is
a `while_loop` that runs its body 0 or 1 times rather than a `cond`: if the
wrapper is vmapped without `axis_name` (or under a second, unnamed vmap), the
predicate is batched and a `while_loop` then still skips the body on
non-logged updates (it runs while *any* element wants to), where a `cond`
would fire on every update. In that fallback the host gets one call per seed
per logged update; the reporter adds values up per update until it has
`num_runs` of them and then advances the bar once, so the bar is still one
aggregated bar. The `logged` flag travels with each call and calls with
`logged == False` (possible only when vmapped seeds are out of step) are
ignored.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.errors import ConfigError

PROGRESS_METRICS = ("episode_return", "eval_return", "diverged")


def with_progress(
    update: Callable,
    log_every: int,
    callback: Callable,
    *,
    total_updates: int | None = None,
    axis_name: str | None = None,
    metric_names: Sequence[str] = PROGRESS_METRICS,
    mesh_axes: Sequence[str] = (),
) -> Callable:
    """Wrap `update(state, hp) -> (state, metrics)` to report progress every `log_every` updates.

    callback: host function `callback(update, logged, metrics_dict)`; `update`
      is the update counter after this update (int), `metrics_dict` holds the
      `metric_names` present in the metrics — `[num_seeds]` arrays when
      vmapped with `axis_name`, scalars otherwise. `ProgressReporter` is one.
    total_updates: also report after this update (the last one).
    An update on which a run diverges (its `diverged` flag turns on) is always
    reported, so a divergence shows at once, not at the next logged update.
    axis_name: the name of the enclosing vmap over seeds, if any (see module docstring).
    mesh_axes: on a device mesh (purejaxppo.parallel), its axis names, seed axis
      first: the seeds of every device are gathered (in global seed order) and
      only the mesh's first device calls back, so the host still gets one call
      per logged update.

    `log_every <= 0` returns `update` itself: nothing is added to the program.
    """
    if log_every is None or log_every <= 0:
        return update
    log_every = int(log_every)

    def wrapped(state, hp=None):
        new_state, metrics = update(state, hp)
        step = new_state.update_step
        values = {k: metrics[k] for k in metric_names if k in metrics}
        if axis_name is not None:
            step = jax.lax.pmax(step, axis_name)
            values = jax.lax.all_gather(values, axis_name)
        if mesh_axes:
            step = jax.lax.pmax(step, mesh_axes[0])
            values = jax.lax.all_gather(values, mesh_axes[0], tiled=axis_name is not None)
        logged = step % log_every == 0
        if total_updates is not None:
            logged = jnp.logical_or(logged, step == total_updates)
        if hasattr(new_state, "diverged"):  # a TrainState (any state without the flag is reported as usual)
            newly_diverged = jnp.logical_and(new_state.diverged, jnp.logical_not(state.diverged))
            if axis_name is not None:
                newly_diverged = jax.lax.pmax(newly_diverged.astype(jnp.int32), axis_name) > 0
            if mesh_axes:
                newly_diverged = jax.lax.pmax(newly_diverged.astype(jnp.int32), mesh_axes[0]) > 0
            logged = jnp.logical_or(logged, newly_diverged)
        if mesh_axes:  # one device of the mesh reports (every device holds the same gathered values)
            first = jnp.asarray(True)
            for name in mesh_axes:
                first = jnp.logical_and(first, jax.lax.axis_index(name) == 0)
            logged = jnp.logical_and(logged, first)

        def report(go):
            jax.debug.callback(callback, step, logged, values)
            return jnp.zeros_like(go)

        jax.lax.while_loop(lambda go: go, report, logged)
        return new_state, metrics

    return wrapped


def _fmt_num(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}"


class ProgressReporter:
    """Host side of `with_progress`: one bar aggregated over `num_runs` vmapped runs.

    total_updates, steps_per_update: the bar counts env steps per run
      (update * steps_per_update); steps/s is summed over all runs.
    style: "bar" (tqdm), "lines" (a plain line per report, for logs / non-TTY) or "off".
    Call `start()` right before the compiled loop runs (so compile time does
    not count), `close()` at the end. `reports` keeps (update, {metric: values})
    of every aggregated report; `calls` counts raw host calls.
    """

    def __init__(
        self,
        total_updates: int,
        steps_per_update: int,
        num_runs: int = 1,
        *,
        initial_update: int = 0,
        style: str = "bar",
        desc: str | None = None,
        file=None,
        bar_total_steps: int | None = None,
    ):
        if style not in ("bar", "lines", "off"):
            raise ConfigError(f"ProgressReporter: style must be 'bar', 'lines' or 'off', got {style!r}")
        self.total_updates = int(total_updates)
        self.steps_per_update = int(steps_per_update)
        self.num_runs = int(num_runs)
        self.style = style
        self.desc = desc
        self.file = file if file is not None else sys.stderr
        self.calls = 0
        self.reports: list[tuple[int, dict[str, np.ndarray]]] = []
        self.errors: list[str] = []
        self._pending: dict[int, dict[str, list[np.ndarray]]] = {}
        self._lock = threading.Lock()
        self._last_update = int(initial_update)
        self._last_time: float | None = None
        self._last_eval: float | None = None
        self.diverged: list[int] = []  # seeds (indices in the reports) whose diverged flag was seen
        self.diverged_at: int | None = None
        self.note = ""
        self._summary = ""
        self._bar = None
        # A sweep's one bar (`bar_total_steps`): it counts the env steps of every run of every stage (`stage`).
        self.count_all_runs = bar_total_steps is not None
        if style == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=bar_total_steps if self.count_all_runs else self.total_updates * self.steps_per_update,
                initial=0 if self.count_all_runs else self._last_update * self.steps_per_update,
                desc=f"{desc}: " if desc else None,
                unit=" steps",
                unit_scale=True,
                file=self.file,
                dynamic_ncols=True,
                bar_format="{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} env steps "
                "[{elapsed}<{remaining}]{postfix}",
            )

    def stage(
        self,
        total_updates: int,
        steps_per_update: int,
        num_runs: int,
        initial_update: int = 0,
        desc: str | None = None,
        done_steps: int = 0,
    ) -> None:
        """Point the same bar at the next program of a sweep (`bar_total_steps`): its updates, batch size and
        runs; `done_steps` (env steps over all runs that an earlier session already did) is added to the bar."""
        with self._lock:
            self.total_updates, self.steps_per_update = int(total_updates), int(steps_per_update)
            self.num_runs, self._last_update = int(num_runs), int(initial_update)
            self._pending.clear()
            self._last_time, self._last_eval, self.diverged, self.diverged_at = None, None, [], None
            if desc is not None:
                self.desc = desc
            if self._bar is not None:
                if desc is not None:
                    self._bar.set_description_str(f"{desc}: ", refresh=False)
                if done_steps:
                    self._bar.update(done_steps)

    # -- timing
    def start(self) -> None:
        """Start the steps/s clock (call after compiling, right before running)."""
        self._last_time = time.perf_counter()

    # -- the host callback
    def __call__(self, update, logged, values) -> None:
        try:
            with self._lock:
                self.calls += 1
                if not bool(np.all(np.asarray(logged))):
                    return
                step = int(np.max(np.asarray(update)))
                pending = self._pending.setdefault(step, {})
                for k, v in values.items():
                    pending.setdefault(k, []).append(np.asarray(v, np.float64).reshape(-1))
                have = sum(len(a) for a in next(iter(pending.values()), []))
                if have >= self.num_runs or not values:
                    del self._pending[step]
                    merged = {k: np.concatenate(v) for k, v in pending.items()}
                    self._report(step, merged)
        except Exception as e:  # never let a display problem kill the compiled computation
            self.errors.append(f"{type(e).__name__}: {e}")

    def _report(self, step: int, merged: dict[str, np.ndarray]) -> None:
        self.reports.append((step, merged))
        now = time.perf_counter()
        sps = None
        if self._last_time is not None and step > self._last_update:
            sps = (step - self._last_update) * self.steps_per_update * self.num_runs / max(now - self._last_time, 1e-9)
        self._last_time = now
        prev, self._last_update = self._last_update, max(self._last_update, step)
        was_diverged = bool(self.diverged)
        text = self._summary = self.summary(merged, sps)
        if self._bar is not None:
            self._bar.set_postfix_str(", ".join(filter(None, (text, self.note))), refresh=False)
            self._bar.update(
                (self._last_update - prev) * self.steps_per_update * (self.num_runs if self.count_all_runs else 1)
            )
            if self.diverged and not was_diverged:  # say it at once, above the bar
                self._bar.refresh()
                self._bar.write(
                    f"{self.desc + ': ' if self.desc else ''}{text.split(', ')[0]} (non-finite losses "
                    "or parameters; see the 'diverged' column of metrics.jsonl)",
                    file=self.file,
                )
        elif self.style == "lines":
            head = f"{self.desc} " if self.desc else ""
            print(
                f"{head}update {step}/{self.total_updates}  env steps {step * self.steps_per_update:,}  {text}",
                file=self.file,
                flush=True,
            )

    def summary(self, merged: dict[str, np.ndarray], sps: float | None) -> str:
        parts = []
        if sps is not None:
            parts.append(f"{_fmt_num(sps)} steps/s")
        ret = merged.get("episode_return")
        if ret is not None and ret.size:
            if ret.size > 1:
                parts.append(f"return {ret.mean():.1f} [{ret.min():.1f}, {ret.max():.1f}]")
            else:
                parts.append(f"return {ret.mean():.1f}")
        ev = merged.get("eval_return")
        if ev is not None and ev.size and np.all(np.isfinite(ev)):
            self._last_eval = float(ev.mean())
        if self._last_eval is not None:
            parts.append(f"eval {self._last_eval:.1f}")
        if self.num_runs > 1:
            parts.append(f"{self.num_runs} {'runs' if self.count_all_runs else 'seeds'}")
        div = merged.get("diverged")
        if div is not None and div.size and np.any(div > 0):
            self.diverged = sorted(set(self.diverged) | set(np.flatnonzero(div > 0).tolist()))
            if self.diverged_at is None:
                self.diverged_at = self._last_update
        if self.diverged:
            which = f"seed(s) {self.diverged}" if self.num_runs > 1 else "the run"
            parts.insert(0, f"DIVERGED at update {self.diverged_at}: {which}")
        return ", ".join(parts)

    def set_note(self, note: str) -> None:
        """Extra text after the bar's summary (the runner shows the newest checkpoint there)."""
        with self._lock:
            self.note = note
            if self._bar is not None:
                self._bar.set_postfix_str(", ".join(filter(None, (self._summary, note))))

    def write(self, msg: str) -> None:
        """Print a message without breaking the bar."""
        if self._bar is not None:
            self._bar.write(msg, file=self.file)
        elif self.style != "off":
            print(msg, file=self.file, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
