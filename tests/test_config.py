import dataclasses

import jax.numpy as jnp
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.core.config import HPARAM_FIELDS, coerce_field


def test_defaults_and_derived_sizes():
    c = PPOConfig(num_envs=4, num_steps=128, num_minibatches=4, total_timesteps=500_000)
    assert c.batch_size == 512 and c.minibatch_size == 128 and c.num_updates == 976
    assert hash(c) == hash(PPOConfig(num_envs=4, num_steps=128, num_minibatches=4, total_timesteps=500_000))
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.num_envs = 8  # type: ignore[misc]


def test_hparams_are_float32_scalars():
    hp = PPOConfig(learning_rate=1e-3).hparams()
    for name in HPARAM_FIELDS:
        v = getattr(hp, name)
        assert v.dtype == jnp.float32 and v.shape == ()
    assert float(hp.learning_rate) == pytest.approx(1e-3)
    assert float(hp.replace(gamma=jnp.asarray(0.5)).gamma) == 0.5


def test_every_field_is_documented():
    docs = PPOConfig.describe()
    assert set(docs) == {f.name for f in dataclasses.fields(PPOConfig)}
    assert all(len(d) > 10 for d in docs.values())
    assert set(HPARAM_FIELDS) == {n for n, d in docs.items() if d.endswith("(traced)")}


def test_replace_and_dict_roundtrip(tmp_path):
    c = PPOConfig().replace(num_envs=8, actor_hidden=(32,))
    assert PPOConfig.from_dict(c.to_dict()) == c
    path = tmp_path / "c.yaml"
    c.to_yaml(path)
    assert PPOConfig.from_yaml(path) == c


@pytest.mark.parametrize(
    "kwargs,field,fragment",
    [
        (dict(num_envs=4, num_steps=10, num_minibatches=3), "num_minibatches", "divisible"),
        (dict(num_envs=0), "num_envs", "positive"),
        (dict(num_steps=-1), "num_steps", "positive"),
        (dict(update_epochs=0), "update_epochs", "positive"),
        (dict(gamma=1.5), "gamma", "(0, 1]"),
        (dict(gamma=0.0), "gamma", "(0, 1]"),
        (dict(gae_lambda=-0.1), "gae_lambda", "[0, 1]"),
        (dict(learning_rate=0.0), "learning_rate", "> 0"),
        (dict(clip_eps=-0.2), "clip_eps", "> 0"),
        (dict(ent_coef=-1.0), "ent_coef", ">= 0"),
        (dict(objective="ppo2"), "objective", "clip"),
        (dict(activation="swish"), "activation", "tanh"),
        (dict(total_timesteps=100), "total_timesteps", "smaller than one update"),
        (dict(actor_hidden=(64, 0)), "actor_hidden", "positive ints"),
        (dict(learning_rate=float("nan")), "learning_rate", "finite"),
        (dict(anneal_lr="yes"), "anneal_lr", "true or false"),
    ],
)
def test_invalid_config_names_field(kwargs, field, fragment):
    with pytest.raises(ValueError) as e:
        PPOConfig(**kwargs)
    assert f"PPOConfig.{field}" in str(e.value) and fragment in str(e.value)


def test_unknown_env_lists_close_matches():
    with pytest.raises(ValueError, match=r"PPOConfig.env: unknown environment 'CartPol-v1'.*'CartPole-v1'"):
        make_train(PPOConfig(env="CartPol-v1"))


def test_yaml_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("env: CartPole-v1\nlearning_rat: 0.001\n")
    with pytest.raises(ValueError, match=r"unknown config field 'learning_rat'.*'learning_rate'"):
        PPOConfig.from_yaml(path)


def test_yaml_wrong_type_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("num_envs: four\n")
    with pytest.raises(ValueError, match=r"field 'num_envs' expects an integer"):
        PPOConfig.from_yaml(path)


def test_replace_unknown_field():
    with pytest.raises(ValueError, match="unknown config field 'lr'"):
        PPOConfig().replace(lr=1e-3)


def test_coerce_field_parses_strings():
    assert coerce_field("learning_rate", "3e-4") == pytest.approx(3e-4)
    assert coerce_field("num_envs", "64") == 64
    assert coerce_field("anneal_lr", "false") is False
    assert coerce_field("actor_hidden", "[32, 32]") == (32, 32)
    assert coerce_field("env", "Acrobot-v1") == "Acrobot-v1"
    with pytest.raises(ValueError, match="expects true/false"):
        coerce_field("anneal_lr", "maybe")


def test_shipped_configs_load():
    import pathlib

    paths = sorted(pathlib.Path(__file__).resolve().parent.parent.joinpath("configs").glob("*.yaml"))
    assert paths, "configs/ is empty"
    for p in paths:
        PPOConfig.from_yaml(p)
