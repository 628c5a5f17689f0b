"""The argument parser: one function per subcommand, each setting `func` to the command it runs."""

from __future__ import annotations

import argparse

from purejaxppo.cli.pbt import cmd_pbt
from purejaxppo.cli.runs import cmd_eval, cmd_plot, cmd_render
from purejaxppo.cli.sweep import cmd_report, cmd_sweep
from purejaxppo.cli.train import cmd_train

BUILD_HELP = (
    "build the Train from your own module: FUNCTION(config) returns make_train(config, env=..., "
    "network_factory=..., objective=...); recorded in the run folder and used by --resume, eval, render and "
    "load_policy"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="purejaxppo", description="PPO end to end in JAX: train, evaluate, render, plot."
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,render,plot,sweep,report,pbt}")
    _add_train(sub)
    _add_eval(sub)
    _add_render(sub)
    _add_plot(sub)
    _add_sweep(sub)
    _add_report(sub)
    _add_pbt(sub)
    return parser


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train (default: CartPole-v1 with the built-in defaults)",
        description="Train vmapped seeds in jitted chunks, with checkpoints, metric logs and a live progress bar.",
    )
    p.add_argument("--config", help="YAML config file (default: built-in PPOConfig defaults, CartPole-v1)")
    p.add_argument(
        "--seeds", type=int, default=None, help="number of seeds, vmapped (default 1; on resume: the checkpoint's)"
    )
    p.add_argument("--seed", type=int, default=0, help="base PRNG seed: seeds are jax.random.split(key(SEED), N)")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field (repeatable)"
    )
    p.add_argument("--build", metavar="MODULE:FUNCTION", default=None, help=BUILD_HELP)
    p.add_argument("--out", help="run folder (default runs/<env>-<timestamp>)")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="updates per jitted chunk and checkpoint (default: about 10 checkpoints per run)",
    )
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder (or from this checkpoint file)")
    p.add_argument("--overwrite", action="store_true", help="replace the run files of an existing --out folder")
    p.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="N",
        help="stop after N updates in total (checkpointed; continue later with --resume)",
    )
    _add_train_reporting(p)
    _add_scaling_out(p)
    p.set_defaults(func=cmd_train)


def _add_train_reporting(p: argparse.ArgumentParser) -> None:
    """How `train` reports: log interval, progress display, divergence policy, extra metric writers."""
    p.add_argument(
        "--log-every",
        default=None,
        metavar="N",
        help="updates between progress reports and metrics.jsonl rows (sets config log_every; 0 = no progress bar)",
    )
    p.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "off"),
        default="auto",
        help="progress display: tqdm bar, plain lines, or off (auto: bar on a terminal, else lines)",
    )
    p.add_argument(
        "--on-diverge",
        choices=("stop", "continue"),
        default="stop",
        help="when a seed produces NaN/inf: stop at that update (default; checkpointed, status 'diverged') "
        "or continue training the other seeds (the diverged ones stay frozen)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard scalars to RUN/tensorboard (extra: tensorboard)",
    )
    p.add_argument("--wandb", metavar="PROJECT", help="also log to this Weights & Biases project (extra: wandb)")


def _add_scaling_out(p: argparse.ArgumentParser) -> None:
    """`train`'s device mesh and processes (docs: Scaling out)."""
    g = p.add_argument_group("scaling out (docs: Scaling out)")
    g.add_argument(
        "--mesh",
        metavar="seed=S,data=D",
        help="device mesh: S devices share the seeds, D devices share each run's num_envs (default: the "
        "plain program on one device; all devices, seeds first, when there are several)",
    )
    g.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="start N local worker processes joined by jax.distributed (on CPU: one per core) and wait for them",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="this process is one of several (e.g. one per host under SLURM): join them with "
        "jax.distributed.initialize() (auto-detected, or --coordinator/--num-processes/--process-id, "
        "or PUREJAXPPO_COORDINATOR/_NUM_PROCESSES/_PROCESS_ID)",
    )
    g.add_argument("--coordinator", metavar="HOST:PORT", help="with --distributed: address of process 0")
    g.add_argument(
        "--num-processes", type=int, default=None, metavar="N", help="with --distributed: how many processes"
    )
    g.add_argument("--process-id", type=int, default=None, metavar="I", help="with --distributed: this process's index")


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a run's checkpoint",
        description="Evaluate every seed's policy of a run (vmapped, jitted).",
    )
    p.add_argument("run", help="run folder (newest checkpoint) or a checkpoint file")
    p.add_argument("--episodes", type=int, default=100, help="episodes per seed (default 100)")
    p.add_argument("--deterministic", action="store_true", help="act with the mode instead of sampling")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed for env resets and sampling")
    p.set_defaults(func=cmd_eval)


def _add_render(sub) -> None:
    p = sub.add_parser(
        "render",
        help="write a GIF of one episode",
        description="Roll out one episode and draw it with gymnax's visualizer.",
    )
    p.add_argument("run", help="run folder (newest checkpoint) or a checkpoint file")
    p.add_argument("--out", default="episode.gif", help="GIF file to write (default episode.gif)")
    p.add_argument(
        "--seed-index",
        type=int,
        default=None,
        help="which of the run's seeds (default 0; of a population-based training run, its best member)",
    )
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the episode")
    p.add_argument("--stochastic", action="store_true", help="sample actions (default: the mode)")
    p.add_argument("--max-frames", type=int, default=500, help="draw at most this many steps (default 500)")
    p.set_defaults(func=cmd_render)


