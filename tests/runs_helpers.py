"""Shared tiny budget for the CLI / checkpoint / progress tests.

All of them use this one config, 2 seeds and 2-update chunks, so the compiled
chunk program is shared in-process (purejaxppo.runs.chunks caches it) and the
subprocess runs of tests/test_cli.py compile the very same program.
"""

import os
import subprocess
import sys
from pathlib import Path

from purejaxppo import PPOConfig

# 5 updates of 4 envs x 16 steps; progress and metrics every update; in-training eval every 2 updates.
CONFIG = PPOConfig(
    env="CartPole-v1", num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2, total_timesteps=4 * 16 * 5,
    normalize_obs=True, log_every=1, eval_every=2, eval_episodes=2,
)
SEEDS = 2
CHUNK = 2
SET_ARGS = [
    "--set", "num_envs=4", "--set", "num_steps=16", "--set", "num_minibatches=2", "--set", "update_epochs=2",
    "--set", f"total_timesteps={4 * 16 * 5}", "--set", "normalize_obs=true", "--set", "eval_every=2",
    "--set", "eval_episodes=2", "--log-every", "1",
]


def run_cli(*args, cwd, timeout=600, module=True):
    """Run `python -m purejaxppo ARGS` (or the console script) in a subprocess."""
    if module:
        cmd = [sys.executable, "-m", "purejaxppo", *map(str, args)]
    else:
        cmd = [str(Path(sys.executable).parent / "purejaxppo"), *map(str, args)]
    env = dict(os.environ)
    env.pop("PUREJAXPPO_TRACEBACK", None)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
