"""A sweep report's plots (matplotlib's Agg canvas, no pyplot): the learning curves of the top settings
(`curves.png`, or one per env) and the sensitivity to each varied field (`sensitivity_<field>.png`).
What they show: `purejaxppo.sweep.report`'s module docstring."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import numpy as np

from purejaxppo.errors import ConfigError
from purejaxppo.sweep import stats
from purejaxppo.sweep.values import is_number, safe_name, value_formatters, value_key

MAX_CURVES = 12  # lines in a curves plot: the top ones by rank
MAX_SENSITIVITY_LINES = 10

NO_MATPLOTLIB = "Plots skipped: matplotlib is not installed (`pip install 'purejaxppo[plot]'`)."


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- learning curves


def _fill_nan(steps: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row's non-finite points filled by linear interpolation between its finite points."""
    out = np.array(rows, dtype=np.float64)
    x = np.asarray(steps, np.float64)
    for row in out:
        ok = np.isfinite(row)
        if not ok.all():
            row[:] = np.interp(x, x[ok], row[ok])
    return out


def plot_curve_files(report: dict, runs_by_id: dict, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """curves.png (one env) or curves_<env>.png (several): the top `MAX_CURVES` ranked settings' curves."""
    ranked = [e for e in report["settings"] if e["rank"] is not None]
    if not ranked:
        return []
    shown = ranked[:MAX_CURVES]
    capped = len(ranked) > MAX_CURVES
    envs = report["envs"]
    paths, used = [], set()
    for env in envs:
        curves, steps = {}, {}
        for e in shown:
            r = runs_by_id[e["setting_ids"][e["envs"].index(env)]]
            ret = np.asarray(r.returns, np.float64)
            ok = np.isfinite(ret).any(axis=1)
            name = f"#{e['rank']} {e['label']}"
            steps[name] = np.asarray(r.steps, np.float64)  # settings of other batch sizes log at other steps
            curves[name] = _fill_nan(steps[name], ret[ok])
        if len(envs) == 1:
            name = "curves.png"
        else:
            name = f"curves_{safe_name(env)}.png"
            while name in used:
                name = name[:-4] + "_.png"
        used.add(name)
        title = f"{env}: learning curves"
        if capped:
            title += f" (top {MAX_CURVES} of {len(ranked)} settings by rank)"
        paths.append(
            stats.plot_curves(
                curves,
                steps,
                out_dir / name,
                metric="iqm",
                title=title,
                reps=report["reps"],
                confidence=report["confidence"],
                seed=report["seed"],
            )
        )
    return paths


# --------------------------------------------------------------------------- sensitivity


def sensitivity_series(report: dict, field: str) -> tuple[bool, dict[str, list[dict]]]:
    """How `sensitivity_<field>.png` draws the ranked comparison settings.

    Groups them by the values of the other varied fields (env excluded): {label: entries}.
    Returns `(as_lines, groups)`: lines (one per group, labelled with those values) when that
    gives at most `MAX_SENSITIVITY_LINES` groups of at least 2 points each, else plain points.
    """
    if field == "env" or field not in report["varied"]:
        raise ConfigError(f"{field!r} is not a varied field other than env: {report['varied']}")
    others = [f for f in report["varied"] if f not in ("env", field)]
    fmts = value_formatters(report["varied_values"])
    groups: dict[str, list] = {}
    for e in report["settings"]:
        if e["rank"] is not None:
            gl = ", ".join(f"{f}={fmts[f](e['values'][f])}" for f in others)
            groups.setdefault(gl, []).append(e)
    as_lines = bool(groups) and len(groups) <= MAX_SENSITIVITY_LINES and all(len(g) >= 2 for g in groups.values())
    return as_lines, groups


def _x_axis(report: dict, field: str, ranked: list[dict]) -> tuple[Callable[..., float], bool, bool, list | None]:
    """(x position of a value, numeric, log scale, categories): numbers at their value (log scale when they
    span a factor >= 10), anything else as categories [(key, value)] at 0, 1, ..."""
    xs_all = [e["values"][field] for e in ranked]
    if all(is_number(v) for v in xs_all):
        pos_vals = [float(v) for v in xs_all]
        logx = bool(pos_vals) and min(pos_vals) > 0 and max(pos_vals) / min(pos_vals) >= 10
        return float, True, logx, None
    cats = list({value_key(v): v for v in report["varied_values"][field]}.items())
    index = {kk: i for i, (kk, _) in enumerate(cats)}

    def pos(v):
        return float(index[value_key(v)])

    return pos, False, False, cats


def _draw(ax, es, pos, field, score, fmt, label, color=None, dodge=0.0):
    """The IQM of `score` against the field's value with CI error bars, for entries `es`."""
    es = sorted(es, key=lambda e: pos(e["values"][field]))
    x = np.array([pos(e["values"][field]) for e in es]) + dodge
    y = np.array([e["scores"][score]["iqm"][0] for e in es])
    lo = np.array([e["scores"][score]["iqm"][1] for e in es])
    hi = np.array([e["scores"][score]["iqm"][2] for e in es])
    yerr = np.stack([np.maximum(y - lo, 0), np.maximum(hi - y, 0)])
    return ax.errorbar(x, y, yerr=yerr, fmt=fmt, capsize=3, label=label, color=color, alpha=0.9)


def _draw_series(ax, report: dict, field: str, ranked: list[dict], pos, numeric: bool) -> tuple[bool, list]:
    """The settings as lines or points (`sensitivity_series`), #1 marked with a star; returns `as_lines` and
    the other varied fields."""
    score = report["score"]
    as_lines, groups = sensitivity_series(report, field)
    if as_lines:
        n = len(groups)
        for i, (gl, es) in enumerate(groups.items()):
            dodge = 0.0 if numeric or n == 1 else (i - (n - 1) / 2) * min(0.1, 0.6 / n)
            _draw(ax, es, pos, field, score, "o-", gl or None, dodge=dodge)
    else:
        _draw(ax, ranked, pos, field, score, "o", None, color="C0")
    if ranked:  # mark #1
        b = ranked[0]
        ax.plot(
            [pos(b["values"][field])],
            [b["scores"][score]["iqm"][0]],
            marker="*",
            markersize=14,
            color="gold",
            markeredgecolor="black",
            linestyle="none",
            label="#1",
            zorder=5,
        )
    return as_lines, [f for f in report["varied"] if f not in ("env", field)]


def plot_sensitivity(report: dict, field: str, path: pathlib.Path) -> pathlib.Path:
    """sensitivity_<field>.png: the chosen score's IQM (with CIs) of the ranked settings against `field`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    score, k, conf = report["score"], report["num_envs"], report["confidence"]
    ranked = [e for e in report["settings"] if e["rank"] is not None]
    pos, numeric, logx, cats = _x_axis(report, field, ranked)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    as_lines, others = _draw_series(ax, report, field, ranked, pos, numeric)
    if logx:
        ax.set_xscale("log")
    if cats is not None:
        fmts = value_formatters(report["varied_values"])
        ax.set_xticks(range(len(cats)), [fmts[field](v) for _, v in cats])
        ax.set_xlim(-0.5, len(cats) - 0.5)
    ax.set_xlabel(field)
    what = f"{score} score IQM" + (" (normalized, aggregated over envs)" if k > 1 else "")
    ax.set_ylabel(f"{what}, {conf:.0%} CI")
    ax.set_title(f"Sensitivity to {field}" + ("" if as_lines or not others else " (each point one setting)"))
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


# --------------------------------------------------------------------------- all plots


def write_plots(report: dict, runs_by_id: dict, out_dir: pathlib.Path) -> tuple[list[pathlib.Path], str | None]:
    """(the PNGs written into out_dir, a note for sweep.md when matplotlib is missing and none could be)."""
    if not have_matplotlib():
        return [], NO_MATPLOTLIB
    pngs = plot_curve_files(report, runs_by_id, out_dir)
    if any(e["rank"] is not None for e in report["settings"]):
        for field in report["varied"]:
            if field != "env":
                pngs.append(plot_sensitivity(report, field, out_dir / f"sensitivity_{safe_name(field)}.png"))
    return pngs, None
