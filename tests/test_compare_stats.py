"""The pure parts of benchmarks/compare.py and its workers: the timing order, the pair ratios and their
bootstrap CI, which peer runs which row, the specs each side is built from, and the peers' env adapters.

Nothing here times anything or starts a worker; benchmarks/ is not a package, so the scripts are loaded
from their paths.
"""

import importlib.util
import math
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from purejaxppo.envs.wrappers import MASKS
from purejaxppo.sweep.stats import bootstrap_ci

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str, argv: list[str] | None = None):
    saved = sys.argv
    if str(BENCH) not in sys.path:  # as when run as a script: the workers import their sibling modules
        sys.path.insert(0, str(BENCH))
    if argv is not None:
        sys.argv = argv
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.argv = saved
    return module


@pytest.fixture(scope="module")
def compare():
    return _load("compare")


@pytest.fixture(scope="module")
def common():
    return _load("_common")


@pytest.fixture(scope="module")
def worker():
    # IMPL "rejax": importing the worker as the purejaxppo side would call configure_cpu in the test process.
    return _load("_compare_worker", ["_compare_worker.py", "rejax"])


@pytest.fixture(scope="module")
def pjx():
    return _load("_purejaxrl_worker")


# --------------------------------------------------------------------------- order and ratios


def test_run_order_alternates_every_program_once_per_pair(compare):
    assert compare.run_order(["ours", "rejax"], 3) == ["ours", "rejax"] * 3
    assert compare.run_order(["ours", "rejax", "purejaxrl"], 2) == ["ours", "rejax", "purejaxrl"] * 2
    assert compare.run_order(["a"], 1) == ["a"]
    with pytest.raises(ValueError, match="pairs"):
        compare.run_order(["a", "b"], 0)
    with pytest.raises(ValueError, match="distinct"):
        compare.run_order(["a", "a"], 2)


def test_pair_ratios_are_throughput_ratios_of_the_same_pair(compare):
    # A does 200 steps per call, B 100: same seconds means A is twice as fast.
    assert compare.pair_ratios(200, [1.0, 2.0, 4.0], 100, [1.0, 1.0, 1.0]) == [2.0, 1.0, 0.5]
    # Pairing is by position, not by sorted times: the i-th call of A goes with the i-th call of B.
    assert compare.pair_ratios(10, [1.0, 5.0], 10, [5.0, 1.0]) == [5.0, 0.2]
    with pytest.raises(ValueError, match="as many"):
        compare.pair_ratios(10, [1.0, 2.0], 10, [1.0])


def test_ratio_ci_is_the_median_with_a_bootstrap_interval_over_pairs(common):
    ratios = [1.21, 0.98, 1.30, 1.09, 1.16]
    med, low, high = common.ratio_ci(ratios)
    assert med == pytest.approx(float(np.median(ratios)))
    assert min(ratios) <= low <= med <= high <= max(ratios)
    # The median of a bootstrap resample is one of the observed values (odd n): so are the percentiles here.
    assert low in ratios and high in ratios
    assert low < high
    # It is sweep.stats.bootstrap_ci of the median (reused, not a second implementation), fixed by its seed.
    assert (med, low, high) == bootstrap_ci(ratios, metric="median", reps=common.BOOTSTRAP_REPS, seed=0)
    assert common.ratio_ci(ratios) == (med, low, high)
    # Identical pairs: a zero-width interval; a tighter spread: a narrower one.
    assert common.ratio_ci([1.2] * 5) == pytest.approx((1.2, 1.2, 1.2))
    tight = common.ratio_ci([1.19, 1.2, 1.21, 1.2, 1.2])
    assert tight[2] - tight[1] < high - low


def test_format_ratio_and_throughput(common, compare):
    cell, pairs = common.format_ratio([1.0, 1.5, 2.0], reps=2000)
    assert cell.startswith("**1.50×** [") and cell.endswith("]")
    assert pairs == "1.00, 1.50, 2.00"
    assert compare.throughput(1000, [1.0, 2.0, 4.0]) == 500.0  # median of 1000, 500, 250 steps/s


# --------------------------------------------------------------------------- rows and specs


