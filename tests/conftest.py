# Import purejaxppo before any JAX computation so that its CPU XLA flag takes effect
# for the whole test session (see purejaxppo/_xla_flags.py).
import purejaxppo  # noqa: F401
