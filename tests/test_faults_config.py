"""Bad inputs to the configuration and to make_train fail early, as ValueErrors that name the field.

No training here: every case fails (or passes) before anything is compiled and run.
"""

import dataclasses
import types
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train
from purejaxppo.runs.checkpoints import CheckpointError, unflatten_state
from purejaxppo.core.config import HPARAM_FIELDS, coerce_field, validate_hparams

HINTS = typing.get_type_hints(PPOConfig)
NAN, INF = float("nan"), float("inf")

# The few fields whose valid range includes 0 or negatives (everything else must be > 0).
INT_ZERO_OK = {"log_every", "eval_every"}
FLOAT_ZERO_OK = {"ent_coef", "vf_coef", "kl_beta", "gae_lambda"}
FLOAT_NEGATIVE_OK = {"init_log_std"}
FLOAT_INF_OK = {"clip_eps"}  # inf turns clipping off (exactly)


def _bad_values(name: str) -> list:
    """Values that must be refused for field `name`, chosen by its type."""
    hint = HINTS[name]
    if hint is int:
        return [-1, 1.5, "abc", None, True, NAN, INF, 10**30, [4, 8], np.float32(2.5)] + ([] if name in INT_ZERO_OK else [0])
    if hint is float:
        bad = [NAN, -INF, "abc", None, True, 1e39, 10**400, [0.1, 0.2], np.array([0.1, 0.2])]
        bad += [] if name in FLOAT_INF_OK else [INF]
        if name in FLOAT_NEGATIVE_OK:
            return bad + [100.0]  # std = e^100 is inf in float32
        bad += [-1.0]
        return bad if name in FLOAT_ZERO_OK else bad + [0.0, 1e-50]  # 1e-50 is 0 as float32
    if hint is bool:
        return ["yes", "true", 1, 0, 1.0, None]
    if hint is str:
        # Unknown env ids and objective names are refused by make_train (envs and objectives are registries), and
        # so are observation keys (the env's observation has them or not).
        resolved_later = ("env", "objective", "actor_obs_keys", "critic_obs_keys")
        return [3, None, ""] + ([] if name in resolved_later else ["unknown"])
    assert typing.get_origin(hint) is tuple, hint
    return [[-1], [0], "abc", [1.5], [True], None, [2**31], 64.0]


SWEEP = [(f.name, v) for f in dataclasses.fields(PPOConfig) for v in _bad_values(f.name)]


def _id(name, value) -> str:
    text = repr(value)
    return f"{name}={text if len(text) <= 24 else f'{text[:8]}...({len(text)} chars)'}"


@pytest.mark.parametrize("name,value", SWEEP, ids=[_id(n, v) for n, v in SWEEP])
def test_every_field_refuses_bad_values(name, value):
    with pytest.raises(ValueError) as e:
        PPOConfig(**{name: value})
    assert f"PPOConfig.{name}:" in str(e.value)


def test_sweep_covers_every_field():
    assert {n for n, _ in SWEEP} == {f.name for f in dataclasses.fields(PPOConfig)}


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(PPOConfig)])
def test_every_field_keeps_its_default_through_yaml_types(name):
    # The default survives the trip through from_dict (and so YAML/CLI) unchanged and with its plain type.
    value = getattr(PPOConfig(), name)
    rebuilt = getattr(PPOConfig.from_dict({name: list(value) if isinstance(value, tuple) else value}), name)
    assert rebuilt == value and type(rebuilt) is type(value)


# ----------------------------------------------------------------------------- NumPy / JAX scalars


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("learning_rate", np.float32(1e-3), 0.001),
        ("learning_rate", jnp.asarray(1e-3, jnp.float32), 0.001),
        ("gamma", np.float64(0.9), 0.9),
        ("gamma", np.int64(1), 1.0),
        ("num_envs", np.int64(4), 4),
        ("num_envs", np.int32(4), 4),
        ("num_envs", jnp.asarray(4), 4),
        ("num_envs", np.float64(4.0), 4),
        ("total_timesteps", 1e6, 1_000_000),
        ("normalize_obs", np.bool_(True), True),
        ("normalize_obs", jnp.asarray(True), True),
        ("actor_hidden", np.array([32, 16]), (32, 16)),
        ("actor_hidden", [np.int64(32)], (32,)),
        ("env", np.str_("Acrobot-v1"), "Acrobot-v1"),
    ],
)
def test_numpy_and_jax_scalars_become_plain_python(name, value, expected, tmp_path):
    c = PPOConfig(**{name: value})
    stored = getattr(c, name)
    assert stored == expected and type(stored) is type(expected)
    if isinstance(expected, tuple):
        assert all(type(w) is int for w in stored)
    hash(c)
    path = tmp_path / "c.yaml"
    c.to_yaml(path)  # safe_dump refuses NumPy scalars: this only works with plain values
    assert PPOConfig.from_yaml(path) == c


