"""The pure, jittable core: config, the train function, rollout, GAE, losses, objectives, agents, networks."""
