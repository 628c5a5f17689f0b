"""Statistics for comparing RL runs across seeds.

In the spirit of Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of
the Statistical Precipice": report robust aggregates (the interquartile mean) with
percentile-bootstrap confidence intervals over seeds, rather than a bare mean of a
handful of runs.

Everything here is plain NumPy and returns Python floats or NumPy arrays; matplotlib
is imported only inside `plot_curves` (it is the optional `plot` extra).

Conventions
-----------
* "seeds" are always the leading axis: `[num_seeds]`, `[num_seeds, num_tasks]`
  or, for learning curves, `[num_seeds, T]`.
* Bootstrap resampling is over seeds (runs), with replacement, drawn all at once
  from `np.random.default_rng(seed)`, so a fixed `seed` gives a fixed interval.
* Intervals are percentile intervals: the `(1 - confidence) / 2` and
  `(1 + confidence) / 2` quantiles of the bootstrap distribution (linear
  interpolation, `np.percentile`'s default). A percentile interval is not
  guaranteed to contain the point estimate, although in practice it almost always
  does.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Mapping

import numpy as np

from purejaxppo.errors import ConfigError

METRICS = ("iqm", "mean", "median")

# Upper bound on the number of float64 values `curve_ci` materializes at once for
# the resampled curves (reps * num_seeds * chunk_of_T); 2**22 values is 32 MiB.
_CURVE_CHUNK_ELEMENTS = 2**22


# --------------------------------------------------------------------------- checks


def _as_array(x, name: str, ndims: tuple[int, ...] | None = None) -> np.ndarray:
    """`x` as a float64 array, with a `ConfigError` naming `name` if it is unusable."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"`{name}` must be numeric array-like: {e}") from None
    if ndims is not None and arr.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ConfigError(f"`{name}` must be {want}, got shape {arr.shape}")
    if arr.size == 0:
        raise ConfigError(f"`{name}` is empty (shape {arr.shape})")
    if np.isnan(arr).any():
        raise ConfigError(f"`{name}` contains NaN values")
    if np.isinf(arr).any():
        raise ConfigError(f"`{name}` contains infinite values")
    return arr


def _check_metric(metric: str) -> Callable[[np.ndarray, int], np.ndarray]:
    if not isinstance(metric, str) or metric not in _METRIC_FNS:
        raise ConfigError(f"`metric` must be one of {METRICS}, got {metric!r}")
    return _METRIC_FNS[metric]


def _check_confidence(confidence: float) -> tuple[float, float]:
    """Percentiles (in [0, 100]) bounding a central `confidence` interval."""
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        raise ConfigError(f"`confidence` must be a number in (0, 1), got {confidence!r}") from None
    if not 0.0 < c < 1.0:  # also rejects NaN
        raise ConfigError(f"`confidence` must be in (0, 1), got {confidence!r}")
    return 50.0 * (1.0 - c), 50.0 * (1.0 + c)


def _check_reps(reps: int) -> int:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ConfigError(f"`reps` must be a positive integer, got {reps!r}")
    return int(reps)


# --------------------------------------------------------------------------- metrics


def _iqm_unchecked(x: np.ndarray, axis: int) -> np.ndarray:
    """IQM along `axis` without input checks (the bootstrap's inner loop)."""
    x = np.sort(np.moveaxis(x, axis, -1), axis=-1)
    n = x.shape[-1]
    cut = n // 4  # == int(0.25 * n), scipy.stats.trim_mean's rule
    return x[..., cut : n - cut].mean(axis=-1)


_METRIC_FNS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "iqm": _iqm_unchecked,
    "mean": lambda x, axis: np.mean(x, axis=axis),
    "median": lambda x, axis: np.median(x, axis=axis),
}


def iqm(x, axis: int | None = -1):
    """Interquartile mean: the mean of the middle 50% of values along `axis`.

    Same semantics as `scipy.stats.trim_mean(x, 0.25, axis)`: sort, drop
    `floor(n / 4)` values at each end (whole values only; nothing is interpolated),
    average the rest. So n = 8 keeps the middle 4, n = 6 keeps the middle 4, and
    n <= 3 trims nothing (plain mean).

    x:    array of any shape, non-empty, no NaN/inf.
    axis: axis to reduce; `None` reduces over all values.
    Returns a float for 1-D input or `axis=None`, else an array of `x.shape`
    without `axis`.
    """
    arr = _as_array(x, "x")
    if axis is None:
        arr, axis = arr.reshape(-1), 0
    if arr.ndim == 0:
        raise ConfigError("`x` must have at least one dimension")
    out = _iqm_unchecked(arr, axis)
    return float(out) if out.ndim == 0 else out


