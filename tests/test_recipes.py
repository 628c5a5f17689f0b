"""Issue 33's recipes: layer_norm, matmul_precision, separate actor/critic inputs (and the privileged wrapper),
PopArt value normalization.

Tiny configs throughout; each test takes seconds.
"""

import json

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.core.networks import make_network, network_options
from purejaxppo.envs.spaces import ActionSpec
from purejaxppo.errors import ConfigError

TINY = PPOConfig(
    env="CartPole-v1", num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1, total_timesteps=4 * 8 * 2,
    actor_hidden=(8, 8), critic_hidden=(8,), rnn_size=8, rnn_torso=(8,), cnn_channels=(4,),
)
DISCRETE = ActionSpec(True, 3, ())
VEC = jax.ShapeDtypeStruct((5,), jnp.float32)
IMAGE = jax.ShapeDtypeStruct((6, 6, 2), jnp.float32)
FRAMES = jax.ShapeDtypeStruct((4, 36, 36), jnp.uint8)


def _paths(params):
    return ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(params)]


# ----------------------------------------------------------------------------- layer_norm

# (network, obs spec, where a LayerNorm must follow each hidden layer: path fragments and how many)
LN_CASES = [
    ("mlp", VEC, {"actor/LayerNorm_": 2, "critic/LayerNorm_": 1}),
    ("cnn", IMAGE, {"actor_torso/LayerNorm_": 1, "critic_torso/LayerNorm_": 1, "actor/LayerNorm_": 2,
                    "critic/LayerNorm_": 1}),
    ("gru", VEC, {"torsos_0/LayerNorm_": 1, "actor/LayerNorm_": 2, "critic/LayerNorm_": 1}),
    ("lstm", IMAGE, {"torsos_0/ConvTorso_0/LayerNorm_": 1, "torsos_0/LayerNorm_": 1}),
    ("nature_cnn", FRAMES, {"torso/LayerNorm_": 4}),
]


@pytest.mark.parametrize("network,spec,where", LN_CASES, ids=[c[0] for c in LN_CASES])
def test_layer_norm_adds_a_layer_norm_after_each_hidden_layer_and_nothing_else(network, spec, where):
    config = TINY.replace(network=network)
    x = jnp.zeros((2, *spec.shape), spec.dtype)
    plain = make_network(spec, DISCRETE, **network_options(config))
    normed = make_network(spec, DISCRETE, **network_options(config.replace(layer_norm=True)))
    carry = (plain.initial_carry(2),) if network in ("gru", "lstm") else ()
    p0 = _paths(plain.init(jax.random.key(0), *carry, x))
    p1 = _paths(normed.init(jax.random.key(0), *carry, x))
    assert not any("LayerNorm" in p for p in p0)
    assert [p for p in p1 if "LayerNorm" not in p] == p0  # the other layers keep their names
    for fragment, count in where.items():
        found = {p.rsplit("/", 1)[0] for p in p1 if fragment in p and p.endswith("scale")}
        assert len(found) == count, (fragment, sorted(found))


def test_layer_norm_makes_the_mlp_invariant_to_the_scale_of_a_hidden_layer():
    """A LayerNorm right after a dense layer cancels any positive rescaling of that layer's output."""
    for layer_norm, invariant in ((True, True), (False, False)):
        net = make_network(VEC, DISCRETE, **network_options(TINY.replace(layer_norm=layer_norm)))
        x = jax.random.normal(jax.random.key(1), (16, 5))
        params = net.init(jax.random.key(0), x)
        bias = params["params"]["critic"]["Dense_0"]["bias"]
        params["params"]["critic"]["Dense_0"]["bias"] = bias + 0.3  # nonzero, so it scales too
        scaled = jax.tree.map(lambda a: a, params)
        for name in ("kernel", "bias"):
            scaled["params"]["critic"]["Dense_0"][name] = 7.0 * params["params"]["critic"]["Dense_0"][name]
        v0, v1 = net.apply(params, x)[1], net.apply(scaled, x)[1]
        assert np.allclose(v0, v1, atol=1e-4) == invariant


