import numpy as np
import pytest

from purejaxppo.sweep import stats
from purejaxppo.sweep.stats import (
    aggregate,
    bootstrap_ci,
    curve_ci,
    iqm,
    plot_curves,
    probability_of_improvement,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- iqm


def test_iqm_known_values():
    assert iqm(np.arange(1, 9)) == 4.5  # drop 1,2 and 7,8: mean(3,4,5,6)
    assert iqm([1, 2, 3, 4]) == 2.5  # n=4: drop one at each end
    # trim_mean semantics: floor(0.25 * n) whole values dropped at each end.
    assert iqm([1, 2, 3, 4, 5]) == 3.0  # floor(1.25) = 1 -> mean(2,3,4)
    assert iqm([1, 2, 3, 4, 5, 100]) == 3.5  # floor(1.5) = 1 -> mean(2,3,4,5)
    assert iqm([1, 2, 3, 4, 5, 6, 700]) == 4.0  # floor(1.75) = 1 -> mean(2..6)
    assert iqm([0, 0, 0, 0, 0, 0, 0, 0, 9]) == 0.0  # floor(2.25) = 2
    assert iqm([1, 2, 30]) == 11.0  # n < 4: nothing trimmed
    assert iqm([7.5]) == 7.5


def test_iqm_is_order_invariant_and_robust():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    assert iqm(rng.permutation(x)) == pytest.approx(iqm(x), abs=1e-12)
    y = x.copy()
    y[np.argmax(y)] = 1e9  # an outlier in the top quarter does not move the IQM
    assert iqm(y) == pytest.approx(iqm(x), abs=1e-12)


def test_iqm_axis():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 5))
    cols = iqm(x, axis=0)
    assert cols.shape == (5,)
    np.testing.assert_allclose(cols, [iqm(x[:, j]) for j in range(5)])
    np.testing.assert_allclose(iqm(x, axis=-1), [iqm(row) for row in x])
    assert iqm(x, axis=None) == pytest.approx(iqm(x.reshape(-1)))


def test_iqm_matches_scipy_trim_mean():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    for n in range(1, 23):
        x = rng.normal(size=n)
        assert iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25), abs=1e-12), n


def test_aggregate_pools_all_values():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    assert aggregate(x) == 4.5
    assert aggregate(x, "mean") == 4.5
    assert aggregate([1, 2, 10], "median") == 2.0
    assert aggregate([1, 2, 10], "mean") == pytest.approx(13 / 3)


# --------------------------------------------------------------------------- bootstrap_ci


@pytest.mark.parametrize("metric", ["iqm", "mean", "median"])
def test_bootstrap_ci_contains_point_and_is_seeded(metric):
    x = np.random.default_rng(3).normal(10.0, 2.0, size=15)
    point, low, high = bootstrap_ci(x, metric=metric, reps=1000, seed=7)
    assert point == pytest.approx(aggregate(x, metric))
    assert low < point < high
    assert bootstrap_ci(x, metric=metric, reps=1000, seed=7) == (point, low, high)
    other = bootstrap_ci(x, metric=metric, reps=1000, seed=8)
    assert other[0] == point
    if metric != "median":  # a bootstrap median takes few distinct values: bounds can tie
        assert other[1:] != (low, high)
    assert len({bootstrap_ci(x, metric=metric, reps=1000, seed=s)[1:] for s in range(5)}) > 1


def test_bootstrap_ci_matches_loop_reference():
    """The vectorized resampling equals a per-resample loop over the same indices."""
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(6, 3))
    reps, conf = 50, 0.9
    idx = np.random.default_rng(11).integers(0, 6, size=(reps, 6, 3))
    boot = []
    for r in range(reps):
        resampled = np.stack([scores[idx[r, :, k], k] for k in range(3)], axis=1)
        boot.append(iqm(resampled.reshape(-1)))
    want = np.percentile(boot, [5.0, 95.0])
    point, low, high = bootstrap_ci(scores, "iqm", reps=reps, confidence=conf, seed=11)
    assert point == pytest.approx(iqm(scores, axis=None))
    np.testing.assert_allclose([low, high], want, rtol=0, atol=1e-12)


