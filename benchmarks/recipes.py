"""Issue 33's recipes measured against their baselines: privileged critic, PopArt, domain randomization, LayerNorm
and matmul precision (benchmarks/results/recipes.md).

    python benchmarks/recipes.py                                  # every experiment, 8 seeds (~30 min on 2 CPU cores)
    python benchmarks/recipes.py --experiments popart dr          # some of them; the others' sections are kept
    python benchmarks/recipes.py --seeds 2 --total-timesteps 4096 --out /tmp/r.md   # a smoke run

Experiments (`--experiments`, default all; budgets in BUDGETS, all overridden by `--total-timesteps`):

    privileged  configs/{cartpole,pendulum}_masked_gru.yaml (a GRU actor on masked/<id>) against the same with
                env masked/<id>+privileged, the GRU actor on `obs` and a feed-forward critic on `obs,privileged`,
                and both again with rnn_shared_core: false (a critic with its own GRU): final score and env steps
                to reach 90% of the improvement (steps_to_target).
    popart      configs/cartpole.yaml with rewards x1, x1000 and x0.001 (purejaxppo.envs.wrappers.ScaleReward),
                each with value_normalization none and popart, scores in the unscaled return, and a plot of the six
                curves; plus configs/pendulum.yaml, none vs popart (no regression on returns.md's configs).
    dr          configs/cartpole.yaml trained nominal and with domain_randomization: cartpole (pole half-length,
                pole mass and cart mass each times U[1-s, 1+s], s = --dr-scale), both evaluated at pole
                half-lengths of LENGTH_FACTORS x nominal (in jit, vmapped over seeds and lengths).
    layer_norm  configs/cartpole.yaml at 10x its learning rate, without and with layer_norm.
    precision   configs/cartpole.yaml at matmul_precision default and highest: env-steps/s.

Every setting trains `--seeds` seeds in one jit(vmap(train)); compile and run are timed apart (env-steps/s: all
seeds together, compile excluded). A run's score is its mean episode return over the last 10% of updates; tables
give the IQM over seeds with a 95% percentile-bootstrap CI (purejaxppo.sweep.stats). Each experiment's section
(with the command and hardware that produced it) is stored in a JSON record next to `--out` (recipes.json), and
the markdown is rebuilt from every recorded section, so experiments can be run in parts.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Callable

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import final_scores, hardware_line, timed_seeds  # noqa: E402

from purejaxppo import PPOConfig, make_train  # noqa: E402
from purejaxppo.envs.wrappers import PRIVILEGED_SUFFIX  # noqa: E402
from purejaxppo.sweep import stats  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: env steps per run, by experiment and config (the GRU configs' own budgets, 500k and 1M, reduced to fit 2 CPU cores)
BUDGETS = {
    "privileged": {"cartpole_masked_gru": 300_000, "pendulum_masked_gru": 200_000},
    "popart": {"cartpole": 500_000, "pendulum": 300_000},
    "dr": {"cartpole": 500_000},
    "layer_norm": {"cartpole": 500_000},
    "precision": {"cartpole": 100_000},
}
REWARD_SCALES = (1.0, 1000.0, 0.001)
LENGTH_FACTORS = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)  # x gymnax CartPole's half-length 0.5
LN_LR_FACTOR = 10.0
FRACTION = 0.9  # steps_to_target: 90% of the improvement


# ----------------------------------------------------------------------------- pure parts (tests/test_recipes_bench.py)


def valid_curves(curves: np.ndarray, episodes_completed: np.ndarray) -> np.ndarray:
    """Episode-return curves `[S, U]` with NaN before each run's first completed episode (the metric is a
    placeholder 0 there; it carries the last value over later updates that complete none)."""
    started = np.cumsum(np.asarray(episodes_completed), axis=-1) > 0
    return np.where(started, np.asarray(curves, np.float64), np.nan)


def smooth(curves: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` updates, `[S, U]` -> `[S, U]`; NaN where the window is incomplete or holds a
    NaN."""
    curves = np.asarray(curves, np.float64)
    window = max(1, min(int(window), curves.shape[-1]))
    means = np.lib.stride_tricks.sliding_window_view(curves, window, axis=-1).mean(axis=-1)
    pad = np.full(curves.shape[:-1] + (window - 1,), np.nan)
    return np.concatenate([pad, means], axis=-1)


def target_score(start: float, final: float, fraction: float = FRACTION) -> float:
    """`start + fraction * (final - start)`: `fraction` of the way from the untrained to the final score (for
    returns of either sign: CartPole 20 -> 500 gives 452, Pendulum -1200 -> -200 gives -300)."""
    return start + fraction * (final - start)


