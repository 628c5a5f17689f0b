"""PureJaxRL's side of benchmarks/compare.py: its own `ppo.py` / `ppo_rnn.py`, imported from the user's checkout.

Nothing of PureJaxRL's code is in this repository: compare.py is given the path of a checkout
(`--purejaxrl PATH`, e.g. a `git clone https://github.com/luchris429/purejaxrl`), and its worker process
(`benchmarks/_compare_worker.py purejaxrl PATH`, run by the PureJaxRL virtualenv's python) imports
`PATH/purejaxrl/ppo.py` (CartPole, MinAtar: its MLP) or `PATH/purejaxrl/ppo_rnn.py` (the GRU) and calls
their `make_train(config)`. What this module adds around them, without changing any of their code:

* **gymnax 1.0 adapter.** PureJaxRL's wrappers unpack gymnax's `step` as 5 values; gymnax >= 1.0 returns
  6 (terminated and truncated apart). The `gymnax` name inside the imported module is replaced by a
  namespace whose `make(name)` returns the env wrapped in compare's `FiveTupleEnv` (done = terminated |
  truncated), or `MaskedFiveTupleEnv` for `masked/<id>` (the positions only, as purejaxppo's masked tasks).
* **Import stubs for brax and navix.** Its `wrappers.py` imports brax and navix at the top, for its Brax
  and Navix wrappers only; neither is used by the gymnax tasks timed here. When they are not installed
  (the PureJaxRL virtualenv compare.py creates has only jax, flax, optax, gymnax and distrax), empty
  placeholder modules are put in `sys.modules` so the import succeeds; touching any of their names raises.
  distrax itself is the real one (with tfp-nightly it imports under jax 0.10.2; no shim).
* **flax GRUCell, old API (ppo_rnn.py only).** `ppo_rnn.py` is written against flax < 0.7.5: `nn.GRUCell()`
  with no `features` (then taken from the carry) and the static `nn.GRUCell.initialize_carry(rng, batch_dims,
  size)`. With today's flax (features required, an instance `initialize_carry(rng, input_shape)`) neither
  works, so the `nn` name inside the imported module is replaced by a view of `flax.linen` whose `GRUCell`
  is `LegacyGRUCell`: constructing it builds today's `flax.linen.GRUCell(features=128)` (the size ppo_rnn.py
  fixes; the same module, parameter names and initializers), and its static `initialize_carry` returns the
  zeros the old one returned. Every other `nn` name is flax.linen's own.

Its networks are fixed in its code: `ppo.py`'s ActorCritic is a 64-64 MLP (activation from the config),
`ppo_rnn.py`'s is Dense 128 relu -> GRU 128 -> 128-unit relu heads. A spec asking for anything else is
refused rather than silently run with different sizes.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import jax
import numpy as np
from _compiled import compile_seeds

MLP_HIDDEN = [64, 64]  # ppo.py's ActorCritic
RNN_SIZE = 128  # ppo_rnn.py: embedding, GRU and head widths
STUBBED = ("brax", "brax.envs", "brax.envs.wrappers", "brax.envs.wrappers.training", "navix")


class _Placeholder(types.ModuleType):
    """A module that imports but has nothing: any attribute other than the from-import probes raises."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in ("envs", "wrappers", "training", "EpisodeWrapper", "AutoResetWrapper"):
            return self  # `from brax import envs`, `from brax.envs.wrappers.training import EpisodeWrapper, ...`
        raise ImportError(f"{self.__name__}.{name}: a placeholder of benchmarks/_purejaxrl_worker.py (not installed)")


def stub_missing_imports() -> list[str]:
    """Placeholder modules for brax / navix when they do not import; returns the names stubbed."""
    stubbed = []
    for top in ("brax", "navix"):
        try:
            importlib.import_module(top)
        except Exception:  # not installed, or installed but not importable under this jax
            for name in STUBBED:
                if name.split(".")[0] == top:
                    sys.modules[name] = _Placeholder(name)
                    stubbed.append(name)
    return stubbed


class LegacyGRUCell:
    """flax < 0.7.5's `nn.GRUCell` API on today's flax: `LegacyGRUCell()` is `flax.linen.GRUCell(features=128)`."""

    def __new__(cls, *args, **kwargs):
        import flax.linen

        kwargs.setdefault("features", RNN_SIZE)
        return flax.linen.GRUCell(*args, **kwargs)

    @staticmethod
    def initialize_carry(rng, batch_dims, size):
        """The old static form: zeros `[*batch_dims, size]` (its default carry init); `rng` is unused."""
        import jax.numpy as jnp

        del rng
        return jnp.zeros((*batch_dims, size))


class _LinenView(types.ModuleType):
    """`flax.linen` with `GRUCell` replaced by `LegacyGRUCell`; every other name is flax.linen's own."""

    def __getattr__(self, name):
        import flax.linen

        if name == "GRUCell":
            return LegacyGRUCell
        return getattr(flax.linen, name)


