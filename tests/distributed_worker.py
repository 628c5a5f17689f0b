"""One worker of tests/test_distributed.py: `python tests/distributed_worker.py OUT_DIR` with the
PUREJAXPPO_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID variables set (as `purejaxppo.parallel.distributed.launch` sets them).

Joins the processes with purejaxppo.parallel.distributed.initialize, runs a seed-sharded and a data-parallel training
on the mesh of all processes' devices, and (process 0) saves what the test compares into OUT_DIR/results.npz.
"""

import sys

from purejaxppo.cpu import configure

configure()

from purejaxppo.parallel.distributed import initialize  # noqa: E402

index, count = initialize()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from purejaxppo.parallel import gather, make_mesh, make_sharded_train  # noqa: E402
from tests.distributed_configs import DATA_CONFIG, NUM_SEEDS, SEED_CONFIG  # noqa: E402

out = {"process_count": count, "device_count": jax.device_count()}

# Seed axis: NUM_SEEDS seeds over all devices.
strain = make_sharded_train(SEED_CONFIG, make_mesh(seed=count, data=1), NUM_SEEDS)
res = gather(jax.jit(strain)(strain.seed_keys(0)))
out["seed_return"] = res.metrics["episode_return"]
out["seed_value_loss"] = res.metrics["value_loss"]
out["seed_params"] = np.stack([np.concatenate([np.ravel(x[i, 0]) for x in jax.tree.leaves(res.state.params)])
                               for i in range(NUM_SEEDS)])

# Data axis: one run's envs over all devices.
dtrain = make_sharded_train(DATA_CONFIG, make_mesh(seed=1, data=count), 1)
res = gather(jax.jit(dtrain)(dtrain.seed_keys(0)))
flat = [np.concatenate([np.ravel(x[0, d]) for x in jax.tree.leaves((res.state.params, res.state.opt_state,
                                                                      res.state.obs_norm))]) for d in range(count)]
out["data_params_per_device"] = np.stack(flat)
out["data_metrics"] = np.stack([res.metrics[k][0] for k in ("episode_return", "value_loss", "approx_kl", "kl")])

if index == 0:
    np.savez(sys.argv[1] + "/results.npz", **out)
print(f"worker {index}/{count} done", flush=True)
