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

The sweep file (YAML)::

    config: configs/cartpole.yaml      # base config (relative to this file), optional
    set: {total_timesteps: 100000}     # overrides of the base config, optional
    seeds: 8                           # seeds per setting
    seed: 0                            # seed s of every setting uses jax.random.split(key(seed), seeds)[s]
    grid:                              # every combination of these values
      learning_rate: [1.0e-4, 3.0e-4, 1.0e-3]
      num_envs: [4, 8]                 # static: one program per value
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
import itertools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.core.config import HPARAM_FIELDS, HPARAM_RANGES, PPOConfig, coerce_field
from purejaxppo.errors import ConfigError

SCORES = ("final", "auc")
SPEC_KEYS = ("config", "set", "seeds", "seed", "grid", "random", "range", "sweep_seed", "score", "reference_scores")
RANGE_KINDS = ("log", "uniform")
RANDOM_DIGITS = 3  # random draws are rounded to this many significant digits (readable reports)


@dataclasses.dataclass(frozen=True)
class Range:
    """A random-search range of one traced field: `kind` "log" (log-uniform) or "uniform", [low, high]."""

    kind: str
    low: float
    high: float

    def text(self) -> str:
        return f"{self.kind}:{self.low:g}:{self.high:g}"

    def draw(self, rng: np.random.Generator) -> float:
        if self.kind == "log":
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            x = rng.uniform(self.low, self.high)
        return float(f"{x:.{RANDOM_DIGITS}g}")


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

    @property
    def varied(self) -> list[str]:
        """The fields that vary, grid fields first (in the order given), then ranged ones."""
        return list(self.grid) + [f for f in self.ranges if f not in self.grid]

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-able; `from_dict` gives the spec back (the base config in full)."""
        return {
            "config": self.base.to_dict(),
            "config_source": self.config_source,
            "build": self.build,
            "seeds": self.seeds,
            "seed": self.seed,
            "grid": {k: [list(v) if isinstance(v, tuple) else v for v in vals] for k, vals in self.grid.items()},
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


@dataclasses.dataclass(frozen=True)
class Setting:
    """One combination of the varied fields' values; `group` is the program it runs in."""

    id: int
    values: dict[str, Any]
    group: int

    def label(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.values.items())


@dataclasses.dataclass(frozen=True)
class Group:
    """One compiled program of a sweep: the settings that share the static fields' values."""

    id: int
    static: dict[str, Any]
    config: PPOConfig
    settings: tuple[Setting, ...]

    @property
    def dir_name(self) -> str:
        return f"g{self.id}"

    def run_axis(self, seeds: int):
        """The group's runs (settings x seeds, seeds fastest) as a `RunAxis`."""
        from purejaxppo.runs.axis import RunAxis

        hps, index, labels = [], [], []
        for st in self.settings:
            traced = {k: v for k, v in st.values.items() if k in HPARAM_FIELDS}
            hp = {n: traced.get(n, getattr(self.config, n)) for n in HPARAM_FIELDS}
            for s in range(seeds):
                hps.append(hp)
                index.append(s)
                labels.append({"setting": st.id, "seed": s})
        return RunAxis.build(seeds, index, hps, labels)


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    spec: SweepSpec
    settings: tuple[Setting, ...]
    groups: tuple[Group, ...]

    @property
    def num_runs(self) -> int:
        return len(self.settings) * self.spec.seeds


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(str(x) for x in v) + "]"
    return str(v)


# ----------------------------------------------------------------------------- parsing


