"""How a `PPOConfig` field declares its constraint, and the one generic check of a field's value.

Each field of `PPOConfig` is declared with `config_field(default, doc, ...)`,
whose keywords are the field's constraint, kept in the field's metadata:

* `int`: `low=` (smallest allowed value) and optionally `limit=` (exclusive
  upper limit, default 2**31: the value is an int32 in the compiled program)
  and `note=` (e.g. "0 = off").
* `float`: `range=` a `Range`, checked on the value as float32 (what the
  compiled program sees).
* `str`: `choices=` a tuple of allowed values, or `nonempty=` what the
  string names (any non-empty string; e.g. an environment id, resolved later).
* `tuple[int, ...]` (layer widths): `low=` for each entry, optionally `limit=`.
* `bool`: the annotation is the whole constraint.

The type comes from the annotation. `declaration_problems(cls)` lists fields
whose declaration lacks what their type needs (PPOConfig is checked when it is
defined, so a new field cannot skip it), and `field_problem` checks one value
against one field. Cross-field rules live in purejaxppo.core.config_checks.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, NamedTuple

import numpy as np

INT32_LIMIT = 2**31  # sizes and counters inside the compiled program are int32: each must be < 2**31
FLOAT_EXACT_LIMIT = 2**53  # the largest range of integers a float64 holds exactly (total_timesteps)
LIMIT_TEXT = {
    INT32_LIMIT: "2**31 (it is an int32 inside the compiled program)",
    FLOAT_EXACT_LIMIT: "2**53 (the largest integer range a float64 holds exactly)",
}
FLOAT32 = np.finfo(np.float32)


class Range(NamedTuple):
    """An interval for a float field, checked on its float32 value(s)."""

    low: float
    high: float
    low_open: bool
    high_open: bool
    text: str
    inf_ok: bool = False  # +inf is allowed too (a field where inf means "off", e.g. clip_eps)

    @typing.overload
    def holds(self, x: np.floating) -> np.bool_: ...
    @typing.overload
    def holds(self, x: np.ndarray) -> np.ndarray: ...
    def holds(self, x: np.ndarray | np.floating) -> np.ndarray | np.bool_:
        """Elementwise: finite and inside (or +inf where `inf_ok`). An open bound at 0 needs a normal float32
        (>= 1.2e-38): XLA flushes smaller values to 0."""
        low = FLOAT32.tiny if (self.low_open and self.low == 0.0) else self.low
        above = x > low if (self.low_open and self.low != 0.0) else x >= low
        below = x < self.high if self.high_open else x <= self.high
        inside = np.isfinite(x) & above & below
        return inside | np.isposinf(x) if self.inf_ok else inside


POSITIVE = Range(0.0, math.inf, True, True, "> 0")
POSITIVE_OR_INF = Range(0.0, math.inf, True, True, "> 0 (or inf)", inf_ok=True)
NON_NEGATIVE = Range(0.0, math.inf, False, True, ">= 0")

# Constraint keywords of config_field, and which of them each annotation needs (one of the alternatives).
_KEYWORDS = ("low", "limit", "note", "range", "choices", "nonempty")
_REQUIRED: dict[str, tuple[str, ...]] = {
    "bool": (),
    "int": ("low",),
    "float": ("range",),
    "str": ("choices", "nonempty"),
    "widths": ("low",),
}
_ALLOWED: dict[str, tuple[str, ...]] = {
    "bool": (),
    "int": ("low", "limit", "note"),
    "float": ("range",),
    "str": ("choices", "nonempty"),
    "widths": ("low", "limit"),
}


def config_field(default: Any, doc: str, *, traced: bool = False, **constraint: Any) -> Any:
    """A documented config field with its constraint (see the module docstring for the keywords).

    `traced=True` marks a float hyperparameter (a field of `HParams`).
    """
    unknown = set(constraint) - set(_KEYWORDS)
    if unknown:
        raise TypeError(f"config_field: unknown constraint keyword(s) {sorted(unknown)}; known: {_KEYWORDS}")
    return dataclasses.field(default=default, metadata={"doc": doc, "traced": traced, **constraint})


def kind(hint: Any) -> str | None:
    """The kind of a field's annotation: 'bool', 'int', 'float', 'str', 'widths' (tuple[int, ...]), else None."""
    if typing.get_origin(hint) is tuple:
        return "widths" if typing.get_args(hint) == (int, ...) else None
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(hint)


_HINTS: dict[type, dict[str, Any]] = {}