def test_layer_norm_trains_feed_forward_and_recurrent():
    for network in ("mlp", "gru"):
        config = TINY.replace(network=network, layer_norm=True)
        out = jax.jit(make_train(config))(jax.random.key(0))
        assert np.all(np.isfinite(out.metrics["value_loss"]))
        assert np.asarray(out.metrics["diverged"]).max() == 0


# ----------------------------------------------------------------------------- matmul_precision


def _dot_precisions(jaxpr) -> list:
    """The precision of every dot_general / conv in a jaxpr, sub-jaxprs included."""
    found = []

    def walk(jx):
        for eqn in jx.eqns:
            if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
                found.append(eqn.params["precision"])
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jaxpr.jaxpr)
    return found


@pytest.mark.parametrize("setting", ["high", "highest"])
def test_matmul_precision_reaches_every_matmul_of_init_and_update(setting):
    """Every dot of the update (rollout, GRU forward and hand-written backward, optimizer) carries the setting."""
    config = TINY.replace(network="gru", matmul_precision=setting, eval_every=1, eval_episodes=1)
    train = make_train(config)
    state = train.init(jax.random.key(0))
    want = getattr(jax.lax.Precision, setting.upper())
    for fn, args in ((train.init, (jax.random.key(0),)), (train.update, (state,))):
        precisions = _dot_precisions(jax.make_jaxpr(fn)(*args))
        assert len(precisions) > 5
        assert all(p == (want, want) for p in precisions), set(precisions)
    default = make_train(config.replace(matmul_precision="default"))
    assert set(_dot_precisions(jax.make_jaxpr(default.update)(state))) == {None}


def test_matmul_precision_is_recorded_in_run_json(tmp_path):
    from purejaxppo.runs import train_run

    config = TINY.replace(matmul_precision="highest")
    train_run(config, tmp_path / "run", num_seeds=1, progress="off", log=lambda m: None)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["matmul_precision"]["setting"] == "highest"
    assert info["matmul_precision"]["backend"] == jax.default_backend()
    assert "jax_default_matmul_precision" in info["matmul_precision"]


def test_matmul_precision_refuses_an_unknown_name():
    with pytest.raises(ConfigError, match=r"^PPOConfig.matmul_precision: 'tf32' is not one of"):
        PPOConfig(matmul_precision="tf32")


# ----------------------------------------------------------------------------- separate actor / critic inputs

PRIV = {"obs": jax.ShapeDtypeStruct((2,), jnp.float32), "privileged": jax.ShapeDtypeStruct((4,), jnp.float32)}
PRIV_IMAGE = {"board": IMAGE, "privileged": jax.ShapeDtypeStruct((4,), jnp.float32)}
SPLIT = dict(actor_obs_keys="obs", critic_obs_keys="obs,privileged")


def _apply(net, params, obs):
    """(logits, value) of a feed-forward or a recurrent network for one batch of observations."""
    if hasattr(net, "initial_carry"):
        _, dist, value = net.apply(params, net.initial_carry(obs["privileged"].shape[0]), obs)
    else:
        dist, value = net.apply(params, obs)
    return dist.logits, value


SPLIT_CASES = [
    ("mlp", PRIV, SPLIT, True),
    ("gru", PRIV, SPLIT, True),  # shared core: a recurrent actor and a feed-forward critic
    ("lstm", PRIV, dict(SPLIT, rnn_shared_core=False), True),  # each head its own torso and cell
    ("gru", PRIV, dict(actor_obs_keys="obs", critic_obs_keys="privileged"), False),
    ("cnn", PRIV_IMAGE, dict(actor_obs_keys="board", critic_obs_keys="board,privileged"), True),
]


@pytest.mark.parametrize("network,spec,keys,critic_sees_actor_obs", SPLIT_CASES,
                         ids=[f"{c[0]}-{c[2]['critic_obs_keys']}" for c in SPLIT_CASES])
