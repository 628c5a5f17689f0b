import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.core.gae import compute_gae


def gae_reference(r, v, nv, term, trunc, gamma, lam):
    """Plain Python loop over time, one env at a time."""
    T, B = r.shape
    adv = np.zeros((T, B), np.float64)
    for b in range(B):
        running = 0.0
        for t in reversed(range(T)):
            bootstrap = 0.0 if term[t, b] else nv[t, b]
            delta = r[t, b] + gamma * bootstrap - v[t, b]
            if term[t, b] or trunc[t, b]:
                running = 0.0  # the episode ended at t: nothing flows back from t+1
            running = delta + gamma * lam * running
            adv[t, b] = running
    return adv, adv + v


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (0.5, 0.0)])
def test_gae_matches_plain_loop(seed, gamma, lam):
    rng = np.random.default_rng(seed)
    T, B = 37, 5
    r = rng.normal(size=(T, B)).astype(np.float32)
    v = rng.normal(size=(T, B)).astype(np.float32)
    nv = rng.normal(size=(T, B)).astype(np.float32)
    term = rng.random((T, B)) < 0.1
    trunc = (rng.random((T, B)) < 0.1) & ~term
    trunc[-1, 0] = True  # a truncation at the last step of the rollout
    term[-1, 1] = True
    adv, tgt = compute_gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(nv), jnp.asarray(term), jnp.asarray(trunc), gamma, lam)
    ref_adv, ref_tgt = gae_reference(r, v, nv, term, trunc, gamma, lam)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tgt, ref_tgt, rtol=1e-5, atol=1e-5)


def _case(term1, trunc1):
    r = jnp.array([[1.0], [2.0], [3.0]])
    v = jnp.array([[0.5], [1.0], [1.5]])
    nv = jnp.array([[1.0], [1.5], [2.0]])
    term = jnp.array([[False], [term1], [False]])
    trunc = jnp.array([[False], [trunc1], [False]])
    adv, _ = compute_gae(r, v, nv, term, trunc, 0.9, 0.8)
    return np.asarray(adv[:, 0])


def test_gae_hand_computed_truncation_bootstraps():
    # t=2: 3 + .9*2 - 1.5 = 3.3;  t=1 (truncated): 2 + .9*1.5 - 1 = 2.35, no flow from t=2
    # t=0: 1 + .9*1 - .5 = 1.4, plus .9*.8*2.35 = 1.692 -> 3.092
    np.testing.assert_allclose(_case(False, True), [3.092, 2.35, 3.3], rtol=1e-6)


def test_gae_hand_computed_termination_does_not_bootstrap():
    # t=1 (terminated): 2 - 1 = 1.0;  t=0: 1.4 + .72 * 1.0 = 2.12
    np.testing.assert_allclose(_case(True, False), [2.12, 1.0, 3.3], rtol=1e-6)


def test_gae_no_done_is_discounted_td_sum():
    # lambda = 1, no dones: A_0 = sum_t gamma^t r_t + gamma^T V(s_T) - V(s_0)
    r = jnp.ones((4, 1))
    v = jnp.zeros((4, 1))
    nv = jnp.zeros((4, 1)).at[-1].set(10.0)
    f = jnp.zeros((4, 1), bool)
    adv, _ = compute_gae(r, v, nv, f, f, 0.5, 1.0)
    assert float(adv[0, 0]) == pytest.approx(1 + 0.5 + 0.25 + 0.125 + 0.0625 * 10)


def test_gae_rejects_mismatched_shapes():
    x = jnp.zeros((4, 2))
    with pytest.raises(AssertionError):
        compute_gae(x, x, jnp.zeros((4, 3)), x > 0, x > 0, 0.9, 0.9)
