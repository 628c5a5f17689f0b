"""Worker process for benchmarks/compare.py (one per implementation, kept alive across runs).

    python benchmarks/_compare_worker.py purejaxppo | rejax | purejaxrl <checkout>

Runs under our virtualenv (impl=purejaxppo) or a peer's own virtualenv (rejax, purejaxrl), so no peer
and none of its dependencies enter ours. Protocol: one JSON object per line on stdin, one JSON reply per
line on stdout. A worker holds any number of compiled programs, each under its `tag`:

  {"cmd": "setup", "tag": T, "spec": {...}, "seeds": S}  -> {"compile_s", "steps_per_seed", "num_envs", "num_steps"}
  {"cmd": "run", "tag": T, "returns": bool}              -> {"seconds": ..., "final_return": ... or null}
  {"cmd": "quit"}

`spec` holds the shared hyperparameters (see compare.py), or for our own rows a YAML config of this
repository (`config`) with a budget and `conv_impl`. Only the compiled program's execution is timed
(`block_until_ready`); compile time is `jit(...).lower(...).compile()`. The final return is computed after
the timed call (untimed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

IMPL = sys.argv[1]
ROOT = Path(__file__).resolve().parent.parent

import jax  # noqa: E402

if IMPL == "purejaxppo":
    from purejaxppo.cpu import configure as configure_cpu

    configure_cpu()  # before any JAX computation (the XLA flag itself usually comes from compare.py's XLA_FLAGS)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _compiled import compile_seeds  # noqa: E402  (benchmarks/ is the script's directory)


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- purejaxppo
def ours_config(spec):
    from purejaxppo import PPOConfig

    if "config" in spec:  # one of this repository's configs (the CNN rows), at the row's budget
        cfg = PPOConfig.from_yaml(ROOT / spec["config"])
        return cfg.replace(total_timesteps=spec["total_timesteps"], conv_impl=spec.get("conv_impl", cfg.conv_impl))
    network = spec.get("network", "mlp")
    extra = {}
    if network in ("gru", "lstm"):
        extra = dict(rnn_size=spec["rnn_size"], rnn_torso=tuple(spec["rnn_torso"]), rnn_shared_core=True)
    return PPOConfig(
        env=spec["env"], total_timesteps=spec["total_timesteps"], num_envs=spec["num_envs"],
        num_steps=spec["num_steps"], update_epochs=spec["epochs"], num_minibatches=spec["minibatches"],
        actor_hidden=tuple(spec["hidden"]), critic_hidden=tuple(spec["hidden"]), activation=spec["activation"],
        network=network, learning_rate=spec["lr"], anneal_lr=spec.get("anneal_lr", False), gamma=spec["gamma"],
        gae_lambda=spec["gae_lambda"], clip_eps=spec["clip_eps"], vf_clip_eps=spec["clip_eps"],
        ent_coef=spec["ent_coef"], vf_coef=spec["vf_coef"], max_grad_norm=spec["max_grad_norm"],
        normalize_obs=spec["normalize_obs"], normalize_reward=spec["normalize_reward"], log_every=0, **extra,
    )


def setup_ours(spec, seeds):
    from purejaxppo import make_train

    cfg = ours_config(spec)
    train = make_train(cfg)
    keys = jax.random.split(jax.random.key(spec.get("seed", 0)), seeds)
    run, _, compile_s = compile_seeds(train, keys, seeds)

    def final_return(out):
        # Mean training episode return over the last 10% of updates, averaged over seeds.
        r = np.asarray(out.metrics["episode_return"])
        tail = max(1, r.shape[-1] // 10)
        return float(r[..., -tail:].mean())

    return compile_s, run, final_return, dict(steps_per_seed=cfg.num_updates * cfg.batch_size,
                                              num_envs=cfg.num_envs, num_steps=cfg.num_steps)


# --------------------------------------------------------------------------- gymnax adapters for the peers
class FiveTupleEnv:
    """gymnax >= 1.0 env -> the 5-value `step` rejax 0.1.3 and PureJaxRL expect (done = terminated | truncated).

    Auto-reset and everything else is the wrapped env's; only the return tuple changes.
    """

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        if name.startswith("__") or name == "_env":  # copy/pickle probes; _env before __init__
            raise AttributeError(name)
        return getattr(self._env, name)

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info

    def reset(self, key, params=None):
        return self._env.reset(key, params)


class MaskedFiveTupleEnv(FiveTupleEnv):
    """FiveTupleEnv whose flat observations `[D]` keep only the entries `keep` (`[len(keep)]`).

    The same observations as purejaxppo's `masked/<id>` tasks (purejaxppo.envs.wrappers.MASKS, which
    compare.py passes in the spec), written here so that the peers' virtualenvs need no purejaxppo.
    """

    def __init__(self, env, keep):
        super().__init__(env)
        self._keep = np.asarray(keep)

    def __getattr__(self, name):
        if name == "_keep":
            raise AttributeError(name)
        return super().__getattr__(name)

    def step(self, key, state, action, params=None):
        obs, state, reward, done, info = super().step(key, state, action, params)
        return obs[..., self._keep], state, reward, done, info

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs[..., self._keep], state

    def observation_space(self, params):
        from gymnax.environments import spaces

        inner = self._env.observation_space(params)
        # jnp, not np: PureJaxRL asks for the space inside its jitted train, where gymnax's bounds are traced.
        low = jnp.broadcast_to(jnp.asarray(inner.low), inner.shape)[self._keep]
        high = jnp.broadcast_to(jnp.asarray(inner.high), inner.shape)[self._keep]
        return spaces.Box(low, high, (len(self._keep),), inner.dtype)


# --------------------------------------------------------------------------- rejax
def setup_rejax(spec, seeds):
    import gymnax
    from rejax import PPO
    from rejax.evaluate import evaluate

    if spec.get("network", "mlp") != "mlp" or spec["env"].startswith("masked/") or spec.get("anneal_lr"):
        raise ValueError("rejax 0.1.3's PPO runs an MLP on a gymnax task with a constant learning rate only")
    env, env_params = gymnax.make(spec["env"])
    steps_per_iter = spec["num_envs"] * spec["num_steps"]
    total = (spec["total_timesteps"] // steps_per_iter) * steps_per_iter
    algo = PPO.create(
        env=FiveTupleEnv(env), env_params=env_params, total_timesteps=total, eval_freq=total,
        skip_initial_evaluation=True, num_envs=spec["num_envs"], num_steps=spec["num_steps"],
        num_epochs=spec["epochs"], num_minibatches=spec["minibatches"],
        agent_kwargs={"hidden_layer_sizes": tuple(spec["hidden"]), "activation": spec["activation"]},
        learning_rate=spec["lr"], gamma=spec["gamma"], gae_lambda=spec["gae_lambda"], clip_eps=spec["clip_eps"],
        ent_coef=spec["ent_coef"], vf_coef=spec["vf_coef"], max_grad_norm=spec["max_grad_norm"],
        normalize_observations=spec["normalize_obs"], normalize_rewards=spec["normalize_reward"],
    )
    # Time training only: the in-loop evaluation is replaced by a no-op; the final policy is
    # evaluated afterwards, untimed, with rejax's own evaluate (128 episodes, stochastic policy).
    timed_algo = algo.replace(eval_callback=lambda a, ts, rng: jnp.zeros(()))
    keys = jax.random.split(jax.random.key(spec.get("seed", 0)), seeds)
    keys = jax.random.key_data(keys)  # rejax splits raw uint32 keys
    run, arg, compile_s = compile_seeds(timed_algo.train, keys, seeds)

    def eval_one(ts, rng):
        act = algo.make_act(ts)
        return evaluate(act, rng, algo.env, algo.env_params, 128, env_params.max_steps_in_episode)[1].mean()

    eval_fn = jax.jit(eval_one if seeds == 1 else jax.vmap(eval_one))

    def final_return(out):
        ts, _ = out
        return float(np.mean(np.asarray(eval_fn(ts, arg))))

    return compile_s, run, final_return, dict(steps_per_seed=total, num_envs=spec["num_envs"],
                                              num_steps=spec["num_steps"])


# --------------------------------------------------------------------------- PureJaxRL (the user's checkout)
def setup_purejaxrl(spec, seeds):
    from _purejaxrl_worker import setup_purejaxrl as setup

    adapters = dict(five_tuple=FiveTupleEnv, masked=MaskedFiveTupleEnv)
    return setup(spec, seeds, sys.argv[2], adapters)


SETUPS = {"purejaxppo": setup_ours, "rejax": setup_rejax, "purejaxrl": setup_purejaxrl}


def main():
    setup = SETUPS[IMPL]
    programs = {}
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        try:
            if msg["cmd"] == "setup":
                programs.pop(msg["tag"], None)
                compile_s, run, final_return, info = setup(msg["spec"], msg["seeds"])
                programs[msg["tag"]] = (run, final_return)
                reply(dict(info, compile_s=compile_s))
            elif msg["cmd"] == "run":
                run, final_return = programs[msg["tag"]]
                t = time.perf_counter()
                out = run()
                seconds = time.perf_counter() - t
                reply({"seconds": seconds, "final_return": final_return(out) if msg.get("returns", True) else None})
            elif msg["cmd"] == "drop":
                programs.pop(msg["tag"], None)
                reply({})
        except Exception as e:  # report, keep serving
            import traceback

            reply({"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]})


if __name__ == "__main__":
    main()