def test_traced_value_in_a_config_is_refused():
    def build(lr):
        PPOConfig(learning_rate=lr)
        return lr

    with pytest.raises(ValueError, match=r"PPOConfig.learning_rate: got a traced JAX value.*HParams"):
        jax.jit(build)(1e-3)


# ----------------------------------------------------------------------------- ints written as floats


@pytest.mark.parametrize("text,expected", [("1e6", 1_000_000), ("2.5e5", 250_000), ("1_000_000", 1_000_000), ("4096", 4096)])
def test_int_fields_take_whole_numbers_in_float_notation(text, expected, tmp_path):
    assert coerce_field("total_timesteps", text, source="--set") == expected
    path = tmp_path / "c.yaml"
    path.write_text(f"total_timesteps: {text}\n")  # PyYAML reads 1e6 as the string '1e6'
    value = PPOConfig.from_yaml(path).total_timesteps
    assert value == expected and type(value) is int


@pytest.mark.parametrize("text", ["1.5", "nan", "inf", "four"])
def test_int_fields_refuse_non_whole_numbers(text, tmp_path):
    with pytest.raises(ValueError, match=r"--set: field 'num_envs' expects an integer"):
        coerce_field("num_envs", text, source="--set")
    path = tmp_path / "c.yaml"
    path.write_text(f"num_envs: {text}\n")
    with pytest.raises(ValueError, match=rf"{path}: field 'num_envs' expects an integer"):
        PPOConfig.from_yaml(path)


def test_non_whole_number_message_says_so():
    with pytest.raises(ValueError, match=r"field 'num_envs' expects an integer, got 1.5 \(not a whole number\)"):
        coerce_field("num_envs", 1.5)


def test_unparseable_list_string_is_a_type_error_not_a_yaml_crash():
    with pytest.raises(ValueError, match=r"field 'actor_hidden' expects a list of ints"):
        coerce_field("actor_hidden", "[64, 64")


# ----------------------------------------------------------------------------- YAML files


def _yaml(tmp_path, content: bytes):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    return path


def test_empty_yaml_gives_defaults(tmp_path):
    assert PPOConfig.from_yaml(_yaml(tmp_path, b"")) == PPOConfig()
    assert PPOConfig.from_yaml(_yaml(tmp_path, b"# only a comment\n")) == PPOConfig()


def test_utf8_bom_is_fine(tmp_path):
    assert PPOConfig.from_yaml(_yaml(tmp_path, "\ufeffnum_envs: 8\n".encode())).num_envs == 8


@pytest.mark.parametrize("content,kind", [(b"- 1\n- 2\n", "list"), (b"42\n", "int"), (b"0\n", "int"),
                                          (b"hello\n", "str"), (b"false\n", "bool")])
def test_yaml_top_level_must_be_a_mapping(tmp_path, content, kind):
    path = _yaml(tmp_path, content)
    with pytest.raises(ValueError) as e:
        PPOConfig.from_yaml(path)
    assert str(path) in str(e.value) and "must be a mapping of field: value" in str(e.value) and kind in str(e.value)


@pytest.mark.parametrize("content", [b"\xff\xfen\x00u\x00m\x00_\x00", b"env: Cart\xe9\n", b"\x80\n"])
def test_yaml_not_utf8(tmp_path, content):
    path = _yaml(tmp_path, content)
    with pytest.raises(ValueError, match="is not UTF-8 text") as e:
        PPOConfig.from_yaml(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("content,line", [(b"num_envs: 4\n  bad: [1\n", 2), (b"num_envs: 4\nnum_steps: 8\nlr: [1, 2\n", 4),
                                          (b"a: 1\n\tb: 2\n", 2)])
def test_yaml_syntax_error_names_file_and_line(tmp_path, content, line):
    path = _yaml(tmp_path, content)
    with pytest.raises(ValueError, match=rf"invalid YAML at line {line}\b") as e:
        PPOConfig.from_yaml(path)
    assert str(path) in str(e.value)


def test_yaml_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError, match="No such file.*nope.yaml"):
        PPOConfig.from_yaml(path)