def test_peers_for_each_row(compare):
    both = ["rejax", "purejaxrl"]
    assert compare.peers_for("cartpole", both) == both
    assert compare.peers_for("breakout", ["purejaxrl", "rejax"]) == ["purejaxrl", "rejax"]
    assert compare.peers_for("pendulum", both) == ["rejax"]  # PureJaxRL's ppo.py is discrete-only
    assert compare.peers_for("gru", both) == ["purejaxrl"]  # rejax 0.1.3 has no recurrent PPO
    assert compare.peers_for("cnn", both) == []  # ours vs ours


def test_row_spec_budgets(compare):
    assert compare.row_spec("cartpole", False, None, None)["total_timesteps"] == 500_000
    assert compare.row_spec("cartpole", True, None, None)["total_timesteps"] == compare.QUICK_STEPS["cartpole"]
    spec = compare.row_spec("gru", True, 4096, 8)
    assert (spec["total_timesteps"], spec["num_envs"]) == (4096, 8)
    assert "num_envs" not in compare.row_spec("cnn", False, None, 8)  # the CNN row keeps its config's shape
    assert compare.SPECS["cartpole"]["num_envs"] == 4  # row_spec copies, never edits SPECS


@pytest.mark.parametrize("row", ["cartpole", "breakout", "gru"])
def test_purejaxrl_rows_build_its_config_from_the_same_spec(compare, pjx, row):
    spec = compare.SPECS[row]
    module, config, keep = pjx.purejaxrl_config(spec)
    assert module == ("ppo_rnn" if row == "gru" else "ppo")
    assert (config["LR"], config["NUM_ENVS"], config["NUM_STEPS"]) == (spec["lr"], spec["num_envs"], spec["num_steps"])
    assert (config["UPDATE_EPOCHS"], config["NUM_MINIBATCHES"]) == (spec["epochs"], spec["minibatches"])
    assert config["ANNEAL_LR"] == spec["anneal_lr"] and config["ACTIVATION"] == spec["activation"]
    if row == "gru":
        assert config["ENV_NAME"] == "CartPole-v1" and keep == MASKS["CartPole-v1"]
    else:
        assert config["ENV_NAME"] == spec["env"] and keep is None


def test_purejaxrl_refuses_what_its_code_fixes(compare, pjx):
    with pytest.raises(ValueError, match="hidden"):
        pjx.purejaxrl_config(dict(compare.SPECS["cartpole"], hidden=[128, 128]))
    with pytest.raises(ValueError, match="activation"):
        pjx.purejaxrl_config(dict(compare.SPECS["gru"], activation="tanh"))
    with pytest.raises(ValueError, match="normalize_obs"):
        pjx.purejaxrl_config(compare.SPECS["pendulum"])


@pytest.mark.parametrize("row", ["cartpole", "pendulum", "breakout", "gru"])
def test_our_config_is_the_row_spec(compare, worker, row):
    spec = compare.row_spec(row, True, None, None)
    cfg = worker.ours_config(spec)
    assert (cfg.env, cfg.num_envs, cfg.num_steps) == (spec["env"], spec["num_envs"], spec["num_steps"])
    assert (cfg.update_epochs, cfg.num_minibatches, cfg.learning_rate) == (
        spec["epochs"],
        spec["minibatches"],
        spec["lr"],
    )
    assert cfg.actor_hidden == tuple(spec["hidden"]) and cfg.activation == spec["activation"]
    assert cfg.anneal_lr == spec["anneal_lr"] and cfg.vf_clip_eps == spec["clip_eps"]
    if row == "gru":
        assert (cfg.network, cfg.rnn_size, cfg.rnn_torso) == ("gru", 128, (128,))


def test_our_cnn_config_is_the_repo_config_at_the_row_budget(compare, worker):
    cfg = worker.ours_config(dict(compare.row_spec("cnn", True, None, None), conv_impl="xla"))
    assert (cfg.network, cfg.conv_impl, cfg.total_timesteps) == ("cnn", "xla", compare.QUICK_STEPS["cnn"])
    assert cfg.num_updates >= 1


# --------------------------------------------------------------------------- peers' adapters and returns


