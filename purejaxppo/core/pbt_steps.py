"""Population-based training's building blocks (Jaderberg et al., 2017): pure functions over the run axis.

A population is P runs on one leading run axis (a vmapped batch, as a sweep's runs are), each with its own
traced `HParams`. `PBTConfig` says what a population-based training does; three building blocks, each
jit-able and pure, do one exploit/explore step:

    parent, replaced = select(key, scores[P], diverged[P], config)     # truncation selection
    state = copy_learner(state[P], parent[P])                            # params, optimizer, normalizers, ...
    hp = explore(key, hp[P], parent[P], replaced[P], config)             # perturb or resample, in range

`exploit_explore(key, state, hp, scores, config)` is the three in one, for research code with its own loop;
`initial_hparams` draws a population's starting hyperparameters in the ranges. The `Train` that runs them
inside the compiled program is `purejaxppo.core.pbt.PBTTrain` (`make_pbt_train`), which re-exports these.

What is copied (the learner): params, optimizer state, the observation normalizer, the reward scaler's
return statistics, the objective's state (e.g. the adaptive KL beta), the value normalizer's statistics
(PopArt, when on) and the diverged flag. What stays the
member's own: its envs (states, running returns, the reward scaler's per-env discounted returns), its PRNG key,
its update counter and last episode statistics.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.core.config import HPARAM_FIELDS, HPARAM_RANGES, HParams
from purejaxppo.core.train_state import TrainState
from purejaxppo.errors import ConfigError

RANGE_KINDS = ("log", "uniform")


@dataclasses.dataclass(frozen=True)
class PBTConfig:
    """What a population-based training does (static: hashable, part of the compiled program).

    population: members P (>= 2).
    ready_every: updates between exploit/explore steps (K >= 1).
    ranges: `((field, kind, low, high), ...)`, the explored HParams fields; kind "log" or "uniform".
    truncation: the fraction q in (0, 0.5]: the bottom max(1, floor(q P)) members copy one of the top as many.
    perturb: the factors a copied hyperparameter is multiplied by (one drawn uniformly), e.g. (0.8, 1.2).
    resample_prob: the probability that a copied hyperparameter is drawn anew from its range instead.
    seed: the population's own PRNG stream (selection and exploration), apart from the members' keys.
    """

    population: int
    ready_every: int
    ranges: tuple[tuple[str, str, float, float], ...]
    truncation: float = 0.25
    perturb: tuple[float, ...] = (0.8, 1.2)
    resample_prob: float = 0.25
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(
            self, "ranges", tuple((str(f), str(k), float(lo), float(hi)) for f, k, lo, hi in self.ranges)
        )
        object.__setattr__(self, "perturb", tuple(float(x) for x in self.perturb))
        where = "PBTConfig"
        for name in ("population", "ready_every", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "seed" else 1):
                raise ConfigError(f"{where}.{name}: must be an integer >= {0 if name == 'seed' else 1}, got {v!r}")
        if self.population < 2:
            raise ConfigError(f"{where}.population: needs at least 2 members to exploit, got {self.population}")
        if not 0.0 < self.truncation <= 0.5 or not math.isfinite(self.truncation):
            raise ConfigError(
                f"{where}.truncation: the exploited fraction must lie in (0, 0.5] (the bottom copy the top), "
                f"got {self.truncation!r}; e.g. truncation:0.25"
            )
        if not self.perturb or not all(math.isfinite(x) and x > 0 for x in self.perturb):
            raise ConfigError(f"{where}.perturb: needs positive finite factors, e.g. 0.8,1.2; got {self.perturb}")
        if not 0.0 <= self.resample_prob <= 1.0:
            raise ConfigError(f"{where}.resample_prob: must lie in [0, 1], got {self.resample_prob!r}")
        if not self.ranges:
            raise ConfigError(f"{where}.ranges: explore at least one field, e.g. --range learning_rate=log:1e-4:1e-3")
        seen = set()
        for name, kind, low, high in self.ranges:
            if name not in HPARAM_FIELDS:
                raise ConfigError(
                    f"{where}.ranges: {name!r} is not a traced hyperparameter; explore one of "
                    f"{', '.join(HPARAM_FIELDS)}"
                )
            if name in seen:
                raise ConfigError(f"{where}.ranges: {name} is given twice; give each field one range")
            seen.add(name)
            if kind not in RANGE_KINDS:
                raise ConfigError(f"{where}.ranges: {name}: kind must be one of {RANGE_KINDS}, got {kind!r}")
            if not (math.isfinite(low) and math.isfinite(high) and low < high) or (kind == "log" and low <= 0):
                raise ConfigError(
                    f"{where}.ranges: {name}: needs finite LOW < HIGH (LOW > 0 for log), got {kind}:{low:g}:{high:g}"
                )
            rule = HPARAM_RANGES[name]
            if not (rule.holds(jnp.float32(low)) and rule.holds(jnp.float32(high))):
                raise ConfigError(
                    f"{where}.ranges: {name}: {kind}:{low:g}:{high:g} leaves the field's allowed range "
                    f"({name} must be {rule.text}); narrow the range"
                )

    @property
    def num_replaced(self) -> int:
        """How many members are exploited per ready step (and how many are their possible sources)."""
        return max(1, math.floor(self.truncation * self.population))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(r[0] for r in self.ranges)

    def to_json(self) -> dict[str, Any]:
        return {
            "population": self.population,
            "ready_every": self.ready_every,
            "ranges": [list(r) for r in self.ranges],
            "truncation": self.truncation,
            "perturb": list(self.perturb),
            "resample_prob": self.resample_prob,
            "seed": self.seed,
        }

    def to_text(self) -> str:
        """Canonical JSON (recorded in run.json and every checkpoint: purejaxppo.runs.build.TrainSource.pbt)."""
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def from_json(cls, data: Any, source: str = "PBTConfig") -> PBTConfig:
        if isinstance(data, str):
            data = json.loads(data)
        try:
            return cls(
                int(data["population"]),
                int(data["ready_every"]),
                tuple(tuple(r) for r in data["ranges"]),
                float(data["truncation"]),
                tuple(data["perturb"]),
                float(data["resample_prob"]),
                int(data.get("seed", 0)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{source}: malformed population-based training settings ({e})") from None


# ------------------------------------------------------------------------------------------ building blocks


def select(key: jax.Array, scores: jax.Array, diverged: jax.Array, config: PBTConfig) -> tuple[jax.Array, jax.Array]:
    """Truncation selection: `scores [P]`, `diverged [P]` bool -> (parent int32 `[P]`, replaced bool `[P]`).

    Members are ranked by score (ties: the lower index ranks higher); a member with a non-finite score or
    diverged ranks last, is always replaced and is never a source. The bottom `n = config.num_replaced` and
    every bad member copy one of the good members among the top n, drawn uniformly (independently per
    member). Others keep themselves: `parent[i] == i`. With no good member in the top, nobody is replaced.
    """
    p = scores.shape[0]
    n = config.num_replaced
    bad = jnp.logical_or(~jnp.isfinite(scores), diverged)
    eff = jnp.where(bad, -jnp.inf, scores.astype(jnp.float32))
    order = jnp.argsort(-eff, stable=True)  # best first
    rank = jnp.zeros((p,), jnp.int32).at[order].set(jnp.arange(p, dtype=jnp.int32))
    top = jnp.logical_and(rank < n, ~bad)
    bottom = jnp.logical_or(rank >= p - n, bad)
    replaced = jnp.logical_and(jnp.logical_and(bottom, ~top), top.any())
    source = jax.random.categorical(key, jnp.where(top, 0.0, -jnp.inf), shape=(p,)).astype(jnp.int32)
    parent = jnp.where(replaced, source, jnp.arange(p, dtype=jnp.int32))
    return parent, replaced


# Learner fields of a TrainState that only some versions or configs have (None when off): copied when present.
_OPTIONAL_LEARNER_FIELDS = ("value_norm",)


def learner_parts(state: TrainState) -> tuple:
    """The parts of a train state that a member copies from its parent (see the module docstring)."""
    scaler_stats = None if state.reward_scaler is None else state.reward_scaler.stats
    optional = {f: getattr(state, f) for f in _OPTIONAL_LEARNER_FIELDS if hasattr(state, f)}
    return (
        state.params,
        state.opt_state,
        state.obs_norm,
        scaler_stats,
        state.objective_state,
        state.diverged,
        optional,
    )


def with_learner(state: TrainState, parts: tuple) -> TrainState:
    """`state` with its learner replaced by `parts` (what `learner_parts` returns, possibly another member's)."""
    params, opt_state, obs_norm, scaler_stats, objective_state, diverged, optional = parts
    scaler = None if state.reward_scaler is None else dataclasses.replace(state.reward_scaler, stats=scaler_stats)
    return dataclasses.replace(
        state,
        params=params,
        opt_state=opt_state,
        obs_norm=obs_norm,
        reward_scaler=scaler,
        objective_state=objective_state,
        diverged=diverged,
        **optional,
    )


def copy_learner(state: TrainState, parent: jax.Array) -> TrainState:
    """`state [P]` with each member's learner replaced by its parent's (`parent [P]` int; `parent[i] == i`
    keeps member i bit-for-bit). Env states, keys, update counters and episode statistics stay each member's."""
    return with_learner(state, jax.tree.map(lambda x: x[parent], learner_parts(state)))


def _draw(key: jax.Array, kind: str, low: float, high: float, shape) -> jax.Array:
    if kind == "log":
        return jnp.exp(jax.random.uniform(key, shape, jnp.float32, math.log(low), math.log(high)))
    return jax.random.uniform(key, shape, jnp.float32, low, high)


def initial_hparams(key: jax.Array, hp: HParams, config: PBTConfig) -> HParams:
    """`hp` (one setting) -> `[P]` fields: each ranged field drawn uniformly (log-uniformly) in its range."""
    p = config.population
    out = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (p,)), hp)
    keys = jax.random.split(key, len(config.ranges))
    return out.replace(
        **{
            name: jnp.clip(_draw(k, kind, lo, hi, (p,)), jnp.float32(lo), jnp.float32(hi))
            for k, (name, kind, lo, hi) in zip(keys, config.ranges, strict=True)
        }
    )


