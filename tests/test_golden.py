"""Training (feed-forward, CNN and GRU) reproduces the stored golden runs (tests/golden.py): bit for bit
against the reference written on a machine with this one's fingerprint, within a tight tolerance against the
references of other machines (XLA:CPU's rounding depends on the CPU). The fast tier runs one case, the
slow tier all of them (tests/conftest.py)."""

import pytest

from tests.golden import CASES, compare, fingerprint, fingerprint_id, references, run_case, stored_case

REFERENCES = references()
HERE = fingerprint_id(fingerprint())


def test_references_are_stored_and_name_their_machine():
    assert REFERENCES, "no golden reference in tests/data/golden/: run `python -m tests.golden`"
    for ref_id, ref in REFERENCES.items():
        assert "fingerprint" in ref.files and "commit" in ref.files, ref_id
        assert sorted({k.split("/")[0] for k in ref.files if "/" in k}) == sorted(CASES), ref_id


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_reproduces_the_golden_references(name):
    got = run_case(CASES[name])
    problems = []
    for ref_id, ref in REFERENCES.items():
        problems += compare(name, got, stored_case(ref, name), exact=ref_id == HERE,
                            ref_label=f"{ref_id} (written at {ref['commit']})")
    assert not problems, "\n".join(problems[:20]) + (
        "\nIf this change is meant to move results, rewrite this machine's reference with `python -m tests.golden` "
        "and say why in the commit.")


def test_the_tolerance_catches_a_small_change_of_the_algorithm():
    """The cross-machine tolerance is no blanket: a 1% larger learning rate is flagged by it."""
    import dataclasses

    cfg = CASES["cartpole"]
    got = run_case(dataclasses.replace(cfg, learning_rate=cfg.learning_rate * 1.01))
    ref = next(iter(REFERENCES.values()))
    assert compare("cartpole", got, stored_case(ref, "cartpole"), exact=False, ref_label="ref")
