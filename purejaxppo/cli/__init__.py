"""Command line: `purejaxppo {train,eval,render,plot,sweep,report}` (also `python -m purejaxppo ...`).

    purejaxppo train [--config FILE] [--seeds N] [--set FIELD=VALUE ...] [--out runs/NAME] [--processes N]
                     [--mesh seed=S,data=D] [--checkpoint-every N] [--resume runs/NAME] [--overwrite] [--stop-after N]
    purejaxppo eval runs/NAME [--episodes 100] [--deterministic]
    purejaxppo render runs/NAME --out episode.gif
    purejaxppo plot runs/NAME [runs/OTHER ...] [--out plot.png]
    purejaxppo sweep [SWEEP.yaml] [--config FILE] --seeds 8 --grid FIELD=V1,V2 [--random N --range FIELD=log:LO:HI]
                     [--set FIELD=VALUE ...] [--out runs/NAME] [--resume runs/NAME] [--stop-after N]
    purejaxppo report runs/NAME

User errors print one line `purejaxppo: error: ...` on stderr and exit with
status 2: purejaxppo's own errors (`purejaxppo.errors.PureJaxPPOError`: bad
config key or value, unknown env, missing optional extra, existing or busy
output folder, missing/corrupt/mismatched checkpoint, a run that does not fit
in memory, a diverged run, ...) and the machine's (a full disk, permissions, a
missing file, no network, memory running out). Set PUREJAXPPO_TRACEBACK=1 to
see their traceback too. Any other exception is a bug: it keeps its traceback
(exit status 1), with a note saying whether the run folder is intact. Ctrl-C
exits with 130 and says which checkpoint to continue from (the newest
checkpoint stays valid).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from purejaxppo.core.config import PPOConfig, coerce_field
from purejaxppo.errors import ConfigError, DivergedError, PureJaxPPOError

if TYPE_CHECKING:
    from purejaxppo.runs.loop import RunInterrupted


def parse_sets(pairs: list[str]) -> dict:
    """`["FIELD=VALUE", ...]` -> {field: value}, each value type-checked against PPOConfig (ConfigError if not)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects FIELD=VALUE, got {pair!r}")
        name, value = pair.split("=", 1)
        out[name.strip()] = coerce_field(name.strip(), value.strip(), source="--set")
    return out


def _progress_style(choice: str) -> str:
    if choice == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return choice


# ------------------------------------------------------------------------- train


def cmd_train(args) -> int:
    from purejaxppo.runs import train_run

    overrides = parse_sets(args.set)
    if args.log_every is not None:
        overrides["log_every"] = coerce_field("log_every", args.log_every, source="--log-every")
    config = PPOConfig.from_yaml(args.config) if args.config else None
    style = _progress_style(args.progress)

    out_dir: Path | None
    resume: bool | Path  # a checkpoint file, True for the folder's newest, or False for a new run
    if args.resume:
        if args.out and Path(args.out) != Path(args.resume):
            raise ConfigError("--resume continues a run in its own folder; do not pass a different --out")
        resume_path = Path(args.resume)
        if resume_path.is_file():  # a specific checkpoint file
            out_dir = resume_path.parent.parent if resume_path.parent.name == "checkpoints" else resume_path.parent
            resume = resume_path
        else:
            out_dir, resume = resume_path, True
    else:
        out_dir = Path(args.out) if args.out else None  # None: train_run claims a unique runs/<env>-<stamp>[-k]
        resume = False

    def log(msg: str) -> None:
        print(msg, flush=True)

    result = train_run(
        config,
        out_dir,
        overrides=overrides,
        num_seeds=args.seeds,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        resume=resume,
        overwrite=args.overwrite,
        progress=style,
        stop_after=args.stop_after,
        on_diverge=args.on_diverge,
        tensorboard=args.tensorboard,
        wandb_project=args.wandb,
        mesh=args.mesh,
        command=["purejaxppo"] + list(args.argv),
        log=log,
        progress_file=sys.stderr if style == "bar" else sys.stdout,
    )
    if result is None:  # a follower process of a multi-process run: the leader (process 0) reports
        return 0
    if result.status == "nothing to do":  # already at the target update; train_run said so
        return 0
    _print_train_summary(result)
    if result.status == "diverged":
        first = result.diverged_at_update
        seeds = f"seed(s) {result.diverged_seeds}" if result.state.diverged.shape[0] > 1 else "the run"
        raise DivergedError(
            f"training diverged at update {first} in {seeds}: non-finite losses or parameters (params frozen at the "
            f"last finite values; see the 'diverged' column of {result.run_dir}/metrics.jsonl). Lower learning_rate, "
            "enable normalize_obs/normalize_reward, or check the env's rewards and observations"
            + (
                "; stopped there (checkpointed): --on-diverge continue trains the other seeds on"
                if not result.finished
                else ""
            )
        )
    if not result.finished:
        print(
            f"stopped at update {result.update}/{result.config.num_updates}; continue with: "
            f"purejaxppo train --resume {result.run_dir}",
            flush=True,
        )
    return 0