def explore(key: jax.Array, hp: HParams, parent: jax.Array, replaced: jax.Array, config: PBTConfig) -> HParams:
    """`hp [P]` -> the members' hyperparameters after exploitation: a replaced member takes its parent's, then
    each ranged field is resampled in its range (probability resample_prob) or multiplied by a factor drawn
    from config.perturb, and clipped to the range. Members not replaced keep theirs bit-for-bit."""
    p = parent.shape[0]
    copied = jax.tree.map(lambda x: x[parent], hp)
    new = {}
    for k, (name, kind, lo, hi) in zip(jax.random.split(key, len(config.ranges)), config.ranges, strict=True):
        k_which, k_factor, k_draw = jax.random.split(k, 3)
        x = getattr(copied, name)
        factors = jnp.asarray(config.perturb, jnp.float32)[jax.random.randint(k_factor, (p,), 0, len(config.perturb))]
        resample = jax.random.uniform(k_which, (p,)) < config.resample_prob
        moved = jnp.clip(
            jnp.where(resample, _draw(k_draw, kind, lo, hi, (p,)), x * factors), jnp.float32(lo), jnp.float32(hi)
        )
        new[name] = jnp.where(replaced, moved, x)
    return copied.replace(**new)


def exploit_explore(
    key: jax.Array, state: TrainState, hp: HParams, scores: jax.Array, config: PBTConfig
) -> tuple[TrainState, HParams, dict[str, jax.Array]]:
    """One exploit/explore step over the leading run axis of `state` and `hp` (`[P]` each), pure and jit-able.

    scores: `[P]` float (higher is better; NaN or a diverged member ranks last and is always replaced).
    Returns (state, hp, info) with info = {"parent": int32 `[P]` (whom each member copied; itself if kept),
    "replaced": bool `[P]`}. See `select`, `copy_learner` and `explore`.
    """
    k_select, k_explore = jax.random.split(key)
    parent, replaced = select(k_select, scores, jnp.asarray(state.diverged, bool), config)
    return (
        copy_learner(state, parent),
        explore(k_explore, hp, parent, replaced, config),
        {
            "parent": parent,
            "replaced": replaced,
        },
    )
