"""Brax support (purejaxppo.envs.brax, `env: brax/<name>[@<backend>]`, configs/ for the Brax five).

The tests that need brax skip when it is absent (`pip install -e '.[brax]'`);
the config, name-parsing, missing-brax and adapter-logic tests (the last on a
small fake Brax env) run everywhere.
"""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from purejaxppo import PPOConfig, make_train
from purejaxppo.envs.brax import BraxEnv, BraxEnvParams, parse_brax_name
from purejaxppo.envs import action_spec_from_space, make_env

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"
BRAX_FIVE = ("ant", "halfcheetah", "hopper", "humanoid", "walker2d")
# The cheapest physics env/backend to compile on CPU that was measured (inverted_pendulum
# with the 'spring' pipeline: ~15 s for reset + vmapped step on one core; hopper@positional ~45 s).
CHEAP = "brax/inverted_pendulum@spring"


# ---------------------------------------------------------------- no brax needed
@pytest.mark.parametrize("name", BRAX_FIVE)
def test_brax_configs_load(name):
    cfg = PPOConfig.from_yaml(CONFIGS / f"{name}.yaml")
    env_name, _ = parse_brax_name(cfg.env)
    assert env_name == name
    assert cfg.total_timesteps >= 10_000_000 and cfg.num_updates > 0
    assert cfg.normalize_obs
    header = (CONFIGS / f"{name}.yaml").read_text().splitlines()[0]
    assert header.startswith("#") and "accelerator" in (CONFIGS / f"{name}.yaml").read_text()


def test_parse_brax_name():
    assert parse_brax_name("brax/ant") == ("ant", None)
    assert parse_brax_name("brax/hopper@positional") == ("hopper", "positional")
    for bad in ("brax/", "brax/@spring", "brax/ant@"):
        with pytest.raises(ValueError, match="brax/<name>"):
            parse_brax_name(bad)


def test_missing_brax_names_the_field_and_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "brax", None)  # makes `import brax` raise ImportError
    monkeypatch.setitem(sys.modules, "brax.envs", None)
    with pytest.raises(ImportError, match=r"PPOConfig\.env.*pip install -e '\.\[brax\]'"):
        make_env("brax/ant")


def test_gymnax_names_unaffected():
    env, params = make_env("Pendulum-v1")
    assert env.name == "Pendulum-v1" and hasattr(params, "max_steps_in_episode")
    with pytest.raises(ValueError, match="unknown environment 'brax-ant'"):
        make_env("brax-ant")


@struct.dataclass
class _FakeState:  # the fields of brax.envs.State that BraxEnv reads
    pipeline_state: jax.Array
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    metrics: dict = struct.field(default_factory=dict)
    info: dict = struct.field(default_factory=dict)


class _FakeBraxEnv:
    """x starts in [0, 0.1) and moves by action[0] per step; done (float, like Brax) once x >= 3."""

    action_size = 2

    def reset(self, rng):
        x = jax.random.uniform(rng, (), minval=0.0, maxval=0.1)
        return _FakeState(x, jnp.stack([x, 0.0 * x, 1.0]), jnp.zeros(()), jnp.zeros(()))

    def step(self, state, action):
        x = state.pipeline_state + action[0]
        return _FakeState(x, jnp.stack([x, state.obs[1] + 1.0, 1.0]), x, (x >= 3.0).astype(jnp.float32))


def _run(env, params, action, steps, num_envs=3, seed=0):
    """Roll `steps` vmapped steps with a constant action; returns stacked (obs, reward, term, trunc, final_obs)."""
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    @jax.jit
    def rollout(key):
        k0, k1 = jax.random.split(key)
        obs0, state = reset(jax.random.split(k0, num_envs), params)
        acts = jnp.broadcast_to(jnp.asarray(action, jnp.float32), (num_envs, env.num_actions))

        def body(state, k):
            obs, state, reward, term, trunc, info = step(jax.random.split(k, num_envs), state, acts, params)
            return state, (obs, reward, term, trunc, info["final_observation"])

        _, out = jax.lax.scan(body, state, jax.random.split(k1, steps))
        return obs0, out

    return rollout(jax.random.key(seed))