def field_hints(cls: type) -> dict[str, Any]:
    """The resolved annotation of each field of dataclass `cls` (computed once per class)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def declaration_problems(cls: type) -> list[str]:
    """What is missing or wrong in the field declarations of dataclass `cls` (empty: every field is complete)."""
    hints = field_hints(cls)
    problems = []
    for f in dataclasses.fields(cls):
        k = kind(hints[f.name])
        given = [key for key in _KEYWORDS if key in f.metadata]
        if "doc" not in f.metadata or "traced" not in f.metadata:
            problems.append(f"{f.name}: declare it with config_field(default, doc, ...)")
        elif k is None:
            problems.append(
                f"{f.name}: unsupported annotation {hints[f.name]} (use bool, int, float, str or tuple[int, ...])"
            )
        elif _REQUIRED[k] and not any(key in given for key in _REQUIRED[k]):
            problems.append(f"{f.name}: a {k} field needs {' or '.join(_REQUIRED[k])}=... in config_field")
        elif set(given) - set(_ALLOWED[k]):
            problems.append(f"{f.name}: {sorted(set(given) - set(_ALLOWED[k]))} do not apply to a {k} field")
        elif f.metadata["traced"] and k != "float":
            problems.append(f"{f.name}: only float fields can be traced")
        elif k == "float" and not isinstance(f.metadata["range"], Range):
            problems.append(f"{f.name}: range= must be a Range")
    return problems


# ----------------------------------------------------------------------------- checking one value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def field_problem(hint: Any, meta: typing.Mapping[str, Any], value: Any) -> str | None:
    """Why `value` does not fit a field of annotation `hint` and constraint `meta` (None when it fits).

    The text follows 'PPOConfig.<field>: ' in the ConfigError.
    """
    k = kind(hint)
    if k == "bool":
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if k == "int":
        return _int_problem(meta, value)
    if k == "float":
        return _float_problem(meta["range"], value)
    if k == "str":
        return _str_problem(meta, value)
    if k == "widths":
        return _widths_problem(meta, value)
    raise TypeError(f"unsupported field annotation {hint}")


def _int_problem(meta: typing.Mapping[str, Any], v: Any) -> str | None:
    low, limit = meta["low"], meta.get("limit", INT32_LIMIT)
    if not _is_int(v) or v < low:
        note = f" ({meta['note']})" if "note" in meta else ""
        wanted = "a positive integer" if low == 1 else f"an integer >= {low}"
        return f"must be {wanted}{note}, got {v!r}"
    if v >= limit:
        return f"must be < {LIMIT_TEXT.get(limit, limit)}, got {v}"
    return None


def as_float32(v: float) -> np.float32:
    with np.errstate(over="ignore", under="ignore"):
        return np.float32(v)


def _float32_note(v: float, f32: np.float32) -> str:
    """Why a Python value that looks fine fails as float32 (empty when it does not)."""
    if float(f32) == v:
        return ""
    if abs(float(f32)) < FLOAT32.tiny:
        return (
            f" (as float32 it is {float(f32)!r}: below the smallest normal float32 {FLOAT32.tiny:.3g}, "
            "which XLA flushes to 0)"
        )
    return f" (as float32: {f32})"


def _float_problem(rule: Range, v: Any) -> str | None:
    try:
        finite = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    except OverflowError:  # an int beyond float range
        finite = False
    if rule.inf_ok and isinstance(v, float) and v == math.inf:
        return None
    if not finite:
        return f"must be a finite number, got {v!r:.80}"
    f32 = as_float32(v)
    if not np.isfinite(f32):
        return f"{v!r} overflows float32 (the program computes in float32, max {FLOAT32.max:.3g}); use a smaller value"
    if not rule.holds(f32):
        return f"must be {rule.text}, got {v!r}{_float32_note(v, f32)}"
    return None


def _str_problem(meta: typing.Mapping[str, Any], v: Any) -> str | None:
    if "choices" in meta:
        return None if isinstance(v, str) and v in meta["choices"] else f"{v!r} is not one of {meta['choices']}"
    return None if isinstance(v, str) and v else f"must be a non-empty {meta['nonempty']} string, got {v!r}"


def _widths_problem(meta: typing.Mapping[str, Any], v: Any) -> str | None:
    low, limit = meta["low"], meta.get("limit", INT32_LIMIT)
    if not isinstance(v, tuple) or not all(_is_int(w) and w >= low for w in v):
        wanted = "positive ints" if low == 1 else f"ints >= {low}"
        return f"must be a tuple of {wanted} (may be empty), got {v!r}"
    if any(w >= limit for w in v):
        return f"layer widths must be < {LIMIT_TEXT.get(limit, limit)}, got {v!r}"
    return None


def describe_constraint(hint: Any, meta: typing.Mapping[str, Any]) -> str:
    """The allowed values of a field, in words (the docs' configuration reference)."""
    k = kind(hint)
    if k == "bool":
        return "true or false"
    if k == "float":
        return meta["range"].text
    if k == "str":
        return f"one of {', '.join(meta['choices'])}" if "choices" in meta else f"a non-empty {meta['nonempty']}"
    limit = meta.get("limit", INT32_LIMIT)
    bounds = f">= {meta['low']}, < {LIMIT_TEXT[limit].split()[0] if limit in LIMIT_TEXT else limit}"
    if k == "widths":
        return f"each {bounds} (may be empty)"
    return bounds + (f" ({meta['note']})" if "note" in meta else "")