def _print_train_summary(result) -> None:
    from purejaxppo.runs import learning_curves

    try:
        _, values = learning_curves(result.run_dir, "episode_return")
        last = values[:, -1]
        rs = f"final episode return {last.mean():.2f}" + (
            f" (min {last.min():.1f}, max {last.max():.1f})" if len(last) > 1 else ""
        )
    except ValueError:
        rs = "no episode return logged yet"
    try:  # in-training evaluation: the newest update where every seed was evaluated (NaN/null elsewhere)
        steps, ev = learning_curves(result.run_dir, "eval_return")
        rs += f", eval return {ev[:, -1].mean():.2f} (at {int(steps[-1]):,} env steps)"
    except ValueError:
        pass
    print(
        f"{result.run_dir}: update {result.update}/{result.config.num_updates}, {rs}; "
        f"{result.env_steps_per_s:,.0f} env steps/s, compile {result.compile_s:.1f}s, wall {result.wall_s:.1f}s",
        flush=True,
    )


# -------------------------------------------------------------------------- eval


def cmd_eval(args) -> int:
    import jax
    import numpy as np

    from purejaxppo.core.agent import ActingState
    from purejaxppo.core.evaluate import make_evaluate
    from purejaxppo.runs import load_run
    from purejaxppo.sweep.stats import bootstrap_ci, iqm

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    run = load_run(args.run)
    evaluate = make_evaluate(run.train)
    n, s = args.episodes, run.num_seeds
    fn = jax.jit(jax.vmap(lambda acting, k: evaluate(acting, k, n, args.deterministic)))
    keys = jax.random.split(jax.random.key(args.seed), s)
    returns = np.asarray(fn(ActingState(run.state.params, run.state.obs_norm), keys))  # [seeds, episodes]
    mode = "deterministic (mode)" if args.deterministic else "stochastic (sampled)"
    print(
        f"{run.run_dir} ({run.checkpoint.name}, update {run.meta['update']}/{run.config.num_updates}): "
        f"{run.config.env}, {s} seed(s) x {n} episode(s), {mode} actions"
    )
    if s > 1:
        for i, r in enumerate(returns):
            print(f"  seed {i}: mean {r.mean():.2f}  std {r.std():.2f}  IQM {iqm(r):.2f}")
    flat = returns.reshape(-1)
    print(
        f"return: mean {flat.mean():.2f}  std {flat.std():.2f}  IQM {iqm(flat):.2f}  "
        f"min {flat.min():.2f}  max {flat.max():.2f}  ({flat.size} episodes)"
    )
    if s > 1:
        per_seed = returns.mean(axis=1)
        point, lo, hi = bootstrap_ci(per_seed, "iqm")
        print(f"IQM over seeds of per-seed mean return: {point:.2f} (95% bootstrap CI {lo:.2f} .. {hi:.2f})")
    return 0


# ------------------------------------------------------------------------ render


