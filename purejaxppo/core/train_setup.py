"""What `make_train` builds around a config: the env, its spaces, the agent, the objective, the evaluation and
the domain randomizer (purejaxppo.core.train assembles them into a `Train`).

`train_parts(config, env, env_params, network_factory, objective, randomize)` resolves each argument of
`make_train` (None: the config's default) and checks it, with a ConfigError naming the argument and the fix,
before anything is compiled; it returns the `Train`'s fields other than `config`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax

from purejaxppo.core import randomization
from purejaxppo.core.agent import as_agent
from purejaxppo.core.config import PPOConfig
from purejaxppo.core.networks import make_network, network_options
from purejaxppo.core.objectives import Objective, get_objective
from purejaxppo.core.popart import value_head
from purejaxppo.core.resources import check_memory
from purejaxppo.envs import check_env_api, default_env_params, env_spaces, make_action_transform, make_env
from purejaxppo.envs.spaces import ActionSpec, action_spec_from_space, obs_spec_from_space, zeros_obs
from purejaxppo.errors import ConfigError


def train_parts(
    config: PPOConfig,
    env: Any,
    env_params: Any,
    network_factory: Callable | None,
    objective: Objective | None,
    randomize: Callable | None,
) -> dict[str, Any]:
    """The fields of `make_train`'s `Train` but `config`, from its arguments (see `make_train`)."""
    objective = resolve_objective(config, objective)
    params_given = env_params is not None
    env, env_params = resolve_env(config, env, env_params)
    obs_space, action_space = env_spaces(env, env_params, trace_reset=params_given)
    obs_spec = obs_spec_from_space(obs_space)
    action_spec = action_spec_from_space(action_space)
    check_memory(config, obs_spec, action_spec)  # one run must fit: refuse now, not deep in XLA
    agent, network = make_agent(config, obs_spec, action_spec, network_factory)
    if config.value_normalization == "popart":  # the critic's output layer must be there to rescale
        value_head(jax.eval_shape(agent.init, jax.random.key(0), zeros_obs(obs_spec)))
    to_env_action = make_action_transform(action_spec, config.action_handling)
    evaluate = None
    if config.eval_every > 0:  # in-training evaluation (purejaxppo.core.evaluate); adds metrics["eval_return"]
        from purejaxppo.core.evaluate import build_evaluate

        evaluate = build_evaluate(
            env, env_params, agent, action_spec, obs_clip=config.obs_clip, to_env_action=to_env_action
        )
    randomize, randomized = resolve_randomize(config, randomize, env, env_params)
    return dict(
        env=env,
        env_params=env_params,
        agent=agent,
        network=network,
        obs_spec=obs_spec,
        action_spec=action_spec,
        objective=objective,
        to_env_action=to_env_action,
        evaluate=evaluate,
        randomize=randomize,
        randomized=randomized,
    )


def make_agent(config: PPOConfig, obs_spec: Any, action_spec: ActionSpec, network_factory: Callable | None):
    """(agent, network) from the factory `f(obs_spec, action_spec)` (default: `make_network`)."""
    if network_factory is None:
        network = make_network(obs_spec, action_spec, **network_options(config))
    else:
        try:
            inspect.signature(network_factory).bind(obs_spec, action_spec)
        except TypeError as e:
            raise ConfigError(
                f"make_train: network_factory must take (obs_spec, action_spec) ({e}); bind other options with "
                "functools.partial (the form f(config, obs_shape, action_spec) of 0.1 is gone)"
            ) from None
        except ValueError:  # no signature to inspect (some builtins): just call it
            pass
        network = network_factory(obs_spec, action_spec)
    agent = as_agent(network)
    return agent, network


def resolve_randomize(
    config: PPOConfig, randomize: Callable | None, env: Any, env_params: Any
) -> tuple[Callable | None, tuple]:
    """(randomizer, the params it changes): the one given, else the config's shipped one, else (None, ())."""
    if randomize is not None and config.domain_randomization != "none":
        raise ConfigError(
            f"make_train: randomize=... was given and PPOConfig.domain_randomization is "
            f"{config.domain_randomization!r}; use one of them (set domain_randomization 'none')"
        )
    if randomize is not None and not callable(randomize):
        raise ConfigError(
            f"make_train: randomize must be a function (key, env_params) -> env_params, got {randomize!r:.60}"
        )
    randomize = randomize if randomize is not None else randomization.from_config(config, env)
    if randomize is None:
        return None, ()
    return randomize, randomization.randomized_leaves(randomize, env_params)


def resolve_objective(config: PPOConfig, objective: Objective | None) -> Objective:
    """The Objective make_train was given (its name must be config.objective), else the registered one."""
    if objective is None:
        return get_objective(config.objective)  # ConfigError naming the registered ones and both ways to add one
    if not isinstance(objective, Objective):
        raise ConfigError(
            "make_train: objective must be a purejaxppo.core.objectives.Objective (or None to use the one "
            f"registered as config.objective), got {type(objective).__name__} {objective!r:.60}"
        )
    if objective.name != config.objective:
        raise ConfigError(
            f"make_train: the objective given is named {objective.name!r} but PPOConfig.objective is "
            f"{config.objective!r}; set PPOConfig(objective={objective.name!r}) (config.replace(objective=...)) "
            "so the config, and the run folder that records it, name the objective that trains"
        )
    return objective


def resolve_env(config: PPOConfig, env: Any, env_params: Any) -> tuple[Any, Any]:
    """(env, env_params): made from an env id (config.env by default), or the given env object checked."""
    if env is None or isinstance(env, str):
        env, default_params = make_env(config.env if env is None else env)
        return env, default_params if env_params is None else env_params
    check_env_api(env)
    return env, default_env_params(env) if env_params is None else env_params
