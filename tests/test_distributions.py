import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.core.distributions import Categorical, DiagGaussian


def test_categorical_log_prob_entropy_kl_closed_form():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    other = rng.normal(size=(6, 4)).astype(np.float32)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    q = np.exp(other) / np.exp(other).sum(-1, keepdims=True)
    d, e = Categorical(jnp.asarray(logits)), Categorical(jnp.asarray(other))
    np.testing.assert_allclose(np.exp(d.log_probs).sum(-1), 1.0, rtol=1e-6)
    actions = rng.integers(0, 4, size=6)
    np.testing.assert_allclose(d.log_prob(jnp.asarray(actions)), np.log(p[np.arange(6), actions]), rtol=1e-5)
    np.testing.assert_allclose(d.entropy(), -(p * np.log(p)).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(d.kl(e), (p * (np.log(p) - np.log(q))).sum(-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(d.kl(d), 0.0, atol=1e-6)
    assert d.mode().tolist() == np.argmax(logits, -1).tolist()


def test_categorical_sample_frequencies():
    d = Categorical(jnp.log(jnp.array([0.1, 0.2, 0.7])))
    s = jax.vmap(d.sample)(jax.random.split(jax.random.key(0), 20000))
    freq = np.bincount(np.asarray(s), minlength=3) / 20000
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=0.015)


def _normal_pdf(x, m, s):
    return np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def test_gaussian_log_prob_and_entropy():
    mean = jnp.array([[0.3, -1.0], [2.0, 0.0]])
    log_std = jnp.array([[0.0, -0.5], [0.7, 0.2]])
    d = DiagGaussian(mean, log_std)
    a = jnp.array([[0.1, -0.7], [1.0, 0.5]])
    s = np.exp(np.asarray(log_std))
    expected = np.log(_normal_pdf(np.asarray(a), np.asarray(mean), s)).sum(-1)
    np.testing.assert_allclose(d.log_prob(a), expected, rtol=1e-5)
    np.testing.assert_allclose(d.entropy(), (0.5 * np.log(2 * np.pi * np.e * s**2)).sum(-1), rtol=1e-5)


def test_gaussian_entropy_and_kl_by_numeric_integration():
    x = np.linspace(-15, 15, 200001)
    m1, s1, m2, s2 = 0.4, 0.8, -0.3, 1.7
    p, q = _normal_pdf(x, m1, s1), _normal_pdf(x, m2, s2)
    d1 = DiagGaussian(jnp.array([m1]), jnp.log(jnp.array([s1])))
    d2 = DiagGaussian(jnp.array([m2]), jnp.log(jnp.array([s2])))
    np.testing.assert_allclose(float(d1.kl(d2)), np.trapezoid(p * np.log(p / q), x), rtol=1e-4)
    np.testing.assert_allclose(float(d1.entropy()), -np.trapezoid(p * np.log(p), x), rtol=1e-4)
    assert float(d1.kl(d1)) == pytest.approx(0.0, abs=1e-7)
    # Density integrates to 1.
    assert np.trapezoid(np.exp([float(d1.log_prob(jnp.array([v]))) for v in x[::1000]]), x[::1000]) == pytest.approx(1.0, rel=1e-3)


def test_gaussian_kl_sums_over_dimensions():
    d1 = DiagGaussian(jnp.array([0.0, 1.0]), jnp.array([0.0, 0.5]))
    d2 = DiagGaussian(jnp.array([1.0, 1.0]), jnp.array([0.2, 0.0]))
    parts = [DiagGaussian(d1.mean[i:i + 1], d1.log_std[i:i + 1]).kl(DiagGaussian(d2.mean[i:i + 1], d2.log_std[i:i + 1])) for i in range(2)]
    np.testing.assert_allclose(d1.kl(d2), sum(parts), rtol=1e-6)


def test_gaussian_sample_moments():
    d = DiagGaussian(jnp.array([1.0, -2.0]), jnp.log(jnp.array([0.5, 2.0])))
    s = np.asarray(jax.vmap(d.sample)(jax.random.split(jax.random.key(1), 20000)))
    np.testing.assert_allclose(s.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(s.std(0), [0.5, 2.0], rtol=0.03)
