"""Policy objectives as small objects, registered by name: the seam for a new objective.

An `Objective` says how to turn the probability ratio r = pi(a|s) / pi_old(a|s)
and the advantages of one minibatch into L^policy (maximized), whether it needs
the per-sample exact KL(pi_old || pi), what state it carries from update to
update (a pytree in `TrainState.objective_state`, checkpointed with the rest)
and how that state changes after each update.

`PPOConfig.objective` is just a name (the config never looks at the
registry). `make_train` turns it into an Objective, in one of two ways:

* registered: `register_objective(Objective("mine", ...))` (e.g. in the
  researcher's own module, before `make_train`), then
  `make_train(PPOConfig(objective="mine"))` looks it up with `get_objective`;
* given: `make_train(PPOConfig(objective="mine"), objective=Objective("mine", ...))`
  uses it without registering it (its name must equal the config's, which is
  what a run folder records).

An unknown name is a ConfigError from make_train naming both ways.

Built in (Schulman et al. 2017, Sec. 3-4):

* ``clip``:        E[min(r A, clip(r, 1-eps, 1+eps) A)]
* ``kl_adaptive``: E[r A - beta KL(pi_old || pi)], beta in the state, adapted after each update
* ``kl_fixed``:    the same with the constant `kl_beta` hyperparameter
* ``none``:        E[r A] (no clipping, no penalty)
* ``clip_kl``:     E[min(r A, clip(r, 1-eps, 1+eps) A) - beta KL(pi_old || pi)], every part switched by a
  traced setting, so one compiled program (one vmapped sweep) holds all of the above: ``clip_eps = inf``
  turns clipping off (exactly), ``kl_beta = 0`` turns the penalty off (beta stays 0), and beta follows
  the adaptive rule within [kl_beta_min, kl_beta_max], which ``kl_beta_min = kl_beta_max = kl_beta`` pins
  (a fixed beta). The paper (Sec. 4) notes the penalty can be used in addition to clipping.

Shapes: ratio, adv, kl are `[M]` (one minibatch); the surrogate returns a scalar.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.core.hparams import HParams
from purejaxppo.errors import ConfigError


def _no_state(hp: HParams) -> Any:
    return ()


def _beta_metric(state: Any, hp: HParams) -> dict[str, jax.Array]:
    """The configured (constant) kl_beta: one metrics schema across the paper's objective family."""
    return {"kl_beta": jnp.asarray(hp.kl_beta, jnp.float32)}


@dataclasses.dataclass(frozen=True)
class Objective:
    """A policy objective.

    name: the `PPOConfig.objective` value that selects it.
    surrogate(ratio[M], adv[M], kl[M] | None, hp, state) -> L^policy (scalar, maximized).
    uses_kl: the surrogate needs the per-sample exact KL(pi_old || pi) (else kl is None).
    init(hp) -> state pytree (default: no state, `()`).
    after_update(state, kl, hp) -> state, with kl the exact mean KL(pi_old || pi_new) over the
      whole batch after the update's epochs (default: unchanged).
    metrics(state, hp) -> {name: float32 scalar}: reported every update, from the state the update used.
    """

    name: str
    surrogate: Callable[..., jax.Array]
    uses_kl: bool = False
    init: Callable[[HParams], Any] = _no_state
    after_update: Callable[[Any, jax.Array, HParams], Any] | None = None
    metrics: Callable[[Any, HParams], dict] = _beta_metric

    def update_state(self, state: Any, kl: jax.Array, hp: HParams) -> Any:
        return state if self.after_update is None else self.after_update(state, kl, hp)


# ------------------------------------------------------------------ the paper's objectives


def clipped_surrogate(ratio: jax.Array, adv: jax.Array, clip_eps: jax.Array) -> jax.Array:
    """Per-sample L^CLIP = min(r A, clip(r, 1-eps, 1+eps) A), `[M]`."""
    return jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv)