def test_privileged_inputs_reach_only_the_critic(network, spec, keys, critic_sees_actor_obs):
    net = make_network(spec, DISCRETE, **network_options(TINY.replace(network=network, **keys)))
    obs = {k: jax.random.normal(jax.random.key(i), (3, *s.shape)) for i, (k, s) in enumerate(spec.items())}
    carry = (net.initial_carry(3),) if hasattr(net, "initial_carry") else ()
    params = net.init(jax.random.key(0), *carry, obs)
    actor_key = keys["actor_obs_keys"]

    def grads(out_index):
        return jax.grad(lambda o: jnp.sum(_apply(net, params, o)[out_index] ** 2))(obs)

    g_actor, g_critic = grads(0), grads(1)
    assert np.all(np.asarray(g_actor["privileged"]) == 0)  # exactly: no path from it to the policy
    assert np.abs(g_actor[actor_key]).max() > 0
    assert np.abs(g_critic["privileged"]).max() > 0
    assert (np.abs(g_critic[actor_key]).max() > 0) == critic_sees_actor_obs


def test_same_keys_for_both_heads_give_the_network_of_the_whole_observation():
    """'obs,privileged' for both equals 'all' on that dict: the same parameters and outputs."""
    obs = {k: jax.random.normal(jax.random.key(i), (3, *s.shape)) for i, (k, s) in enumerate(PRIV.items())}
    for network in ("mlp", "gru"):
        config = TINY.replace(network=network)
        both = config.replace(actor_obs_keys="obs,privileged", critic_obs_keys="privileged,obs")
        a, b = (make_network(PRIV, DISCRETE, **network_options(c)) for c in (config, both))
        carry = (a.initial_carry(3),) if network == "gru" else ()
        pa, pb = a.init(jax.random.key(0), *carry, obs), b.init(jax.random.key(0), *carry, obs)
        assert jax.tree.structure(pa) == jax.tree.structure(pb)
        assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True))


@pytest.mark.parametrize("field,value,match", [
    ("critic_obs_keys", "obs,,privileged", "must be 'all' or distinct, non-empty observation keys"),
    ("actor_obs_keys", "obs,obs", "must be 'all' or distinct"),
    ("actor_obs_keys", "", "must be a non-empty"),
])
def test_malformed_obs_keys_are_refused_naming_the_field(field, value, match):
    with pytest.raises(ConfigError, match=rf"^PPOConfig.{field}: .*{match}"):
        PPOConfig(**{field: value})


def test_an_action_mask_restricts_a_policy_that_does_not_read_it():
    """actor_obs_keys without the mask: the mask is no input of the actor, yet the policy only takes legal actions,
    in the rollout and in the update's replay (the agent applies it)."""
    from tests.masked_envs import ChoiceEnv

    config = TINY.replace(actor_obs_keys="target", critic_obs_keys="all", num_envs=8, num_steps=4)
    train = make_train(config, env=ChoiceEnv((6,)))
    state = jax.jit(train.init)(jax.random.key(0))
    _, _, _, traj, _ = jax.jit(train._rollout)(state, config.hparams(), jax.random.key(1))
    mask = np.asarray(traj.obs["action_mask"])
    taken = np.take_along_axis(mask, np.asarray(traj.action)[..., None], axis=-1)[..., 0]
    assert taken.all()
    logits = np.asarray(traj.dist.logits)
    assert np.all(np.isneginf(logits[~mask]) | (logits[~mask] < -1e8))
    net_params = state.params["params"]["actor"]["Dense_0"]["kernel"]
    assert net_params.shape[0] == 6  # the actor reads the 6 target entries, not the mask


def test_obs_keys_the_env_does_not_have_are_refused_at_make_train():
    with pytest.raises(ConfigError, match=r"^PPOConfig.critic_obs_keys: 'state' not among the observation's keys "
                                          r"\['obs', 'privileged'\]"):
        make_train(TINY.replace(env="masked/CartPole-v1+privileged", critic_obs_keys="state"))
    with pytest.raises(ConfigError, match=r"^PPOConfig.actor_obs_keys: 'obs' selects entries of a dict observation"):
        make_train(TINY.replace(actor_obs_keys="obs"))
    with pytest.raises(ConfigError, match=r"^PPOConfig.cnn_shared_torso: .*same inputs"):
        PPOConfig(network="cnn", cnn_shared_torso=True, critic_obs_keys="privileged")