def test_adapter_logic_on_fake_env():
    env = BraxEnv(_FakeBraxEnv(), name="fake")
    assert env.observation_space(env.default_params).shape == (3,)
    spec = action_spec_from_space(env.action_space(env.default_params))
    assert not spec.discrete and spec.shape == (2,) and spec.low == (-1.0, -1.0) and spec.high == (1.0, 1.0)

    # Never terminates: truncated exactly every 5 steps, the counter restarts after each reset.
    obs0, (obs, reward, term, trunc, final) = _run(env, BraxEnvParams(max_steps_in_episode=5), [0.0, 0.0], 12)
    t = np.arange(1, 13)
    assert not np.asarray(term).any()
    np.testing.assert_array_equal(np.asarray(trunc), np.broadcast_to((t % 5 == 0)[:, None], (12, 3)))
    # final_observation is the pre-reset obs (step counter 5 in obs[1]); the returned obs is a fresh reset.
    np.testing.assert_allclose(np.asarray(final)[4, :, 1], 5.0)
    np.testing.assert_allclose(np.asarray(obs)[4, :, 1], 0.0)
    np.testing.assert_allclose(np.asarray(final)[3], np.asarray(obs)[3])  # no reset: the same
    assert obs.dtype == jnp.float32 and reward.dtype == jnp.float32 and trunc.dtype == jnp.bool_

    # Terminates at step 3 (x >= 3), before the limit of 5: terminated only.
    _, (_, _, term, trunc, _) = _run(env, BraxEnvParams(max_steps_in_episode=5), [1.0, 0.0], 8)
    np.testing.assert_array_equal(np.asarray(term)[:, 0], [0, 0, 1, 0, 0, 1, 0, 0])
    assert not np.asarray(trunc).any()

    # Termination on the limit step itself counts as termination, never as both.
    _, (_, _, term, trunc, _) = _run(env, BraxEnvParams(max_steps_in_episode=3), [1.0, 0.0], 6)
    assert np.asarray(term).all(axis=1).tolist() == [False, False, True, False, False, True]
    assert not np.asarray(trunc).any()


# ---------------------------------------------------------------- brax needed
@pytest.fixture(scope="module")
def brax_envs():
    pytest.importorskip("brax")
    from brax import envs

    return envs


def test_unknown_brax_name_lists_registry(brax_envs):
    with pytest.raises(ValueError, match=r"unknown Brax environment 'antt'.*'brax/ant'.*Registered Brax environments:.*hopper"):
        make_env("brax/antt")
    with pytest.raises(ValueError, match="could not make Brax env"):
        make_env("brax/hopper@nosuchbackend")


def test_adapter_on_brax_env(brax_envs):
    # Brax's own unit-test env 'fast' (a point pushed along x; never terminates) compiles in
    # about a second; termination is covered by the fake env above and by the training test below.
    env, params = make_env("brax/fast")
    assert isinstance(env, BraxEnv) and params.max_steps_in_episode == 1000
    assert env.observation_space(params).shape == (2,) and env.num_actions == 1

    obs0, (obs, reward, term, trunc, final) = _run(env, BraxEnvParams(max_steps_in_episode=5), [1.0], 12, num_envs=2)
    term, trunc, obs, final = np.asarray(term), np.asarray(trunc), np.asarray(obs), np.asarray(final)
    assert obs0.shape == (2, 2) and obs.shape == (12, 2, 2) and final.shape == obs.shape
    assert obs.dtype == np.float32 and reward.shape == (12, 2) and reward.dtype == jnp.float32
    assert term.dtype == np.bool_ and trunc.dtype == np.bool_
    assert not term.any() and not (term & trunc).any()
    np.testing.assert_array_equal(trunc, np.broadcast_to((np.arange(1, 13) % 5 == 0)[:, None], (12, 2)))
    # On the boundary step the returned obs is the fresh reset (zeros), the final observation is not.
    for i in (4, 9):
        np.testing.assert_array_equal(obs[i], np.asarray(obs0))
        assert np.all(final[i] > 0)
    np.testing.assert_array_equal(final[:4], obs[:4])  # no reset: the same
    np.testing.assert_allclose(final[9], final[4], rtol=1e-6)  # each episode restarts from the same state


def test_make_train_on_brax_env(brax_envs):
    # A physics env on the cheapest pipeline to compile that was measured on CPU ('spring').
    env, _ = make_env(CHEAP)
    cfg = PPOConfig(
        env=CHEAP, num_envs=4, num_steps=8, total_timesteps=4 * 8 * 2, num_minibatches=2, update_epochs=1,
        actor_hidden=(16,), critic_hidden=(16,), action_handling="tanh", normalize_obs=True, normalize_reward=True,
    )
    # A 5-step time limit, so that every env finishes an episode in each 8-step rollout.
    out = jax.jit(make_train(cfg, env=env, env_params=BraxEnvParams(max_steps_in_episode=5)))(jax.random.key(0))
    assert int(out.state.update_step) == 2
    m = {k: np.asarray(v) for k, v in out.metrics.items()}
    for name, v in m.items():
        assert v.shape == (2,), name
        assert np.all(np.isfinite(v)), name
    assert out.state.env.obs.shape == (4, 4)
    assert np.all(m["episodes_completed"] >= 4)
    assert np.all((m["episode_length"] >= 1) & (m["episode_length"] <= 5))
