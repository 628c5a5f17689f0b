"""`purejaxppo pbt`: population-based training (a run folder from a PBT file and flags, or resumed)."""

from __future__ import annotations

from typing import Any

from purejaxppo.cli.options import run_keywords
from purejaxppo.cli.sweep import base_config, range_args, refuse_on_resume


def cmd_pbt(args) -> int:
    from purejaxppo.pbt.runner import pbt_run

    keywords = run_keywords(args)
    if args.resume:
        _check_resume_flags(args)
        result = pbt_run(None, args.resume, resume=True, **keywords)
    else:
        result = pbt_run(_spec_from_args(args), args.out, overwrite=args.overwrite, **keywords)
    if result is None:  # a follower process
        return 0
    if result.report is None:
        print(
            f"{result.run_dir}: stopped at update {result.run.update} of {result.run.config.num_updates}; "
            f"continue with: purejaxppo pbt --resume {result.run_dir}",
            flush=True,
        )
        return 0
    rep = result.report
    best = rep["final"][rep["best"]]
    print(
        f"{result.run_dir}: {rep['population']} members, best member {rep['best']}: final score "
        f"{best['score']:.2f} ({', '.join(f'{k}={v:.4g}' for k, v in best['hparams'].items())}); "
        f"{len(rep['lineage'])} exploit(s); report: {result.run_dir / 'pbt.md'}",
        flush=True,
    )
    return 0


def _check_resume_flags(args) -> None:
    """--resume continues the population saved in its folder: refuse flags that would define another one."""
    given = [
        f
        for f, v in (
            ("a PBT file", args.file),
            ("--config", args.config),
            ("--set", args.set),
            ("--range", args.range),
            ("--population", args.population),
            ("--ready-every", args.ready_every),
            ("--exploit", args.exploit),
            ("--perturb", args.perturb),
            ("--resample-prob", args.resample_prob),
        )
        if v
    ]
    refuse_on_resume(args, given, "population")


def _spec_from_args(args):
    """The PBTSpec of a new run: the PBT file's keys, each overridden by its flag."""
    from purejaxppo.pbt.spec import build_pbt_spec, read_pbt_file

    data = read_pbt_file(args.file) if args.file else {}
    source = args.file or "pbt"
    base, config_path = base_config(args, data, source)
    ranges = range_args(args.range, data)

    def pick(flag: Any, key: str, default: Any) -> Any:  # the command line's value, else the file's
        return flag if flag is not None else data.get(key, default)

    return build_pbt_spec(
        base,
        population=pick(args.population, "population", 8),
        ready_every=pick(args.ready_every, "ready_every", None),
        ranges=ranges,
        exploit=pick(args.exploit, "exploit", "truncation:0.25"),
        perturb=pick(args.perturb, "perturb", (0.8, 1.2)),
        resample_prob=pick(args.resample_prob, "resample_prob", 0.25),
        seed=pick(args.seed, "seed", 0),
        pbt_seed=pick(args.pbt_seed, "pbt_seed", 0),
        config_source=str(config_path) if config_path else None,
        source=source,
    )
