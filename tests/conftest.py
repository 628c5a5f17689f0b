# The test session uses the CLI's CPU settings (XLA scheduler flag, unrolled threefry): importing purejaxppo
# changes nothing global, so configure them here, before any JAX computation (see purejaxppo/cpu.py).
import jax
import pytest

from purejaxppo.cpu import configure

_CPU = configure()

if _CPU["scheduler_flag"] == "too-late" and jax.default_backend() == "cpu":
    # Without the flag, vmapped trainings on CPU can deadlock (seen in this suite): stop now rather than hang.
    pytest.exit(
        "tests/conftest.py: purejaxppo.cpu.configure() came too late for XLA_FLAGS: importing purejaxppo already "
        "ran a JAX computation (a module-level jnp array, e.g. _GH_X/_GH_W in purejaxppo/distributions.py; "
        "tests/test_xla_flags.py::test_import_starts_no_jax_backend checks this). To run anyway, set XLA_FLAGS="
        "--xla_cpu_enable_concurrency_optimized_scheduler=false (or PUREJAXPPO_KEEP_XLA_FLAGS=1) yourself.",
        returncode=3,
    )
