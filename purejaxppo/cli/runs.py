"""`purejaxppo eval`, `render` and `plot`: what to do with a finished (or checkpointed) run folder."""

from __future__ import annotations

from pathlib import Path

from purejaxppo.errors import ConfigError


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
    if s > 1 and _is_pbt(run.run_dir):
        best = _best_member_or_zero(run.run_dir)
        print(f"population-based training: the best member by its final training score is seed {best} above")
    if s > 1:
        per_seed = returns.mean(axis=1)
        point, lo, hi = bootstrap_ci(per_seed, "iqm")
        print(f"IQM over seeds of per-seed mean return: {point:.2f} (95% bootstrap CI {lo:.2f} .. {hi:.2f})")
    return 0


def cmd_render(args) -> int:
    from purejaxppo.envs import env_name as env_name_of
    from purejaxppo.envs.render import check_renderable, render_states
    from purejaxppo.runs import CHECKPOINT_DIR, resolve_checkpoint
    from purejaxppo.runs.build import FROM_CONFIG, TrainSource
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

    from_config = TrainSource.from_json(meta).kind == FROM_CONFIG
    env_name = meta.get("config", {}).get("env")
    env_name = base_env_name(env_name) if isinstance(env_name, str) else env_name  # masked/X draws X's states
    if from_config:  # else the builder's (or the given Train's) env decides, once it is built below
        check_renderable(env_name)

    import jax
    import numpy as np

    from purejaxppo.core.agent import ActingState
    from purejaxppo.core.evaluate import make_episode_rollout
    from purejaxppo.runs import load_run

    run = load_run(args.run)
    if not from_config:
        env_name = base_env_name(env_name_of(run.train.env))
        check_renderable(env_name)
    if args.seed_index is None:
        args.seed_index = _best_member_or_zero(run_dir)
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


def _is_pbt(run_dir: Path) -> bool:
    from purejaxppo.pbt.runner import is_pbt_run

    return is_pbt_run(run_dir)


def _best_member_or_zero(run_dir: Path) -> int:
    """The best member of a population-based training run (its report), else seed 0."""
    if not _is_pbt(run_dir):
        return 0
    from purejaxppo.pbt import best_member

    return best_member(run_dir)


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
