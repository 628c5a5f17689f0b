"""Field values and numbers of a sweep report: made JSON-safe, identified, and written compactly in labels and
tables (shared by `scores`, `comparison`, `markdown` and `plots`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import numpy as np


def jsonable(v):
    """`v` with NumPy scalars/arrays, tuples and non-finite floats made JSON-safe (NaN/inf -> None)."""
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        return jsonable(v.item())
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)


def setting_value(v):
    """A setting's field value made JSON-safe like `jsonable`, except that an infinite float (clip_eps: inf, no
    clipping) is kept as the text "inf" / "-inf", so reports name it (a NaN is never a valid setting)."""
    if isinstance(v, (float, np.floating)) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return jsonable(v)


def value_key(v) -> str:
    """A hashable identity for a (JSON-able) field value."""
    return json.dumps(jsonable(v), sort_keys=True)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def value_formatters(per_field_values: dict[str, list]) -> dict[str, Callable]:
    """Per field: a compact formatter that still tells all of the field's distinct values apart."""
    out = {}
    for field, vals in per_field_values.items():
        floats = [v for v in vals if isinstance(v, float)]
        prec = 17
        for p in (4, 6, 8, 12):
            if len({format(v, f".{p}g") for v in floats}) == len(set(floats)):
                prec = p
                break

        def fmt(v, prec=prec):
            if isinstance(v, float):
                return format(v, f".{prec}g") if math.isfinite(v) else str(v)
            if isinstance(v, list):
                return "[" + ", ".join(fmt(x) for x in v) + "]"
            return str(v)

        out[field] = fmt
    return out


def num(x) -> str:
    """A number for a table cell: about 4 significant digits, no exponent in [1e-3, 1e6)."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e6 or a < 1e-3:
        return f"{x:.3g}"
    digits = min(4, max(0, 3 - math.floor(math.log10(a))))
    return f"{x:.{digits}f}"


def ci_text(triple, fmt=num) -> str:
    """`point [lo, hi]` of a (point, lo, hi) triple; a dash for None."""
    if triple is None:
        return "—"
    p, lo, hi = triple
    return f"{fmt(p)} [{fmt(lo)}, {fmt(hi)}]"


def safe_name(name: str) -> str:
    """`name` reduced to the characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "x"
