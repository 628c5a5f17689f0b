"""`purejaxppo.sweep.stats` against rliable (Agarwal et al. 2021's reference implementation) on random data.

Point estimates must be equal; the bootstrap CIs are Monte-Carlo estimates (different random draws), so each
of rliable's ends must lie within the spread of ours over three bootstrap seeds, widened by a few percent of the
interval's width (a median's bootstrap distribution is lumpy: its percentiles jump between order statistics). rliable is a test
dependency only (the `dev` extra); the library keeps its own NumPy estimators (README "Comparing settings").
"""

import numpy as np
import pytest

from purejaxppo.sweep import stats

rly = pytest.importorskip("rliable.library")
rmetrics = pytest.importorskip("rliable.metrics")

REPS = 20_000
POI_REPS = 5_000  # rliable's probability of improvement is slow (~2 ms per resample per task)
TOL = 0.03  # of the CI width


def _within(ours_fn, lo, hi):
    """rliable's (lo, hi) within the range of our ends over bootstrap seeds 0, 1, 2, +- TOL of the width."""
    ends = np.array([ours_fn(seed)[1:] for seed in range(3)])
    slack = TOL * (hi - lo)
    for j, theirs in enumerate((lo, hi)):
        assert ends[:, j].min() - slack <= theirs <= ends[:, j].max() + slack, (j, ends[:, j], theirs)


@pytest.mark.parametrize("shape,seed", [((10,), 0), ((8, 3), 1), ((16, 5), 2)])
def test_aggregates_and_cis_match_rliable(shape, seed):
    rng = np.random.default_rng(seed)
    scores = rng.gamma(2.0, 1.0, size=shape)  # skewed, like returns
    matrix = scores if scores.ndim == 2 else scores[:, None]
    # rliable's aggregate_iqm / aggregate_mean pool all runs x tasks; our median is the pooled median too
    # (rliable's aggregate_median is the median over tasks of per-task means: a different estimator, so the
    # pooled median goes through rliable's stratified bootstrap as a plain function).
    funcs = {"iqm": rmetrics.aggregate_iqm, "mean": rmetrics.aggregate_mean,
             "median": lambda s: np.median(s.reshape(-1))}
    for metric, fn in funcs.items():
        point, ci = rly.get_interval_estimates({"x": matrix}, lambda s, fn=fn: np.array([fn(s)]), reps=REPS)
        assert stats.bootstrap_ci(scores, metric, reps=10)[0] == pytest.approx(float(point["x"][0]), abs=1e-12)
        _within(lambda s, m=metric: stats.bootstrap_ci(scores, m, reps=REPS, seed=s), float(ci["x"][0, 0]),
                float(ci["x"][1, 0]))


@pytest.mark.parametrize("tasks", [1, 3])
def test_probability_of_improvement_matches_rliable(tasks):
    rng = np.random.default_rng(10 + tasks)
    x = rng.normal(0.4, 1.0, size=(12, tasks))
    y = rng.normal(0.0, 1.0, size=(10, tasks))
    point, ci = rly.get_interval_estimates({"xy": (x, y)}, rmetrics.probability_of_improvement, reps=POI_REPS)
    assert stats.probability_of_improvement(x, y, reps=10)[0] == pytest.approx(float(np.ravel(point["xy"])[0]), abs=1e-12)
    lo, hi = (float(v) for v in np.ravel(ci["xy"]))
    _within(lambda s: stats.probability_of_improvement(x, y, reps=POI_REPS, seed=s), lo, hi)


def test_iqm_equals_rliable_on_ties_and_small_n():
    for n in (1, 2, 3, 4, 5, 7, 9):
        x = np.round(np.random.default_rng(n).normal(size=(n, 2)), 1)  # ties
        assert stats.aggregate(x, "iqm") == pytest.approx(float(rmetrics.aggregate_iqm(x)), abs=1e-12)
