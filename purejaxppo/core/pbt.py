"""Population-based training (Jaderberg et al., 2017) as pure functions over the run axis, and as a `Train`.

A population is P runs on one leading run axis (a vmapped batch, as a sweep's runs are), each with its own
traced `HParams`. Every `ready_every` updates each member is scored (the mean episode return of its updates
since the last ready step); the bottom fraction copy the learner of a member drawn from the top fraction and
explore its hyperparameters. Three building blocks, each jit-able and pure (purejaxppo.core.pbt_steps,
re-exported here):

    parent, replaced = select(key, scores[P], diverged[P], config)     # truncation selection
    state = copy_learner(state[P], parent[P])                            # params, optimizer, normalizers, ...
    hp = explore(key, hp[P], parent[P], replaced[P], config)             # perturb or resample, in range

`exploit_explore(key, state, hp, scores, config)` is the three in one, for research code with its own loop.
`make_pbt_train(train, config)` returns a `PBTTrain`: a `Train` whose state (`PBTState`) carries each
member's hyperparameters and score, and whose `update` does the exploit/explore step every `ready_every`
updates inside the compiled program (the members see each other through collectives over the vmapped run
axis, `population_axes`). So a PBT run is an ordinary run folder (purejaxppo.runs: chunked, checkpointed,
resumed bit-identically); `purejaxppo.pbt` builds and reports it.

What is copied (the learner): params, optimizer state, the observation normalizer, the reward scaler's
return statistics, the objective's state (e.g. the adaptive KL beta), the value normalizer's statistics
(PopArt, when on) and the diverged flag. What stays the
member's own: its envs (states, running returns, the reward scaler's per-env discounted returns), its PRNG key,
its update counter and last episode statistics.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from purejaxppo.core.config import HParams
from purejaxppo.core.pbt_steps import (  # noqa: F401 (the building blocks, importable from here too)
    RANGE_KINDS,
    PBTConfig,
    copy_learner,
    exploit_explore,
    explore,
    initial_hparams,
    learner_parts,
    select,
    with_learner,
)
from purejaxppo.core.train import Train
from purejaxppo.core.train_state import TrainState
from purejaxppo.errors import ConfigError

#: The name of the vmap over a run's seeds (purejaxppo.runs.chunks.AXIS, purejaxppo.parallel.LOCAL_SEEDS):
#: a PBTTrain's update gathers the population over it. On a device mesh the mesh's "seed" axis comes first.
RUN_AXIS = "local_seeds"
_POPULATION_KEY = 0x9B7  # the population's PRNG stream: jax.random.key(config.seed) folded with this, then the step


@struct.dataclass
class PBTState(TrainState):
    """A population member's `TrainState` plus its traced hyperparameters and its score so far.

    hp: the member's `HParams` (scalars; `[P]` over the run axis), changed by exploration.
    score_sum, score_count: the sum and number of its updates' episode returns since the last ready step.
    """

    # Defaults only because a TrainState field may have one (dataclass order); PBTTrain.init sets all three.
    hp: Any = None
    score_sum: Any = None
    score_count: Any = None


def _base_state(state: PBTState) -> TrainState:
    return TrainState(**{f.name: getattr(state, f.name) for f in dataclasses.fields(TrainState)})


def _pbt_state(state: TrainState, hp: HParams, score_sum: jax.Array, score_count: jax.Array) -> PBTState:
    fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(TrainState)}
    return PBTState(**fields, hp=hp, score_sum=score_sum, score_count=score_count)


@dataclasses.dataclass(frozen=True, eq=False)
class PBTTrain(Train):
    """A `Train` whose runs are a population (see the module docstring); build it with `make_pbt_train`.

    `init(key, hp)` starts a member with hyperparameters `hp` (its own; vmap over `[P]` fields).
    `update(state, hp)` ignores `hp`: the member trains with `state.hp`, and every `pbt.ready_every` updates
    the population (vmapped with axis name(s) `population_axes`) exploits and explores: a `lax.cond` on the
    population's common update counter, so other updates gather nothing. Extra metrics:
    `pbt_parent` (whom the member copied at a ready step, itself if kept; NaN on other updates),
    `pbt_score` (its score at a ready step, else NaN) and `hp_<field>` (each explored field's value used by
    this update).
    """

    pbt: PBTConfig | None = None
    population_axes: tuple[str, ...] = (RUN_AXIS,)

    def init(self, key: jax.Array, hp: HParams | None = None) -> PBTState:
        hp = self.config.hparams() if hp is None else hp
        state = super().init(key, hp)
        hp = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hp)
        zero = jnp.zeros((), jnp.float32)
        return _pbt_state(state, hp, zero, zero)

    def update(self, state: PBTState, hp: HParams | None = None) -> tuple[PBTState, dict[str, jax.Array]]:  # type: ignore[override]
        config = self.pbt
        assert config is not None
        new, metrics = super().update(_base_state(state), state.hp)
        ret = metrics["episode_return"]
        score_sum = state.score_sum + jnp.where(jnp.isfinite(ret), ret, 0.0)
        score_count = state.score_count + 1.0
        score = jnp.where(score_count > 0, score_sum / jnp.maximum(score_count, 1.0), jnp.nan)
        ready = new.update_step % config.ready_every == 0

        gather, me = _population(self.population_axes)

        def exploit(_):
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), _POPULATION_KEY), new.update_step)
            k_select, k_explore = jax.random.split(key)
            parent, replaced = select(k_select, gather(score), gather(new.diverged), config)
            mine = parent[me]
            learner = jax.tree.map(lambda x: gather(x)[mine], learner_parts(new))
            explored = jax.tree.map(lambda x: x[me], explore(k_explore, gather(state.hp), parent, replaced, config))
            return learner, explored, mine

        def keep(_):
            return learner_parts(new), state.hp, me

        # Every member is at the same update: reduced over the population's axes, `ready` is one value for all (not
        # batched by the vmap), so the step is a real cond that gathers the population at ready steps only.
        all_ready = ready.astype(jnp.int32)
        for ax in self.population_axes:
            all_ready = jax.lax.pmax(all_ready, ax)
        learner, hp_out, mine = jax.lax.cond(all_ready > 0, exploit, keep, None)
        out = _pbt_state(
            with_learner(new, learner),
            hp_out,
            jnp.where(ready, 0.0, score_sum),
            jnp.where(ready, 0.0, score_count),
        )
        nan = jnp.float32(jnp.nan)
        metrics = dict(metrics)
        metrics["pbt_parent"] = jnp.where(ready, mine.astype(jnp.float32), nan)
        metrics["pbt_score"] = jnp.where(ready, score, nan).astype(jnp.float32)
        for name in config.fields:
            metrics[f"hp_{name}"] = jnp.asarray(getattr(state.hp, name), jnp.float32)
        return out, metrics


def _population(axes: tuple[str, ...]) -> tuple[Any, jax.Array]:
    """(gather, me) over the named axes, outermost first: `gather(x)` is the whole population's `x` `[P, ...]`
    (member index = the axes' indices in row-major order, as the canonical run layout numbers them) and `me`
    this member's index. One all_gather per axis, innermost first: a mesh axis (shard_map) and the vmapped run
    axis cannot be gathered in one call."""

    def leaf(x):
        for ax in reversed(axes):
            x = jax.lax.all_gather(x, ax)
        return x.reshape((-1, *x.shape[len(axes) :]))

    def gather(tree):
        return jax.tree.map(leaf, tree)

    me = jnp.zeros((), jnp.int32)
    for ax in axes:
        me = me * jax.lax.psum(1, ax) + jax.lax.axis_index(ax)  # psum(1, ax): the axis size
    return gather, me


def make_pbt_train(train: Train, config: PBTConfig) -> PBTTrain:
    """The `PBTTrain` of a built `Train` (from `make_train`; any env, network or objective) and `config`."""
    if not isinstance(config, PBTConfig):
        raise ConfigError(f"make_pbt_train: config must be a PBTConfig, got {type(config).__name__}")
    if isinstance(train, PBTTrain):
        return dataclasses.replace(train, pbt=config)
    fields = {f.name: getattr(train, f.name) for f in dataclasses.fields(Train)}
    return PBTTrain(**fields, pbt=config)