def test_privileged_wrapper_adds_the_full_state_to_the_masked_observation():
    from purejaxppo.envs import make_env

    env, params = make_env("masked/CartPole-v1+privileged")
    obs, state = env.reset(jax.random.key(0), params)
    assert np.array_equal(obs["obs"], obs["privileged"][np.array([0, 2])])
    full = np.array([state.x, state.x_dot, state.theta, state.theta_dot])
    assert np.allclose(obs["privileged"], full)
    step = jax.jit(env.step)
    for _ in range(30):  # through an auto-reset: final_observation is the same dict
        obs, state, _, term, trunc, info = step(jax.random.key(1), state, 1, params)
        assert set(info["final_observation"]) == {"obs", "privileged"}
    space = env.observation_space(params)
    assert space.spaces["obs"].shape == (2,) and space.spaces["privileged"].shape == (4,)


def test_recurrent_actor_with_privileged_critic_trains_evaluates_and_loads_with_actor_inputs_only(tmp_path):
    """masked CartPole, a GRU actor on the masked entries, a feed-forward critic on the full state; obs
    normalization and in-training evaluation on; load_policy acts from the actor's entry alone."""
    from purejaxppo.runs import load_policy, train_run

    config = TINY.replace(env="masked/CartPole-v1+privileged", network="gru", normalize_obs=True, eval_every=2,
                          eval_episodes=2, **SPLIT)
    res = train_run(config, tmp_path / "run", num_seeds=1, progress="off", log=lambda m: None)
    assert res is not None
    act = load_policy(tmp_path / "run")
    obs = {"obs": jax.random.normal(jax.random.key(0), (5, 2)), "privileged": jax.random.normal(jax.random.key(1), (5, 4))}
    full = act.step(None, obs)[1]
    other = act.step(None, {**obs, "privileged": 100.0 * obs["privileged"]})[1]
    alone = act.step(None, {"obs": obs["obs"]})[1]
    assert np.array_equal(full, other) and np.array_equal(full, alone)
    single = act.step(None, {"obs": obs["obs"][0]})[1]
    assert single.shape == () and single == full[0]


# ----------------------------------------------------------------------------- PopArt

from purejaxppo.core.popart import PopArtStats, preserve_outputs, update_stats, value_head  # noqa: E402

POPART = TINY.replace(value_normalization="popart")


def _values(train, params, obs):
    """The network's (normalized) value output for a batch of observations [B, ...] from the initial carry."""
    b = jax.tree.leaves(obs)[0].shape[0]
    return train.agent.step(params, train.agent.initial_carry(b), obs, None)[2]


@pytest.mark.parametrize("network", ["mlp", "gru"])
def test_popart_preserves_the_critics_outputs_at_each_statistics_update(network):
    """Three real updates: at each, the statistics absorb the targets and the rescaled critic predicts the same
    unnormalized values as before (float32 rounding only); the first update takes the batch's own statistics."""
    config = POPART.replace(network=network, total_timesteps=4 * 8 * 3, popart_beta=0.3)
    train = make_train(config)
    hp = config.hparams()
    state = jax.jit(train.init)(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(5), (64, 4)) * 2.0
    rollout, value_targets, update = jax.jit(train._rollout), jax.jit(train._value_targets), jax.jit(train.update)
    values = jax.jit(lambda p: _values(train, p, obs))
    for k in range(3):
        _, _, _, traj, _ = rollout(state, hp, jax.random.key(10 + k))
        targets = 100.0 + 30.0 * jax.random.normal(jax.random.key(k), traj.reward.shape)  # a far-off scale
        old = state.value_norm
        start, new, batch = value_targets(state, hp, traj._replace(value=old.denormalize(traj.value)),
                                          jnp.zeros_like(targets), targets)
        before = old.denormalize(values(state.params))
        after = new.denormalize(values(start))
        np.testing.assert_allclose(after, before, rtol=2e-6, atol=2e-6 * float(new.std))
        if k == 0:  # step size 1: mu and sigma are the batch's, the normalized targets have mean 0 and std 1
            np.testing.assert_allclose(float(new.mean), float(targets.mean()), rtol=1e-6)
            np.testing.assert_allclose(float(jnp.mean(batch.target)), 0.0, atol=1e-4)
            np.testing.assert_allclose(float(jnp.std(batch.target)), 1.0, rtol=1e-4)
        # the stored old predictions are normalized with the new statistics (what value clipping compares with)
        np.testing.assert_allclose(batch.value, new.normalize(traj.value * old.std + old.mean), rtol=1e-5, atol=1e-5)
        state, _ = update(state, hp)