def test_bootstrap_ci_narrows_with_more_seeds_and_lower_confidence():
    rng = np.random.default_rng(5)
    small = rng.normal(size=10)
    big = rng.normal(size=400)
    w = lambda ci: ci[2] - ci[1]  # noqa: E731
    assert w(bootstrap_ci(big, "mean", reps=500)) < 0.5 * w(bootstrap_ci(small, "mean", reps=500))
    assert w(bootstrap_ci(small, "mean", confidence=0.5)) < w(bootstrap_ci(small, "mean", confidence=0.99))


def test_bootstrap_ci_coverage_is_roughly_nominal():
    """95% CIs of the mean of 20 N(3, 2^2) seeds cover the true mean ~95% of the time."""
    data_rng = np.random.default_rng(12345)
    trials, true_mean = 200, 3.0
    covered = 0
    for i in range(trials):
        x = data_rng.normal(true_mean, 2.0, size=20)
        _, low, high = bootstrap_ci(x, metric="mean", reps=500, confidence=0.95, seed=i)
        covered += low <= true_mean <= high
    rate = covered / trials
    # This draw gives 0.955; the percentile bootstrap tends to under-cover slightly at n=20,
    # and a wrong percentile mapping (e.g. 99% or 90% intervals) falls outside the band.
    assert 0.88 <= rate <= 0.99, rate


def test_bootstrap_ci_1d_equals_single_column_2d():
    x = np.random.default_rng(6).normal(size=12)
    assert bootstrap_ci(x, reps=300, seed=3) == bootstrap_ci(x[:, None], reps=300, seed=3)


def test_stratified_bootstrap_keeps_each_tasks_seed_count():
    # Task 0 is all zeros, task 1 all ones, 5 seeds each. A stratified resample always
    # has exactly 5 zeros and 5 ones, so the pooled mean / IQM is exactly 0.5 in every
    # resample. Flattening to 1-D and resampling 10 values lets the mix vary.
    scores = np.stack([np.zeros(5), np.ones(5)], axis=1)  # [5 seeds, 2 tasks]
    for metric in ("mean", "iqm"):
        assert bootstrap_ci(scores, metric, reps=500) == (0.5, 0.5, 0.5)
        point, low, high = bootstrap_ci(scores.reshape(-1), metric, reps=500)
        assert point == 0.5 and low < 0.4 and high > 0.6


def test_stratified_resample_draws_within_columns():
    scores = np.arange(12.0).reshape(4, 3) * 10 + np.arange(3)  # column k values end in k
    res = stats._resample_seeds(scores, reps=200, rng=np.random.default_rng(0))
    assert res.shape == (200, 4, 3)
    for k in range(3):
        assert np.isin(res[:, :, k], scores[:, k]).all()
    assert len(np.unique(res[:, :, 0])) == 4  # every seed of a column gets drawn


def test_stratified_ci_is_narrower_than_flattened_when_tasks_differ():
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(10, 4)) + np.array([0.0, 50.0, 100.0, 150.0])
    strat = bootstrap_ci(scores, "mean", reps=1000)
    flat = bootstrap_ci(scores.reshape(-1), "mean", reps=1000)
    assert strat[0] == pytest.approx(flat[0])
    assert (strat[2] - strat[1]) < 0.2 * (flat[2] - flat[1])


# --------------------------------------------------------------------------- probability of improvement


def test_poi_separated_identical_and_ties():
    rng = np.random.default_rng(8)
    x = rng.normal(100.0, 1.0, size=10)
    y = rng.normal(0.0, 1.0, size=12)
    assert probability_of_improvement(x, y) == (1.0, 1.0, 1.0)
    assert probability_of_improvement(y, x) == (0.0, 0.0, 0.0)

    point, low, high = probability_of_improvement(x, x, reps=1000)
    assert point == 0.5 and low < 0.5 < high  # 1/2 from the diagonal ties, 1/2 by symmetry

    assert probability_of_improvement([1.0, 1.0], [1.0, 1.0, 1.0])[0] == 0.5
    # pairs (x, y): (1,0)=1, (1,1)=.5, (1,2)=0, (2,0)=1, (2,1)=1, (2,2)=.5 -> 4/6
    assert probability_of_improvement([1.0, 2.0], [0.0, 1.0, 2.0])[0] == pytest.approx(4 / 6)


