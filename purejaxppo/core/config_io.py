"""Config values from outside Python's plain types: YAML files, CLI strings, NumPy and JAX scalars.

Each function takes the field's annotation (`hint`), so it knows nothing of
PPOConfig itself; purejaxppo.core.config applies them to its fields
(`coerce_field`, `PPOConfig.from_yaml`, `PPOConfig.__post_init__`).
"""

from __future__ import annotations

import types
import typing
from typing import Any

import jax
import numpy as np

from purejaxppo.errors import ConfigError

GRID_HINT = (
    "a list of values is a grid/sweep, not a single config: build one config per value "
    "(for traced fields, vmap over HParams instead)"
)


def read_yaml(path) -> Any:
    """The parsed content of a YAML file (None for an empty file becomes {}); errors name the file."""
    import yaml

    with open(path, "rb") as fh:  # a missing file: FileNotFoundError naming it
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); save the config as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{at}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    return {} if data is None else data


def plain_scalar(value: Any, where: str) -> Any:
    """A NumPy scalar or 0-d NumPy/JAX array as the Python bool/int/float/str; anything else unchanged.

    Floats keep the shortest decimal of their own precision: np.float32(1e-3) -> 0.001.
    """
    if isinstance(value, jax.core.Tracer):
        raise ConfigError(
            f"{where}: got a traced JAX value; PPOConfig is static, so pass traced hyperparameters "
            "through HParams instead (config.hparams().replace(...))"
        )
    if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0:
        value = np.asarray(value)[()]
    if isinstance(value, np.floating):
        return float(str(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def plain_value(hint: Any, value: Any, where: str) -> Any:
    """`value` for a field annotated `hint` in plain Python types, before type and range checks.

    NumPy/JAX scalars become Python ones; a list/array of widths becomes a
    tuple; a whole float becomes an int for int fields (1e6 -> 1000000) and an
    int a float for float fields. A list or array for any other field raises
    ConfigError (a grid of values is not one config). Whatever else is wrong is
    left for the type/range checks to report.
    """
    is_array = isinstance(value, (np.ndarray, jax.Array))
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) or (is_array and np.ndim(value) == 1):
            return tuple(plain_scalar(v, where) for v in value)
        return plain_scalar(value, where)
    if isinstance(value, (list, tuple, set, dict)) or (is_array and np.ndim(value) > 0):
        raise ConfigError(f"{where}: expects {type_name(hint)}, got {value!r:.80}; {GRID_HINT}")
    value = plain_scalar(value, where)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # reported by the field's check
            return value
    return value


def parse_str(hint: Any, text: str) -> Any:
    """A CLI/YAML string for a non-str field, parsed: ints also from '1e6' (YAML 1.1 reads it as a string)."""
    import yaml

    for parse in {int: (int, float), float: (float,)}.get(hint, ()):
        try:
            return parse(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # reported as the wrong type


def has_type(hint: Any, value: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return True


def coerce(hint: Any, value: Any, where: str) -> Any:
    """`value` (a YAML/CLI value) converted to a field of annotation `hint`; ConfigError naming `where` if not."""
    if isinstance(value, str) and hint is not str:
        value = parse_str(hint, value)
    value = plain_value(hint, value, where)
    if typing.get_origin(hint) is tuple and isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not has_type(hint, value):
        whole = " (not a whole number)" if hint is int and isinstance(value, float) else ""
        raise ConfigError(f"{where} expects {type_name(hint)}, got {value!r}{whole}")
    return value


def type_name(hint) -> str:
    if typing.get_origin(hint) is tuple:
        return "a list of ints, e.g. [64, 64]"
    if isinstance(hint, types.GenericAlias):
        return str(hint)
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