def test_popart_statistics_update_and_rescale_by_hand():
    stats = PopArtStats.create()
    assert float(stats.std) == 1.0 and float(stats.mean) == 0.0
    t = jnp.array([1.0, 3.0])
    s1 = update_stats(stats, t, jnp.float32(0.1))  # first: step 1
    assert np.allclose([s1.mean, s1.mean_square, s1.std], [2.0, 5.0, 1.0])
    s2 = update_stats(s1, jnp.array([10.0, 10.0]), jnp.float32(0.1))  # second: step max(0.1, 1/2)
    assert np.allclose([s2.mean, s2.mean_square], [6.0, 52.5])
    s3 = update_stats(s2, jnp.array([0.0]), jnp.float32(0.6))  # beta above 1/3
    assert np.allclose(s3.mean, 0.4 * 6.0)
    params = {"params": {"critic": {"Dense_0": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)},
                                    "Dense_1": {"kernel": jnp.array([[1.0], [2.0], [3.0], [4.0]]), "bias": jnp.ones(1)}}}}
    out = preserve_outputs(params, s1, s2)
    head = out["params"]["critic"]["Dense_1"]
    np.testing.assert_allclose(head["kernel"][:, 0], np.array([1.0, 2.0, 3.0, 4.0]) * s1.std / s2.std, rtol=1e-6)
    np.testing.assert_allclose(head["bias"], (s1.std * 1.0 + s1.mean - s2.mean) / s2.std, rtol=1e-6)
    for name in ("kernel", "bias"):  # the rest untouched
        assert out["params"]["critic"]["Dense_0"][name] is params["params"]["critic"]["Dense_0"][name]


def test_popart_statistics_are_those_of_the_union_of_the_data_parallel_shards():
    targets = jax.random.normal(jax.random.key(0), (2, 16)) * 5.0 + 3.0
    s = update_stats(update_stats(PopArtStats.create(), targets[:, :3] + 1, 0.2), targets, 0.2)
    sharded = jax.vmap(
        lambda t3, t: update_stats(update_stats(PopArtStats.create(), t3 + 1, 0.2, "data"), t, 0.2, "data"),
        axis_name="data",
    )(targets[:, :3], targets)
    for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(sharded), strict=True):
        np.testing.assert_allclose(b, np.broadcast_to(a, b.shape), rtol=1e-6)


def test_popart_finds_the_value_layer_of_every_built_in_network_and_refuses_a_network_without_one():
    for network, spec in (("mlp", VEC), ("cnn", IMAGE), ("gru", VEC), ("nature_cnn", FRAMES)):
        net = make_network(spec, DISCRETE, **network_options(TINY.replace(network=network)))
        carry = (net.initial_carry(1),) if network == "gru" else ()
        shapes = jax.eval_shape(net.init, jax.random.key(0), *carry, jnp.zeros((1, *spec.shape), spec.dtype))
        head = value_head(shapes)
        assert head["kernel"].shape[-1] == 1 and head["bias"].shape == (1,)

    import flax.linen as nn

    from purejaxppo.core.distributions import Categorical

    class NoCritic(nn.Module):
        @nn.compact
        def __call__(self, obs):
            h = nn.Dense(2, name="policy")(obs)
            return Categorical(logits=h), nn.Dense(1, name="value")(obs)[:, 0]

    with pytest.raises(ConfigError, match=r"^PPOConfig.value_normalization: 'popart' rescales the critic's output"):
        make_train(POPART, network_factory=lambda o, a: NoCritic())