def cmd_render(args) -> int:
    from purejaxppo.envs.render import check_renderable, render_states
    from purejaxppo.runs import CHECKPOINT_DIR, resolve_checkpoint
    from purejaxppo.runs.checkpoints import CheckpointManager, read_checkpoint

    out = Path(args.out)
    if out.suffix.lower() != ".gif":
        raise ConfigError(f"--out must be a .gif file, got {out}")
    if args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    # Check the env before compiling anything.
    run_dir, ck = resolve_checkpoint(args.run)
    meta = read_checkpoint(ck)[0] if ck else CheckpointManager(run_dir / CHECKPOINT_DIR).read_latest()[1]
    from purejaxppo.envs.wrappers import base_env_name

    env_name = meta.get("config", {}).get("env")
    env_name = base_env_name(env_name) if isinstance(env_name, str) else env_name  # masked/X draws X's states
    check_renderable(env_name)

    import jax
    import numpy as np

    from purejaxppo.core.agent import ActingState
    from purejaxppo.core.evaluate import make_episode_rollout
    from purejaxppo.runs import load_run

    run = load_run(args.run)
    if not 0 <= args.seed_index < run.num_seeds:
        raise ConfigError(f"--seed-index {args.seed_index} out of range: the run has {run.num_seeds} seed(s)")
    acting = jax.tree.map(lambda x: x[args.seed_index], ActingState(run.state.params, run.state.obs_norm))
    rollout = jax.jit(make_episode_rollout(run.train), static_argnums=2)
    ep = jax.device_get(rollout(acting, jax.random.key(args.seed), not args.stochastic))
    length = int(ep.length)
    frames = min(length, args.max_frames)
    states = [jax.tree.map(lambda x, t=t: x[t], ep.env_states) for t in range(frames)]
    cum = np.cumsum(np.asarray(ep.rewards[:frames], np.float64))
    render_states(run.train.env, run.train.env_params, env_name, states, cum, out)
    print(
        f"wrote {out}: {frames} frame(s) of a {length}-step episode, return {float(np.sum(ep.rewards[:length])):.2f}"
        + (f" (first {frames} frames drawn; --max-frames)" if frames < length else "")
    )
    return 0


# -------------------------------------------------------------------------- plot


def cmd_plot(args) -> int:
    import numpy as np

    from purejaxppo.runs import learning_curves
    from purejaxppo.sweep.stats import plot_curves

    curves, steps_list = {}, []
    for run in args.runs:
        steps, values = learning_curves(run, args.metric)
        name = Path(run).name or str(run)
        while name in curves:
            name += "'"
        curves[name] = values
        steps_list.append(steps)
    if all(len(s) == len(steps_list[0]) and np.array_equal(s, steps_list[0]) for s in steps_list):
        grid = steps_list[0]
    else:  # different logging grids: interpolate every run onto a common one over the shared range
        hi = min(s[-1] for s in steps_list)
        lo = max(s[0] for s in steps_list)
        if hi <= lo:
            raise ConfigError("plot: the runs share no range of env steps")
        grid = np.linspace(lo, hi, max(len(s) for s in steps_list))
        curves = {
            k: np.stack([np.interp(grid, s, row) for row in v])
            for (k, v), s in zip(curves.items(), steps_list, strict=True)
        }
        print(
            f"note: the runs were logged at different env steps; plotted over their shared range "
            f"{lo:,.0f}..{hi:,.0f}, linearly interpolated"
        )
    path = plot_curves(curves, grid, args.out, metric=args.stat, ylabel=args.metric.replace("_", " "), title=args.title)
    print(
        f"wrote {path}: {args.stat} of {args.metric} over seeds with 95% bootstrap CI bands, "
        + ", ".join(f"{k} ({v.shape[0]} seed(s))" for k, v in curves.items())
    )
    return 0


# ------------------------------------------------------------------------- sweep


def cmd_sweep(args) -> int:
    from purejaxppo.sweep.runner import sweep_run
    from purejaxppo.sweep.spec import build_spec, parse_grid_arg, read_sweep_file

    style = _progress_style(args.progress)
    kwargs = dict(
        checkpoint_every=args.checkpoint_every,
        stop_after=args.stop_after,
        progress=style,
        mesh=args.mesh,
        command=["purejaxppo"] + list(args.argv),
        log=lambda m: print(m, flush=True),
        progress_file=sys.stderr if style == "bar" else sys.stdout,
    )
    if args.resume:
        given = [
            f
            for f, v in (
                ("a sweep file", args.file),
                ("--config", args.config),
                ("--grid", args.grid),
                ("--range", args.range),
                ("--set", args.set),
                ("--random", args.random),
                ("--seeds", args.seeds),
            )
            if v
        ]
        if given:
            raise ConfigError(f"--resume continues the sweep saved in {args.resume}; do not pass {', '.join(given)}")
        if args.out and Path(args.out) != Path(args.resume):
            raise ConfigError("--resume continues a sweep in its own folder; do not pass a different --out")
        result = sweep_run(None, args.resume, resume=True, **kwargs)
    else:
        data = read_sweep_file(args.file) if args.file else {}
        source = args.file or "sweep"
        config_path = args.config or data.get("config")
        base = PPOConfig.from_yaml(config_path) if config_path else PPOConfig()
        sets = dict(data.get("set") or {})
        sets.update(parse_sets(args.set))
        base = base.replace(**{k: coerce_field(k, v, source=f"{source}: set") for k, v in sets.items()})
        grid = dict(data.get("grid") or {})
        for g in args.grid:
            name, values = parse_grid_arg(g)
            grid[name] = values
        ranges = dict(data.get("range") or {})
        for r in args.range:
            if "=" not in r:
                raise ConfigError(f"--range expects FIELD=log:LOW:HIGH or FIELD=LOW:HIGH, got {r!r}")
            name, text = (p.strip() for p in r.split("=", 1))
            ranges[name] = text

        def pick(flag: Any, key: str, default: Any) -> Any:  # the command line's value, else the file's
            return flag if flag is not None else data.get(key, default)

        spec = build_spec(
            base,
            grid=grid,
            ranges=ranges,
            random=pick(args.random, "random", 0),
            seeds=pick(args.seeds, "seeds", 1),
            seed=pick(args.seed, "seed", 0),
            sweep_seed=pick(args.sweep_seed, "sweep_seed", 0),
            score=pick(args.score, "score", "final"),
            reference_scores=data.get("reference_scores"),
            config_source=str(config_path) if config_path else None,
            source=source,
        )
        result = sweep_run(spec, args.out, overwrite=args.overwrite, **kwargs)
    if result.status == "finished":
        _print_sweep_summary(result)
    else:
        print(
            f"{result.sweep_dir}: stopped before every program finished; continue with: "
            f"purejaxppo sweep --resume {result.sweep_dir}",
            flush=True,
        )
    return 0


