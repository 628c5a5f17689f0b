"""EnvPool throughput: our jitted PPO loop against the envs' own ceiling, measured side by side in one run.

    python benchmarks/envpool_throughput.py                         # Hopper-v4, Pong-v5, CartPole-v1
    python benchmarks/envpool_throughput.py --tasks Pong-v5 --num-envs 8 --num-steps 128

For each task, with the same N envs:
  * ceiling: EnvPool stepped from Python with random actions (one pool of N envs, sync `step`), env-steps/s;
  * stepping: the envs stepped by this library's callback inside a jitted `lax.scan` (no policy), env-steps/s;
  * training: a whole PPO run (`jax.jit(make_train(config))`, rollout + GAE + K epochs), env-steps/s.
Ratios are to the ceiling. Each figure is the best of --repeats timed calls after one warm-up (compile).
Writes benchmarks/results/envpool_throughput.md.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import best_of, hardware_line  # noqa: E402

from purejaxppo import PPOConfig, configure_cpu, make_train  # noqa: E402
from purejaxppo.envs import make_env  # noqa: E402

configure_cpu()

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULTS = {  # task -> (network, num_envs, num_steps, update_epochs, num_minibatches): the paper's settings
    "Hopper-v4": ("mlp", 1, 2048, 10, 32),
    "Pong-v5": ("auto", 8, 128, 3, 4),
    "CartPole-v1": ("mlp", 8, 128, 4, 4),
}


def ceiling(task: str, n: int, steps: int, repeats: int) -> float:
    import envpool

    env = envpool.make(task, env_type="gymnasium", num_envs=n, seed=0)
    space = env.action_space
    rng = np.random.default_rng(0)
    env.reset()
    ids = np.arange(n)
    if hasattr(space, "n"):
        actions = rng.integers(0, space.n, (steps, n))
    else:
        actions = rng.uniform(space.low, space.high, (steps, n) + space.shape)

    def run():
        for a in actions:
            env.step(a, env_id=ids)

    wall, _ = best_of(run, repeats)
    return n * steps / wall


def stepping(task: str, n: int, steps: int, repeats: int) -> float:
    env, params = make_env(f"envpool/{task}")
    keys = jax.random.split(jax.random.key(0), n)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    space = env.action_space(params)
    action = jnp.zeros((n,) + tuple(space.shape), jnp.int32 if hasattr(space, "n") else jnp.float32)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    @jax.jit
    def roll(state):
        def body(s, _):
            _, s, r, *_ = step(keys, s, action, params)
            return s, r

        return jax.lax.scan(body, state, None, length=steps)[1]

    wall, _ = best_of(lambda: roll(state).block_until_ready(), repeats)
    return n * steps / wall


def training(task: str, network: str, n: int, t: int, epochs: int, minibatches: int, updates: int, repeats: int):
    config = PPOConfig(env=f"envpool/{task}", network=network, num_envs=n, num_steps=t, update_epochs=epochs,
                       num_minibatches=minibatches, total_timesteps=n * t * updates)
    train = jax.jit(make_train(config))
    wall, _ = best_of(lambda: jax.block_until_ready(train(jax.random.key(0))), repeats)
    return config.num_updates * config.batch_size / wall


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(DEFAULTS))
    p.add_argument("--num-envs", type=int, default=None)
    p.add_argument("--num-steps", type=int, default=None)
    p.add_argument("--updates", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS / "envpool_throughput.md"))
    args = p.parse_args()
    rows = []
    t0 = time.time()
    for task in args.tasks:
        network, n, t, epochs, minibatches = DEFAULTS.get(task, ("auto", 8, 128, 4, 4))
        n, t = args.num_envs or n, args.num_steps or t
        c = ceiling(task, n, t, args.repeats)
        s = stepping(task, n, t, args.repeats)
        tr = training(task, network, n, t, epochs, minibatches, args.updates, args.repeats)
        rows.append((task, n, t, epochs, minibatches, c, s, tr))
        print(f"{task}: ceiling {c:,.0f}, stepping {s:,.0f} ({s / c:.2f}x), training {tr:,.0f} ({tr / c:.2f}x)",
              flush=True)
    lines = [
        "# EnvPool throughput: our loop against the envs' own ceiling",
        "",
        f"Measured on {hardware_line()} with `python {' '.join(sys.argv)}` ({time.time() - t0:.0f} s). "
        "env-steps/s, best of the timed calls; ratios to the ceiling (random actions stepped from Python).",
        "",
        "| task | N envs | T | K | minibatches | ceiling | stepping in jit | ratio | PPO training | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, n, t, k, m, c, s, tr in rows:
        lines.append(f"| {task} | {n} | {t} | {k} | {m} | {c:,.0f} | {s:,.0f} | {s / c:.2f} | {tr:,.0f} | {tr / c:.2f} |")
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
