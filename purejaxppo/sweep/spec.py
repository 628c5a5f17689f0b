"""What a sweep is: `SweepSpec` (base config, grid, random ranges, seeds), read from CLI flags or a YAML
file, and `plan_sweep`, which checks all of it and splits the settings into programs.

* Traced fields (`HParams`: learning_rate, clip_eps, ...) vary *inside* one
  compiled program: every setting x seed is one run of a vmapped batch.
* Static fields (num_envs, network, objective, env, ...) change the program:
  each combination of their values is one *group*, a program of its own; the
  groups run one after another and are reported together.

Everything a user can get wrong is a ConfigError naming the field and the fix,
raised by `plan_sweep` before anything is compiled: unknown or misspelt
fields, values of the wrong type, empty or repeated grid values, malformed or
out-of-range ranges, settings the config rejects, and groups whose runs do
not fit in memory (estimated per group with `check_run_fits`).

This module holds the spec (`SweepSpec`, `build_spec`, `read_sweep_file`); the checks of its parts and the
`--grid` / `--range` parsing are in `purejaxppo.sweep.parts`, the settings and programs (`plan_sweep`) in
`purejaxppo.sweep.plan`. Their public names are importable from here too.

The sweep file (YAML)::

    config: configs/cartpole.yaml      # base config (relative to this file), optional
    set: {total_timesteps: 100000}     # overrides of the base config, optional
    seeds: 8                           # seeds per setting
    seed: 0                            # seed s of every setting uses jax.random.split(key(seed), seeds)[s]
    grid:                              # every combination of these values
      learning_rate: [1.0e-4, 3.0e-4, 1.0e-3]
      num_envs: [4, 8]                 # static: one program per value
    points:                            # listed settings (each sets the same fields), crossed with the grid
      - {clip_eps: 0.1, kl_beta: 0.0}
      - {clip_eps: .inf, kl_beta: 1.0}
    random: 8                          # plus this many random draws of the ranges (crossed with the grid)
    range:
      ent_coef: log:1e-4:1e-1          # log-uniform; "uniform:0.9:1.0" or "0.9:1.0" is uniform
    sweep_seed: 0                      # the random draws' seed
    score: final                       # what ranks the settings: final or auc (purejaxppo.sweep.report)
    reference_scores: {CartPole-v1: [0, 500]}   # per-env (low, high) for normalized scores across envs
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Any

from purejaxppo.core.config import PPOConfig
from purejaxppo.errors import ConfigError
from purejaxppo.sweep.parts import (
    RANDOM_DIGITS,
    RANGE_KINDS,
    Range,
    check_counts,
    check_grid,
    check_points,
    check_ranges,
    check_reference_scores,
    check_varied,
    parse_grid_arg,
    parse_point_arg,
    parse_range,
)
from purejaxppo.sweep.plan import Group, Setting, SweepPlan, expand_settings, plan_sweep

__all__ = [
    "RANDOM_DIGITS",
    "RANGE_KINDS",
    "SCORES",
    "SPEC_KEYS",
    "Group",
    "Range",
    "Setting",
    "SweepPlan",
    "SweepSpec",
    "build_spec",
    "expand_settings",
    "parse_grid_arg",
    "parse_point_arg",
    "parse_range",
    "plan_sweep",
    "read_sweep_file",
]

SCORES = ("final", "auc")
SPEC_KEYS = (
    "config",
    "set",
    "seeds",
    "seed",
    "grid",
    "points",
    "random",
    "range",
    "sweep_seed",
    "score",
    "reference_scores",
)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep as the user gave it (see the module docstring for each field)."""

    base: PPOConfig
    grid: dict[str, tuple] = dataclasses.field(default_factory=dict)
    ranges: dict[str, Range] = dataclasses.field(default_factory=dict)
    random: int = 0
    seeds: int = 1
    seed: int = 0
    sweep_seed: int = 0
    score: str = "final"
    reference_scores: dict[str, tuple[float, float]] | None = None
    config_source: str | None = None
    build: str | None = None  # "module:function": every program's Train is built by it (purejaxppo.runs.build)
    points: tuple[dict[str, Any], ...] = ()

    @property
    def varied(self) -> list[str]:
        """The fields that vary, grid fields first (in the order given), then the points' and ranged ones."""
        listed = list(self.points[0]) if self.points else []
        return list(self.grid) + listed + [f for f in self.ranges if f not in self.grid and f not in listed]

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-able; `from_dict` gives the spec back (the base config in full)."""
        return {
            "config": self.base.to_dict(),
            "config_source": self.config_source,
            "build": self.build,
            "seeds": self.seeds,
            "seed": self.seed,
            "grid": {k: [list(v) if isinstance(v, tuple) else v for v in vals] for k, vals in self.grid.items()},
            "points": [{k: list(v) if isinstance(v, tuple) else v for k, v in p.items()} for p in self.points],
            "random": self.random,
            "range": {k: r.text() for k, r in self.ranges.items()},
            "sweep_seed": self.sweep_seed,
            "score": self.score,
            "reference_scores": None
            if self.reference_scores is None
            else {k: list(v) for k, v in self.reference_scores.items()},
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "sweep") -> SweepSpec:
        base = PPOConfig.from_dict(data["config"], source=f"{source}: config")
        return build_spec(
            base,
            grid=data.get("grid") or {},
            points=data.get("points") or (),
            ranges=data.get("range") or {},
            random=data.get("random") or 0,
            seeds=data.get("seeds", 1),
            seed=data.get("seed", 0),
            sweep_seed=data.get("sweep_seed", 0),
            score=data.get("score", "final"),
            reference_scores=data.get("reference_scores"),
            config_source=data.get("config_source"),
            build=data.get("build"),
            source=source,
        )


def build_spec(
    base: PPOConfig,
    *,
    grid: dict | None = None,
    points: list | tuple | None = None,
    ranges: dict | None = None,
    random: int = 0,
    seeds: int = 1,
    seed: int = 0,
    sweep_seed: int = 0,
    score: str = "final",
    reference_scores: dict | None = None,
    config_source: str | None = None,
    build: str | None = None,
    source: str = "sweep",
) -> SweepSpec:
    """Check and coerce a sweep's parts (field names, value types, ranges' form and bounds, counts): the checks
    of `purejaxppo.sweep.parts`, in order; the first that fails raises its ConfigError."""
    if build is not None:
        from purejaxppo.runs.build import check_build_spec

        check_build_spec(build)
    grid_out = check_grid(grid or {}, source)
    points_out = check_points(points, grid_out, source)
    range_out = check_ranges(ranges or {}, grid_out, source, points_out)
    check_counts(seeds=seeds, seed=seed, sweep_seed=sweep_seed, random=random, source=source)
    check_varied(grid_out, range_out, random, source, points_out)
    if score not in SCORES:
        raise ConfigError(f"{source}: score must be one of {SCORES}, got {score!r}")
    refs = check_reference_scores(reference_scores, source)
    return SweepSpec(
        base,
        grid_out,
        range_out,
        int(random),
        int(seeds),
        int(seed),
        int(sweep_seed),
        score,
        refs,
        config_source,
        build,
        points_out,
    )


def read_sweep_file(path: str | os.PathLike) -> dict:
    """A sweep YAML file as a dict of spec parts (its `config` path resolved against the file's folder)."""
    return read_spec_file(path, "sweep", SPEC_KEYS, ("grid", "range", "set"))


def read_spec_file(path: str | os.PathLike, what: str, keys: tuple[str, ...], mappings: tuple[str, ...]) -> dict:
    """A `what` YAML file (a sweep's, a PBT's) as a dict: only `keys`, the `mappings` among them mappings, its
    `config` path resolved against the file's folder. ConfigError naming the key otherwise."""
    from purejaxppo.core.config_io import read_yaml

    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} file is a mapping (keys {', '.join(keys)}), got {type(data).__name__}")
    for key in data:
        if key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{path}: unknown {what} key {key!r}.{hint} Valid keys: {', '.join(keys)}")
    for key in mappings:
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ConfigError(f"{path}: {key} must be a mapping of field: values, got {data[key]!r:.80}")
    if isinstance(data.get("config"), str):
        p = Path(data["config"])
        data["config"] = str(p if p.is_absolute() or p.exists() else Path(path).parent / p)
    return data
