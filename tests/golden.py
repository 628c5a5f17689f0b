"""Golden metrics of feed-forward runs, for checking that refactors keep training bit for bit.

`python -m tests.golden` (from the repo root) rewrites tests/data/golden_ff.npz from the current code;
tests/test_golden.py compares the current code against the stored file. The file was first written by
the code before the agent/objective refactor; it was rewritten when recurrent PPO changed the update's
batch layout ([T, N] sequences; feed-forward = sequences of length 1), which moved the feed-forward runs
by last-bit rounding only (largest relative difference 9e-5, on KL values of about 1e-5), and a GRU case
was added then (commit recorded in the file's "commit" entry).
At other sizes (e.g. 16 seeds) the masked-logits guard of Categorical changes last-bit rounding of the
entropy gradient; benchmarks/bit_identity.py and benchmarks/results/interfaces.md have the details.
"""

from __future__ import annotations

import hashlib
import pathlib
import subprocess

import jax
import numpy as np

from purejaxppo import PPOConfig, make_train

PATH = pathlib.Path(__file__).resolve().parent / "data" / "golden_ff.npz"
SMALL = dict(num_envs=4, num_steps=32, num_minibatches=2, update_epochs=2)

CASES = {
    "cartpole": PPOConfig(env="CartPole-v1", total_timesteps=4 * 32 * 3, normalize_obs=True, eval_every=2,
                          eval_episodes=2, **SMALL),
    "pendulum": PPOConfig(env="Pendulum-v1", total_timesteps=4 * 32 * 3, normalize_obs=True, normalize_reward=True,
                          **SMALL),
    "pendulum_tanh": PPOConfig(env="Pendulum-v1", total_timesteps=4 * 32 * 2, action_handling="tanh", **SMALL),
    "kl_adaptive": PPOConfig(env="CartPole-v1", total_timesteps=4 * 32 * 3, objective="kl_adaptive",
                             use_target_kl=True, target_kl=0.001, **SMALL),
    "breakout_cnn": PPOConfig(env="Breakout-MinAtar", total_timesteps=4 * 32 * 2, network="cnn", **SMALL),
    "masked_cartpole_gru": PPOConfig(env="masked/CartPole-v1", total_timesteps=4 * 32 * 3, network="gru", rnn_size=16,
                                     rnn_torso=(16,), actor_hidden=(16,), critic_hidden=(16,), normalize_obs=True,
                                     **SMALL),
}


def run_case(cfg: PPOConfig) -> dict[str, np.ndarray]:
    out = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.key(7), 2))
    flat = {f"metrics/{k}": np.asarray(v) for k, v in out.metrics.items()}
    for path, leaf in jax.tree_util.tree_flatten_with_path(out.state.params)[0]:
        leaf = np.ascontiguousarray(np.asarray(leaf))
        name = "params/" + jax.tree_util.keystr(path, simple=True, separator="/")
        flat[name + "/sha256"] = np.asarray(hashlib.sha256(leaf.tobytes()).hexdigest())  # bit-exact
        flat[name + "/sum"] = np.asarray(leaf.astype(np.float64).sum())  # to see how far off, when not
    return flat


def compute() -> dict[str, np.ndarray]:
    data = {}
    for name, cfg in CASES.items():
        for k, v in run_case(cfg).items():
            data[f"{name}/{k}"] = v
    return data


if __name__ == "__main__":
    from purejaxppo.cpu import configure

    configure()  # the XLA scheduler flag (vmapped trainings can deadlock on CPU without it), as the tests do
    data = compute()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    PATH.parent.mkdir(exist_ok=True)
    np.savez_compressed(PATH, commit=np.asarray(commit), **data)
    print(f"wrote {PATH} ({len(data)} arrays, commit {commit[:10]})")