def adapt_kl_beta(
    kl_beta: jax.Array, kl: jax.Array, kl_target: jax.Array, beta_min: jax.Array, beta_max: jax.Array
) -> jax.Array:
    """The paper's adaptive-KL rule, then a clip of beta into [beta_min, beta_max].

    Rule (Schulman et al. 2017, Sec. 4), with d the mean KL(pi_old || pi) of the
    update just made: beta / 2 if d < d_targ / 1.5; 2 beta if d > 1.5 d_targ;
    else unchanged.

    The bounds (`kl_beta_min`, `kl_beta_max`) never bind in normal runs; they
    stop float underflow: about 126 halvings in a row take a float32 beta below
    the smallest normal number, XLA:CPU flushes it to exactly 0, and 0 doubles
    back to 0 forever, which silently turns kl_adaptive into objective='none'.
    Works elementwise on batched (vmapped) arrays.
    """
    halved_or_doubled = jnp.where(
        kl < kl_target / 1.5, kl_beta / 2.0, jnp.where(kl > kl_target * 1.5, kl_beta * 2.0, kl_beta)
    )
    return jnp.clip(halved_or_doubled, beta_min, beta_max)


CLIP = Objective("clip", lambda ratio, adv, kl, hp, state: clipped_surrogate(ratio, adv, hp.clip_eps).mean())

KL_ADAPTIVE = Objective(
    "kl_adaptive",
    lambda ratio, adv, kl, hp, beta: (ratio * adv - beta * kl).mean(),
    uses_kl=True,
    init=lambda hp: jnp.asarray(hp.kl_beta, jnp.float32),  # state: the current beta
    after_update=lambda beta, kl, hp: adapt_kl_beta(beta, kl, hp.kl_target, hp.kl_beta_min, hp.kl_beta_max),
    metrics=lambda beta, hp: {"kl_beta": beta},
)

KL_FIXED = Objective("kl_fixed", lambda ratio, adv, kl, hp, state: (ratio * adv - hp.kl_beta * kl).mean(), uses_kl=True)

NO_CLIP = Objective("none", lambda ratio, adv, kl, hp, state: (ratio * adv).mean())


def _adapt_unless_off(beta: jax.Array, kl: jax.Array, hp: HParams) -> jax.Array:
    """clip_kl's beta after an update: the adaptive rule within the bounds, except that 0 (penalty off) stays 0."""
    adapted = adapt_kl_beta(beta, kl, hp.kl_target, hp.kl_beta_min, hp.kl_beta_max)
    return jnp.where(beta == 0, beta, adapted)


CLIP_KL = Objective(
    "clip_kl",
    lambda ratio, adv, kl, hp, beta: (clipped_surrogate(ratio, adv, hp.clip_eps) - beta * kl).mean(),
    uses_kl=True,
    init=lambda hp: jnp.asarray(hp.kl_beta, jnp.float32),  # state: the current beta
    after_update=_adapt_unless_off,
    metrics=lambda beta, hp: {"kl_beta": beta},
)


# ------------------------------------------------------------------ registry

_REGISTRY: dict[str, Objective] = {}


def register_objective(objective: Objective, *, replace: bool = False) -> Objective:
    """Make `objective` selectable by name, `make_train(PPOConfig(objective=objective.name))`. Returns it."""
    if not isinstance(objective, Objective):
        raise ConfigError(f"register_objective: expected an Objective, got {type(objective).__name__}")
    if not objective.name or not isinstance(objective.name, str):
        raise ConfigError("register_objective: an objective needs a non-empty string name")
    if objective.name in _REGISTRY and not replace and _REGISTRY[objective.name] is not objective:
        raise ConfigError(
            f"register_objective: {objective.name!r} is already registered; pass replace=True to replace it"
        )
    _REGISTRY[objective.name] = objective
    return objective


def objective_names() -> tuple[str, ...]:
    """The names of the registered objectives, in registration order."""
    return tuple(_REGISTRY)


def get_objective(name: str | Objective) -> Objective:
    """The registered objective of that name (an Objective is returned as is); ConfigError if there is none."""
    if isinstance(name, Objective):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise ConfigError(
            f"PPOConfig.objective: {name!r} is not one of the registered objectives {objective_names()}; register "
            f"it first (purejaxppo.core.objectives.register_objective(Objective({name!r}, ...))) or give it to "
            f"make_train itself (make_train(config, objective=Objective({name!r}, ...)))"
        ) from None


for _obj in (CLIP, KL_ADAPTIVE, KL_FIXED, NO_CLIP, CLIP_KL):
    register_objective(_obj)