def test_popart_trains_and_resumes_bit_identically(tmp_path):
    """A run stopped after 2 of 4 updates and resumed ends with the uninterrupted run's params and statistics;
    the statistics are in the checkpoint, and value_target_mean / value_target_std in the metrics."""
    from purejaxppo.runs import train_run

    config = POPART.replace(total_timesteps=4 * 8 * 4, normalize_obs=True)
    quiet = dict(num_seeds=2, checkpoint_every=2, progress="off", log=lambda m: None)
    whole = train_run(config, tmp_path / "whole", **quiet)
    train_run(config, tmp_path / "split", stop_after=2, **quiet)
    resumed = train_run(None, tmp_path / "split", resume=True, **quiet)
    assert whole is not None and resumed is not None
    for a, b in zip(jax.tree.leaves((whole.state.params, whole.state.value_norm)),
                    jax.tree.leaves((resumed.state.params, resumed.state.value_norm)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(np.asarray(whole.state.value_norm.count)[0]) == 4.0
    rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["value_target_std"] > 0 for r in rows) and "value_target_mean" in rows[-1]
    assert (tmp_path / "split" / "metrics.jsonl").read_text() == (tmp_path / "whole" / "metrics.jsonl").read_text()


def test_popart_off_leaves_no_statistics_in_the_state():
    train = make_train(TINY)
    assert train.init(jax.random.key(0)).value_norm is None
    with pytest.raises(ConfigError, match=r"^PPOConfig.value_normalization: 'scale' is not one of"):
        PPOConfig(value_normalization="scale")
    with pytest.raises(ConfigError, match=r"^PPOConfig.popart_beta: must be in \(0, 1\]"):
        PPOConfig(popart_beta=0.0)


# ----------------------------------------------------------------------------- domain randomization

DR = TINY.replace(domain_randomization="cartpole", domain_randomization_scale=0.2, num_envs=8, num_steps=32,
                  total_timesteps=8 * 32 * 2)


def test_randomized_params_differ_per_env_and_are_redrawn_exactly_at_reset():
    train = make_train(DR)
    assert [name for name, _ in train.randomized] == ["masscart", "masspole", "total_mass", "length",
                                                      "polemass_length"]
    state = jax.jit(train.init)(jax.random.key(0))
    p0 = state.env.env_params
    length = np.asarray(p0.length)
    assert length.shape == (8,) and len(set(length.tolist())) == 8
    assert np.all((length >= 0.5 * 0.8) & (length <= 0.5 * 1.2))
    np.testing.assert_allclose(p0.total_mass, p0.masscart + p0.masspole, rtol=1e-6)
    np.testing.assert_allclose(p0.polemass_length, p0.masspole * p0.length, rtol=1e-6)
    assert np.all(np.asarray(p0.gravity) == 9.8)  # not randomized: the base value in every env
    carry, _, _, traj, _ = jax.jit(train._rollout)(state, DR.hparams(), jax.random.key(3))
    ended = np.asarray(jnp.any(traj.terminated | traj.truncated, axis=0))
    assert ended.any() and not ended.all()  # both kinds of env in this rollout (fixed keys)
    changed = np.asarray(carry.env_params.length) != length
    np.testing.assert_array_equal(changed, ended)  # new params exactly for the envs that reset


def test_each_env_steps_with_its_own_params():
    from purejaxppo.core.randomization import cartpole, draw
    from purejaxppo.core.rollout import step_envs
    from purejaxppo.envs import make_env

    env, base = make_env("CartPole-v1")
    params = draw(cartpole(0.5), base, jax.random.split(jax.random.key(0), 4))
    keys = jax.random.split(jax.random.key(1), 4)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, base)
    action = jnp.ones((4,), jnp.int32)
    out = step_envs(env, params, keys, state, action, params_axis=0)
    for i in range(4):
        one = jax.tree.map(lambda x: x[i], params)
        alone = step_envs(env, one, keys[i:i + 1], jax.tree.map(lambda x: x[i:i + 1], state), action[i:i + 1])
        np.testing.assert_allclose(out.obs[i], alone.obs[0], rtol=1e-6)
    assert len({float(x) for x in out.obs[:, 3]}) == 4  # the pole's angular acceleration differs per env


