"""Sweeps: hyperparameter grids / random search x seeds in one compiled program per static combination, with a
statistical report (`purejaxppo sweep`, `purejaxppo report`).

* `spec.py`: what a sweep is (`SweepSpec`, the YAML sweep file); `parts.py` its parts' checks and the
  `--grid` / `--range` parsing; `plan.py`: `plan_sweep` (validation before compiling; settings and programs).
* `folder.py`: the sweep folder's files.
* `runner.py`: `sweep_run`, a sweep into a folder, one `purejaxppo.runs.train_run` per program.
* `report.py`: the report (`compute_report`, `write_report`) from `scores.py` (per-run scores),
  `comparison.py` (IQM and CIs, ranking, verdict), `markdown.py` and `plots.py`; `report_io.py` reads a sweep
  folder back for it (`make_report`). `stats.py`: the statistics (bootstrap CIs, IQM, curves).
"""

from purejaxppo.sweep.spec import Range, Setting, SweepPlan, SweepSpec, build_spec, plan_sweep, read_sweep_file

__all__ = [
    "Range",
    "Setting",
    "SweepPlan",
    "SweepSpec",
    "build_spec",
    "plan_sweep",
    "read_sweep_file",
    "sweep_run",
    "make_report",
]


def __getattr__(name):  # the runner and the report import purejaxppo.runs / matplotlib only when used
    if name == "sweep_run":
        from purejaxppo.sweep.runner import sweep_run

        return sweep_run
    if name == "make_report":
        from purejaxppo.sweep.report_io import make_report

        return make_report
    raise AttributeError(name)
