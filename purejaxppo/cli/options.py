"""Flag values that `train` and `sweep` share: `--set` pairs, the progress display, the keywords they pass on."""

from __future__ import annotations

import sys
from typing import Any

from purejaxppo.core.config import coerce_field
from purejaxppo.errors import ConfigError


def parse_sets(pairs: list[str]) -> dict:
    """`["FIELD=VALUE", ...]` -> {field: value}, each value type-checked against PPOConfig (ConfigError if not)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects FIELD=VALUE, got {pair!r}")
        name, value = pair.split("=", 1)
        out[name.strip()] = coerce_field(name.strip(), value.strip(), source="--set")
    return out


def progress_style(choice: str) -> str:
    """`--progress auto` is a bar on a terminal, plain lines otherwise."""
    if choice == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return choice


def log_line(msg: str) -> None:
    print(msg, flush=True)


def run_keywords(args) -> dict[str, Any]:
    """The keywords `train_run` and `sweep_run` both take, from the flags `train` and `sweep` both have."""
    style = progress_style(args.progress)
    return dict(
        checkpoint_every=args.checkpoint_every,
        stop_after=args.stop_after,
        progress=style,
        mesh=args.mesh,
        build=args.build,
        command=["purejaxppo"] + list(args.argv),
        log=log_line,
        progress_file=sys.stderr if style == "bar" else sys.stdout,
    )