def test_poi_matches_brute_force_and_complements():
    rng = np.random.default_rng(9)
    x = rng.integers(0, 5, size=9).astype(float)  # integer scores: plenty of ties
    y = rng.integers(0, 5, size=7).astype(float)
    want = np.mean([(a > b) + 0.5 * (a == b) for a in x for b in y])
    p_xy = probability_of_improvement(x, y, reps=200)
    p_yx = probability_of_improvement(y, x, reps=200)
    assert p_xy[0] == pytest.approx(want)
    assert p_xy[0] + p_yx[0] == pytest.approx(1.0)
    assert p_xy[1] <= p_xy[0] <= p_xy[2]


def test_poi_bootstrap_matches_loop_reference():
    rng = np.random.default_rng(10)
    x = rng.integers(0, 4, size=(6, 2)).astype(float)
    y = rng.integers(0, 4, size=(5, 2)).astype(float)
    reps = 40
    draw = np.random.default_rng(21)
    ix = draw.integers(0, 6, size=(reps, 6, 2))
    iy = draw.integers(0, 5, size=(reps, 5, 2))
    boot = []
    for r in range(reps):
        per_task = []
        for k in range(2):
            xs, ys = x[ix[r, :, k], k], y[iy[r, :, k], k]
            per_task.append(np.mean((xs[:, None] > ys[None]) + 0.5 * (xs[:, None] == ys[None])))
        boot.append(np.mean(per_task))
    point, low, high = probability_of_improvement(x, y, reps=reps, seed=21, confidence=0.8)
    np.testing.assert_allclose([low, high], np.percentile(boot, [10.0, 90.0]), atol=1e-12)
    want_point = np.mean([probability_of_improvement(x[:, k], y[:, k], reps=1)[0] for k in range(2)])
    assert point == pytest.approx(want_point)


def test_poi_shape_errors():
    with pytest.raises(ValueError, match="`x` and `y` must have the same ndim"):
        probability_of_improvement(np.zeros(3), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="same number of tasks"):
        probability_of_improvement(np.zeros((3, 2)), np.zeros((3, 3)))


# --------------------------------------------------------------------------- curve_ci


@pytest.mark.parametrize("metric", ["iqm", "mean", "median"])
def test_curve_ci_shapes_and_ordering(metric):
    rng = np.random.default_rng(11)
    t = np.linspace(0, 1, 50)
    curves = 100 * t + rng.normal(0.0, 5.0, size=(8, 50))
    curves[:, 0] = 0.0  # a step where every seed agrees: zero-width band
    point, low, high = curve_ci(curves, metric=metric, reps=300)
    assert point.shape == low.shape == high.shape == (50,)
    assert np.all(low <= point) and np.all(point <= high)
    assert low[0] == point[0] == high[0] == 0.0
    assert np.all(high[1:] > low[1:])
    np.testing.assert_allclose(point, [aggregate(curves[:, i], metric) for i in range(50)])


def test_curve_ci_chunking_does_not_change_result(monkeypatch):
    curves = np.random.default_rng(12).normal(size=(6, 37))
    full = curve_ci(curves, reps=200, seed=4)
    monkeypatch.setattr(stats, "_CURVE_CHUNK_ELEMENTS", 6 * 200 * 5)  # chunks of 5 steps
    chunked = curve_ci(curves, reps=200, seed=4)
    for a, b in zip(full, chunked):
        np.testing.assert_array_equal(a, b)