@pytest.mark.parametrize("content,field", [(b"num_envs: [4, 8]\n", "num_envs"), (b"learning_rate: [1.0e-3, 3.0e-4]\n", "learning_rate"),
                                           (b"anneal_lr: [true, false]\n", "anneal_lr"), (b"env: [CartPole-v1]\n", "env")])
def test_yaml_grid_for_a_scalar_field_is_refused(tmp_path, content, field):
    path = _yaml(tmp_path, content)
    with pytest.raises(ValueError, match=rf"field '{field}'.*grid/sweep, not a single config") as e:
        PPOConfig.from_yaml(path)
    assert str(path) in str(e.value)


def test_yaml_non_string_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="field names must be strings, got 1"):
        PPOConfig.from_yaml(_yaml(tmp_path, b"1: 2\n"))


@pytest.mark.parametrize("content,field", [(b"learning_rate: .nan\n", "learning_rate"), (b"gamma: .inf\n", "gamma"),
                                           (b"num_envs: -4\n", "num_envs"), (b"clip_eps: -.inf\n", "clip_eps")])
def test_yaml_special_floats_are_refused(tmp_path, content, field):
    with pytest.raises(ValueError, match=rf"PPOConfig.{field}:"):
        PPOConfig.from_yaml(_yaml(tmp_path, content))


# ----------------------------------------------------------------------------- limits of the compiled program


def test_large_num_envs_alone_is_not_refused():
    # Memory is checked elsewhere; the config only guards the int32 counters.
    c = PPOConfig(num_envs=10**9, num_steps=1, total_timesteps=10**9)
    assert c.batch_size == 10**9


def test_batch_must_fit_int32():
    with pytest.raises(ValueError, match=r"PPOConfig.num_envs: num_envs \* num_steps = .* must be < 2\*\*31"):
        PPOConfig(num_envs=2**24, num_steps=2**7, total_timesteps=2**40)
    PPOConfig(num_envs=2**23, num_steps=2**7, num_minibatches=1, total_timesteps=2**30)  # 2**30 fits


def test_num_updates_must_fit_int32():
    base = dict(num_envs=1, num_steps=4, num_minibatches=1)
    assert PPOConfig(total_timesteps=(2**31 - 1) * 4, **base).num_updates == 2**31 - 1
    with pytest.raises(ValueError, match=r"PPOConfig.total_timesteps: gives num_updates = .* must be < 2\*\*31"):
        PPOConfig(total_timesteps=2**31 * 4, **base)


def test_total_timesteps_must_be_float_exact():
    with pytest.raises(ValueError, match=r"PPOConfig.total_timesteps: must be < 2\*\*53"):
        PPOConfig(total_timesteps=2**53)


@pytest.mark.parametrize("name", ["num_envs", "num_steps", "update_epochs", "eval_episodes", "log_every", "eval_every"])
def test_int_fields_must_fit_int32(name):
    with pytest.raises(ValueError, match=rf"PPOConfig.{name}: must be < 2\*\*31"):
        PPOConfig(**{name: 2**31})


def test_float32_underflow_and_overflow_are_explained():
    with pytest.raises(ValueError, match=r"PPOConfig.adam_eps: must be > 0, got 1e-50 \(as float32 it is 0.0"):
        PPOConfig(adam_eps=1e-50)
    with pytest.raises(ValueError, match=r"PPOConfig.max_grad_norm: 1e\+39 overflows float32"):
        PPOConfig(max_grad_norm=1e39)


# ----------------------------------------------------------------------------- adaptive-KL bounds


def test_kl_beta_bounds():
    c = PPOConfig()
    assert (c.kl_beta_min, c.kl_beta_max) == (1e-4, 1e4)
    with pytest.raises(ValueError, match=r"PPOConfig.kl_beta_min: kl_beta_min = 10.0 must be <= kl_beta_max = 1.0"):
        PPOConfig(kl_beta_min=10.0, kl_beta_max=1.0)
    with pytest.raises(ValueError, match=r"PPOConfig.kl_beta: the initial kl_beta = 0.0 must lie within \[kl_beta_min, kl_beta_max\]"):
        PPOConfig(objective="kl_adaptive", kl_beta=0.0)
    with pytest.raises(ValueError, match=r"PPOConfig.kl_beta: .*kl_adaptive"):
        PPOConfig(objective="kl_adaptive", kl_beta=1e5)
    assert PPOConfig(objective="kl_fixed", kl_beta=0.0).kl_beta == 0.0  # a constant beta of 0 is legitimate
    assert PPOConfig(objective="kl_adaptive", kl_beta=1e-4).kl_beta == 1e-4  # bounds are inclusive


