"""The PPO paper's Table 1 idea on our environments: one row per objective setting.

    python benchmarks/objectives.py --quick          # CPU: 4 seeds, reduced budgets (~15 min on 2 cores)
    python benchmarks/objectives.py                  # accelerator: 16 seeds, full budgets
    python benchmarks/objectives.py --envs CartPole-v1 --seeds 8

Settings (Schulman et al. 2017, Table 1): clipping eps 0.1/0.2/0.3, adaptive KL
d_targ 0.003/0.01/0.03, fixed KL beta 0.3/1/3/10, no clipping or penalty.
Each objective is compiled once per env; its float setting and the seeds are
vmapped together (settings x seeds runs in one program). Every other field comes
from the env's YAML in configs/.

Score of a run: mean episode return over its last 10% of updates. Per setting:
IQM over seeds with a 95% stratified-bootstrap CI, and the paper's normalized
score (random policy = 0, best setting on that env = 1), averaged over envs.
Writes benchmarks/results/objectives.md and one learning-curve PNG per env.
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
from _common import final_scores, first_complete_update, hardware_line  # noqa: E402

from purejaxppo import PPOConfig, configure_cpu, make_train  # noqa: E402
from purejaxppo.sweep import stats  # noqa: E402

configure_cpu()  # explicit CPU settings (XLA scheduler flag, unrolled threefry), before any JAX computation

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# objective -> (traced field it varies, values, label format)
SETTINGS = {
    "clip": ("clip_eps", [0.1, 0.2, 0.3], "clip eps={}"),
    "kl_adaptive": ("kl_target", [0.003, 0.01, 0.03], "adaptive KL d_targ={}"),
    "kl_fixed": ("kl_beta", [0.3, 1.0, 3.0, 10.0], "fixed KL beta={}"),
    "none": (None, [None], "no clipping or penalty"),
}
ENV_CONFIGS = {"CartPole-v1": "cartpole.yaml", "Pendulum-v1": "pendulum.yaml", "Acrobot-v1": "acrobot.yaml"}
QUICK_BUDGET = {"CartPole-v1": 250_000, "Pendulum-v1": 300_000, "Acrobot-v1": 250_000}


def random_policy_return(config: PPOConfig, key, episodes: int = 64) -> float:
    """Mean return of uniformly random actions over `episodes` parallel episodes (first episode each)."""
    train = make_train(config.replace(num_envs=1))
    env, params = train.env, train.env_params
    space = env.action_space(params)
    max_steps = int(getattr(params, "max_steps_in_episode", 1000))

    def run(key):
        k0, k1 = jax.random.split(key)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k0, episodes), params)

        def step(carry, k):
            state, ret, alive = carry
            ka, ks = jax.random.split(k)
            a = jax.vmap(space.sample)(jax.random.split(ka, episodes))
            _, state, r, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(ks, episodes), state, a, params)
            r = jnp.reshape(r, (episodes,))
            ret = ret + alive * r
            alive = alive * (1.0 - jnp.logical_or(term, trunc).reshape(episodes))
            return (state, ret, alive), None

        (_, ret, _), _ = jax.lax.scan(step, (state, jnp.zeros(episodes), jnp.ones(episodes)),
                                      jax.random.split(k1, max_steps))
        return ret.mean()

    return float(jax.jit(run)(key))


def run_env(env_name: str, base: PPOConfig, seeds: int):
    """Returns ({label: curves [seeds, num_updates]} over all settings, first update with episode data)."""
    curves = {}
    first_update = 0  # first update by which every run has completed an episode (earlier values are placeholders)
    keys = jax.random.split(jax.random.key(0), seeds)
    for objective, (field, values, fmt) in SETTINGS.items():
        cfg = base.replace(objective=objective)
        train = make_train(cfg)
        hp = cfg.hparams()
        if field is None:
            hps = jax.tree.map(lambda x: x[None], hp)
        else:
            hps = jax.vmap(lambda v: hp.replace(**{field: v}))(jnp.asarray(values, jnp.float32))
        # settings x seeds in one program
        run = jax.jit(jax.vmap(jax.vmap(train, in_axes=(0, None)), in_axes=(None, 0)))
        t = time.time()
        out = run(keys, hps)
        ret = np.asarray(out.metrics["episode_return"])  # [settings, seeds, updates]
        first_update = max(first_update, first_complete_update(out.metrics["episodes_completed"]))
        print(f"  {env_name} {objective}: {len(values)} setting(s) x {seeds} seeds in {time.time() - t:.0f}s", flush=True)
        for i, v in enumerate(values):
            curves[fmt.format(v)] = ret[i]
    return curves, first_update


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="4 seeds and reduced budgets (CPU)")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1"], choices=sorted(ENV_CONFIGS))
    p.add_argument("--total-timesteps", type=int, default=None, help="override every env's budget")
    p.add_argument("--out", default=str(RESULTS / "objectives.md"))
    args = p.parse_args()
    seeds = args.seeds or (4 if args.quick else 16)
    RESULTS.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    table = {}  # env -> {label: scores [seeds]}
    meta = {}
    for env_name in args.envs:
        base = PPOConfig.from_yaml(ROOT / "configs" / ENV_CONFIGS[env_name])
        if args.quick:
            base = base.replace(total_timesteps=QUICK_BUDGET[env_name])
        if args.total_timesteps:
            base = base.replace(total_timesteps=args.total_timesteps)
        t = time.time()
        curves, first = run_env(env_name, base, seeds)
        rand = random_policy_return(base, jax.random.key(1))
        table[env_name] = {k: final_scores(c) for k, c in curves.items()}
        meta[env_name] = dict(budget=base.num_updates * base.batch_size, random=rand, seconds=time.time() - t)
        steps = (np.arange(base.num_updates) + 1) * base.batch_size
        png = RESULTS / f"objectives_{env_name}.png"
        stats.plot_curves({k: c[:, first:] for k, c in curves.items()}, steps[first:], png, metric="iqm",
                          title=f"{env_name}: PPO objectives (IQM, 95% CI over {seeds} seeds)")
        print(f"{env_name}: done in {meta[env_name]['seconds']:.0f}s, random policy {rand:.1f}, plot {png}", flush=True)

    labels = list(next(iter(table.values())))
    norm = {}
    for env_name, rows in table.items():
        best = max(stats.iqm(v) for v in rows.values())
        rand = meta[env_name]["random"]
        norm[env_name] = {k: (stats.iqm(v) - rand) / (best - rand) for k, v in rows.items()}

    lines = [
        "# PPO objectives (the paper's Table 1 idea)",
        "",
        f"Produced by `python benchmarks/objectives.py{' --quick' if args.quick else ''}"
        f"{'' if args.seeds is None else f' --seeds {args.seeds}'}"
        f"{'' if args.total_timesteps is None else f' --total-timesteps {args.total_timesteps}'} --envs {' '.join(args.envs)}` on "
        f"{hardware_line()}; total {time.time() - t0:.0f}s.",
        "",
        f"Score of a run = mean episode return over its last 10% of updates. Cells: IQM over {seeds} seeds "
        "[95% stratified-bootstrap CI]. Normalized: (IQM - random policy) / (best setting - random policy) per env, "
        "averaged over envs, as in the paper's Table 1.",
        "",
        "| setting | " + " | ".join(f"{e} ({meta[e]['budget']:,} steps)" for e in table) + " | avg. normalized |",
        "|---|" + "---:|" * (len(table) + 1),
    ]
    for label in labels:
        cells = []
        for env_name in table:
            pt, lo, hi = stats.bootstrap_ci(table[env_name][label], metric="iqm", reps=2000, seed=0)
            cells.append(f"{pt:.1f} [{lo:.1f}, {hi:.1f}]")
        avg = np.mean([norm[e][label] for e in table])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {avg:.2f} |")
    lines += ["", "Random-policy return: " + ", ".join(f"{e} {meta[e]['random']:.1f}" for e in table) + ".", ""]
    lines += [f"![{e}](objectives_{e}.png)" for e in table]
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
