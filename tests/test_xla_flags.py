"""CPU settings (purejaxppo.cpu.configure): the XLA scheduler flag and the unrolled threefry lowering.

Import changes nothing; configure() applies both. Checked in fresh interpreters, since XLA reads its flags once
per process and a registered lowering cannot be unregistered.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from purejaxppo.cpu import _rng as _cpu_rng
from purejaxppo.cpu import _xla_flags
from purejaxppo.cpu._xla_flags import FLAG, FLAG_NAME

_OURS = ("XLA_FLAGS", "PUREJAXPPO_KEEP_XLA_FLAGS", "PUREJAXPPO_ROLLED_THREEFRY")


def _run(code, env_extra=None, timeout=120, args=()):
    """Run `code` (a string, or a tuple of strings each dedented on its own) in a fresh interpreter on CPU;
    its stdout split into words."""
    code = "\n".join(textwrap.dedent(c) for c in ((code,) if isinstance(code, str) else code))
    env = {k: v for k, v in os.environ.items() if k not in _OURS}
    env["JAX_PLATFORMS"] = "cpu"
    env.update(env_extra or {})
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


# Prints: whether threefry lowers to a while loop on CPU, and the random numbers (the lowering's two checks).
_THREEFRY = """
    def threefry_probe():
        import jax, numpy as np
        f = jax.jit(lambda k: (jax.random.split(k, 3), jax.random.uniform(k, (5,)), jax.random.normal(k, (2, 3)),
                               jax.random.permutation(k, 10)))
        hlo = f.lower(jax.random.PRNGKey(7)).compile().as_text()
        out = np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(f(jax.random.PRNGKey(7)))])
        return str("while" in hlo), ",".join(repr(float(v)) for v in out)
"""


# --- import changes nothing ---------------------------------------------------------------------------------

def test_import_leaves_xla_flags_and_threefry_alone():
    out = _run((_THREEFRY, """
        import os
        before = os.environ.get("XLA_FLAGS", "<unset>")
        import purejaxppo, purejaxppo.cli, purejaxppo.runs
        print(before, os.environ.get("XLA_FLAGS", "<unset>"), *threefry_probe())
    """))
    assert out[:3] == ["<unset>", "<unset>", "True"]  # XLA_FLAGS untouched; JAX's rolled (looping) lowering


def test_import_starts_no_jax_backend():
    # Otherwise configure() after `import purejaxppo` would always be too late for XLA_FLAGS.
    out = _run("""
        import purejaxppo, purejaxppo.cli, purejaxppo.runs
        from jax._src import xla_bridge
        print(xla_bridge.backends_are_initialized())
    """)
    assert out == ["False"], "importing purejaxppo ran a JAX computation (a module-level jnp array?)"


# --- configure(): sets both, idempotent ---------------------------------------------------------------------

def test_configure_sets_flag_and_unrolls_threefry_once():
    out = _run((_THREEFRY, """
        import os, jax, purejaxppo
        a = purejaxppo.cpu.configure()
        b = purejaxppo.configure_cpu()
        jax.numpy.ones(1).block_until_ready()
        c = purejaxppo.cpu.configure()
        print(a["scheduler_flag"], a["threefry"], b["scheduler_flag"], b["threefry"], c["scheduler_flag"],
              c["threefry"], os.environ["XLA_FLAGS"].count("xla_cpu_enable_concurrency_optimized_scheduler"),
              os.environ["XLA_FLAGS"] == %r, threefry_probe()[0])
    """ % FLAG))
    assert out == ["set", "unrolled"] * 3 + ["1", "True", "False"]


_SCHEDULE_PROBE = """
    import re, sys, hashlib, jax, jax.numpy as jnp
    if sys.argv[1] == "configure":
        import purejaxppo
        purejaxppo.cpu.configure(unroll_threefry=False)
    def f(p):  # independent chains of dots: the two schedulers order them differently
        return [(p @ (p * (i + 1)) @ (p @ (p * (i + 1)))).sum() for i in range(5)]
    text = jax.jit(f).lower(jnp.ones((64, 64))).compile().as_text()
    print(hashlib.md5(re.sub(r"[0-9]+", "N", text).encode()).hexdigest())