def test_curve_ci_column_matches_bootstrap_ci_mean():
    # With the same seed, curve_ci at one step resamples runs exactly like bootstrap_ci.
    curves = np.random.default_rng(13).normal(size=(9, 4))
    point, low, high = curve_ci(curves, metric="mean", reps=400, seed=5)
    for i in range(4):
        assert (point[i], low[i], high[i]) == pytest.approx(
            bootstrap_ci(curves[:, i], metric="mean", reps=400, seed=5), abs=1e-12
        )


# --------------------------------------------------------------------------- plotting


def test_plot_curves_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(14)
    steps = np.arange(20) * 1000
    curves = {
        "ppo": np.cumsum(rng.normal(1.0, 1.0, size=(5, 20)), axis=1),
        "baseline": np.cumsum(rng.normal(0.5, 1.0, size=(3, 20)), axis=1),
    }
    out = plot_curves(curves, steps, tmp_path / "sub" / "curves.png", title="CartPole", reps=200)
    assert out == tmp_path / "sub" / "curves.png"
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_plot_curves_errors(tmp_path):
    steps = np.arange(10)
    with pytest.raises(ValueError, match="`curves` must be a non-empty mapping"):
        plot_curves({}, steps, tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"`curves\['a'\]` has T=9 steps"):
        plot_curves({"a": np.zeros((3, 9))}, steps, tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"`curves\['a'\]` contains NaN"):
        plot_curves({"a": np.full((3, 10), np.nan)}, steps, tmp_path / "a.png")
    with pytest.raises(ValueError, match="`metric`"):
        plot_curves({"a": np.zeros((3, 10))}, steps, tmp_path / "a.png", metric="max")
    assert not (tmp_path / "a.png").exists()


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: iqm([]), "`x` is empty"),
        (lambda: iqm([1.0, np.nan]), "`x` contains NaN"),
        (lambda: iqm(np.float64(3.0)), "`x` must have at least one dimension"),
        (lambda: aggregate([1.0, 2.0], metric="max"), "`metric` must be one of"),
        (lambda: aggregate(np.empty((0, 3))), "`scores` is empty"),
        (lambda: aggregate([1.0, np.inf]), "`scores` contains infinite"),
        (lambda: bootstrap_ci([]), "`scores` is empty"),
        (lambda: bootstrap_ci([1.0, np.nan, 2.0]), "`scores` contains NaN"),
        (lambda: bootstrap_ci([1.0, 2.0], metric="IQM"), "`metric` must be one of"),
        (lambda: bootstrap_ci([1.0, 2.0], confidence=0.0), "`confidence` must be in"),
        (lambda: bootstrap_ci([1.0, 2.0], confidence=1.0), "`confidence` must be in"),
        (lambda: bootstrap_ci([1.0, 2.0], confidence=95), "`confidence` must be in"),
        (lambda: bootstrap_ci([1.0, 2.0], confidence=float("nan")), "`confidence` must be in"),
        (lambda: bootstrap_ci([1.0, 2.0], reps=0), "`reps` must be a positive integer"),
        (lambda: bootstrap_ci(np.zeros((2, 2, 2))), "`scores` must be 1-D or 2-D"),
        (lambda: bootstrap_ci(["a", "b"]), "`scores` must be numeric"),
        (lambda: probability_of_improvement([], [1.0]), "`x` is empty"),
        (lambda: probability_of_improvement([1.0], []), "`y` is empty"),
        (lambda: probability_of_improvement([1.0], [np.nan]), "`y` contains NaN"),
        (lambda: probability_of_improvement([1.0], [2.0], confidence=-0.1), "`confidence` must be in"),
        (lambda: curve_ci(np.zeros(5)), "`curves` must be 2-D"),
        (lambda: curve_ci(np.zeros((0, 5))), "`curves` is empty"),
        (lambda: curve_ci(np.array([[1.0, np.nan]])), "`curves` contains NaN"),
        (lambda: curve_ci(np.zeros((2, 5)), metric="std"), "`metric` must be one of"),
        (lambda: curve_ci(np.zeros((2, 5)), confidence=1.5), "`confidence` must be in"),
        (lambda: plot_curves({"a": np.zeros((2, 3))}, [], "unused.png"), "`steps` is empty"),
    ],
)
def test_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
