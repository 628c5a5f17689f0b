"""Training (feed-forward and GRU) is bit-identical to the stored golden run (tests/golden.py): every metric
of every update and a SHA-256 of every final parameter array."""

import numpy as np
import pytest

from tests.golden import CASES, PATH, run_case

GOLDEN = np.load(PATH)


@pytest.mark.parametrize("name", sorted(CASES))
def test_feed_forward_run_is_bit_identical_to_the_golden_file(name):
    got = run_case(CASES[name])
    want = {k[len(name) + 1:]: GOLDEN[k] for k in GOLDEN.files if k.startswith(name + "/")}
    assert sorted(got) == sorted(want)
    for k in sorted(want):
        if k.endswith("/sum"):
            continue  # informative only: the hash decides
        np.testing.assert_array_equal(got[k], want[k], err_msg=f"{name}: {k} differs from {GOLDEN['commit']}; "
                                      f"sum {got.get(k[:-7] + '/sum')} vs {want.get(k[:-7] + '/sum')}")