def steps_to_target(smoothed: np.ndarray, target: float, steps_per_update: int) -> np.ndarray:
    """Env steps `[S]` by the end of the first update whose smoothed return is >= `target` (inf where none is)."""
    hit = np.nan_to_num(np.asarray(smoothed), nan=-np.inf) >= target
    first = np.argmax(hit, axis=-1)
    return np.where(hit.any(axis=-1), (first + 1.0) * steps_per_update, np.inf)


def ci_text(values: np.ndarray, metric: str = "iqm", fmt: str = "{:.1f}") -> str:
    """'point [low, high]' of a 95% percentile bootstrap over seeds (`values` `[S]`)."""
    pt, lo, hi = stats.bootstrap_ci(np.asarray(values, np.float64), metric=metric, reps=5000, seed=0)
    return f"{fmt.format(pt)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def steps_text(steps: np.ndarray, budget: int) -> str:
    """Median steps over seeds with its bootstrap CI and how many seeds reach the target; seeds that never do
    count as the budget (then the median is a lower bound, marked >=)."""
    reached = np.isfinite(steps)
    if not reached.any():
        return f"never (0/{len(steps)})"
    censored = np.where(reached, steps, float(budget))
    mark = ">=" if (~reached).sum() * 2 >= len(steps) else ""
    return f"{mark}{ci_text(censored, 'median', '{:,.0f}')} ({reached.sum()}/{len(steps)})"


# ----------------------------------------------------------------------------- training


class Result:
    """One setting's seeds: final scores `[S]`, valid curves `[S, U]`, timings, the Train and its output."""

    def __init__(self, train, out, compile_s: float, run_s: float, seeds: int):
        cfg = train.config
        self.train, self.out, self.compile_s, self.run_s = train, out, compile_s, run_s
        self.curves = valid_curves(
            np.asarray(out.metrics["episode_return"]), np.asarray(out.metrics["episodes_completed"])
        )
        self.scores = final_scores(np.asarray(out.metrics["episode_return"], np.float64))
        self.batch = cfg.num_steps * cfg.num_envs
        self.steps = cfg.num_updates * self.batch
        self.sps = seeds * self.steps / run_s


def train_seeds(cfg: PPOConfig, seeds: int, **make_train_kwargs) -> Result:
    """jit(vmap(train)) over `seeds` seeds of `make_train(cfg, **make_train_kwargs)`."""
    train = make_train(cfg, **make_train_kwargs)
    out, compile_s, run_s = timed_seeds(train, seeds)
    res = Result(train, out, compile_s, run_s, seeds)
    print(
        f"  {cfg.env} {res.steps:,} steps: scores {np.round(res.scores, 1).tolist()} "
        f"(compile {compile_s:.0f} s, run {run_s:.0f} s)",
        flush=True,
    )
    return res


def load(name: str, args) -> PPOConfig:
    """configs/<name>.yaml at the experiment's budget (or --total-timesteps)."""
    cfg = PPOConfig.from_yaml(ROOT / "configs" / f"{name}.yaml")
    return cfg.replace(total_timesteps=args.total_timesteps or BUDGETS[args.experiment][name])


def timing(r: Result) -> str:
    return f"{r.sps:,.0f} | {r.compile_s:.0f} | {r.run_s:.0f}"


TIMING_HEAD = "env-steps/s | compile s | run s"


# ----------------------------------------------------------------------------- experiments