def needs_legacy_gru() -> bool:
    """True when this flax's GRUCell requires `features` (flax >= 0.7.5), which ppo_rnn.py does not pass."""
    import dataclasses

    import flax.linen

    field = {f.name: f for f in dataclasses.fields(flax.linen.GRUCell)}.get("features")
    return field is not None and field.default is dataclasses.MISSING


def load_module(checkout: str, name: str, adapt):
    """Import `checkout/purejaxrl/<name>.py` with `gymnax.make` routed through `adapt(env, env_name)`."""
    src = Path(checkout).expanduser().resolve() / "purejaxrl"
    if not (src / f"{name}.py").is_file():
        raise FileNotFoundError(f"--purejaxrl {checkout}: no purejaxrl/{name}.py there (pass a PureJaxRL checkout)")
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    stub_missing_imports()
    module = importlib.import_module(name)
    import gymnax

    def make(env_name, **kwargs):
        env, params = gymnax.make(env_name, **kwargs)
        return adapt(env), params

    module.gymnax = types.SimpleNamespace(make=make)  # their make_train calls gymnax.make(config["ENV_NAME"])
    if name == "ppo_rnn" and needs_legacy_gru():
        module.nn = _LinenView("flax.linen")  # looked up when its modules run, after the class bodies were built
    return module


def purejaxrl_config(spec: dict) -> tuple[str, dict, tuple[int, ...] | None]:
    """compare.py's spec -> (module name, PureJaxRL config dict, observation entries kept or None)."""
    env = spec["env"]
    keep = None
    if env.startswith("masked/"):
        env, keep = env[len("masked/") :], tuple(spec["mask"])
    if spec.get("network", "mlp") == "gru":
        module = "ppo_rnn"
        want = dict(hidden=[RNN_SIZE], rnn_torso=[RNN_SIZE], rnn_size=RNN_SIZE, activation="relu")
    else:
        module = "ppo"
        want = dict(hidden=MLP_HIDDEN)
    for key, value in want.items():
        if spec.get(key) != value:
            raise ValueError(
                f"PureJaxRL's {module}.py has {key}={value} fixed in its code; this spec has {key}={spec.get(key)!r}"
            )
    for key in ("normalize_obs", "normalize_reward"):
        if spec.get(key):
            raise ValueError(f"PureJaxRL's {module}.py has no {key}")
    config = {
        "LR": spec["lr"],
        "NUM_ENVS": spec["num_envs"],
        "NUM_STEPS": spec["num_steps"],
        "TOTAL_TIMESTEPS": spec["total_timesteps"],
        "UPDATE_EPOCHS": spec["epochs"],
        "NUM_MINIBATCHES": spec["minibatches"],
        "GAMMA": spec["gamma"],
        "GAE_LAMBDA": spec["gae_lambda"],
        "CLIP_EPS": spec["clip_eps"],
        "ENT_COEF": spec["ent_coef"],
        "VF_COEF": spec["vf_coef"],
        "MAX_GRAD_NORM": spec["max_grad_norm"],
        "ACTIVATION": spec["activation"],
        "ENV_NAME": env,
        "ANNEAL_LR": bool(spec.get("anneal_lr", False)),
        "DEBUG": False,
    }
    return module, config, keep


def training_return(info: dict) -> float:
    """Mean return of the episodes that ended in the last 10% of updates, per seed, then over seeds.

    info: PureJaxRL's LogWrapper metrics, `returned_episode_returns` and `returned_episode` of shape
    `[U, T, N]` or `[S, U, T, N]`. NaN when no episode ended there.
    """
    r = np.asarray(info["returned_episode_returns"], dtype=np.float64)
    d = np.asarray(info["returned_episode"], dtype=np.float64)
    if r.ndim == 3:
        r, d = r[None], d[None]
    tail = max(1, r.shape[1] // 10)
    r, d = r[:, -tail:], d[:, -tail:]
    ended = d.sum(axis=(1, 2, 3))
    per_seed = (r * d).sum(axis=(1, 2, 3)) / np.maximum(ended, 1.0)
    per_seed = np.where(ended > 0, per_seed, np.nan)
    return float(np.mean(per_seed))


def setup_purejaxrl(spec: dict, seeds: int, checkout: str, adapters: dict):
    """Compile PureJaxRL's train for `seeds` seeds (vmapped when > 1): (compile_s, run, final_return, info)."""
    module_name, config, keep = purejaxrl_config(spec)
    adapt = adapters["five_tuple"] if keep is None else (lambda env: adapters["masked"](env, keep))
    module = load_module(checkout, module_name, adapt)
    train = module.make_train(config)
    keys = jax.random.split(jax.random.PRNGKey(spec.get("seed", 0)), seeds)  # raw uint32 keys, as PureJaxRL's
    run, _, compile_s = compile_seeds(train, keys, seeds)

    def final_return(out):
        return training_return(out["metrics"] if "metrics" in out else out["metric"])

    steps = config["NUM_UPDATES"] * config["NUM_STEPS"] * config["NUM_ENVS"]  # make_train wrote NUM_UPDATES
    return (
        compile_s,
        run,
        final_return,
        dict(steps_per_seed=steps, num_envs=config["NUM_ENVS"], num_steps=config["NUM_STEPS"]),
    )