def aggregate(scores, metric: str = "iqm") -> float:
    """One aggregate score over all values of `scores` (pooled across seeds and tasks).

    scores: `[num_seeds]` or `[num_seeds, num_tasks]` (any shape is accepted; all
            values are pooled).
    metric: "iqm", "mean" or "median".
    Returns a float.
    """
    fn = _check_metric(metric)
    arr = _as_array(scores, "scores")
    return float(fn(arr.reshape(-1), 0))


# --------------------------------------------------------------------------- bootstrap


def _resample_seeds(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified resample: `[S, K]` -> `[reps, S, K]`.

    Each column (task) gets S seeds drawn with replacement from its own S values,
    independently of the other columns. Indices are drawn in one call,
    `rng.integers(0, S, size=(reps, S, K))`.
    """
    s, k = scores.shape
    idx = rng.integers(0, s, size=(reps, s, k))
    return np.take_along_axis(scores[None], idx, axis=1)


def bootstrap_ci(
    scores,
    metric: str = "iqm",
    reps: int = 2000,
    confidence: float = 0.95,
    seed=0,
) -> tuple[float, float, float]:
    """Point estimate and percentile-bootstrap confidence interval over seeds.

    scores: `[num_seeds]`, or `[num_seeds, num_tasks]` for an aggregate over tasks.
            2-D input gets a *stratified* bootstrap: every resample draws
            `num_seeds` seeds with replacement within each task (column)
            independently, and `metric` is computed over all
            `num_seeds * num_tasks` resampled scores pooled (rliable's aggregate
            IQM). A 1-D input is the 2-D case with one task, and gives exactly the
            same result as `scores[:, None]`.
    metric: "iqm", "mean" or "median".
    reps:   number of bootstrap resamples (all drawn as one index array).
    confidence: central interval mass, in (0, 1).
    seed:   anything `np.random.default_rng` accepts; a fixed seed gives a fixed CI.

    Returns `(point, low, high)` floats; `point` is `metric` on the original scores.
    """
    fn = _check_metric(metric)
    arr = _as_array(scores, "scores", ndims=(1, 2))
    lo_pct, hi_pct = _check_confidence(confidence)
    reps = _check_reps(reps)
    if arr.ndim == 1:
        arr = arr[:, None]
    rng = np.random.default_rng(seed)
    point = float(fn(arr.reshape(-1), 0))
    boot = fn(_resample_seeds(arr, reps, rng).reshape(reps, -1), 1)  # [reps]
    low, high = np.percentile(boot, [lo_pct, hi_pct])
    return point, float(low), float(high)


def _pairwise_wins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`[n, K]`, `[m, K]` -> `[K, n, m]`: 1 where x_i > y_j, 1/2 on ties, else 0."""
    xt, yt = x.T[:, :, None], y.T[:, None, :]
    return (xt > yt) + 0.5 * (xt == yt)


def _resample_counts(n: int, k: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of n seeds is drawn, per resample and task: `[reps, K, n]`.

    Draws `rng.integers(0, n, size=(reps, n, K))` (n draws per task per resample).
    """
    idx = rng.integers(0, n, size=(reps, n, k)).transpose(0, 2, 1)  # [reps, K, n]
    offsets = (np.arange(reps * k) * n).reshape(reps, k, 1)
    counts = np.bincount((idx + offsets).reshape(-1), minlength=reps * k * n)
    return counts.reshape(reps, k, n).astype(np.float64)


def probability_of_improvement(
    x,
    y,
    reps: int = 2000,
    seed=0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """P(X > Y), ties counting 1/2, with a percentile-bootstrap confidence interval.

    The point estimate is the Mann-Whitney U statistic of x against y divided by
    n * m: the fraction of pairs (x_i, y_j) with x_i > y_j, plus half the fraction
    of ties. 0.5 means no difference; 1 means every run of X beats every run of Y.

    x: `[n]` scores of algorithm X over seeds, or `[n, num_tasks]`.
    y: `[m]` scores of algorithm Y over seeds, or `[m, num_tasks]` (same ndim, and
       same num_tasks, as x). For 2-D input the result is the average over tasks of
       the per-task probability (as in rliable), and the bootstrap is stratified.
    reps, seed, confidence: as in `bootstrap_ci`. x's and y's seeds are resampled
       independently (x's indices are drawn first, then y's).

    Returns `(point, low, high)` floats in [0, 1].
    """
    xa = _as_array(x, "x", ndims=(1, 2))
    ya = _as_array(y, "y", ndims=(1, 2))
    if xa.ndim != ya.ndim:
        raise ConfigError(f"`x` and `y` must have the same ndim, got shapes {xa.shape} and {ya.shape}")
    if xa.ndim == 1:
        xa, ya = xa[:, None], ya[:, None]
    if xa.shape[1] != ya.shape[1]:
        raise ConfigError(
            f"`x` and `y` must have the same number of tasks (columns), got shapes {xa.shape} and {ya.shape}"
        )
    lo_pct, hi_pct = _check_confidence(confidence)
    reps = _check_reps(reps)
    (n, k), m = xa.shape, ya.shape[0]
    wins = _pairwise_wins(xa, ya)  # [K, n, m]
    point = float(wins.mean())
    rng = np.random.default_rng(seed)
    cx = _resample_counts(n, k, reps, rng)  # [reps, K, n]
    cy = _resample_counts(m, k, reps, rng)  # [reps, K, m]
    # Resampled P for task k is sum_ij cx_i * W_ij * cy_j / (n m): the mean of W over
    # the resampled pairs, without materializing a [reps, n, m] array.
    boot = np.einsum("rki,kij,rkj->r", cx, wins, cy, optimize=True) / (n * m * k)
    low, high = np.percentile(boot, [lo_pct, hi_pct])
    return point, float(low), float(high)


def curve_ci(
    curves,
    metric: str = "iqm",
    reps: int = 1000,
    confidence: float = 0.95,
    seed=0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-step aggregate of learning curves with a bootstrap band over seeds.

    curves: `[num_seeds, T]`, one learning curve per seed (row).
    Each resample draws `num_seeds` whole runs (rows) with replacement, once, as a
    `[reps, num_seeds]` index array, and the same resampled runs are used at every
    step. The metric over seeds and the percentiles are vectorized over T; T is
    processed in chunks so that at most about `_CURVE_CHUNK_ELEMENTS` resampled
    values exist at once (chunking does not change the result).

    Returns `(point, low, high)`, each a float64 array of shape `[T]`.
    """
    fn = _check_metric(metric)
    arr = _as_array(curves, "curves", ndims=(2,))
    lo_pct, hi_pct = _check_confidence(confidence)
    reps = _check_reps(reps)
    s, t = arr.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, s, size=(reps, s))
    point = fn(arr, 0)
    low, high = np.empty(t), np.empty(t)
    chunk = max(1, _CURVE_CHUNK_ELEMENTS // (reps * s))
    for start in range(0, t, chunk):
        sl = slice(start, min(start + chunk, t))
        boot = fn(arr[:, sl][idx], 1)  # [reps, S, c] -> [reps, c]
        low[sl], high[sl] = np.percentile(boot, [lo_pct, hi_pct], axis=0)
    return point, low, high


# --------------------------------------------------------------------------- plotting


def plot_curves(
    curves: Mapping[str, np.ndarray],
    steps,
    path: str | os.PathLike,
    metric: str = "iqm",
    title: str | None = None,
    ylabel: str = "episode return",
    *,
    reps: int = 1000,
    confidence: float = 0.95,
    seed=0,
) -> pathlib.Path:
    """Plot one line per run (aggregate over seeds) with its bootstrap CI band.

    curves: {run name: `[num_seeds, T]` learning curves}.
    steps:  `[T]` environment steps for the x-axis, shared by every run, or {run name: `[T_run]` steps}
            (runs logged at different env steps, e.g. of different batch sizes).
    path:   PNG file to write (parent directories are created).
    metric, reps, confidence, seed: passed to `curve_ci`.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change).
    Returns the written path as a `pathlib.Path`.
    """
    _check_metric(metric)
    _check_confidence(confidence)
    if not isinstance(curves, Mapping) or len(curves) == 0:
        raise ConfigError("`curves` must be a non-empty mapping of run name -> [num_seeds, T] array")
    per_run = isinstance(steps, Mapping)
    if per_run and set(steps) != set(curves):
        raise ConfigError("`steps` given per run must have exactly the keys of `curves`")
    shared = None if per_run else _as_array(steps, "steps", ndims=(1,))
    xs: dict[str, np.ndarray] = {}
    bands = {}
    for name, c in curves.items():
        arr = _as_array(c, f"curves[{name!r}]", ndims=(2,))
        if per_run:
            x = _as_array(steps[name], f"steps[{name!r}]", ndims=(1,))
        else:
            assert shared is not None  # set above whenever `steps` is not per run
            x = shared
        xs[name] = x
        if arr.shape[1] != x.shape[0]:
            raise ConfigError(f"`curves[{name!r}]` has T={arr.shape[1]} steps but `steps` has {x.shape[0]}")
        bands[name] = (arr.shape[0], *curve_ci(arr, metric, reps=reps, confidence=confidence, seed=seed))

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if len(bands) > 10:  # the default cycle has 10 colours: give every run its own
        import matplotlib

        cmap = matplotlib.colormaps["tab20"]
        ax.set_prop_cycle(color=[cmap(i % 20) for i in range(len(bands))])
    for name, (n_seeds, point, low, high) in bands.items():
        (line,) = ax.plot(xs[name], point, label=f"{name} (n={n_seeds})")
        ax.fill_between(xs[name], low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"{ylabel} ({metric}, {confidence:.0%} CI)")
    if title is not None:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small" if len(bands) > 5 else None)
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out
