"""`purejaxppo train`: one run folder, new or resumed, and the summary printed when it ends."""

from __future__ import annotations

from pathlib import Path

from purejaxppo.cli.options import parse_sets, run_keywords
from purejaxppo.core.config import PPOConfig, coerce_field
from purejaxppo.errors import ConfigError, DivergedError


def cmd_train(args) -> int:
    from purejaxppo.runs import train_run

    overrides = parse_sets(args.set)
    if args.log_every is not None:
        overrides["log_every"] = coerce_field("log_every", args.log_every, source="--log-every")
    config = PPOConfig.from_yaml(args.config) if args.config else None
    keywords = run_keywords(args)
    out_dir, resume = _run_folder(args)
    result = train_run(
        config,
        out_dir,
        overrides=overrides,
        num_seeds=args.seeds,
        seed=args.seed,
        resume=resume,
        overwrite=args.overwrite,
        on_diverge=args.on_diverge,
        tensorboard=args.tensorboard,
        wandb_project=args.wandb,
        **keywords,
    )
    if result is None:  # a follower process of a multi-process run: the leader (process 0) reports
        return 0
    if result.status == "nothing to do":  # already at the target update; train_run said so
        return 0
    print_train_summary(result)
    if result.status == "diverged":
        raise _diverged_error(result)
    if not result.finished:
        print(
            f"stopped at update {result.update}/{result.config.num_updates}; continue with: "
            f"purejaxppo train --resume {result.run_dir}",
            flush=True,
        )
    return 0


def _run_folder(args) -> tuple[Path | None, bool | Path]:
    """(the run folder, what to resume): a checkpoint file, True for the folder's newest, or False for a new run.

    The folder is None for a new run without --out: train_run claims a unique runs/<env>-<stamp>[-k]."""
    if not args.resume:
        return (Path(args.out) if args.out else None), False
    if args.out and Path(args.out) != Path(args.resume):
        raise ConfigError("--resume continues a run in its own folder; do not pass a different --out")
    resume_path = Path(args.resume)
    if resume_path.is_file():  # a specific checkpoint file
        out_dir = resume_path.parent.parent if resume_path.parent.name == "checkpoints" else resume_path.parent
        return out_dir, resume_path
    return resume_path, True


def _diverged_error(result) -> DivergedError:
    first = result.diverged_at_update
    seeds = f"seed(s) {result.diverged_seeds}" if result.state.diverged.shape[0] > 1 else "the run"
    return DivergedError(
        f"training diverged at update {first} in {seeds}: non-finite losses or parameters (params frozen at the "
        f"last finite values; see the 'diverged' column of {result.run_dir}/metrics.jsonl). Lower learning_rate, "
        "enable normalize_obs/normalize_reward, or check the env's rewards and observations"
        + (
            "; stopped there (checkpointed): --on-diverge continue trains the other seeds on"
            if not result.finished
            else ""
        )
    )


def print_train_summary(result) -> None:
    """One line: the run folder, the update reached, the final (and eval) return, throughput and times."""
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