# ----------------------------------------------------------------------------- validate_hparams

HP = PPOConfig().hparams()


def _grid(name, values):
    return jax.vmap(lambda v: HP.replace(**{name: v}))(jnp.asarray(values, jnp.float32))


def test_validate_hparams_passes_good_values_through():
    assert validate_hparams(HP) is HP
    grid = _grid("learning_rate", [1e-4, 3e-4, 1e-3])
    assert validate_hparams(grid) is grid
    assert set(HPARAM_FIELDS) >= {"kl_beta_min", "kl_beta_max"}


@pytest.mark.parametrize("name,value", [("learning_rate", -1.0), ("learning_rate", 0.0), ("gamma", 1.5), ("gae_lambda", -0.1),
                                        ("ent_coef", -0.01), ("adam_eps", NAN), ("vf_clip_eps", INF), ("kl_beta_min", 0.0)])
def test_validate_hparams_scalar(name, value):
    with pytest.raises(ValueError, match=rf"^HParams.{name}: must be finite and .*, got {value}$"):
        validate_hparams(HP.replace(**{name: jnp.asarray(value, jnp.float32)}))


def test_validate_hparams_batched_names_the_index():
    with pytest.raises(ValueError, match=r"HParams.learning_rate: .*got nan at index \(1,\) \(2 of 4 entries\)"):
        validate_hparams(_grid("learning_rate", [1e-3, NAN, 3e-4, -1.0]))
    grid = jax.vmap(jax.vmap(lambda a, b: HP.replace(clip_eps=a, gamma=b), (None, 0)), (0, None))(
        jnp.array([0.1, 0.2]), jnp.array([0.9, 0.99, 2.0]))
    with pytest.raises(ValueError, match=r"HParams.gamma: .*got 2.0 at index \(0, 2\) \(2 of 6 entries\)"):
        validate_hparams(grid)


def test_validate_hparams_dtype_and_type():
    with pytest.raises(ValueError, match=r"HParams.gamma: must be a float array .*dtype int32"):
        validate_hparams(HP.replace(gamma=jnp.asarray(1, jnp.int32)))
    with pytest.raises(ValueError, match=r"HParams.gamma: must be a float array .*NoneType"):
        validate_hparams(HP.replace(gamma=None))
    with pytest.raises(ValueError, match=r"validate_hparams: expected an HParams"):
        validate_hparams(PPOConfig())
    assert validate_hparams(HP.replace(gamma=0.5)).gamma == 0.5  # a Python float is a float


def test_validate_hparams_kl_beta_bounds():
    with pytest.raises(ValueError, match=r"HParams.kl_beta_min: must be <= kl_beta_max, got kl_beta_min = 5.0 > kl_beta_max = 2.0"):
        validate_hparams(HP.replace(kl_beta_min=jnp.float32(5.0), kl_beta_max=jnp.float32(2.0)))
    low_beta = _grid("kl_beta", [1.0, 0.0])
    validate_hparams(low_beta, objective="kl_fixed")
    with pytest.raises(ValueError, match=r"HParams.kl_beta: .*kl_adaptive.*got kl_beta = 0.0 outside \[1e-04, 10000.0\] at index \(1,\)"):
        validate_hparams(low_beta, objective="kl_adaptive")
    with pytest.raises(ValueError, match="do not broadcast"):
        validate_hparams(HP.replace(kl_beta_min=jnp.ones(2) * 1e-4, kl_beta_max=jnp.ones(3)))


def test_validate_hparams_skips_tracers():
    bad = HP.replace(learning_rate=jnp.asarray(-1.0))
    seen = []

    def f(hp):
        seen.append(type(hp.learning_rate).__name__)
        return validate_hparams(hp).learning_rate * 2

    assert float(jax.jit(f)(bad)) == -2.0  # traced: nothing can be checked, no error
    assert float(jax.vmap(f)(_grid("learning_rate", [-1.0, -2.0]))[0]) == -2.0
    assert all("Tracer" in s for s in seen), seen


# ----------------------------------------------------------------------------- make_train arguments

TINY = PPOConfig(num_envs=2, num_steps=4, num_minibatches=1, update_epochs=1, total_timesteps=8)