def _known_field(name: Any, source: str) -> str:
    from purejaxppo.core.config import _FIELD_TYPES

    if not isinstance(name, str) or name not in _FIELD_TYPES:
        close = difflib.get_close_matches(str(name), list(_FIELD_TYPES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"{source}: unknown config field {name!r}.{hint} Sweepable fields: every PPOConfig field "
            f"(traced, one program: {', '.join(HPARAM_FIELDS)}; any other field gives one program per value)"
        )
    return name


def parse_grid_arg(text: str) -> tuple[str, list]:
    """`--grid FIELD=V1,V2,...` -> (field, [values as text]). A value list starting with "[" is read as
    YAML (for list-valued fields: `--grid 'actor_hidden=[[64,64],[256,256]]'`)."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"--grid expects FIELD=V1,V2,..., got {text!r}")
    name, values = (p.strip() for p in text.split("=", 1))
    if values.startswith("["):
        try:
            parsed = yaml.safe_load(values)
        except yaml.YAMLError:
            parsed = None
        if not isinstance(parsed, list):
            raise ConfigError(f"--grid {name}: {values!r} is not a YAML list of values")
        return name, parsed
    return name, [v.strip() for v in values.split(",") if v.strip()] if values else []


def parse_range(name: str, text: Any, source: str) -> Range:
    """`log:1e-5:1e-2`, `uniform:0.9:1.0` or `0.9:1.0` -> Range (ConfigError naming the field otherwise)."""
    where = f"{source}: range {name}"
    parts = str(text).split(":")
    if len(parts) == 2:
        parts = ["uniform"] + parts
    if len(parts) != 3 or parts[0] not in RANGE_KINDS:
        raise ConfigError(f"{where}: expected 'log:LOW:HIGH', 'uniform:LOW:HIGH' or 'LOW:HIGH', got {text!r}")
    try:
        low, high = float(parts[1]), float(parts[2])
    except ValueError:
        raise ConfigError(f"{where}: LOW and HIGH must be numbers, got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise ConfigError(f"{where}: needs finite LOW < HIGH, got {low:g} and {high:g}")
    if parts[0] == "log" and low <= 0:
        raise ConfigError(f"{where}: a log range needs LOW > 0, got {low:g}; use uniform:{low:g}:{high:g}")
    return Range(parts[0], low, high)


def build_spec(
    base: PPOConfig,
    *,
    grid: dict | None = None,
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
    """Check and coerce a sweep's parts (field names, value types, ranges' form and bounds, counts)."""
    if build is not None:
        from purejaxppo.runs.build import check_build_spec

        check_build_spec(build)
    grid_out: dict[str, tuple] = {}
    for name, values in (grid or {}).items():
        _known_field(name, f"{source}: grid")
        if not isinstance(values, (list, tuple)):
            values = [values]
        if len(values) == 0:
            raise ConfigError(f"{source}: grid {name} has no values; list at least one, e.g. {name}=V1,V2")
        coerced = tuple(coerce_field(name, v, source=f"{source}: grid") for v in values)
        seen = set()
        for v in coerced:
            if v in seen:
                raise ConfigError(f"{source}: grid {name} lists {_fmt(v)} twice; list each value once")
            seen.add(v)
        grid_out[name] = coerced
    range_out: dict[str, Range] = {}
    for name, text in (ranges or {}).items():
        _known_field(name, f"{source}: range")
        if name not in HPARAM_FIELDS:
            raise ConfigError(
                f"{source}: range {name}: random ranges are for the traced float hyperparameters "
                f"({', '.join(HPARAM_FIELDS)}); list values of a static field with --grid {name}=V1,V2"
            )
        if name in grid_out:
            raise ConfigError(f"{source}: {name} is in both the grid and the ranges; give it one or the other")
        r = parse_range(name, text, source)
        rule = HPARAM_RANGES[name]
        for end in (r.low, r.high):
            if not rule.holds(np.float32(end)):
                raise ConfigError(
                    f"{source}: range {name}: {r.text()} leaves the field's allowed range "
                    f"({name} must be {rule.text}); narrow the range"
                )
        range_out[name] = r
    for what, v, low in (("seeds", seeds, 1), ("seed", seed, 0), ("sweep_seed", sweep_seed, 0), ("random", random, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ConfigError(f"{source}: {what} must be an integer >= {low}, got {v!r}")
    if range_out and random < 1:
        raise ConfigError(f"{source}: ranges ({', '.join(range_out)}) need a number of random draws: --random N")
    if random and not range_out:
        raise ConfigError(
            f"{source}: --random {random} needs at least one range to draw from: --range FIELD=log:LOW:HIGH"
        )
    if not grid_out and not range_out:
        raise ConfigError(f"{source}: nothing varies: give --grid FIELD=V1,V2 (and/or --random N --range FIELD=...)")
    if score not in SCORES:
        raise ConfigError(f"{source}: score must be one of {SCORES}, got {score!r}")
    refs = None
    if reference_scores is not None:
        if not isinstance(reference_scores, dict):
            raise ConfigError(f"{source}: reference_scores must map env -> [low, high], got {reference_scores!r:.80}")
        refs = {}
        for env, pair in reference_scores.items():
            try:
                lo, hi = (float(x) for x in pair)
            except (TypeError, ValueError):
                raise ConfigError(f"{source}: reference_scores[{env!r}] must be [low, high], got {pair!r}") from None
            if not lo < hi:
                raise ConfigError(f"{source}: reference_scores[{env!r}] needs low < high, got {pair!r}")
            refs[str(env)] = (lo, hi)
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
    )


def read_sweep_file(path: str | os.PathLike) -> dict:
    """A sweep YAML file as a dict of spec parts (its `config` path resolved against the file's folder)."""
    from purejaxppo.core.config import _read_yaml

    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping (keys {', '.join(SPEC_KEYS)}), got {type(data).__name__}")
    for key in data:
        if key not in SPEC_KEYS:
            close = difflib.get_close_matches(str(key), SPEC_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{path}: unknown sweep key {key!r}.{hint} Valid keys: {', '.join(SPEC_KEYS)}")
    for key in ("grid", "range", "set"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ConfigError(f"{path}: {key} must be a mapping of field: values, got {data[key]!r:.80}")
    if isinstance(data.get("config"), str):
        p = Path(data["config"])
        data["config"] = str(p if p.is_absolute() or p.exists() else Path(path).parent / p)
    return data


# ----------------------------------------------------------------------------- planning


def expand_settings(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every setting's {varied field: value}: the grid's product (last field fastest), each crossed with the
    `random` draws of the ranges (drawn once, in order, from `default_rng(sweep_seed)`)."""
    rng = np.random.default_rng(spec.sweep_seed)
    draws = [{n: r.draw(rng) for n, r in spec.ranges.items()} for _ in range(spec.random)] or [{}]
    names = list(spec.grid)
    out = []
    for combo in itertools.product(*(spec.grid[n] for n in names)):
        for d in draws:
            out.append({**dict(zip(names, combo, strict=True)), **d})
    return out


def plan_sweep(
    spec: SweepSpec, *, check_memory: bool = True, mesh: dict | None = None, device_count: int | None = None
) -> SweepPlan:
    """Settings and groups of `spec`, every setting's config validated and every group's memory estimated
    (ConfigError / purejaxppo.core.resources.ResourceError naming the setting or group). Traces each group's
    program shapes (`jax.eval_shape`); compiles nothing."""
    values = expand_settings(spec)
    static_names = [n for n in spec.varied if n not in HPARAM_FIELDS]
    groups: dict[tuple, list[Setting]] = {}
    settings = []
    for i, vals in enumerate(values):
        try:
            spec.base.replace(**vals)
        except ValueError as e:
            label = ", ".join(f"{k}={_fmt(v)}" for k, v in vals.items())
            raise ConfigError(f"sweep setting {i} ({label}): {e}") from None
        key = tuple((n, vals[n]) for n in static_names)
        g = list(groups).index(key) if key in groups else len(groups)
        st = Setting(i, vals, g)
        groups.setdefault(key, []).append(st)
        settings.append(st)
    out = []
    for g, (key, members) in enumerate(groups.items()):
        static = dict(key)
        out.append(Group(g, static, spec.base.replace(**static), tuple(members)))
    plan = SweepPlan(spec, tuple(settings), tuple(out))
    if check_memory:
        _check_groups(plan, mesh, device_count)
    return plan


def _check_groups(plan: SweepPlan, mesh: dict | None, device_count: int | None) -> None:
    import jax

    from purejaxppo.runs.build import build_train, source_of
    from purejaxppo.runs.chunks import check_run_fits
    from purejaxppo.runs.mesh import resolve_mesh_shape

    devices = jax.device_count() if device_count is None else device_count
    for g in plan.groups:
        where = f"sweep program {g.id}" + (
            f" ({', '.join(f'{k}={_fmt(v)}' for k, v in g.static.items())})" if g.static else ""
        )
        runs = len(g.settings) * plan.spec.seeds
        try:
            train = build_train(g.config, source_of(None, plan.spec.build))
            check_run_fits(train, runs)
            resolve_mesh_shape(
                mesh, num_seeds=runs, config=g.config, device_count=devices, process_count=jax.process_count()
            )
        except ValueError as e:
            msg = str(e)
            if "memory" in msg:
                msg += (
                    f"; this program runs {len(g.settings)} setting(s) x {plan.spec.seeds} seed(s) = {runs} runs "
                    "at once: fewer seeds, fewer values of the traced fields, or split the sweep"
                )
            raise type(e)(f"{where}: {msg}") from None
