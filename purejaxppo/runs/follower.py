"""A follower's side of a multi-process run (every process but 0; purejaxppo.runs.mesh explains the protocol)."""

from __future__ import annotations

import numpy as np

from purejaxppo.core.config import PPOConfig
from purejaxppo.core.train import Train
from purejaxppo.parallel import gather
from purejaxppo.runs.axis import RunAxis
from purejaxppo.runs.build import TrainSource, build_train, cache_token
from purejaxppo.runs.chunks import PROCESS_CACHE, ProgramCache, state_template
from purejaxppo.runs.mesh import (
    broadcast_int,
    broadcast_json,
    broadcast_state,
    place_hparams,
    place_run,
    replicated,
    to_canonical,
)


def follow_run(given: Train | None = None, cache: ProgramCache = PROCESS_CACHE) -> int:
    """A follower's whole run: receive the header and state, build the same Train as the leader (the Train
    this process was given, else from the leader's config and builder), compile the leader's program, run
    every chunk the leader asks for and take part in its collectives. Returns 0 when the run ended, 1 when the
    leader failed."""
    header = broadcast_json(None)
    if header.get("abort") or header.get("done"):
        return 1 if header.get("abort") else 0
    config = PPOConfig.from_dict(header["config"], source="the leader process")
    source = TrainSource.from_json(header["source"])
    train = build_train(config, source, given)
    state = broadcast_state(None, state_template(train, header["num_seeds"], header["seed"]))
    per_device, mesh, state = place_run(train, header, state)
    runs = RunAxis.from_json(header.get("runs"), source="the leader process")
    hp = place_hparams(mesh, config.hparams() if runs is None else runs.hp())
    stop = replicated(mesh, np.asarray(header["stop_on_diverge"]))
    compiled, _ = cache.chunk(
        per_device,
        cache_token(per_device, source),
        header["chunk_len"],
        header["num_seeds"],
        header["use_progress"],
        state,
        hp,
        mesh,
    )
    while True:
        n = broadcast_int(0)
        if n <= 0:
            return 0 if n == 0 else 1
        state, metrics = compiled(state, hp, replicated(mesh, np.int32(n)), stop)
        gather(metrics)
        to_canonical(state)
