"""Population-based training: the pure exploit/explore step over the run axis, the PBT run (one compile,
resume bit-identical across an exploit step), its validation before compiling, the CLI and the report."""

from __future__ import annotations

import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.core.config import PPOConfig
from purejaxppo.core.keys import is_key
from purejaxppo.core.normalization import RewardScaler, RunningMeanStd
from purejaxppo.core.pbt import (
    RUN_AXIS,
    PBTConfig,
    copy_learner,
    exploit_explore,
    explore,
    initial_hparams,
    select,
)
from purejaxppo.core.rollout import EnvCarry
from purejaxppo.core.train_state import TrainState
from purejaxppo.errors import ConfigError

P = 6
RANGES = (("learning_rate", "log", 1e-4, 1e-2), ("ent_coef", "uniform", 0.0, 0.05))


def _cfg(**kw) -> PBTConfig:
    return PBTConfig(**{"population": P, "ready_every": 2, "ranges": RANGES, "truncation": 0.34, **kw})


def _state(seed: int, p=P) -> TrainState:
    """A synthetic population `[P, ...]`: every leaf random, so any copy shows up bit for bit (drawn by NumPy:
    eager JAX draws compile once per shape)."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return jnp.asarray(rng.standard_normal((p, *shape)), jnp.float32)

    rms = RunningMeanStd(r(4), jnp.abs(r(4)), jnp.abs(r()))
    # PopArt's value statistics, where the TrainState has them: a learner part too
    extra = {"value_norm": {"mu": r(), "nu": r()}} if "value_norm" in TrainState.__dataclass_fields__ else {}
    return TrainState(
        params={"dense": {"w": r(4, 3), "b": r(3)}},
        opt_state=(r(), {"mu": r(4, 3), "nu": r(4, 3)}),
        env=EnvCarry(r(5, 2), r(5, 4), r(5), r(5)),
        obs_norm=rms,
        reward_scaler=RewardScaler(r(5), RunningMeanStd(r(), jnp.abs(r()), jnp.abs(r()))),
        objective_state=r(),
        key=jax.random.split(jax.random.key(seed), p),
        update_step=jnp.full((p,), 7, jnp.int32),
        last_episode_return=r(),
        last_episode_length=r(),
        diverged=jnp.zeros((p,), bool),
        **extra,
    )


def _np(tree):
    """Host copies (key arrays as their raw data), so that indexing members is NumPy's, not eager JAX ops."""
    return jax.tree.map(lambda x: np.asarray(jax.random.key_data(x) if is_key(x) else x), tree)


def _bytes(tree):
    return [x.tobytes() for x in jax.tree.leaves(_np(tree))]


