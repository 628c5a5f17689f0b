"""A scripted rollout of a gymnax-API env, shared by the adapter tests."""

import jax
import jax.numpy as jnp


def scripted_rollout_fn(env, params, num_envs=2):
    """A jittable `(key, actions[T]) -> (obs0, (obs, reward, term, trunc, final_obs))` scanning `env.step` over
    `num_envs` envs that all take `actions[t]` at step t (callers jit it, or `jax.eval_shape` it)."""
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def run(key, actions):
        k0, k1 = jax.random.split(key)
        obs0, state = reset(jax.random.split(k0, num_envs), params)

        def body(state, xs):
            k, a = xs
            obs, state, reward, term, trunc, info = step(jax.random.split(k, num_envs), state,
                                                         jnp.full((num_envs,), a), params)
            return state, (obs, reward, term, trunc, info["final_observation"])

        _, out = jax.lax.scan(body, state, (jax.random.split(k1, actions.shape[0]), actions))
        return obs0, out

    return run
