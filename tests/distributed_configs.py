"""Configs shared by tests/test_distributed.py and its worker processes (tests/distributed_worker.py)."""

from purejaxppo.core.config import PPOConfig

NUM_SEEDS = 4
SEED_CONFIG = PPOConfig(env="CartPole-v1", num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2,
                        total_timesteps=4 * 16 * 8)
# Everything that is averaged over the data axis switched on.
DATA_CONFIG = PPOConfig(env="CartPole-v1", num_envs=8, num_steps=16, num_minibatches=2, update_epochs=3,
                        total_timesteps=8 * 16 * 12, normalize_obs=True, normalize_reward=True,
                        objective="kl_adaptive", use_target_kl=True, target_kl=0.01, eval_every=4, eval_episodes=2)
