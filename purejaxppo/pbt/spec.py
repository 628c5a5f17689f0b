"""What a population-based training is: `PBTSpec`, from flags or a YAML file, checked before anything compiles.

The PBT file (YAML), every key optional but `range`::

    config: configs/cartpole.yaml    # base config (relative to this file)
    set: {total_timesteps: 100000}   # overrides of the base config
    population: 8                    # members P
    ready_every: 10                  # updates between exploit/explore steps (a multiple of log_every)
    range:                           # the explored traced fields, as a sweep's ranges
      learning_rate: log:1e-4:1e-2
      ent_coef: uniform:0:0.05
    exploit: truncation:0.25         # the bottom quarter copy the top quarter
    perturb: [0.8, 1.2]              # explore: multiply by one of these ...
    resample_prob: 0.25              # ... or, with this probability, draw anew from the range
    seed: 0                          # member i trains with key jax.random.split(key(seed), P)[i]
    pbt_seed: 0                      # the initial draws' and the population's own PRNG stream
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from purejaxppo.core.config import PPOConfig
from purejaxppo.core.pbt import PBTConfig
from purejaxppo.errors import ConfigError
from purejaxppo.sweep.parts import Range, check_ranges
from purejaxppo.sweep.spec import read_spec_file

SPEC_KEYS = (
    "config",
    "set",
    "population",
    "ready_every",
    "range",
    "exploit",
    "perturb",
    "resample_prob",
    "seed",
    "pbt_seed",
)
EXPLOIT_KINDS = ("truncation",)


@dataclasses.dataclass(frozen=True)
class PBTSpec:
    """A population-based training as the user gave it, checked: `pbt` is what the compiled program does."""

    base: PPOConfig
    pbt: PBTConfig
    ranges: dict[str, Range]
    seed: int = 0
    config_source: str | None = None
    build: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.base.to_dict(),
            "config_source": self.config_source,
            "build": self.build,
            "seed": self.seed,
            **self.pbt.to_json(),
        }


def parse_exploit(text: Any, source: str = "pbt") -> float:
    """`truncation:Q` -> Q (the exploited fraction), ConfigError naming --exploit otherwise."""
    parts = str(text).split(":")
    if len(parts) != 2 or parts[0] not in EXPLOIT_KINDS:
        raise ConfigError(f"{source}: exploit: expected 'truncation:FRACTION' (e.g. truncation:0.25), got {text!r}")
    try:
        q = float(parts[1])
    except ValueError:
        raise ConfigError(f"{source}: exploit: FRACTION must be a number, got {text!r}") from None
    if not 0.0 < q <= 0.5:
        raise ConfigError(
            f"{source}: exploit: the fraction must lie in (0, 0.5] (the bottom fraction copies the top one), "
            f"got {q:g}; e.g. truncation:0.25"
        )
    return q


def parse_perturb(value: Any, source: str = "pbt") -> tuple[float, ...]:
    """`"0.8,1.2"` or `[0.8, 1.2]` -> (0.8, 1.2): positive factors."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        out = tuple(float(x) for x in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: perturb: expected factors like 0.8,1.2, got {value!r}") from None
    if not out or not all(0.0 < x < float("inf") for x in out):
        raise ConfigError(f"{source}: perturb: the factors must be positive and finite, e.g. 0.8,1.2; got {value!r}")
    return out


def _count(name: str, v: Any, low: int, source: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ConfigError(f"{source}: {name} must be an integer >= {low}, got {v!r}")
    return int(v)


def build_pbt_spec(
    base: PPOConfig,
    *,
    population: Any,
    ready_every: Any,
    ranges: dict | None,
    exploit: Any = "truncation:0.25",
    perturb: Any = (0.8, 1.2),
    resample_prob: Any = 0.25,
    seed: Any = 0,
    pbt_seed: Any = 0,
    config_source: str | None = None,
    build: str | None = None,
    source: str = "pbt",
) -> PBTSpec:
    """Check every part (ConfigError naming the field and the fix, before anything is built or compiled)."""
    if build is not None:
        from purejaxppo.runs.build import check_build_spec

        check_build_spec(build)
    population = _count("population", population, 2, source)
    ready_every = _count("ready_every", ready_every, 1, source)
    seed, pbt_seed = _count("seed", seed, 0, source), _count("pbt_seed", pbt_seed, 0, source)
    if not ranges:
        raise ConfigError(f"{source}: nothing to explore: give at least one --range FIELD=log:LOW:HIGH")
    parsed = check_ranges(dict(ranges), {}, source)
    q = parse_exploit(exploit, source)
    factors = parse_perturb(perturb, source)
    try:
        prob = float(resample_prob)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: resample_prob must be a number in [0, 1], got {resample_prob!r}") from None
    if not 0.0 <= prob <= 1.0:
        raise ConfigError(f"{source}: resample_prob must lie in [0, 1], got {prob:g}")
    if ready_every > base.num_updates:
        raise ConfigError(
            f"{source}: ready_every {ready_every} exceeds the run's {base.num_updates} updates, so no member would "
            "ever be exploited; lower --ready-every or raise total_timesteps"
        )
    if base.log_every > 0 and ready_every % base.log_every:
        multiple = base.log_every * max(1, round(ready_every / base.log_every))
        raise ConfigError(
            f"{source}: ready_every {ready_every} must be a multiple of log_every ({base.log_every}) so that every "
            f"exploit step gets a metrics.jsonl row (the lineage); use --ready-every {multiple} "
            f"or --set log_every=1"
        )
    pbt = PBTConfig(
        population,
        ready_every,
        tuple((name, r.kind, r.low, r.high) for name, r in parsed.items()),
        q,
        factors,
        prob,
        pbt_seed,
    )
    if population < 2 * pbt.num_replaced:
        raise ConfigError(f"{source}: population {population} is too small for exploit truncation:{q:g}")
    return PBTSpec(base, pbt, parsed, seed, config_source, build)


def read_pbt_file(path: str | os.PathLike) -> dict:
    """A PBT YAML file as a dict of spec parts (its `config` path resolved against the file's folder)."""
    return read_spec_file(path, "PBT", SPEC_KEYS, ("range", "set"))
