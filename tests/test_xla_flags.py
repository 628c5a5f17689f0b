"""The CPU deadlock guard, checked in fresh interpreters (XLA reads its flags once per process)."""

import os
import subprocess
import sys
import textwrap

import pytest

from purejaxppo._xla_flags import FLAG, FLAG_NAME


def _run(code, env_extra=None, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PUREJAXPPO_KEEP_XLA_FLAGS")}
    env["JAX_PLATFORMS"] = "cpu"
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=timeout)


def test_flag_set_when_imported_before_backend_starts():
    p = _run("""
        import os, jax
        import purejaxppo
        jax.numpy.ones(1).block_until_ready()
        print(purejaxppo.XLA_FLAGS_STATUS, os.environ["XLA_FLAGS"])
    """)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[0] == "set" and FLAG in p.stdout


def test_warns_when_backend_already_started():
    p = _run("""
        import warnings, jax
        jax.numpy.ones(1).block_until_ready()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import purejaxppo
        print(purejaxppo.XLA_FLAGS_STATUS, any("could not set" in str(x.message) for x in w))
    """)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["too-late", "True"]


@pytest.mark.parametrize("value", ["true", "false"])
def test_user_setting_is_respected(value):
    p = _run("""
        import os, purejaxppo
        print(purejaxppo.XLA_FLAGS_STATUS, os.environ["XLA_FLAGS"])
    """, {"XLA_FLAGS": f"{FLAG_NAME}={value}"})
    assert p.stdout.split() == ["user", f"{FLAG_NAME}={value}"]


@pytest.mark.parametrize("value, status", [("1", "opt-out"), ("0", "set"), ("false", "set")])
def test_opt_out(value, status):
    p = _run("""
        import os, purejaxppo
        print(purejaxppo.XLA_FLAGS_STATUS, os.environ.get("XLA_FLAGS", "-"))
    """, {"PUREJAXPPO_KEEP_XLA_FLAGS": value})
    assert p.stdout.split()[0] == status
    assert (p.stdout.split()[1] == "-") == (status == "opt-out")


def test_vmapped_training_on_cpu_finishes():
    # The user's pattern from the README: import jax first, then purejaxppo, then jit(vmap(train)).
    p = _run("""
        import jax
        from purejaxppo import PPOConfig, make_train
        cfg = PPOConfig(num_envs=4, num_steps=32, num_minibatches=4, update_epochs=2, total_timesteps=4 * 32 * 20)
        out = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.key(0), 16))
        print(out.metrics["episode_return"].shape)
    """, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "(16, 20)" in p.stdout


# --- threefry on CPU (purejaxppo._cpu_rng): unrolled lowering, same numbers ---------------------------------

_THREEFRY_PROBE = """
    import os, sys, numpy as np
    if sys.argv[1] == "with":
        import purejaxppo
        status = purejaxppo.THREEFRY_CPU_STATUS
    else:
        status = "-"
    import jax
    f = jax.jit(lambda k: (jax.random.split(k, 3), jax.random.uniform(k, (5,)), jax.random.normal(k, (2, 3)),
                           jax.random.permutation(k, 10)))
    hlo = f.lower(jax.random.PRNGKey(7)).compile().as_text()
    out = np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(f(jax.random.PRNGKey(7)))])
    print(status, "while" in hlo, ",".join(repr(float(v)) for v in out))
"""


def _threefry(mode, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "PUREJAXPPO_ROLLED_THREEFRY"}
    env["JAX_PLATFORMS"] = "cpu"
    env.update(env_extra or {})
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(_THREEFRY_PROBE), mode], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_threefry_unrolled_on_cpu_with_identical_numbers():
    status, has_loop, numbers = _threefry("with")
    _, default_has_loop, default_numbers = _threefry("without")
    assert status == "unrolled" and has_loop == "False"
    assert default_has_loop == "True"  # jax's own CPU lowering loops (the reason for the patch)
    assert numbers == default_numbers  # bit-for-bit the same random numbers


def test_threefry_opt_out():
    status, has_loop, _ = _threefry("with", {"PUREJAXPPO_ROLLED_THREEFRY": "1"})
    assert (status, has_loop) == ("opt-out", "True")
    status, has_loop, _ = _threefry("with", {"PUREJAXPPO_ROLLED_THREEFRY": "0"})  # '0' means not set
    assert (status, has_loop) == ("unrolled", "False")