def privileged(args) -> tuple[list[str], dict]:
    lines = [
        f"| env | critic | steps | final IQM [95% CI] | steps to target: median [95% CI] (seeds reaching) | "
        f"target | {TIMING_HEAD} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    data = {}
    for name in BUDGETS["privileged"]:
        base = load(name, args)
        priv = base.replace(env=base.env + PRIVILEGED_SUFFIX, actor_obs_keys="obs", critic_obs_keys="obs,privileged")
        runs = {
            "masked obs (baseline)": train_seeds(base, args.seeds),
            "privileged (obs + full state)": train_seeds(priv, args.seeds),
            # Which part of the recipe matters: the same two critics with a core of their own (rnn_shared_core:
            # false), so that the actor's GRU learns from the policy loss alone in both.
            "masked obs, own GRU": train_seeds(base.replace(rnn_shared_core=False), args.seeds),
            "privileged, own GRU": train_seeds(priv.replace(rnn_shared_core=False), args.seeds),
        }
        window = max(1, round(0.05 * base.num_updates))
        finals = [stats.aggregate(r.scores, "iqm") for r in runs.values()]
        firsts = np.concatenate(
            [c[np.arange(len(c)), np.argmax(np.isfinite(c), -1)] for c in (r.curves for r in runs.values())]
        )
        firsts = firsts[np.isfinite(firsts)]  # none when no run completed an episode (a smoke budget)
        target = target_score(float(stats.iqm(firsts)) if firsts.size else np.nan, max(finals))
        for label, r in runs.items():
            steps = steps_to_target(smooth(r.curves, window), target, r.batch)
            lines.append(
                f"| {base.env} | {label} | {r.steps:,} | {ci_text(r.scores)} | "
                f"{steps_text(steps, r.steps)} | {target:.1f} | {timing(r)} |"
            )
            data[f"{name}/{label}"] = {"scores": r.scores.tolist(), "steps_to_target": steps.tolist(), "target": target}
    text = [
        "GRU actor (configs/cartpole_masked_gru.yaml, configs/pendulum_masked_gru.yaml, their budgets of 500k and "
        "1M steps reduced to the ones below to fit a 2-core CPU) on the masked task; `privileged`: env "
        "`masked/<id>+privileged`, `actor_obs_keys: obs` (the masked entries, as the baseline) and "
        "`critic_obs_keys: obs,privileged` (with the configs' `rnn_shared_core: true`, the critic is feed-forward: "
        "an MLP on the masked entries and the full state, and the shared GRU learns from the policy loss alone). "
        "`own GRU`: `rnn_shared_core: false`, each head with its own torso and GRU on its own entries (a recurrent "
        "critic, masked or privileged; the actor's GRU again learns from the policy loss alone).",
        "",
        f"Steps to target: `target` = the untrained score + {FRACTION:.0%} of the way to the best setting's final "
        "IQM (untrained score: IQM over all settings' runs of their first update with a completed episode); a "
        "seed's steps are the env steps by the end of the first update at which its return, averaged over the "
        f"trailing 5% of updates, reaches the target. Median over seeds with a 95% bootstrap CI; seeds that never "
        "reach it count as the budget (>= when half or more never do).",
        "",
        *lines,
    ]
    return text, data


def popart(args) -> tuple[list[str], dict]:
    from purejaxppo.envs import make_env
    from purejaxppo.envs.wrappers import ScaleReward

    base = load("cartpole", args)
    env, env_params = make_env(base.env)
    lines = [
        "| env | reward scale | value_normalization | steps | final IQM [95% CI] (unscaled return) | "
        f"mean over training | {TIMING_HEAD} |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    curves, data = {}, {}
    for scale in REWARD_SCALES:
        for vn in ("none", "popart"):
            scaled = env if scale == 1.0 else ScaleReward(env, scale)
            r = train_seeds(base.replace(value_normalization=vn), args.seeds, env=scaled, env_params=env_params)
            label = f"x{scale:g} {vn}"
            curves[label] = r.curves
            lines.append(
                f"| {base.env} | {scale:g} | {vn} | {r.steps:,} | {ci_text(r.scores)} | "
                f"{ci_text(np.nanmean(r.curves, -1))} | {timing(r)} |"
            )
            data[f"cartpole/{label}"] = {"scores": r.scores.tolist()}
    pend = load("pendulum", args)
    for vn in ("none", "popart"):
        r = train_seeds(pend.replace(value_normalization=vn), args.seeds)
        lines.append(
            f"| {pend.env} | 1 | {vn} | {r.steps:,} | {ci_text(r.scores)} | "
            f"{ci_text(np.nanmean(r.curves, -1))} | {timing(r)} |"
        )
        data[f"pendulum/{vn}"] = {"scores": r.scores.tolist()}
    png = args.out.parent / f"{args.out.stem}_popart.png"
    first = int(max(np.argmax(np.isfinite(c).all(0)) for c in curves.values()))
    steps = (np.arange(base.num_updates) + 1) * base.num_steps * base.num_envs
    stats.plot_curves(
        {k: c[:, first:] for k, c in curves.items()},
        steps[first:],
        png,
        metric="iqm",
        title=f"CartPole-v1, rewards scaled (episode return unscaled), IQM of {args.seeds} seeds",
    )
    text = [
        f"configs/cartpole.yaml ({base.total_timesteps:,} steps, no reward normalization) with every reward times "
        "the scale (purejaxppo.envs.wrappers.ScaleReward, which keeps the unscaled reward as the episode score, so "
        "every row is in CartPole's own return), without and with `value_normalization: popart`; configs/pendulum.yaml "
        f"(with its reward normalization) at {pend.total_timesteps:,} steps, without and with PopArt. `mean over "
        "training`: IQM over "
        "seeds of each run's mean return over all its updates (the area under its curve).",
        "",
        *lines,
        "",
        f"![PopArt curves]({png.name})",
    ]
    return text, data


def dr(args) -> tuple[list[str], dict]:
    import jax

    base = load("cartpole", args)
    runs = {
        "nominal": train_seeds(base, args.seeds),
        f"randomized (s = {args.dr_scale:g})": train_seeds(
            base.replace(domain_randomization="cartpole", domain_randomization_scale=args.dr_scale), args.seeds
        ),
    }
    head = " | ".join(f"{f:g}x" for f in LENGTH_FACTORS)
    lines = [f"| training | final training IQM | {head} |", "|---|---:|" + "---:|" * len(LENGTH_FACTORS)]
    data, means = {}, {}
    for label, r in runs.items():
        returns = means[label] = evaluate_lengths(
            r, np.asarray(LENGTH_FACTORS), args.eval_episodes, jax.random.key(1)
        )  # [S, L]
        cells = " | ".join(ci_text(returns[:, i], fmt="{:.0f}") for i in range(len(LENGTH_FACTORS)))
        lines.append(f"| {label} | {ci_text(r.scores)} | {cells} |")
        data[label] = {"scores": r.scores.tolist(), "eval": returns.tolist()}
    lo, hi = 1 - args.dr_scale, 1 + args.dr_scale
    text = [
        f"configs/cartpole.yaml ({base.total_timesteps:,} steps) trained with the nominal physics and with "
        f"`domain_randomization: cartpole`, `domain_randomization_scale: {args.dr_scale:g}` (each env, at each "
        f"reset, draws the pole half-length, pole mass and cart mass each times U[{lo:g}, {hi:g}]). Both are "
        f"evaluated with the nominal masses at pole half-lengths of the factors below times gymnax's 0.5 "
        f"(training range: {lo:g}x to {hi:g}x): the deterministic policy (the action distribution's mode), "
        f"{args.eval_episodes} episodes per length and seed, each capped at 500 steps, run in one jit vmapped "
        "over seeds and lengths. Cells: IQM over seeds of each seed's mean return [95% CI].",
        "",
        *lines,
        "",
        f"![Domain randomization]({plot_lengths(means, (lo, hi), args).name})",
    ]
    return text, data


def plot_lengths(means: dict[str, np.ndarray], train_range: tuple[float, float], args) -> pathlib.Path:
    """<out stem>_dr.png: IQM over seeds (95% CI band) of the evaluation return against the pole-length factor
    (`means`: training label -> `[S, L]`), the training range shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    png = args.out.parent / f"{args.out.stem}_dr.png"
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.axvspan(*train_range, color="0.9", label="randomized training range")
    for label, returns in means.items():
        band = np.array([stats.bootstrap_ci(returns[:, i], "iqm", reps=2000, seed=0) for i in range(returns.shape[1])])
        ax.plot(LENGTH_FACTORS, band[:, 0], marker="o", label=f"trained {label}")
        ax.fill_between(LENGTH_FACTORS, band[:, 1], band[:, 2], alpha=0.2)
    ax.set_xscale("log")
    ax.set_xticks(LENGTH_FACTORS, [f"{f:g}" for f in LENGTH_FACTORS])
    ax.minorticks_off()
    ax.set_xlabel("pole half-length / nominal (0.5)")
    ax.set_ylabel(f"return, deterministic policy (IQM of {args.seeds} seeds)")
    ax.set_title("CartPole-v1: evaluation across pole lengths")
    ax.legend()
    fig.savefig(png, dpi=100)
    return png


def evaluate_lengths(r: Result, factors: np.ndarray, episodes: int, key) -> np.ndarray:
    """Mean deterministic return `[S, L]` of each seed's final policy in CartPole with the pole half-length times
    each factor (masses nominal)."""
    import jax

    from purejaxppo.core.agent import ActingState
    from purejaxppo.core.evaluate import build_evaluate

    train, state = r.train, r.out.state
    base = train.env_params

    def one(acting, key, factor):
        length = base.length * factor
        params = base.replace(length=length, polemass_length=base.masspole * length)
        evaluate = build_evaluate(
            train.env,
            params,
            train.agent,
            train.action_spec,
            obs_clip=train.config.obs_clip,
            to_env_action=train.to_env_action,
        )
        return evaluate(acting, key, episodes, deterministic=True).mean()

    seeds = np.asarray(r.scores).shape[0]
    over_lengths = jax.vmap(one, in_axes=(None, None, 0))
    fn = jax.jit(jax.vmap(over_lengths, in_axes=(0, 0, None)))
    return np.asarray(fn(ActingState(state.params, state.obs_norm), jax.random.split(key, seeds), factors))


def layer_norm(args) -> tuple[list[str], dict]:
    base = load("cartpole", args)
    base = base.replace(learning_rate=base.learning_rate * LN_LR_FACTOR)
    lines = [
        f"| env | learning_rate | layer_norm | steps | final IQM [95% CI] | mean over training | {TIMING_HEAD} |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    data = {}
    for ln in (False, True):
        r = train_seeds(base.replace(layer_norm=ln), args.seeds)
        lines.append(
            f"| {base.env} | {base.learning_rate:g} | {str(ln).lower()} | {r.steps:,} | "
            f"{ci_text(r.scores)} | {ci_text(np.nanmean(r.curves, -1))} | {timing(r)} |"
        )
        data[str(ln).lower()] = {"scores": r.scores.tolist()}
    text = [
        f"configs/cartpole.yaml at {LN_LR_FACTOR:g}x its learning rate (a setting where PPO's updates are "
        "large enough to destabilize an MLP without normalization), without and with `layer_norm: true` "
        "(a LayerNorm after each hidden layer of actor and critic).",
        "",
        *lines,
    ]
    return text, data


def precision(args) -> tuple[list[str], dict]:
    base = load("cartpole", args)
    lines = [
        f"| env | matmul_precision | steps | final IQM [95% CI] | {TIMING_HEAD} |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    data = {}
    for p in ("default", "highest"):
        r = train_seeds(base.replace(matmul_precision=p), args.seeds)
        lines.append(f"| {base.env} | {p} | {r.steps:,} | {ci_text(r.scores)} | {timing(r)} |")
        data[p] = {"scores": r.scores.tolist(), "sps": r.sps}
    text = [
        "configs/cartpole.yaml at `matmul_precision` default and highest: the throughput column is the cost "
        "(on CPU, float32 matmuls are full precision either way, so the two should match; on a recent NVIDIA "
        "GPU `default` may use TF32 and `highest` costs more).",
        "",
        *lines,
    ]
    return text, data


EXPERIMENTS: dict[str, tuple[str, Callable]] = {
    "privileged": ("Privileged critic observations", privileged),
    "popart": ("PopArt value normalization at reward scales", popart),
    "dr": ("Domain randomization: pole length", dr),
    "layer_norm": ("LayerNorm at a high learning rate", layer_norm),
    "precision": ("Matmul precision: cost", precision),
}


def render(record: dict) -> str:
    """The markdown: every recorded experiment's section, in EXPERIMENTS order."""
    lines = [
        "# Recipes for hard tasks: each against its baseline",
        "",
        "Issue 33's recipes (docs: Recipes for hard tasks), measured by `benchmarks/recipes.py`; each section "
        "names the command and the machine that produced it. Score of a run: its mean episode return over its "
        "last 10% of updates; IQM over seeds with a 95% percentile-bootstrap CI.",
        "",
    ]
    for name, (title, _) in EXPERIMENTS.items():
        if name in record:
            sec = record[name]
            lines += [
                f"## {title}",
                "",
                f"`{sec['command']}` ({sec['hardware']}, {sec['seconds']:.0f} s)",
                "",
                *sec["text"],
                "",
            ]
    return "\n".join(lines)


def main() -> None:
    import time

    from purejaxppo.cpu import configure as configure_cpu

    configure_cpu()  # explicit CPU settings (XLA scheduler flag, unrolled threefry), before any JAX computation
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--total-timesteps", type=int, default=None, help="override every budget (smoke runs)")
    p.add_argument("--eval-episodes", type=int, default=16, help="dr: episodes per pole length and seed")
    p.add_argument("--dr-scale", type=float, default=0.5, help="dr: domain_randomization_scale of the training")
    p.add_argument("--out", type=pathlib.Path, default=RESULTS / "recipes.md")
    args = p.parse_args()
    record_path = args.out.with_suffix(".json")
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/recipes.py " + " ".join(sys.argv[1:])
    for name in args.experiments:
        print(f"== {name}", flush=True)
        args.experiment = name
        t = time.perf_counter()
        text, data = EXPERIMENTS[name][1](args)
        record[name] = {
            "command": command.strip(),
            "hardware": hardware_line(),
            "seeds": args.seeds,
            "seconds": time.perf_counter() - t,
            "text": text,
            "data": data,
        }
        record_path.write_text(json.dumps(record, indent=1) + "\n")
        args.out.write_text(render(record))
        print("\n".join(text), flush=True)


if __name__ == "__main__":
    main()