"""


def test_configure_flag_reaches_xla():
    """The compiled schedule after configure() is the one XLA_FLAGS=FLAG gives from the start, not the default."""
    flagged = _run(_SCHEDULE_PROBE, {"XLA_FLAGS": FLAG}, args=["plain"])
    default = _run(_SCHEDULE_PROBE, args=["plain"])
    if flagged == default:
        pytest.skip("the flag does not change this probe's schedule on this jaxlib")
    assert _run(_SCHEDULE_PROBE, args=["configure"]) == flagged


def test_too_late_warns_once_and_changes_nothing():
    out = _run("""
        import os, warnings, jax
        jax.numpy.ones(1).block_until_ready()
        import purejaxppo
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            a = purejaxppo.cpu.configure()
            b = purejaxppo.cpu.configure()
        print(a["scheduler_flag"], b["scheduler_flag"], sum("could not set" in str(x.message) for x in w),
              os.environ.get("XLA_FLAGS", "<unset>"), a["threefry"])
    """)
    assert out == ["too-late", "too-late", "1", "<unset>", "unrolled"]


@pytest.mark.parametrize("value", ["true", "false"])
def test_user_setting_is_respected(value):
    out = _run("""
        import os, purejaxppo
        print(purejaxppo.cpu.configure()["scheduler_flag"], os.environ["XLA_FLAGS"])
    """, {"XLA_FLAGS": f"{FLAG_NAME}={value}"})
    assert out == ["user", f"{FLAG_NAME}={value}"]


@pytest.mark.parametrize("value, status", [("1", "opt-out"), ("yes", "opt-out"), ("0", "set"), ("off", "set"),
                                           ("", "set")])
def test_opt_out(value, status):
    out = _run("""
        import os, purejaxppo
        print(purejaxppo.cpu.configure()["scheduler_flag"], os.environ.get("XLA_FLAGS", "-"))
    """, {"PUREJAXPPO_KEEP_XLA_FLAGS": value})
    assert out[0] == status
    assert (out[1] == "-") == (status == "opt-out")


def test_scheduler_flag_false_changes_nothing():
    out = _run("""
        import os, purejaxppo
        s = purejaxppo.cpu.configure(scheduler_flag=False, unroll_threefry=False)
        print(s["scheduler_flag"], s["threefry"], os.environ.get("XLA_FLAGS", "-"))
    """)
    assert out == ["disabled", "disabled", "-"]


def test_vmapped_training_on_cpu_finishes():
    # The pattern the README gives: import jax and purejaxppo, configure(), then jit(vmap(train)).
    out = _run("""
        import jax
        import purejaxppo
        from purejaxppo import PPOConfig, make_train
        print(purejaxppo.cpu.configure()["scheduler_flag"])
        cfg = PPOConfig(num_envs=4, num_steps=32, num_minibatches=4, update_epochs=2, total_timesteps=4 * 32 * 20)
        out = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.key(0), 16))
        print(out.metrics["episode_return"].shape)
    """, timeout=300)
    assert out == ["set", "(16,", "20)"]


# --- the version gate ---------------------------------------------------------------------------------------

def test_parse_version():
    assert _xla_flags.parse_version("0.10.2") == (0, 10, 2)
    assert _xla_flags.parse_version("0.4.36.dev20241122+cuda12") == (0, 4, 36)
    assert _xla_flags.parse_version("0.11.0rc1") == (0, 11, 0)


@pytest.mark.parametrize("version, inside", [("0.4.34", False), ("0.4.35", True), ("0.7.2", True), ("0.10.2", True),
                                             ("0.10.99", True), ("0.11.0", False), ("1.0.0", False)])
def test_flag_range(version, inside):
    assert _xla_flags.in_flag_range(_xla_flags.parse_version(version)) is inside


@pytest.fixture
def fresh_flag_state(monkeypatch):
    """This process as if nothing were set yet: no XLA_FLAGS, no opt-out, no backend, nothing applied or warned."""
    for name in _OURS[:2]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_xla_flags, "_state", {"applied": False, "warned": False})
    monkeypatch.setattr(_xla_flags, "backends_started", lambda: False)
    return monkeypatch


@pytest.mark.parametrize("version", ["0.4.34", "0.11.0", "0.12.1"])
def test_configure_outside_version_range_does_nothing(fresh_flag_state, version):
    fresh_flag_state.setattr(_xla_flags, "jaxlib_version", lambda: version)
    from purejaxppo import cpu

    status = cpu.configure(unroll_threefry=False)
    assert status["scheduler_flag"] == "not-needed" and version in status["scheduler_flag_reason"]
    assert status["jaxlib"] == version
    assert "XLA_FLAGS" not in os.environ


def test_configure_inside_version_range_sets_flag(fresh_flag_state):
    fresh_flag_state.setattr(_xla_flags, "jaxlib_version", lambda: "0.10.9")
    from purejaxppo import cpu

    assert cpu.configure(unroll_threefry=False)["scheduler_flag"] == "set"
    assert os.environ["XLA_FLAGS"] == FLAG
    assert cpu.configure(unroll_threefry=False)["scheduler_flag"] == "set"  # idempotent
    assert os.environ["XLA_FLAGS"] == FLAG


def test_decide_order():
    base = dict(enabled=True, xla_flags="", opt_out=False, version="0.10.2", started=False, applied=False)
    assert _xla_flags.decide(**base)[0] == "append"
    assert _xla_flags.decide(**dict(base, started=True))[0] == "too-late"
    assert _xla_flags.decide(**dict(base, started=True, version="0.11.0"))[0] == "not-needed"  # no warning then
    assert _xla_flags.decide(**dict(base, opt_out=True, started=True))[0] == "opt-out"
    assert _xla_flags.decide(**dict(base, xla_flags=f"--foo {FLAG_NAME}=true", opt_out=True))[0] == "user"
    assert _xla_flags.decide(**dict(base, xla_flags=FLAG, applied=True, started=True))[0] == "set"
    assert _xla_flags.decide(**dict(base, enabled=False))[0] == "disabled"


def test_threefry_statuses_in_process(monkeypatch):
    monkeypatch.setattr(_cpu_rng, "_state", {"registered": False})
    monkeypatch.setenv("PUREJAXPPO_ROLLED_THREEFRY", "1")
    assert _cpu_rng.unroll_threefry_on_cpu()[0] == "opt-out"
    assert _cpu_rng.unroll_threefry_on_cpu(enabled=False)[0] == "disabled"

    def moved():
        raise ImportError("no module jax._src.random")

    monkeypatch.delenv("PUREJAXPPO_ROLLED_THREEFRY")
    monkeypatch.setattr(_cpu_rng, "_register_unrolled_lowering", moved)
    status, reason = _cpu_rng.unroll_threefry_on_cpu()
    assert status == "unavailable" and "moved" in reason


# --- threefry on CPU: unrolled lowering, same numbers -------------------------------------------------------

def _threefry(mode, env_extra=None):
    return _run((_THREEFRY, """
        import sys
        status = "-"
        if sys.argv[1] != "without":
            import purejaxppo
            if sys.argv[1] == "configure":
                status = purejaxppo.cpu.configure(scheduler_flag=False)["threefry"]
        print(status, *threefry_probe())
    """), env_extra, args=[mode])


def test_threefry_unrolled_on_cpu_with_identical_numbers():
    status, has_loop, numbers = _threefry("configure")
    _, default_has_loop, default_numbers = _threefry("without")
    assert status == "unrolled" and has_loop == "False"
    assert default_has_loop == "True"  # jax's own CPU lowering loops (the reason for the patch)
    assert numbers == default_numbers  # bit-for-bit the same random numbers


def test_threefry_untouched_by_import_alone():
    assert _threefry("import")[:2] == ["-", "True"]


def test_threefry_opt_out():
    assert _threefry("configure", {"PUREJAXPPO_ROLLED_THREEFRY": "1"})[:2] == ["opt-out", "True"]
    assert _threefry("configure", {"PUREJAXPPO_ROLLED_THREEFRY": "0"})[:2] == ["unrolled", "False"]  # '0': not set
