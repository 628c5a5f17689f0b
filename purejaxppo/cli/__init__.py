"""Command line: `purejaxppo {train,eval,render,plot,sweep,report,pbt}` (also `python -m purejaxppo ...`).

    purejaxppo train [--config FILE] [--seeds N] [--set FIELD=VALUE ...] [--build MODULE:FUNCTION] [--out runs/NAME]
                     [--processes N] [--mesh seed=S,data=D] [--checkpoint-every N] [--resume runs/NAME]
                     [--overwrite] [--stop-after N]
    purejaxppo eval runs/NAME [--episodes 100] [--deterministic]
    purejaxppo render runs/NAME --out episode.gif
    purejaxppo plot runs/NAME [runs/OTHER ...] [--out plot.png]
    purejaxppo sweep [SWEEP.yaml] [--config FILE] --seeds 8 --grid FIELD=V1,V2 [--random N --range FIELD=log:LO:HI]
                     [--set FIELD=VALUE ...] [--build MODULE:FUNCTION] [--out runs/NAME] [--resume runs/NAME]
                     [--stop-after N]
    purejaxppo report runs/NAME
    purejaxppo pbt [PBT.yaml] [--config FILE] --population 8 --ready-every K --range FIELD=log:LO:HI ...
                   [--exploit truncation:0.25] [--perturb 0.8,1.2] [--resample-prob 0.25] [--out runs/NAME]
                   [--resume runs/NAME] [--mesh seed=S] [--processes N]

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

Modules: `parser` (the arguments), `train`, `runs` (eval, render, plot), `sweep` (sweep, report), `pbt`, `options`
(flag values train and sweep share) and `errors` (how exceptions are shown).
"""

from __future__ import annotations

import os
import sys

from purejaxppo.cli.errors import interrupted_message, user_error_message
from purejaxppo.cli.options import parse_sets
from purejaxppo.cli.parser import build_parser
from purejaxppo.cli.pbt import cmd_pbt
from purejaxppo.cli.train import cmd_train, print_train_summary
from purejaxppo.errors import ConfigError

__all__ = ["build_parser", "main", "parse_sets", "print_train_summary"]

# The name tests/test_faults_run.py imports (before the package split, cli's own private helper).


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
        if args.func in (cmd_train, cmd_pbt) and args.processes is not None and not args.distributed:
            return _launch_workers(args)
        if args.func in (cmd_train, cmd_pbt) and args.distributed:
            from purejaxppo.parallel.distributed import initialize

            initialize(args.coordinator, args.num_processes, args.process_id)
        return args.func(args)
    except KeyboardInterrupt as e:
        print(f"purejaxppo: {interrupted_message(e)}", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("PUREJAXPPO_TRACEBACK"):
            raise
        msg = user_error_message(e)
        if msg is None:
            raise
        print(f"purejaxppo: error: {msg}", file=sys.stderr)
        return 2


def _launch_workers(args) -> int:
    """`--processes N`: the same command as N local workers (purejaxppo.parallel.distributed.launch).

    Every worker gets this command's arguments (`--build`, `--set`, ... included) less `--processes`."""
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
    if worker_argv[:1] != [args.command]:
        worker_argv = [args.command] + worker_argv
    return launch(worker_argv, args.processes)
