import dataclasses
import typing

import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import ConfigError, PPOConfig, make_train
from purejaxppo.core.config import HPARAM_FIELDS, HPARAM_RANGES, coerce_field
from purejaxppo.core.config_fields import Range, config_field, declaration_problems, describe_constraint, kind


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
        (dict(objective=""), "objective", "non-empty objective name"),
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


def test_unknown_objective_is_refused_by_make_train_not_the_config():
    config = PPOConfig(objective="ppo2")  # only a non-empty name here: objectives can be registered later
    with pytest.raises(ConfigError) as e:
        make_train(config)
    msg = str(e.value)
    assert msg.startswith("PPOConfig.objective: 'ppo2' is not one of the registered objectives"), msg
    assert "'clip'" in msg and "register_objective" in msg and "make_train(config, objective=Objective(" in msg


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


# ----------------------------------------------------------------------------- constraints from the declarations

HINTS = typing.get_type_hints(PPOConfig)
NEEDS = {"bool": (), "int": ("low",), "widths": ("low",), "float": ("range",), "str": ("choices", "nonempty")}


@pytest.mark.parametrize("f", dataclasses.fields(PPOConfig), ids=lambda f: f.name)
def test_every_field_declares_a_complete_constraint(f):
    k = kind(HINTS[f.name])
    assert k in NEEDS, f"{f.name}: unsupported annotation {HINTS[f.name]}"
    assert not NEEDS[k] or any(key in f.metadata for key in NEEDS[k]), f"{f.name} lacks {NEEDS[k]}"
    if k == "float":
        assert isinstance(f.metadata["range"], Range)
    assert describe_constraint(HINTS[f.name], f.metadata)


def test_declarations_are_complete_and_give_the_hparam_ranges():
    assert declaration_problems(PPOConfig) == []  # also checked when purejaxppo.core.config is imported
    traced = {f.name for f in dataclasses.fields(PPOConfig) if f.metadata["traced"]}
    assert set(HPARAM_RANGES) == set(HPARAM_FIELDS) == traced


def test_a_field_declared_without_its_constraint_is_caught():
    @dataclasses.dataclass(frozen=True)
    class Incomplete(PPOConfig):
        new_size: int = config_field(8, "A size without low=.")
        new_rate: float = config_field(0.1, "A rate without range=.", traced=True)
        new_name: str = config_field("a", "A name without choices= or nonempty=.")
        plain: int = dataclasses.field(default=3)
        grid: list = config_field(None, "An annotation the checks do not support.")
        flag: bool = config_field(True, "A bool given a constraint that does not apply.", low=1)

    problems = "\n".join(declaration_problems(Incomplete))
    for fragment in ("new_size: a int field needs low=", "new_rate: a float field needs range=",
                     "new_name: a str field needs choices or nonempty=", "plain: declare it with config_field",
                     "grid: unsupported annotation", "flag: ['low'] do not apply to a bool field"):
        assert fragment in problems, problems
    with pytest.raises(TypeError, match="unknown constraint keyword"):
        config_field(1, "A typo in a keyword.", lo=1)


def test_a_new_field_is_validated_from_its_declaration_alone():
    @dataclasses.dataclass(frozen=True)
    class Extended(PPOConfig):
        new_size: int = config_field(8, "A size.", low=1)
        new_mode: str = config_field("a", "A mode.", choices=("a", "b"))

    assert declaration_problems(Extended) == []
    assert Extended(new_size=np.int64(4)).new_size == 4
    with pytest.raises(ConfigError, match=r"^Extended.new_size: must be a positive integer, got 0$"):
        Extended(new_size=0)
    with pytest.raises(ConfigError, match=r"^Extended.new_mode: 'c' is not one of \('a', 'b'\)$"):
        Extended(new_mode="c")


# A value of the wrong type for each kind of field; every field of that kind must refuse it, naming itself.
WRONG_TYPES = {
    "bool": [1, 0.0, "true", None],
    "int": [1.5, "8", True, None],
    "float": ["0.1", True, None, 1 + 2j],
    "str": [3, None, b"x", ("a",)],
    "widths": [(1.5,), (True,), "64", None],
}
WRONG = [(f.name, v) for f in dataclasses.fields(PPOConfig) for v in WRONG_TYPES[kind(HINTS[f.name])]]


@pytest.mark.parametrize("name,value", WRONG, ids=[f"{n}={v!r}" for n, v in WRONG])
def test_the_generic_check_refuses_a_wrong_type_for_every_field(name, value):
    with pytest.raises(ConfigError, match=rf"^PPOConfig.{name}: "):
        PPOConfig(**{name: value})