def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="learning curves with CI bands across seeds",
        description="Plot runs' learning curves from metrics.jsonl.",
    )
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("--out", default="plot.png", help="PNG file to write (default plot.png)")
    p.add_argument(
        "--metric", default="episode_return", help="metric column (default episode_return; e.g. eval_return)"
    )
    p.add_argument(
        "--stat", choices=("iqm", "mean", "median"), default="iqm", help="aggregate over seeds (default iqm)"
    )
    p.add_argument("--title", default=None, help="plot title")
    p.set_defaults(func=cmd_plot)


def _add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="compare hyperparameter settings x seeds, with a statistical report",
        description="Train every setting of a grid / random search x seeds: the traced hyperparameters "
        "of one program vmapped together, one program per combination of static fields; "
        "then write sweep.md, sweep.json and plots (docs: Sweeps and statistics).",
    )
    _add_spec_source(
        p, "sweep", "config, set, seeds, seed, grid, points, random, range, sweep_seed, score, reference_scores"
    )
    _add_sweep_search(p)
    p.add_argument("--out", help="sweep folder (default runs/sweep-<env>-<timestamp>)")
    p.add_argument("--resume", metavar="RUN", help="continue the sweep in this folder")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an existing --out sweep")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="N", help="updates per chunk and checkpoint")
    p.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="N",
        help="stop every program after N updates (checkpointed; continue with --resume)",
    )
    p.add_argument("--progress", choices=("auto", "bar", "lines", "off"), default="auto", help="progress display")
    p.add_argument(
        "--mesh", metavar="seed=S,data=D", help="device mesh for every program (the runs share the seed axis)"
    )
    p.set_defaults(func=cmd_sweep)


def _add_spec_source(p: argparse.ArgumentParser, what: str, keys: str) -> None:
    """A sweep's or PBT's file, base config, --set overrides and builder."""
    p.add_argument("file", nargs="?", help=f"{what} YAML file (keys: {keys}); flags below override it")
    p.add_argument("--config", help=f"base YAML config (default: the {what} file's, else the built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a base config field")
    p.add_argument("--build", metavar="MODULE:FUNCTION", default=None, help=BUILD_HELP)


def _add_sweep_search(p: argparse.ArgumentParser) -> None:
    """What a sweep searches: grid, random draws and their ranges, seeds, and how settings are ranked."""
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        help="values of one field (repeatable; settings are every combination)",
    )
    p.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="F=V,G=W,...",
        help="one listed setting (repeatable; every --point sets the same fields; crossed with the grid; "
        "replaces the sweep file's points)",
    )
    p.add_argument("--random", type=int, default=None, metavar="N", help="N random draws of the --range fields")
    p.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="FIELD=[log:]LOW:HIGH",
        help="random-search range of a traced field: log-uniform (log:) or uniform",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per setting (default 1)")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="base PRNG seed: seed s of every setting uses jax.random.split(key(SEED), seeds)[s] (default 0)",
    )
    p.add_argument("--sweep-seed", type=int, default=None, help="seed of the random draws (default 0)")
    p.add_argument(
        "--score",
        choices=("final", "auc"),
        default=None,
        help="what ranks the settings: final return (last 10%% of updates) or area under the curve",
    )


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="(re)write a finished sweep's (or population-based training run's) report",
        description="Compute the statistics of a sweep folder and write sweep.md, sweep.json and plots "
        "(of a `purejaxppo pbt` run folder: pbt.md, pbt.json and plots).",
    )
    p.add_argument("run", help="sweep folder (or pbt run folder)")
    p.add_argument(
        "--score", choices=("final", "auc"), default=None, help="what ranks the settings (default: the sweep's)"
    )
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.set_defaults(func=cmd_report)


def _add_pbt(sub) -> None:
    p = sub.add_parser(
        "pbt",
        help="population-based training: hyperparameters that change during training",
        description="Train a population whose members exploit (the bottom copy the top's learner) and explore "
        "(perturb or resample their traced hyperparameters) every --ready-every updates, inside one compiled "
        "program; then write pbt.md, pbt.json and plots (docs: Population-based training).",
    )
    _add_spec_source(
        p, "PBT", "config, set, population, ready_every, range, exploit, perturb, resample_prob, seed, pbt_seed"
    )
    p.add_argument("--population", type=int, default=None, metavar="P", help="members (default 8)")
    p.add_argument(
        "--ready-every",
        type=int,
        default=None,
        metavar="K",
        help="updates between exploit/explore steps (a multiple of log_every)",
    )
    p.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="FIELD=[log:]LOW:HIGH",
        help="an explored traced field and its range (repeatable): initial draws, resampling and clipping",
    )
    p.add_argument(
        "--exploit", default=None, metavar="truncation:Q", help="the bottom Q copy the top Q (default truncation:0.25)"
    )
    p.add_argument("--perturb", default=None, metavar="F1,F2", help="explore factors (default 0.8,1.2)")
    p.add_argument(
        "--resample-prob", type=float, default=None, help="probability of a fresh draw instead of a factor (0.25)"
    )
    p.add_argument(
        "--seed", type=int, default=None, help="member i trains with jax.random.split(key(SEED), P)[i] (default 0)"
    )
    p.add_argument("--pbt-seed", type=int, default=None, help="seed of the initial draws and of exploit/explore")
    p.add_argument("--out", help="run folder (default runs/<env>-<timestamp>)")
    p.add_argument("--resume", metavar="RUN", help="continue the population in this folder")
    p.add_argument("--overwrite", action="store_true", help="replace the run files of an existing --out folder")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="N", help="updates per chunk and checkpoint")
    p.add_argument(
        "--stop-after", type=int, default=None, metavar="N", help="stop after N updates (continue with --resume)"
    )
    p.add_argument("--progress", choices=("auto", "bar", "lines", "off"), default="auto", help="progress display")
    _add_scaling_out(p)  # the population is the run axis: --mesh seed=S splits it over devices
    p.set_defaults(func=cmd_pbt)