def test_masked_five_tuple_env_matches_our_masked_observations(worker):
    import gymnax

    env, params = gymnax.make("CartPole-v1")
    keep = MASKS["CartPole-v1"]
    masked = worker.MaskedFiveTupleEnv(env, keep)
    key = jax.random.key(3)
    obs, state = env.reset(key, params)
    mobs, mstate = masked.reset(key, params)
    np.testing.assert_array_equal(mobs, np.asarray(obs)[list(keep)])
    step = masked.step(key, mstate, 1, params)
    assert len(step) == 5 and step[0].shape == (len(keep),)
    full = env.step(key, state, 1, params)
    np.testing.assert_array_equal(step[0], np.asarray(full[0])[list(keep)])
    assert bool(step[3]) == bool(full[3] | full[4])
    assert masked.observation_space(params).shape == (len(keep),)
    # PureJaxRL asks for the space inside its jitted train, where gymnax computes the bounds as traced arrays.
    low = jax.jit(lambda: masked.observation_space(params).low)()
    np.testing.assert_array_equal(low, np.asarray(env.observation_space(params).low)[list(keep)])
    assert masked.action_space(params).n == 2  # everything else is the wrapped env's


def test_training_return_of_the_last_tenth_of_updates(pjx):
    u, t, n = 20, 3, 2
    r = np.zeros((u, t, n))
    d = np.zeros((u, t, n), dtype=bool)
    r[-1, 0, 0], d[-1, 0, 0] = 10.0, True  # the last 2 updates (10%) hold two ended episodes: 10 and 30
    r[-2, 2, 1], d[-2, 2, 1] = 30.0, True
    r[0, 0, 0], d[0, 0, 0] = 1000.0, True  # outside the tail
    assert pjx.training_return({"returned_episode_returns": r, "returned_episode": d}) == 20.0
    # Two seeds: per-seed means (20 and 5), then the mean over seeds; a seed with no ended episode is NaN.
    r2, d2 = r.copy(), d.copy()
    r2[-2:], d2[-2:] = 0.0, False
    r2[-1, 1, 1], d2[-1, 1, 1] = 5.0, True
    both = {"returned_episode_returns": np.stack([r, r2]), "returned_episode": np.stack([d, d2])}
    assert pjx.training_return(both) == 12.5
    assert math.isnan(pjx.training_return({"returned_episode_returns": r, "returned_episode": np.zeros_like(d)}))


def test_placeholder_modules_import_but_refuse_use(pjx):
    brax = pjx._Placeholder("brax")
    # What PureJaxRL's wrappers.py imports at the top resolves ...
    assert brax.envs is brax and brax.EpisodeWrapper is brax and brax.AutoResetWrapper is brax
    # ... and anything actually used says what it is.
    with pytest.raises(ImportError, match="placeholder"):
        getattr(brax, "create")  # noqa: B009
    with pytest.raises(AttributeError):
        getattr(brax, "__wrapped__")  # noqa: B009


def test_legacy_gru_cell_is_todays_gru_cell_at_ppo_rnns_size(pjx):
    import flax.linen as nn

    assert pjx.needs_legacy_gru()  # this repo's flax requires GRUCell(features=...)
    cell = pjx.LegacyGRUCell()
    assert isinstance(cell, nn.GRUCell) and cell.features == pjx.RNN_SIZE
    carry = pjx.LegacyGRUCell.initialize_carry(jax.random.PRNGKey(0), (4,), pjx.RNN_SIZE)
    np.testing.assert_array_equal(carry, np.zeros((4, pjx.RNN_SIZE)))

    class Old(nn.Module):  # the way ppo_rnn.py builds its cell: inside a compact method, no arguments
        @nn.compact
        def __call__(self, h, x):
            return pjx._LinenView("flax.linen").GRUCell()(h, x)

    class New(nn.Module):
        @nn.compact
        def __call__(self, h, x):
            return nn.GRUCell(features=pjx.RNN_SIZE)(h, x)

    x = jax.random.normal(jax.random.key(1), (4, 3))
    params = Old().init(jax.random.key(2), carry, x)
    assert jax.tree.map(np.shape, params) == jax.tree.map(np.shape, New().init(jax.random.key(2), carry, x))
    np.testing.assert_array_equal(Old().apply(params, carry, x)[1], New().apply(params, carry, x)[1])
