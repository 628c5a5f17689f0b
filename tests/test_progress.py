"""Live progress from inside jit: how often the host callback fires, with and without vmap, and that
turning it off leaves no callback in the program (and does not change the results)."""

import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from purejaxppo import make_train
from purejaxppo.runs.progress import ProgressReporter, with_progress
from purejaxppo.runs import make_chunk_fn, train_run
from tests.runs_helpers import CHUNK, CONFIG, SEEDS


@struct.dataclass
class Toy:
    update_step: jax.Array
    x: jax.Array


def toy_update(s, hp=None):
    s = Toy(s.update_step + 1, s.x * 2.0)
    return s, {"episode_return": s.x, "policy_loss": -s.x}


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, update, logged, values):
        self.calls.append((np.asarray(update), np.asarray(logged), {k: np.asarray(v) for k, v in values.items()}))


def run_toy(cb, n_updates, log_every, num_seeds=None, axis_name=None, total=None):
    up = with_progress(toy_update, log_every, cb, total_updates=total, axis_name=axis_name)
    loop = lambda s: jax.lax.scan(lambda s, _: up(s), s, None, length=n_updates)  # noqa: E731
    if num_seeds is None:
        out = jax.jit(loop)(Toy(jnp.zeros((), jnp.int32), jnp.ones(())))
    else:
        s0 = Toy(jnp.zeros((num_seeds,), jnp.int32), jnp.arange(1.0, num_seeds + 1))
        out = jax.jit(jax.vmap(loop, axis_name=axis_name))(s0)
    jax.effects_barrier()
    return out


def test_fires_every_log_every_updates_and_after_the_last():
    rec = Recorder()
    run_toy(rec, n_updates=10, log_every=4, total=10)
    assert [int(u) for u, _, _ in rec.calls] == [4, 8, 10]
    assert all(bool(g) for _, g, _ in rec.calls)
    np.testing.assert_array_equal([c[2]["episode_return"] for c in rec.calls], [2.0**4, 2.0**8, 2.0**10])


def test_vmap_with_axis_name_one_call_per_logged_update_with_all_seeds():
    rec = Recorder()
    run_toy(rec, n_updates=6, log_every=3, num_seeds=4, axis_name="seed")
    assert len(rec.calls) == 2  # one call per logged update, not one per seed
    for (u, logged, vals), want in zip(rec.calls, (3, 6)):
        assert int(u) == want and bool(logged)
        np.testing.assert_array_equal(vals["episode_return"], np.arange(1.0, 5.0) * 2.0**want)


def test_vmap_without_axis_name_one_call_per_seed_aggregated_to_one_report():
    # jax.debug.callback under an unnamed vmap runs once per batch element; the gate is a while_loop,
    # so nothing fires on non-logged updates (a cond with a batched predicate would fire every update).
    rep = ProgressReporter(total_updates=6, steps_per_update=10, num_runs=4, style="off")
    run_toy(rep, n_updates=6, log_every=3, num_seeds=4, axis_name=None)
    assert rep.calls == 2 * 4
    assert [u for u, _ in rep.reports] == [3, 6]
    for (u, vals) in rep.reports:
        np.testing.assert_array_equal(np.sort(vals["episode_return"]), np.arange(1.0, 5.0) * 2.0**u)
    assert not rep.errors


def test_reporter_aggregates_gathered_calls_and_prints_one_line_per_update():
    buf = io.StringIO()
    rep = ProgressReporter(total_updates=6, steps_per_update=10, num_runs=4, style="lines", file=buf)
    rep.start()
    run_toy(rep, n_updates=6, log_every=3, num_seeds=4, axis_name="seed")
    lines = buf.getvalue().splitlines()
    assert rep.calls == 2 and len(lines) == 2
    assert lines[0].startswith("update 3/6  env steps 30") and "4 seeds" in lines[0] and "steps/s" in lines[0]


def test_off_means_no_callback_in_the_program():
    assert with_progress(toy_update, 0, print) is toy_update
    s = Toy(jnp.zeros((), jnp.int32), jnp.ones(()))
    off = jax.make_jaxpr(lambda s: jax.lax.scan(lambda s, _: with_progress(toy_update, 0, print)(s), s, None, length=3))(s)
    on = jax.make_jaxpr(lambda s: jax.lax.scan(lambda s, _: with_progress(toy_update, 2, print)(s), s, None, length=3))(s)
    assert "callback" not in str(off)
    assert "callback" in str(on)


def test_off_means_no_callback_in_the_real_chunk_program():
    train = make_train(CONFIG)
    state = jax.eval_shape(jax.vmap(train.init, in_axes=(0, None)), jax.random.split(jax.random.key(0), SEEDS),
                           CONFIG.hparams())
    jaxpr = lambda fn: str(jax.make_jaxpr(fn)(state, CONFIG.hparams(), jnp.int32(CHUNK), jnp.asarray(True)))  # noqa: E731
    assert "callback" not in jaxpr(make_chunk_fn(train, CHUNK, None, 1))
    assert "callback" not in jaxpr(make_chunk_fn(train, CHUNK, print, 0))
    text = jaxpr(make_chunk_fn(train, CHUNK, print, 1))
    assert text.count("debug_callback[") == 1  # one callback primitive for all seeds, not one per seed


def test_real_training_one_aggregated_report_per_logged_update_and_same_results(tmp_path):
    buf = io.StringIO()
    on = train_run(CONFIG, tmp_path / "on", num_seeds=SEEDS, checkpoint_every=CHUNK, progress="lines",
                   progress_file=buf, log=lambda m: None)
    n = CONFIG.num_updates
    assert on.progress_calls == n  # log_every=1: one host call per update, for both seeds together
    assert [u for u, _ in on.progress_reports] == list(range(1, n + 1))
    rows = [json.loads(line) for line in (tmp_path / "on" / "metrics.jsonl").read_text().splitlines()]
    for u, vals in on.progress_reports:
        want = [r["episode_return"] for r in rows if r["update"] == u]
        np.testing.assert_array_equal(vals["episode_return"], np.asarray(want, np.float32))
    progress_lines = [ln for ln in buf.getvalue().splitlines() if ln.startswith("CartPole-v1 update")]
    assert len(progress_lines) == n and all(f"{SEEDS} seeds" in ln for ln in progress_lines)

    # The progress bar only observes: with it off, metrics are bit-identical.
    off = train_run(CONFIG, tmp_path / "off", num_seeds=SEEDS, checkpoint_every=CHUNK, progress="off", log=lambda m: None)
    assert off.progress_calls == 0
    assert (tmp_path / "on" / "metrics.jsonl").read_text() == (tmp_path / "off" / "metrics.jsonl").read_text()
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, on.state.params),
                 jax.tree.map(np.asarray, off.state.params))


@pytest.mark.parametrize("bad", ["sparkles", "tqdm"])
def test_reporter_rejects_unknown_style(bad):
    with pytest.raises(ValueError, match="style"):
        ProgressReporter(1, 1, style=bad)
