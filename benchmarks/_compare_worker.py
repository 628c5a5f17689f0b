"""Worker process for benchmarks/compare.py (one per implementation, kept alive across runs).

Runs under either our virtualenv (impl=purejaxppo) or the separate rejax
virtualenv (impl=rejax), so rejax and its dependencies never enter ours.
Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.

  {"cmd": "setup", "spec": {...}, "seeds": S}  -> {"compile_s": ...}
  {"cmd": "run"}                               -> {"seconds": ..., "final_return": ...}
  {"cmd": "quit"}

`spec` holds the shared hyperparameters (see compare.py). Only the compiled
program's execution is timed (`block_until_ready`); compile time is
`jit(...).lower(...).compile()`.
"""

from __future__ import annotations

import json
import sys
import time

IMPL = sys.argv[1]

import jax  # noqa: E402

if IMPL == "purejaxppo":
    from purejaxppo.cpu import configure as configure_cpu

    configure_cpu()  # before any JAX computation (the XLA flag itself usually comes from compare.py's XLA_FLAGS)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- purejaxppo
def setup_ours(spec, seeds):
    from purejaxppo import PPOConfig, make_train

    cfg = PPOConfig(
        env=spec["env"], total_timesteps=spec["total_timesteps"], num_envs=spec["num_envs"],
        num_steps=spec["num_steps"], update_epochs=spec["epochs"], num_minibatches=spec["minibatches"],
        actor_hidden=tuple(spec["hidden"]), critic_hidden=tuple(spec["hidden"]), activation=spec["activation"],
        network="mlp", learning_rate=spec["lr"], anneal_lr=False, gamma=spec["gamma"], gae_lambda=spec["gae_lambda"],
        clip_eps=spec["clip_eps"], vf_clip_eps=spec["clip_eps"], ent_coef=spec["ent_coef"], vf_coef=spec["vf_coef"],
        max_grad_norm=spec["max_grad_norm"], normalize_obs=spec["normalize_obs"],
        normalize_reward=spec["normalize_reward"], log_every=0,
    )
    train = make_train(cfg)
    keys = jax.random.split(jax.random.key(spec.get("seed", 0)), seeds)
    fn, arg = (train, keys[0]) if seeds == 1 else (jax.vmap(train), keys)
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(arg).compile()
    compile_s = time.perf_counter() - t

    def run():
        out = jax.block_until_ready(compiled(arg))
        return out

    def final_return(out):
        # Mean training episode return over the last 10% of updates, averaged over seeds.
        r = np.asarray(out.metrics["episode_return"])
        tail = max(1, r.shape[-1] // 10)
        return float(r[..., -tail:].mean())

    return compile_s, run, final_return, cfg.num_updates * cfg.batch_size


# --------------------------------------------------------------------------- rejax
class FiveTupleEnv:
    """gymnax >= 1.0 env -> the 5-value `step` rejax 0.1.3 expects (done = terminated | truncated).

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


def setup_rejax(spec, seeds):
    import gymnax
    from rejax import PPO
    from rejax.evaluate import evaluate

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
    fn, arg = (timed_algo.train, keys[0]) if seeds == 1 else (jax.vmap(timed_algo.train), keys)
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(arg).compile()
    compile_s = time.perf_counter() - t

    def eval_one(ts, rng):
        act = algo.make_act(ts)
        return evaluate(act, rng, algo.env, algo.env_params, 128, env_params.max_steps_in_episode)[1].mean()

    eval_fn = jax.jit(eval_one if seeds == 1 else jax.vmap(eval_one))

    def run():
        return jax.block_until_ready(compiled(arg))

    def final_return(out):
        ts, _ = out
        return float(np.mean(np.asarray(eval_fn(ts, arg))))

    return compile_s, run, final_return, total


def main():
    setup = setup_ours if IMPL == "purejaxppo" else setup_rejax
    run = final_return = None
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        try:
            if msg["cmd"] == "setup":
                run = final_return = None
                compile_s, run, final_return, steps = setup(msg["spec"], msg["seeds"])
                reply({"compile_s": compile_s, "steps_per_seed": steps})
            elif msg["cmd"] == "run":
                t = time.perf_counter()
                out = run()
                seconds = time.perf_counter() - t
                reply({"seconds": seconds, "final_return": final_return(out) if msg.get("returns", True) else None})
        except Exception as e:  # report, keep serving
            import traceback

            reply({"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]})


if __name__ == "__main__":
    main()
