"""The paper's objective family and target-KL early stopping, inside the fused train function."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import ConfigError, PPOConfig, make_train
from purejaxppo.core.config import OBJECTIVES
from purejaxppo.core.losses import adapt_kl_beta
from purejaxppo.core.objectives import Objective, clipped_surrogate, get_objective, objective_names

ONE_UPDATE = PPOConfig(num_envs=4, num_steps=32, num_minibatches=4, update_epochs=4, total_timesteps=4 * 32,
                       learning_rate=3e-3, anneal_lr=False)


def _run(cfg, key=0):
    return jax.jit(make_train(cfg))(jax.random.key(key))


def test_early_stop_masks_remaining_epochs_and_equals_fewer_epochs():
    stopped = _run(ONE_UPDATE.replace(use_target_kl=True, target_kl=1e-12))
    assert float(stopped.metrics["epochs_completed"][0]) == 1.0
    one_epoch = _run(ONE_UPDATE.replace(update_epochs=1))
    chex.assert_trees_all_equal(stopped.state.params, one_epoch.state.params)
    chex.assert_trees_all_equal(stopped.state.opt_state, one_epoch.state.opt_state)
    for k in ("policy_loss", "value_loss", "approx_kl", "clip_fraction", "kl"):
        # Same numbers up to float32 rounding of the masked average over epochs.
        np.testing.assert_allclose(stopped.metrics[k], one_epoch.metrics[k], rtol=1e-5, err_msg=k)


def test_early_stop_with_loose_threshold_changes_nothing():
    loose = _run(ONE_UPDATE.replace(use_target_kl=True, target_kl=1e9))
    plain = _run(ONE_UPDATE)
    assert float(loose.metrics["epochs_completed"][0]) == 4.0
    chex.assert_trees_all_close(loose.state.params, plain.state.params, rtol=1e-6, atol=1e-7)


def test_early_stop_counts_drop_over_training():
    cfg = ONE_UPDATE.replace(total_timesteps=4 * 32 * 20, use_target_kl=True, target_kl=2e-3, learning_rate=1e-2)
    m = _run(cfg).metrics
    e = np.asarray(m["epochs_completed"])
    assert e.min() >= 1 and e.max() <= 4 and e.min() < 4, e


def test_adaptive_beta_follows_the_rule_inside_training():
    cfg = ONE_UPDATE.replace(objective="kl_adaptive", total_timesteps=4 * 32 * 30, kl_target=0.003)
    out = _run(cfg)
    beta, kl = np.asarray(out.metrics["kl_beta"]), np.asarray(out.metrics["kl"])
    assert beta[0] == 1.0
    lo, hi = cfg.kl_beta_min, cfg.kl_beta_max
    expected = np.asarray(adapt_kl_beta(jnp.asarray(beta[:-1]), jnp.asarray(kl[:-1]), 0.003, lo, hi))
    np.testing.assert_allclose(beta[1:], expected, rtol=1e-6)
    assert len(np.unique(beta)) > 1  # it actually adapted
    np.testing.assert_allclose(float(out.state.objective_state), float(adapt_kl_beta(beta[-1], kl[-1], 0.003, lo, hi)), rtol=1e-6)


def test_adaptive_beta_bounds_bind_inside_training():
    # A huge d_targ makes every update's KL "too small": beta halves from 1.0 and must stop at kl_beta_min.
    cfg = ONE_UPDATE.replace(objective="kl_adaptive", total_timesteps=4 * 32 * 8, kl_target=1e6, kl_beta_min=0.05)
    beta = np.asarray(_run(cfg).metrics["kl_beta"])  # beta used in each update
    np.testing.assert_array_equal(beta, np.float32([1.0, 0.5, 0.25, 0.125, 0.0625, 0.05, 0.05, 0.05]))


def test_fixed_beta_stays_constant():
    out = _run(ONE_UPDATE.replace(objective="kl_fixed", kl_beta=3.0, total_timesteps=4 * 32 * 5))
    np.testing.assert_array_equal(out.metrics["kl_beta"], 3.0)


@pytest.mark.parametrize("objective", ["clip", "kl_adaptive", "kl_fixed", "none", "clip_kl"])
def test_every_objective_trains(objective):
    out = _run(ONE_UPDATE.replace(objective=objective, total_timesteps=4 * 32 * 3))
    for k, v in out.metrics.items():
        assert np.all(np.isfinite(v)), (objective, k)
    assert float(out.metrics["kl"][0]) > 0


def test_kl_target_sweep_compiles_once():
    cfg = ONE_UPDATE.replace(objective="kl_adaptive", total_timesteps=4 * 32 * 10)
    train_ = make_train(cfg)
    train = chex.assert_max_traces(lambda key, hp: train_(key, hp), n=1)  # chex wants a plain function
    hp = cfg.hparams()
    targets = jnp.array([0.003, 0.01, 0.03])
    sweep = jax.jit(jax.vmap(train, in_axes=(None, 0)))
    out = sweep(jax.random.key(0), jax.vmap(lambda d: hp.replace(kl_target=d))(targets))
    beta = np.asarray(out.metrics["kl_beta"])
    assert beta.shape == (3, cfg.num_updates)
    assert not np.allclose(beta[0], beta[2])  # different d_targ, different beta paths
    sweep(jax.random.key(0), jax.vmap(lambda e: hp.replace(clip_eps=e))(jnp.array([0.1, 0.2, 0.3])))  # no retrace


INF = float("inf")
# (a paper objective, its setting) and the clip_kl setting that is the same objective
CLIP_KL_EQUIVALENTS = [
    ("clip", {"clip_eps": 0.1}, {"clip_eps": 0.1, "kl_beta": 0.0}),
    ("none", {}, {"clip_eps": INF, "kl_beta": 0.0}),
    ("kl_fixed", {"kl_beta": 3.0}, {"clip_eps": INF, "kl_beta": 3.0, "kl_beta_min": 3.0, "kl_beta_max": 3.0}),
    ("kl_adaptive", {"kl_target": 0.003}, {"clip_eps": INF, "kl_target": 0.003}),
]


@pytest.mark.parametrize("name, own, combined", CLIP_KL_EQUIVALENTS, ids=[e[0] for e in CLIP_KL_EQUIVALENTS])
def test_clip_kl_is_each_paper_objective_at_its_setting(name, own, combined):
    cfg = ONE_UPDATE.replace(total_timesteps=4 * 32 * 6, learning_rate=1e-2)
    paper = _run(cfg.replace(objective=name, **own))
    one = _run(cfg.replace(objective="clip_kl", **combined))
    chex.assert_trees_all_close(one.state.params, paper.state.params, rtol=1e-5, atol=1e-6)
    # (clip and none report the configured kl_beta they do not use, clip_kl the 0 it uses; the unclipped
    # objectives report the fraction clip_eps = 0.2 would have clipped, clip_kl the 0 that inf clips)
    compared = ("policy_loss", "kl") + {"clip": ("clip_fraction",), "none": ()}.get(name, ("kl_beta",))
    for k in compared:
        np.testing.assert_allclose(one.metrics[k], paper.metrics[k], rtol=1e-4, atol=1e-7, err_msg=k)
    if name == "kl_adaptive":
        assert len(np.unique(np.asarray(one.metrics["kl_beta"]))) > 1  # it adapted


def test_clip_kl_holds_all_paper_settings_in_one_program():
    cfg = ONE_UPDATE.replace(objective="clip_kl", total_timesteps=4 * 32 * 3)
    train = chex.assert_max_traces(lambda key, hp: make_train(cfg)(key, hp), n=1)
    hp = cfg.hparams()
    points = [hp.replace(**{k: jnp.float32(v) for k, v in c.items()}) for _, _, c in CLIP_KL_EQUIVALENTS]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *points)
    out = jax.jit(jax.vmap(train, in_axes=(None, 0)))(jax.random.key(0), stacked)
    beta = np.asarray(out.metrics["kl_beta"])
    np.testing.assert_array_equal(beta[0], 0.0)  # penalty off stays off
    np.testing.assert_array_equal(beta[2], 3.0)  # pinned bounds: fixed
    assert np.all(np.isfinite(np.asarray(out.metrics["policy_loss"])))


def test_clip_kl_beta_is_zero_or_within_its_bounds():
    PPOConfig(objective="clip_kl", kl_beta=0.0)
    with pytest.raises(ConfigError, match=r"kl_beta = 1e-05 must lie within .* \(or 0, no penalty\) for objective='clip_kl'"):
        PPOConfig(objective="clip_kl", kl_beta=1e-5)
    PPOConfig(objective="kl_fixed", kl_beta=1e-5)  # the fixed objective has no bounds to respect


def test_only_clip_eps_may_be_infinite():
    cfg = PPOConfig(clip_eps=INF)
    assert PPOConfig.from_dict(cfg.to_dict()).clip_eps == INF
    for bad in (-INF, float("nan")):
        with pytest.raises(ConfigError, match="PPOConfig.clip_eps"):
            PPOConfig(clip_eps=bad)
    with pytest.raises(ConfigError, match="PPOConfig.kl_target: must be a finite number"):
        PPOConfig(kl_target=INF)


def test_exact_kl_metric_matches_recomputation():
    cfg = ONE_UPDATE.replace(objective="kl_fixed")
    train = make_train(cfg)
    state = train.init(jax.random.key(0))
    new_state, m = jax.jit(train.update)(state)
    # Recompute: the same rollout from the old params, KL(old || new) on its observations.
    from purejaxppo.core.rollout import collect

    hp = cfg.hparams()
    _, k_rollout, _ = jax.random.split(state.key, 3)
    _, _, _, traj, _ = collect(k_rollout, state.env, state.params, train.agent, train.env, train.env_params,
                               num_steps=cfg.num_steps, to_env_action=train.to_env_action, obs_norm=None,
                               reward_scaler=None, gamma=hp.gamma, obs_clip=hp.obs_clip, reward_clip=hp.reward_clip)
    obs = traj.obs.reshape(-1, 4)
    old, _ = train.network.apply(state.params, obs)
    new, _ = train.network.apply(new_state.params, obs)
    assert float(m["kl"]) == pytest.approx(float(jnp.mean(old.kl(new))), rel=1e-4)


# ----------------------------------------------------------------------------- where the name is resolved


def _clip_again(name):
    return Objective(name, lambda ratio, adv, kl, hp, state: clipped_surrogate(ratio, adv, hp.clip_eps).mean())


def test_an_objective_object_trains_without_being_registered():
    cfg = ONE_UPDATE.replace(objective="clip_unregistered", total_timesteps=4 * 32 * 2)
    objective = _clip_again("clip_unregistered")
    train = make_train(cfg, objective=objective)
    assert train.objective is objective and "clip_unregistered" not in objective_names()
    out = jax.jit(train)(jax.random.key(0))
    ref = _run(cfg.replace(objective="clip"))  # the same surrogate as the registered clip: the same training
    chex.assert_trees_all_equal(out.metrics, ref.metrics)
    chex.assert_trees_all_equal(out.state.params, ref.state.params)


def test_an_objective_object_must_carry_the_configs_name():
    with pytest.raises(ConfigError) as e:
        make_train(ONE_UPDATE, objective=_clip_again("mine"))
    msg = str(e.value)
    assert "'mine'" in msg and "PPOConfig.objective is 'clip'" in msg and "PPOConfig(objective='mine')" in msg, msg
    with pytest.raises(ConfigError, match=r"make_train: objective must be a purejaxppo.core.objectives.Objective"):
        make_train(ONE_UPDATE, objective="clip")


def test_an_unknown_name_is_refused_by_make_train_not_by_the_config():
    cfg = PPOConfig(objective="no_such_objective")  # a name is all the config checks
    with pytest.raises(ConfigError) as e:
        make_train(cfg)
    msg = str(e.value)
    assert "PPOConfig.objective: 'no_such_objective' is not one of the registered objectives" in msg, msg
    assert "register_objective" in msg and "make_train(config, objective=Objective('no_such_objective', ...))" in msg
    with pytest.raises(ConfigError, match="non-empty objective name"):
        PPOConfig(objective="")


def test_builtin_names_are_registered():
    assert set(OBJECTIVES) <= set(objective_names())
    assert all(get_objective(name).name == name for name in OBJECTIVES)


def test_the_config_modules_do_not_import_the_objectives():
    """The config checks names only; make_train resolves them, so config and objectives have no cycle."""
    import ast
    import pathlib

    import purejaxppo.core as core

    root = pathlib.Path(core.__file__).parent
    for module in ("config", "config_fields", "config_checks", "config_io", "hparams"):
        tree = ast.parse((root / f"{module}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any("objectives" in m for m in imported if m), (module, imported)


def test_anneal_clip_eps_scales_epsilon_like_the_learning_rate():
    """The paper's Atari setting: epsilon = 0.1 alpha. Halfway through (alpha = 1/2) an update with clip_eps 0.2
    annealed is the update with clip_eps 0.1 not annealed (the learning rate is annealed alike in both)."""
    cfg = ONE_UPDATE.replace(total_timesteps=4 * 32 * 4, anneal_lr=True)
    outs = []
    for anneal, eps in ((True, 0.2), (False, 0.1)):
        train = make_train(cfg.replace(anneal_clip_eps=anneal, clip_eps=eps))
        state = train.init(jax.random.key(0))
        state = state.replace(update_step=jnp.asarray(2, jnp.int32))  # alpha = 1 - 2/4
        outs.append(jax.jit(train.update)(state))
    chex.assert_trees_all_equal(outs[0][0].params, outs[1][0].params)
    assert float(outs[0][1]["clip_fraction"]) == float(outs[1][1]["clip_fraction"]) > 0
