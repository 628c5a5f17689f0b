"""`purejaxppo sweep` (a sweep folder from a sweep file and flags, or resumed) and `purejaxppo report`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from purejaxppo.cli.options import parse_sets, run_keywords
from purejaxppo.core.config import PPOConfig, coerce_field
from purejaxppo.errors import ConfigError


def cmd_sweep(args) -> int:
    from purejaxppo.sweep.runner import sweep_run

    keywords = run_keywords(args)
    if args.resume:
        _check_resume_flags(args)
        result = sweep_run(None, args.resume, resume=True, **keywords)
    else:
        result = sweep_run(_spec_from_args(args), args.out, overwrite=args.overwrite, **keywords)
    if result.status == "finished":
        _print_sweep_summary(result)
    else:
        print(
            f"{result.sweep_dir}: stopped before every program finished; continue with: "
            f"purejaxppo sweep --resume {result.sweep_dir}",
            flush=True,
        )
    return 0


def _check_resume_flags(args) -> None:
    """--resume continues the sweep saved in its folder: refuse flags that would define another one."""
    given = [
        f
        for f, v in (
            ("a sweep file", args.file),
            ("--config", args.config),
            ("--grid", args.grid),
            ("--point", args.point),
            ("--range", args.range),
            ("--set", args.set),
            ("--random", args.random),
            ("--seeds", args.seeds),
        )
        if v
    ]
    refuse_on_resume(args, given, "sweep")


def refuse_on_resume(args, given: list[str], what: str) -> None:
    """ConfigError when --resume comes with flags that define another run (`given`) or another --out."""
    if given:
        raise ConfigError(f"--resume continues the {what} saved in {args.resume}; do not pass {', '.join(given)}")
    if args.out and Path(args.out) != Path(args.resume):
        raise ConfigError(f"--resume continues a {what} in its own folder; do not pass a different --out")


def _spec_from_args(args):
    """The SweepSpec of a new sweep: the sweep file's keys, each overridden by its flag."""
    from purejaxppo.sweep.spec import build_spec, parse_point_arg, read_sweep_file

    data = read_sweep_file(args.file) if args.file else {}
    source = args.file or "sweep"
    base, config_path = base_config(args, data, source)
    grid, ranges = _grid_and_ranges(args, data)

    def pick(flag: Any, key: str, default: Any) -> Any:  # the command line's value, else the file's
        return flag if flag is not None else data.get(key, default)

    return build_spec(
        base,
        grid=grid,
        points=[parse_point_arg(p) for p in args.point] if args.point else data.get("points"),
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


def base_config(args, data: dict, source: str) -> tuple[PPOConfig, str | None]:
    """(the base config, its path or None) of a sweep or PBT file `data` and the flags --config and --set."""
    config_path = args.config or data.get("config")
    base = PPOConfig.from_yaml(config_path) if config_path else PPOConfig()
    sets = dict(data.get("set") or {})
    sets.update(parse_sets(args.set))
    return base.replace(**{k: coerce_field(k, v, source=f"{source}: set") for k, v in sets.items()}), config_path


def range_args(flags: list[str], data: dict) -> dict:
    """The file's `range` with each `--range FIELD=TEXT` flag added (a flag replaces the file's field)."""
    ranges = dict(data.get("range") or {})
    for r in flags:
        if "=" not in r:
            raise ConfigError(f"--range expects FIELD=log:LOW:HIGH or FIELD=LOW:HIGH, got {r!r}")
        name, text = (p.strip() for p in r.split("=", 1))
        ranges[name] = text
    return ranges


def _grid_and_ranges(args, data: dict) -> tuple[dict, dict]:
    """The sweep file's grid and range, with --grid and --range added (a flag replaces the file's field)."""
    from purejaxppo.sweep.spec import parse_grid_arg

    grid = dict(data.get("grid") or {})
    for g in args.grid:
        name, values = parse_grid_arg(g)
        grid[name] = values
    return grid, range_args(args.range, data)


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
    from purejaxppo.pbt.runner import is_pbt_run

    if is_pbt_run(args.run):  # a population-based training run folder: its own report
        from purejaxppo.pbt.report import write_pbt_report

        paths = write_pbt_report(args.run)[1]
        print(f"wrote {', '.join(str(p) for p in paths)}")
        return 0
    _, paths = make_report(args.run, score=args.score, reps=args.reps)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0