def _member(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def _learner(s: TrainState):
    return (s.params, s.opt_state, s.obs_norm, s.reward_scaler.stats, s.objective_state, s.diverged,
            getattr(s, "value_norm", None))  # fmt: skip


def _own(s: TrainState):
    return (s.env, s.key, s.update_step, s.last_episode_return, s.last_episode_length, s.reward_scaler.returns)


# ------------------------------------------------------------------------------------------ the pure step


def test_exploit_copies_exactly_the_chosen_members_learner_and_nothing_else():
    config = _cfg()
    state = _state(0)
    scores = jnp.asarray([5.0, 1.0, 9.0, 3.0, 0.5, 7.0])  # top 2: members 2, 5; bottom 2: members 4, 1
    hp = initial_hparams(jax.random.key(1), PPOConfig().hparams(), config)
    step = jax.jit(exploit_explore, static_argnums=4)
    state_np, hp_np = _np(state), _np(hp)
    for k in range(3):
        new, new_hp, info = step(jax.random.key(k), state, hp, scores, config)
        chex.assert_trees_all_equal_structs(new, state)
        new, new_hp = _np(new), _np(new_hp)
        parent, replaced = np.asarray(info["parent"]), np.asarray(info["replaced"])
        assert sorted(np.flatnonzero(replaced)) == [1, 4]
        for i in range(P):
            want = parent[i] if replaced[i] else i
            assert set(parent[[1, 4]]) <= {2, 5}
            assert _bytes(_member(_learner(new), i)) == _bytes(_member(_learner(state_np), want))  # bit-level copy
            assert _bytes(_member(_own(new), i)) == _bytes(_member(_own(state_np), i))  # envs, keys, counters: own
            if not replaced[i]:
                assert parent[i] == i
                assert _bytes(_member(new_hp, i)) == _bytes(_member(hp_np, i))  # kept members keep their hps exactly


def test_nan_and_diverged_members_are_always_replaced_and_never_sources():
    config = _cfg(truncation=0.2)  # one replaced by rank ...
    scores = jnp.asarray([3.0, jnp.nan, 8.0, 1.0, 6.0, 9.0])
    diverged = jnp.asarray([False, False, False, False, True, False])
    bad = {1, 4}
    pick = jax.jit(select, static_argnums=3)
    for k in range(20):
        parent, replaced = pick(jax.random.key(k), scores, diverged, config)
        parent, replaced = np.asarray(parent), np.asarray(replaced)
        # ... plus every bad member: the NaN one and the diverged one, whatever their score
        assert set(np.flatnonzero(replaced)) == bad
        assert all(parent[i] == 5 for i in bad)  # the one top member (9.0), never a bad one
    # all bad: nobody to copy from, nobody replaced
    parent, replaced = select(jax.random.key(0), jnp.full((P,), jnp.nan), jnp.zeros((P,), bool), config)
    assert not np.asarray(replaced).any() and list(np.asarray(parent)) == list(range(P))


def test_explore_keeps_hyperparameters_in_range():
    config = _cfg(perturb=(0.01, 100.0), resample_prob=0.5)  # factors that leave the ranges at once
    hp = initial_hparams(jax.random.key(0), PPOConfig().hparams(), config)
    parent = jnp.asarray([0, 0, 2, 2, 4, 4])
    replaced = jnp.asarray([False, True, False, True, False, True])
    step = jax.jit(explore, static_argnums=4)
    for k in range(12):
        hp = step(jax.random.key(k), hp, parent, replaced, config)
        for name, _, lo, hi in config.ranges:
            x = np.asarray(getattr(hp, name))
            assert x.dtype == np.float32
            assert (x >= np.float32(lo)).all() and (x <= np.float32(hi)).all(), (name, x)
    # the fields that are not explored are copied from the parent unchanged
    np.testing.assert_array_equal(np.asarray(hp.clip_eps), np.full(P, np.float32(PPOConfig().clip_eps)))


def test_initial_draws_lie_in_range_and_differ():
    config = _cfg()
    hp = initial_hparams(jax.random.key(3), PPOConfig().hparams(), config)
    lr = np.asarray(hp.learning_rate)
    assert lr.shape == (P,) and len(set(lr.tolist())) == P
    assert (lr >= np.float32(1e-4)).all() and (lr <= np.float32(1e-2)).all()


def test_copy_learner_under_vmap_collectives_equals_the_batched_copy():
    """The PBTTrain gathers the population inside the vmapped update; the gathered copy is the batched one."""
    state = _state(5)
    parent = jnp.asarray([0, 2, 2, 3, 0, 5])
    from purejaxppo.core.pbt import learner_parts, with_learner

    def per_member(s):
        me = jax.lax.axis_index(RUN_AXIS)
        return with_learner(s, jax.tree.map(lambda x: jax.lax.all_gather(x, RUN_AXIS)[parent[me]], learner_parts(s)))

    got = jax.vmap(per_member, axis_name=RUN_AXIS)(state)
    assert _bytes(got) == _bytes(copy_learner(state, parent))


def test_run_axis_name_is_the_runs_vmap_axis():
    from purejaxppo.parallel import LOCAL_SEEDS
    from purejaxppo.runs.chunks import AXIS

    assert RUN_AXIS == AXIS == LOCAL_SEEDS


# ------------------------------------------------------------------------------------------ config and spec


def test_pbt_config_checks_and_round_trips():
    config = _cfg()
    assert config.num_replaced == 2 and config.fields == ("learning_rate", "ent_coef")
    assert PBTConfig.from_json(config.to_text()) == config
    hash(config)
    for kw, word in (
        ({"population": 1}, "population"),
        ({"truncation": 0.6}, "truncation"),
        ({"perturb": (0.0, 1.2)}, "perturb"),
        ({"resample_prob": 1.5}, "resample_prob"),
        ({"ranges": (("num_envs", "log", 1.0, 2.0),)}, "traced"),
        ({"ranges": (("gamma", "uniform", 0.5, 1.5),)}, "gamma"),
    ):
        with pytest.raises(ConfigError, match=word):
            _cfg(**kw)


def test_train_source_records_the_population_and_rebuilds_a_pbt_train():
    from purejaxppo.core.pbt import PBTTrain
    from purejaxppo.runs.build import FROM_CONFIG, TrainSource, build_train

    config = _cfg()
    src = TrainSource(FROM_CONFIG, None, config.to_text())
    meta = json.loads(json.dumps(src.to_json()))
    assert meta["pbt"]["population"] == P
    back = TrainSource.from_json(meta)
    assert back == src
    train = build_train(PPOConfig(num_envs=4, num_steps=8, total_timesteps=64), back)
    assert isinstance(train, PBTTrain) and train.pbt == config
    assert TrainSource.from_json({"train": "config", "build": None}).pbt is None


def _base(**kw):
    return PPOConfig(
        env="CartPole-v1",
        num_envs=4,
        num_steps=16,
        total_timesteps=512,
        num_minibatches=2,
        update_epochs=1,
        log_every=1,
        **kw,
    )


def test_spec_validation_names_the_field_and_the_fix():
    from purejaxppo.pbt.spec import build_pbt_spec

    ok = dict(population=4, ready_every=2, ranges={"learning_rate": "log:1e-4:1e-2"})
    spec = build_pbt_spec(_base(), **ok)
    assert spec.pbt.population == 4 and spec.pbt.num_replaced == 1
    for change, word in (
        ({"population": 1}, "population must be an integer >= 2"),
        ({"ready_every": 0}, "ready_every must be an integer >= 1"),
        ({"ready_every": 9}, "exceeds the run's 8 updates"),
        ({"ranges": {}}, "--range"),
        ({"ranges": {"learning_rate": "log:0:1"}}, "LOW > 0"),
        ({"ranges": {"learnin_rate": "log:1e-4:1e-2"}}, "Did you mean 'learning_rate'"),
        ({"ranges": {"num_envs": "1:2"}}, "traced float hyperparameters"),
        ({"exploit": "tournament:0.2"}, "truncation:FRACTION"),
        ({"exploit": "truncation:0.7"}, r"\(0, 0.5\]"),
        ({"perturb": "0.8,-1"}, "positive"),
        ({"resample_prob": 2}, "resample_prob"),
    ):
        with pytest.raises(ConfigError, match=word):
            build_pbt_spec(_base(), **{**ok, **change})
    with pytest.raises(ConfigError, match="multiple of log_every"):
        build_pbt_spec(_base().replace(log_every=4), **{**ok, "ready_every": 2})


def test_cli_errors_before_compiling_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from purejaxppo.cli import main
    from purejaxppo.runs import chunks

    monkeypatch.setattr(chunks, "make_chunk_fn", lambda *a, **k: pytest.fail("compiled"))
    out = tmp_path / "run"
    rc = main(["pbt", "--population", "4", "--ready-every", "2", "--range", "learning_rate=log:1e-4:1e-2", "--exploit",
               "truncation:0.9", "--out", str(out)])  # fmt: skip
    assert rc == 2 and "exploit" in capsys.readouterr().err
    assert not out.exists()
    pbt_file = tmp_path / "pbt.yaml"
    pbt_file.write_text("population: 4\nready_evry: 2\n")
    rc = main(["pbt", str(pbt_file), "--out", str(out)])
    assert rc == 2 and "Did you mean 'ready_every'" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------------------------------ the run


def _leaves(state):
    return {
        jax.tree_util.keystr(p): b
        for (p, _), b in zip(jax.tree_util.tree_flatten_with_path(state)[0], _bytes(state), strict=True)
    }


def test_one_compile_and_resume_bit_identical_across_an_exploit_step(tmp_path, monkeypatch):
    """8 updates, exploit every 2, chunks of 4: straight, and stopped at update 3 then resumed (the resumed
    session's first chunk crosses the exploit at update 4). Same final state bit for bit, same metric rows;
    one chunk program compiled for all three sessions."""
    from purejaxppo.pbt.runner import pbt_run
    from purejaxppo.pbt.spec import build_pbt_spec
    from purejaxppo.runs import PROCESS_CACHE, chunks, load_run, read_metrics

    made = []
    real = chunks.make_chunk_fn
    monkeypatch.setattr(chunks, "make_chunk_fn", lambda *a, **k: made.append(1) or real(*a, **k))
    monkeypatch.setattr(PROCESS_CACHE, "entries", {})
    spec = build_pbt_spec(
        _base(),
        population=4,
        ready_every=2,
        ranges={"learning_rate": "log:1e-4:1e-1", "ent_coef": "0:0.05"},
        exploit="truncation:0.25",
    )
    a, b = tmp_path / "a", tmp_path / "b"
    res = pbt_run(spec, a, checkpoint_every=4, log=lambda m: None)
    assert res is not None and res.status == "finished" and res.report is not None
    stopped = pbt_run(spec, b, checkpoint_every=4, stop_after=3, log=lambda m: None)
    assert stopped is not None and stopped.run.update == 3 and stopped.report is None
    resumed = pbt_run(None, b, resume=True, log=lambda m: None)
    assert resumed is not None and resumed.status == "finished"
    assert len(made) == 1  # one compiled chunk program for every chunk and session

    sa, sb = load_run(a).state, load_run(b).state
    assert type(sa).__name__ == "PBTState"
    assert _leaves(sa) == _leaves(sb)
    rows_a, rows_b = read_metrics(a), read_metrics(b)
    assert rows_a == rows_b
    # exploitation happened inside the program: lineage at ready steps only, hyperparameters changed by it
    ready = [r for r in rows_a if r["pbt_parent"] is not None]
    assert {r["update"] for r in ready} == {2, 4, 6, 8}
    assert any(r["pbt_parent"] != r["member"] for r in ready)
    for r in rows_a:
        assert 1e-4 <= r["hp_learning_rate"] * (1 + 1e-6) and r["hp_learning_rate"] <= 1e-1 * (1 + 1e-6)
    assert math.isfinite(res.report["final"][res.report["best"]]["score"])


def test_cli_end_to_end_report_and_best_member_policy(tmp_path, capsys):
    from purejaxppo.cli import main
    from purejaxppo.pbt import best_member, pbt_report
    from purejaxppo.runs import load_policy, read_metrics

    out = tmp_path / "pbt"
    rc = main(["pbt", "--set", "env=CartPole-v1", "--set", "num_envs=4", "--set", "num_steps=16",
               "--set", "total_timesteps=512", "--set", "num_minibatches=2", "--set", "update_epochs=1",
               "--set", "log_every=1", "--population", "4", "--ready-every", "2",
               "--range", "learning_rate=log:1e-4:1e-1", "--range", "clip_eps=0.1:0.3", "--perturb", "0.5,2",
               "--checkpoint-every", "4", "--progress", "off", "--out", str(out)])  # fmt: skip
    assert rc == 0
    for name in ("pbt.md", "pbt.json", "metrics.jsonl", "config.yaml", "run.json"):
        assert (out / name).is_file()
    rep = pbt_report(out)
    rows = read_metrics(out)
    # the lineage is the metric rows' pbt_parent where it is not the member itself
    want = sorted((r["update"], r["member"], int(r["pbt_parent"])) for r in rows
                  if r["pbt_parent"] is not None and int(r["pbt_parent"]) != r["member"])  # fmt: skip
    assert sorted((e["update"], e["member"], e["parent"]) for e in rep["lineage"]) == want
    assert len(want) >= 4  # at least one member replaced at every one of the 4 ready steps
    best = best_member(out)
    assert rep["final"][best]["rank"] == 1
    assert "## The best member" in (out / "pbt.md").read_text()
    act = load_policy(out, seed_index=best)
    assert act(np.zeros(4, np.float32)).shape == ()
    # the folder resumes as a PBT run only: nothing left to do here
    assert main(["pbt", "--resume", str(out), "--progress", "off"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "2"]) == 0  # every member, and the best one named
    assert f"the best member by its final training score is seed {best}" in capsys.readouterr().out
    (out / "pbt.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "pbt.md").read_text().count("## ") == 3


def test_population_on_a_two_device_mesh_equals_one_device(tmp_path):
    """`--mesh seed=2`: the population is split over two CPU devices (one process) and the ready step gathers it
    over both; the lineage and the hyperparameters equal the one-device run's (a member copies across devices)."""
    import os
    import pathlib
    import subprocess
    import sys

    from purejaxppo.pbt.runner import pbt_run
    from purejaxppo.pbt.spec import build_pbt_spec
    from purejaxppo.runs import read_metrics

    root = pathlib.Path(__file__).resolve().parent.parent
    flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env = dict(os.environ, XLA_FLAGS=flags, PYTHONPATH=str(root))
    sets = ["env=CartPole-v1", "num_envs=4", "num_steps=16", "total_timesteps=512", "num_minibatches=2",
            "update_epochs=1", "log_every=1"]  # fmt: skip
    cmd = [sys.executable, "-m", "purejaxppo", "pbt", *[x for s in sets for x in ("--set", s)], "--population", "4",
           "--ready-every", "2", "--range", "learning_rate=log:1e-4:1e-2", "--range", "ent_coef=0:0.05",
           "--checkpoint-every", "4", "--mesh", "seed=2", "--progress", "off",
           "--out", str(tmp_path / "mesh")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "on a mesh of seed=2 x data=1 devices" in proc.stdout
    spec = build_pbt_spec(
        _base(), population=4, ready_every=2, ranges={"learning_rate": "log:1e-4:1e-2", "ent_coef": "0:0.05"}
    )
    pbt_run(spec, tmp_path / "one", checkpoint_every=4, log=lambda m: None)

    def lineage(run):
        return [(r["update"], r["member"], r["pbt_parent"], r["hp_learning_rate"], r["hp_ent_coef"])
                for r in read_metrics(run)]  # fmt: skip

    mesh, one = lineage(tmp_path / "mesh"), lineage(tmp_path / "one")
    assert mesh == one
    copies = [(u, m, int(p)) for u, m, p, *_ in one if p is not None and int(p) != m]
    assert copies  # exploitation happened; with 2 members per device, this run copies across devices:
    assert any(m // 2 != p // 2 for _, m, p in copies)


def test_the_ready_step_in_the_program_is_the_pure_step_and_replaces_a_diverged_member():
    """PBTTrain.update at a ready step = the plain update, then `exploit_explore` on the population with the
    population's key and the members' scores; a member that diverged is replaced (and trains again)."""
    from purejaxppo.core.pbt import _POPULATION_KEY, _base_state, learner_parts, make_pbt_train
    from purejaxppo.core.train import make_train

    cfg = _base()
    pbt = PBTConfig(4, 1, RANGES, truncation=0.25, seed=3)  # every update is a ready step
    base = make_train(cfg)
    train = make_pbt_train(base, pbt)
    hp = initial_hparams(jax.random.key(1), cfg.hparams(), pbt)
    st = jax.jit(jax.vmap(train.init))(jax.random.split(jax.random.key(0), 4), hp)
    st = st.replace(diverged=st.diverged.at[1].set(True))  # member 1 diverged: frozen, and bad at the ready step

    new, metrics = jax.jit(jax.vmap(train.update, axis_name=RUN_AXIS))(st, None)
    plain, plain_metrics = jax.jit(jax.vmap(base.update))(_base_state(st), st.hp)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(pbt.seed), _POPULATION_KEY), 1)
    want, want_hp, info = exploit_explore(key, plain, st.hp, plain_metrics["episode_return"], pbt)

    parent = np.asarray(info["parent"])
    assert parent[1] != 1 and np.asarray(info["replaced"])[1]
    np.testing.assert_array_equal(np.asarray(metrics["pbt_parent"]), parent.astype(np.float32))
    assert not np.asarray(new.diverged).any()  # the diverged member took a healthy learner
    assert _bytes(learner_parts(new)) == _bytes(learner_parts(want))
    assert _bytes(new.hp) == _bytes(want_hp)
    assert _bytes((new.env, new.key)) == _bytes((plain.env, plain.key))
    np.testing.assert_array_equal(np.asarray(new.score_count), np.zeros(4, np.float32))  # a new window starts

    # The step is a real cond (its predicate is the population's, not batched by the vmap): the selection's sort
    # runs only inside it, so updates between ready steps do not gather the population.
    def sorts(jaxpr, in_cond=False):
        found = []
        for e in jaxpr.eqns:
            found += [in_cond] if e.primitive.name == "sort" else []
            for p in e.params.values():
                for sub in p if isinstance(p, (list, tuple)) else [p]:
                    inner = getattr(sub, "jaxpr", None)
                    if inner is not None:
                        found += sorts(
                            inner if hasattr(inner, "eqns") else inner.jaxpr, in_cond or e.primitive.name == "cond"
                        )
        return found

    traced = sorts(jax.make_jaxpr(jax.vmap(train.update, axis_name=RUN_AXIS))(st, None).jaxpr)
    assert traced.count(True) == 1  # the selection (the other sort, if any, is the update's own minibatch shuffle)


def test_yaml_form_and_flags_make_the_same_spec(tmp_path):
    """The PBT file's keys, each overridden by its flag, as `sweep`'s file and flags."""
    from purejaxppo.cli.parser import build_parser
    from purejaxppo.cli.pbt import _spec_from_args

    (tmp_path / "base.yaml").write_text("env: CartPole-v1\nnum_envs: 4\nnum_steps: 16\nlog_every: 1\n")
    (tmp_path / "pbt.yaml").write_text(
        "config: base.yaml\nset: {total_timesteps: 512}\npopulation: 6\nready_every: 2\n"
        "range: {learning_rate: 'log:1e-4:1e-2', ent_coef: '0:0.05'}\nexploit: truncation:0.5\n"
        "perturb: [0.5, 2.0]\nresample_prob: 0.1\nseed: 3\npbt_seed: 4\n"
    )
    args = build_parser().parse_args(
        ["pbt", str(tmp_path / "pbt.yaml"), "--population", "4", "--range", "ent_coef=0:0.1"]
    )
    spec = _spec_from_args(args)
    assert spec.base.num_envs == 4 and spec.base.total_timesteps == 512 and spec.seed == 3
    assert spec.pbt == PBTConfig(4, 2, (("learning_rate", "log", 1e-4, 1e-2), ("ent_coef", "uniform", 0.0, 0.1)), 0.5,
                                 (0.5, 2.0), 0.1, 4)  # fmt: skip


def test_divergences_from_metric_rows_end_at_a_replacement_and_may_recur():
    """`divergences` reads the metric rows: an event opens at the first logged update with the member's flag on
    and closes at the ready step where it copied another member (that row's flag is still on: the update's own);
    a member that diverges again opens a new event; one never replaced stays open (and makes the run diverged)."""
    from purejaxppo.pbt.report import divergences, still_diverged

    def row(u, m, diverged, parent=None):
        return {"update": u, "run": m, "member": m, "diverged": float(diverged), "pbt_parent": parent}

    rows = [
        row(2, 0, 0, 0.0), row(2, 1, 0, 1.0), row(2, 2, 0, 2.0),
        row(3, 0, 0), row(3, 1, 1), row(3, 2, 0),              # member 1 diverges at update 3 ...
        row(4, 0, 0, 0.0), row(4, 1, 1, 0.0), row(4, 2, 0, 2.0),  # ... and copies member 0 at the ready step 4
        row(6, 0, 0, 0.0), row(6, 1, 1, 1.0), row(6, 2, 1, 2.0),  # both diverge (rows of update 6 only: no copy)
        row(8, 0, 0, 0.0), row(8, 1, 0, 0.0), row(8, 2, 1, 2.0),  # 1 replaced again; 2 never (it stays bad)
    ]  # fmt: skip
    events = divergences(list(reversed(rows)))  # any row order
    assert events == [
        {"member": 1, "diverged_at_update": 3, "replaced_at_update": 4, "parent": 0},
        {"member": 1, "diverged_at_update": 6, "replaced_at_update": 8, "parent": 0},
        {"member": 2, "diverged_at_update": 6, "replaced_at_update": None, "parent": None},
    ]
    assert still_diverged(events) == [2]
    assert divergences([row(2, 0, 0, 0.0), row(2, 1, 0, 1.0)]) == [] and still_diverged([]) == []


def test_a_member_that_diverged_and_was_replaced_leaves_the_run_finished(tmp_path, monkeypatch):
    """A PBT run in which one member diverges (learning rate 1e30) and is replaced at the next ready step
    finishes with status "finished" and a record of the divergence (run.json, the result, pbt.md, the log); if
    every member diverges, nobody can be replaced and the run ends "diverged", naming all of them."""
    from purejaxppo.pbt import runner
    from purejaxppo.pbt.runner import pbt_run
    from purejaxppo.pbt.spec import build_pbt_spec

    spec = build_pbt_spec(_base(), population=4, ready_every=2, ranges={"learning_rate": "log:1e-4:1e-2"})
    real = runner.initial_hparams

    def run(out, members):
        def draws(*a):
            hp = real(*a)
            return hp.replace(learning_rate=hp.learning_rate.at[jnp.asarray(members)].set(1e30))

        monkeypatch.setattr(runner, "initial_hparams", draws)
        said = []
        res = pbt_run(spec, out, checkpoint_every=4, log=said.append)
        assert res is not None and res.report is not None
        return res, json.loads((out / "run.json").read_text()), said

    res, info, said = run(tmp_path / "one", [1])
    events = info["pbt_divergences"]
    assert [(e["member"], e["diverged_at_update"], e["replaced_at_update"]) for e in events] == [(1, 1, 2)]
    assert events[0]["parent"] in (0, 2, 3)
    assert res.status == "finished" and info["status"] == "finished" and info["sessions"][-1]["status"] == "finished"
    assert res.run.diverged_seeds == [] and "diverged_seeds" not in info and "diverged_at_update" not in info
    assert res.report["status"] == "finished" and res.report["divergences"] == events
    assert f"member 1 diverged at update 1; replaced at update 2 by member {events[0]['parent']}'s learner" in (
        tmp_path / "one" / "pbt.md"
    ).read_text()
    assert "status: finished" in said
    assert all(np.isfinite(s["score"]) for s in res.report["final"])  # member 1 trained on

    res, info, said = run(tmp_path / "all", [0, 1, 2, 3])
    assert res.status == "diverged" and info["status"] == "diverged" and info["sessions"][-1]["status"] == "diverged"
    assert info["diverged_seeds"] == res.run.diverged_seeds == [0, 1, 2, 3] and info["diverged_at_update"] == 1
    assert [(e["member"], e["replaced_at_update"]) for e in info["pbt_divergences"]] == [(m, None) for m in range(4)]