def test_randomization_metrics_and_a_custom_randomizer():
    out = jax.jit(make_train(DR))(jax.random.key(0))
    for name in ("length", "masspole", "masscart"):
        mean, std = np.asarray(out.metrics[f"env_params/{name}_mean"]), np.asarray(out.metrics[f"env_params/{name}_std"])
        assert mean.shape == (2,) and np.all(std > 0)
    assert abs(float(out.metrics["env_params/length_mean"][0]) - 0.5) < 0.1

    def heavier(key, params):  # a user's own: gravity only, on the masked task
        return params.replace(gravity=params.gravity * jax.random.uniform(key, (), minval=1.0, maxval=2.0))

    train = make_train(TINY.replace(env="masked/CartPole-v1", network="gru"), randomize=heavier)
    assert [name for name, _ in train.randomized] == ["gravity"]
    out = jax.jit(train)(jax.random.key(0))
    assert np.all(np.asarray(out.metrics["env_params/gravity_mean"]) > 9.8)


def test_randomization_is_refused_where_it_cannot_apply():
    with pytest.raises(ConfigError, match=r"^make_train: randomize=... was given and PPOConfig.domain_randomization"):
        make_train(DR, randomize=lambda k, p: p)
    with pytest.raises(ConfigError, match=r"^PPOConfig.domain_randomization: 'cartpole' randomizes gymnax CartPole"):
        make_train(DR.replace(env="Pendulum-v1"))
    with pytest.raises(ConfigError, match=r"^PPOConfig.domain_randomization_scale: must be in \(0, 1\)"):
        PPOConfig(domain_randomization_scale=1.0)
    assert make_train(TINY).init(jax.random.key(0)).env.env_params is None  # off: no per-env params


def test_brax_masses_are_randomized_per_env_and_each_env_steps_with_its_own_physics():
    """brax/inverted_pendulum@spring with domain_randomization: brax_mass: every env's System has its own link
    masses, an env steps exactly as that env alone with its System, and the masses appear in the metrics."""
    pytest.importorskip("brax")
    from purejaxppo.core.rollout import step_envs

    config = PPOConfig(env="brax/inverted_pendulum@spring", num_envs=4, num_steps=4, num_minibatches=1,
                       update_epochs=1, total_timesteps=16, actor_hidden=(8,), critic_hidden=(8,),
                       domain_randomization="brax_mass", domain_randomization_scale=0.5)
    train = make_train(config)
    names = [name for name, _ in train.randomized]
    assert any(n.endswith("link.inertia.mass") for n in names), names
    state = jax.jit(train.init)(jax.random.key(0))
    params = state.env.env_params
    mass = np.asarray(params.sys.link.inertia.mass)  # [N, links]
    base = np.asarray(train.env.env.sys.link.inertia.mass)
    assert mass.shape == (4, *base.shape) and len({tuple(m) for m in mass.tolist()}) == 4
    assert np.all(np.abs(mass / base - 1.0) <= 0.5 + 1e-6)
    keys = jax.random.split(jax.random.key(1), 4)
    action = jnp.ones((4, 1), jnp.float32)
    out = jax.jit(lambda p, s: step_envs(train.env, p, keys, s, action, params_axis=0))(params, state.env.env_state)
    one = jax.jit(lambda p, s, k, a: step_envs(train.env, p, k, s, a))
    for i in (0, 3):
        alone = one(jax.tree.map(lambda x: x[i], params), jax.tree.map(lambda x: x[i:i + 1], state.env.env_state),
                    keys[i:i + 1], action[i:i + 1])
        np.testing.assert_allclose(out.obs[i], alone.obs[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out.obs[0], out.obs[3])
    state, metrics = jax.jit(train.update)(state)
    assert any(k.startswith("env_params/") and k.endswith("inertia.mass.1_std") for k in metrics), sorted(metrics)