def _print_sweep_summary(result) -> None:
    rep = result.report or {}
    md = result.sweep_dir / "sweep.md"
    best = next((c for c in rep.get("settings", []) if c.get("rank") == 1), None)
    head = (
        f"{result.sweep_dir}: {len(result.plan.settings)} setting(s) x {result.plan.spec.seeds} seed(s), "
        f"{len(result.plan.groups)} program(s), compile {result.compile_s:.1f}s, wall {result.wall_s:.1f}s"
    )
    print(head, flush=True)
    if best is not None:
        print(f"best: {best.get('label', best.get('values'))}; report: {md}", flush=True)


def cmd_report(args) -> int:
    from purejaxppo.sweep.report_io import make_report

    if args.reps < 1:
        raise ConfigError(f"--reps must be >= 1, got {args.reps}")
    _, paths = make_report(args.run, score=args.score, reps=args.reps)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


# -------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="purejaxppo", description="PPO end to end in JAX: train, evaluate, render, plot."
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,render,plot,sweep,report}")

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
    p.set_defaults(func=cmd_train)

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

    p = sub.add_parser(
        "render",
        help="write a GIF of one episode",
        description="Roll out one episode and draw it with gymnax's visualizer.",
    )
    p.add_argument("run", help="run folder (newest checkpoint) or a checkpoint file")
    p.add_argument("--out", default="episode.gif", help="GIF file to write (default episode.gif)")
    p.add_argument("--seed-index", type=int, default=0, help="which of the run's seeds (default 0)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the episode")
    p.add_argument("--stochastic", action="store_true", help="sample actions (default: the mode)")
    p.add_argument("--max-frames", type=int, default=500, help="draw at most this many steps (default 500)")
    p.set_defaults(func=cmd_render)

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

    p = sub.add_parser(
        "sweep",
        help="compare hyperparameter settings x seeds, with a statistical report",
        description="Train every setting of a grid / random search x seeds: the traced hyperparameters "
        "of one program vmapped together, one program per combination of static fields; "
        "then write sweep.md, sweep.json and plots (docs: Sweeps and statistics).",
    )
    p.add_argument(
        "file",
        nargs="?",
        help="sweep YAML file (keys: config, set, seeds, seed, grid, random, range, "
        "sweep_seed, score, reference_scores); flags below override it",
    )
    p.add_argument("--config", help="base YAML config (default: the sweep file's, else the built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a base config field")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        help="values of one field (repeatable; settings are every combination)",
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

    p = sub.add_parser(
        "report",
        help="(re)write a finished sweep's report",
        description="Compute the statistics of a sweep folder and write sweep.md, sweep.json and plots.",
    )
    p.add_argument("run", help="sweep folder")
    p.add_argument(
        "--score", choices=("final", "auc"), default=None, help="what ranks the settings (default: the sweep's)"
    )
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    from purejaxppo.cpu import configure as configure_cpu

    configure_cpu()  # first, before any JAX array: XLA:CPU scheduler flag, unrolled threefry (docs: CPU notes)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["train"] + argv  # `purejaxppo` alone trains CartPole
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        if args.func is cmd_train and args.processes is not None and not args.distributed:
            return _launch_workers(args)
        if args.func is cmd_train and args.distributed:
            from purejaxppo.parallel.distributed import initialize

            initialize(args.coordinator, args.num_processes, args.process_id)
        return args.func(args)
    except KeyboardInterrupt as e:
        print(f"purejaxppo: {_interrupted_message(e)}", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("PUREJAXPPO_TRACEBACK"):
            raise
        msg = _user_error_message(e)
        if msg is None:
            raise
        print(f"purejaxppo: error: {msg}", file=sys.stderr)
        return 2


def _launch_workers(args) -> int:
    """`--processes N`: the same command as N local workers (purejaxppo.parallel.distributed.launch)."""
    from purejaxppo.parallel.distributed import launch

    if args.processes < 1:
        raise ConfigError(f"--processes must be >= 1, got {args.processes}")
    if args.mesh:
        from purejaxppo.parallel import parse_mesh

        parse_mesh(args.mesh)  # a bad --mesh is reported once, here, not by every worker
    worker_argv, skip = [], False
    for a in args.argv:
        if skip:
            skip = False
        elif a == "--processes":
            skip = True
        elif not a.startswith("--processes="):
            worker_argv.append(a)
    if worker_argv[:1] != ["train"]:
        worker_argv = ["train"] + worker_argv
    return launch(worker_argv, args.processes)


def _interrupted_message(e: KeyboardInterrupt) -> str:
    sweep_dir = getattr(e, "sweep_dir", None)  # a SweepInterrupted
    if sweep_dir is not None:
        return (
            f"interrupted; every finished chunk is checkpointed; continue with: purejaxppo sweep --resume {sweep_dir}"
        )
    run_dir, ck = getattr(e, "run_dir", None), getattr(e, "checkpoint", None)
    if run_dir is None:
        return "interrupted"
    if ck is None:
        return (
            f"interrupted before the first checkpoint of {run_dir}; nothing to resume yet "
            f"(start again, with --overwrite to reuse the folder: purejaxppo train ... --out {run_dir} --overwrite)"
        )
    update = cast("RunInterrupted", e).update  # a run folder and a checkpoint: train_run's RunInterrupted
    return (
        f"interrupted; the newest checkpoint {ck.name} (update {update}) is intact; "
        f"continue with: purejaxppo train --resume {run_dir}"
    )


def _user_error_message(e: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None for a bug (shown with its traceback).

    User errors are purejaxppo's own (`PureJaxPPOError`: config, env, extra, run folder, checkpoint, memory
    estimate, divergence) and the machine's: files, disks, permissions and the network (`OSError`), and host or
    device memory running out. Anything else (a ValueError, TypeError, KeyError, ... raised inside purejaxppo,
    JAX or an env) is a bug and keeps its traceback."""
    text = _one_line(e)
    if isinstance(e, PureJaxPPOError):
        return text
    try:
        from urllib.error import URLError

        if isinstance(e, URLError):
            return (
                f"could not download data the environment needs ({' '.join(str(e.reason).split())}); "
                "this machine looks offline: use another env, or fetch the data on a machine with network first"
            )
    except ImportError:  # pragma: no cover
        pass
    if isinstance(e, OSError):
        hints: dict[int | None, str] = {  # (e.errno may be None)
            errno.ENOSPC: "free disk space",
            errno.EROFS: "the file system is read-only: choose another --out",
            errno.EDQUOT: "the disk quota is exceeded: free space",
        }
        hint = hints.get(e.errno)
        return f"{text} ({hint}; an interrupted run continues with: purejaxppo train --resume RUN)" if hint else text
    if isinstance(e, MemoryError):
        return "out of host memory; reduce num_envs, num_steps or --seeds"
    if "RESOURCE_EXHAUSTED" in str(e) or "Out of memory" in str(e):
        first = next(
            (ln.strip() for ln in str(e).splitlines() if "RESOURCE_EXHAUSTED" in ln or "memory" in ln.lower()), ""
        )
        return (
            f"out of device memory while running the training program ({first[:200]}); reduce num_envs, "
            "num_steps or --seeds (a resumed run continues from its newest checkpoint)"
        )
    return None


def _one_line(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.filename and e.strerror:
        msg = f"{e.strerror}: {e.filename}"
    return " ".join(msg.split())


if __name__ == "__main__":
    sys.exit(main())
