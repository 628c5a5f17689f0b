# The test session uses the CLI's CPU settings (XLA scheduler flag, unrolled threefry): importing purejaxppo
# changes nothing global, so configure them here, before any JAX computation (see purejaxppo/cpu.py).
from purejaxppo.cpu import configure

configure()
