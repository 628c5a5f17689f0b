"""The parts of a sweep spec as a user writes them, read and checked one by one (`build_spec` in
`purejaxppo.sweep.spec` runs these checks in order): `--grid` / `--range` text, `Range`, the grid's values,
the ranges' form and bounds, the counts and the reference scores. Each check raises a ConfigError naming the
field and the fix."""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any

import numpy as np

from purejaxppo.core.config import HPARAM_FIELDS, HPARAM_RANGES, coerce_field
from purejaxppo.errors import ConfigError

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


def format_value(v: Any) -> str:
    """A field's value as it appears in a setting's label or an error message."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(str(x) for x in v) + "]"
    return str(v)


# ----------------------------------------------------------------------------- text


def known_field(name: Any, source: str) -> str:
    """`name` if it is a PPOConfig field, else a ConfigError with close matches."""
    from purejaxppo.core.config import FIELD_TYPES

    if not isinstance(name, str) or name not in FIELD_TYPES:
        close = difflib.get_close_matches(str(name), list(FIELD_TYPES), n=3)
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


def parse_point_arg(text: str) -> dict[str, str]:
    """`--point F=V,G=W` -> {F: "V", G: "W"} (values as text; a value starting with "[" runs to its "]")."""
    out: dict[str, str] = {}
    rest = text.strip()
    while rest:
        if "=" not in rest:
            raise ConfigError(f"--point expects FIELD=VALUE,FIELD=VALUE,..., got {text!r}")
        name, rest = (p.strip() for p in rest.split("=", 1))
        end = rest.find("]") + 1 if rest.startswith("[") else 0
        cut = rest.find(",", end)
        value, rest = (rest, "") if cut < 0 else (rest[:cut], rest[cut + 1 :])
        if not name or name in out:
            raise ConfigError(f"--point {text!r}: {'a field name is missing' if not name else f'{name} twice'}")
        out[name] = value.strip()
    if not out:
        raise ConfigError("--point needs at least one FIELD=VALUE")
    return out


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


# ----------------------------------------------------------------------------- checks


def check_grid(grid: dict, source: str) -> dict[str, tuple]:
    """The grid with every field known and its values coerced to the field's type (none missing, none twice)."""
    out: dict[str, tuple] = {}
    for name, values in grid.items():
        known_field(name, f"{source}: grid")
        if not isinstance(values, (list, tuple)):
            values = [values]
        if len(values) == 0:
            raise ConfigError(f"{source}: grid {name} has no values; list at least one, e.g. {name}=V1,V2")
        coerced = tuple(coerce_field(name, v, source=f"{source}: grid") for v in values)
        seen = set()
        for v in coerced:
            if v in seen:
                raise ConfigError(f"{source}: grid {name} lists {format_value(v)} twice; list each value once")
            seen.add(v)
        out[name] = coerced
    return out


def check_points(points: Any, grid: dict[str, tuple], source: str) -> tuple[dict[str, Any], ...]:
    """The listed settings (`points`: each {field: value}) with every value coerced: every point sets the same
    fields, none of them in the grid, and no point is listed twice."""
    if points is None:
        return ()
    if not isinstance(points, (list, tuple)):
        raise ConfigError(f"{source}: points must be a list of settings ({{field: value}} each), got {points!r:.80}")
    out: list[dict[str, Any]] = []
    for i, point in enumerate(points):
        where = f"{source}: points[{i}]"
        if not isinstance(point, dict) or not point:
            raise ConfigError(f"{where} must be a non-empty mapping of field: value, got {point!r:.80}")
        coerced = {known_field(k, where): coerce_field(k, v, source=where) for k, v in point.items()}
        if out and set(coerced) != set(out[0]):
            raise ConfigError(
                f"{where} sets {sorted(coerced)} but points[0] sets {sorted(out[0])}; every point sets the same "
                "fields (repeat a field's base value where a point keeps it)"
            )
        if coerced in out:
            raise ConfigError(f"{where} repeats points[{out.index(coerced)}]; list each setting once")
        out.append(coerced)
    both = [f for f in (out[0] if out else {}) if f in grid]
    if both:
        raise ConfigError(
            f"{source}: {', '.join(both)} in both the grid and the points; give each field one or the other"
        )
    return tuple(out)


def check_ranges(
    ranges: dict, grid: dict[str, tuple], source: str, points: tuple[dict[str, Any], ...] = ()
) -> dict[str, Range]:
    """The ranges parsed: each of a traced field in neither the grid nor the points, both ends inside the field's
    allowed range."""
    out: dict[str, Range] = {}
    for name, text in ranges.items():
        known_field(name, f"{source}: range")
        if name not in HPARAM_FIELDS:
            raise ConfigError(
                f"{source}: range {name}: random ranges are for the traced float hyperparameters "
                f"({', '.join(HPARAM_FIELDS)}); list values of a static field with --grid {name}=V1,V2"
            )
        if name in grid:
            raise ConfigError(f"{source}: {name} is in both the grid and the ranges; give it one or the other")
        if points and name in points[0]:
            raise ConfigError(f"{source}: {name} is in both the points and the ranges; give it one or the other")
        r = parse_range(name, text, source)
        rule = HPARAM_RANGES[name]
        for end in (r.low, r.high):
            if not rule.holds(np.float32(end)):
                raise ConfigError(
                    f"{source}: range {name}: {r.text()} leaves the field's allowed range "
                    f"({name} must be {rule.text}); narrow the range"
                )
        out[name] = r
    return out


def check_counts(*, seeds: Any, seed: Any, sweep_seed: Any, random: Any, source: str) -> None:
    """seeds >= 1; seed, sweep_seed and random >= 0; all integers (not bools)."""
    for what, v, low in (("seeds", seeds, 1), ("seed", seed, 0), ("sweep_seed", sweep_seed, 0), ("random", random, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ConfigError(f"{source}: {what} must be an integer >= {low}, got {v!r}")


def check_varied(
    grid: dict[str, tuple], ranges: dict[str, Range], random: int, source: str, points: tuple = ()
) -> None:
    """Something varies, and ranges and random draws come together."""
    if ranges and random < 1:
        raise ConfigError(f"{source}: ranges ({', '.join(ranges)}) need a number of random draws: --random N")
    if random and not ranges:
        raise ConfigError(
            f"{source}: --random {random} needs at least one range to draw from: --range FIELD=log:LOW:HIGH"
        )
    if not grid and not ranges and not points:
        raise ConfigError(
            f"{source}: nothing varies: give --grid FIELD=V1,V2 (and/or --point F=V,G=W ..., --random N "
            "--range FIELD=...)"
        )


def check_reference_scores(reference_scores: Any, source: str) -> dict[str, tuple[float, float]] | None:
    """`{env: (low, high)}` with low < high, or None when not given."""
    if reference_scores is None:
        return None
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
    return refs