def test_make_train_checks_concrete_hparams():
    train = make_train(TINY)
    bad = TINY.hparams().replace(learning_rate=jnp.asarray(-1.0))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="HParams.learning_rate"):
        train(key, bad)
    with pytest.raises(ValueError, match="HParams.learning_rate"):
        train.init(key, bad)
    state = jax.eval_shape(train.init, key)
    with pytest.raises(ValueError, match="HParams.learning_rate"):
        train.update(state, bad)
    jax.eval_shape(train, key, bad)  # traced: unchecked (the documented limit)


def test_make_train_kl_adaptive_checks_beta_bounds():
    train = make_train(TINY.replace(objective="kl_adaptive"))
    with pytest.raises(ValueError, match="HParams.kl_beta: .*kl_adaptive"):
        train.init(jax.random.key(0), TINY.hparams().replace(kl_beta=jnp.float32(0.0)))


def test_make_train_accepts_an_env_id_string():
    train = make_train(TINY, env="Acrobot-v1")
    assert train.env.name == "Acrobot-v1" and train.action_spec.num_actions == 3
    with pytest.raises(ValueError, match=r"unknown environment 'CartPol-v1'.*'CartPole-v1'"):
        make_train(TINY, env="CartPol-v1")


@pytest.mark.parametrize("env", [3, object(), {"name": "CartPole-v1"}])
def test_make_train_refuses_a_non_env(env):
    with pytest.raises(ValueError, match=r"make_train: env must be an environment object with the gymnax API .*'CartPole-v1'"):
        make_train(TINY, env=env)


def test_make_train_names_mismatched_env_params():
    import gymnax

    cartpole, _ = gymnax.make("CartPole-v1")
    _, pendulum_params = gymnax.make("Pendulum-v1")
    with pytest.raises(ValueError, match=r"make_train: env_params do not fit env CartPole-v1: AttributeError: .*env.default_params"):
        make_train(TINY, env=cartpole, env_params=pendulum_params)
    with pytest.raises(ValueError, match=r"env_params do not fit env CartPole-v1"):
        make_train(TINY, env_params=pendulum_params)  # env from config.env


class _ResetUsesParams:
    """A duck-typed env whose spaces ignore the params but whose reset reads params.start."""

    name = "ResetUsesParams"
    default_params = None

    def observation_space(self, params):
        from gymnax.environments import spaces

        return spaces.Box(-1.0, 1.0, (1,))

    def action_space(self, params):
        from gymnax.environments import spaces

        return spaces.Discrete(2)

    def reset(self, key, params):
        return jnp.full((1,), params.start), None

    def step(self, key, state, action, params):
        raise NotImplementedError


def test_make_train_traces_reset_to_check_given_params():
    with pytest.raises(ValueError, match=r"env_params do not fit env ResetUsesParams: AttributeError: .*start"):
        make_train(TINY, env=_ResetUsesParams(), env_params=object())
    with pytest.raises(ValueError, match=r"env_params do not fit env ResetUsesParams: TypeError"):
        make_train(TINY, env=_ResetUsesParams(), env_params=types.SimpleNamespace(start="abc"))


def test_make_train_env_without_default_params_asks_for_them():
    class NoDefaults(_ResetUsesParams):
        default_params = property(lambda self: self.missing)

    with pytest.raises(ValueError, match=r"env ResetUsesParams has no default_params; pass env_params"):
        make_train(TINY, env=NoDefaults())


@pytest.mark.parametrize("factory", [3, "mlp", object()])
def test_make_train_refuses_a_non_callable_network_factory(factory):
    with pytest.raises(ValueError, match=r"make_train: network_factory must be callable"):
        make_train(TINY, network_factory=factory)


def test_config_must_be_a_ppoconfig():
    with pytest.raises(ValueError, match="make_train: config must be a PPOConfig, got dict"):
        make_train({"env": "CartPole-v1"})


# ----------------------------------------------------------------------------- checkpoint mismatch wording


def test_checkpoint_mismatch_message_reads_correctly():
    template = {"a": jax.ShapeDtypeStruct((1,), jnp.float32), "b": jax.ShapeDtypeStruct((1,), jnp.float32)}
    leaves = {"b": np.zeros(1, np.float32), "c": np.zeros(1, np.float32)}
    with pytest.raises(CheckpointError) as e:
        unflatten_state(template, leaves, {}, source="ck")
    msg = str(e.value)
    assert "it is missing 1 leaf/leaves (e.g. 'a') and has 1 unexpected leaf/leaves (e.g. 'c')" in msg, msg
    with pytest.raises(CheckpointError, match=r"config: it has 1 unexpected leaf/leaves \(e.g. 'c'\)$"):
        unflatten_state(template, dict(leaves, a=leaves["b"]), {}, source="ck")
