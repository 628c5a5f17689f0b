import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig
from purejaxppo.core.losses import Batch, adapt_kl_beta, clip_fraction, clipped_surrogate, ppo_loss, value_loss
from purejaxppo.core.networks import ActionSpec, ActorCritic

HP = PPOConfig().hparams()


def test_ratio_one_gives_minus_mean_advantage():
    adv = jnp.array([1.0, -2.0, 0.5, 3.0])
    assert float(-clipped_surrogate(jnp.ones(4), adv, 0.2).mean()) == pytest.approx(-float(adv.mean()))


@pytest.mark.parametrize(
    "r,a,grad",
    [
        (1.5, 1.0, 0.0),   # above 1+eps with A>0: clipped, no gradient
        (0.5, -1.0, 0.0),  # below 1-eps with A<0: clipped, no gradient
        (1.1, 2.0, 2.0),   # inside: d/dr (r A) = A
        (0.5, 1.0, 1.0),   # below 1-eps but A>0: min picks r A, gradient A
        (1.5, -1.0, -1.0), # above 1+eps but A<0: min picks r A
    ],
)
def test_clipped_surrogate_gradient(r, a, grad):
    g = jax.grad(lambda x: clipped_surrogate(x, jnp.asarray(a), 0.2))(jnp.asarray(r))
    assert float(g) == pytest.approx(grad)


def test_clip_fraction_hand_computed():
    ratio = jnp.array([0.7, 0.9, 1.0, 1.25, 1.3])
    assert float(clip_fraction(ratio, 0.2)) == pytest.approx(0.6)


def test_value_loss_clipping_hand_computed():
    # V moved from 1.0 to 2.0, target 3.0: clipped V = 1.2 -> (1.8)^2 = 3.24 > 1 -> 0.5 * 3.24
    assert float(value_loss(jnp.array([2.0]), jnp.array([1.0]), jnp.array([3.0]), 0.2, True)) == pytest.approx(1.62)
    # V moved to 1.5, target 1.1: unclipped 0.16 > clipped (1.2 - 1.1)^2 = 0.01 -> 0.08
    assert float(value_loss(jnp.array([1.5]), jnp.array([1.0]), jnp.array([1.1]), 0.2, True)) == pytest.approx(0.08)
    assert float(value_loss(jnp.array([2.0]), jnp.array([1.0]), jnp.array([3.0]), 0.2, False)) == pytest.approx(0.5)


LO, HI = jnp.asarray(1e-4, jnp.float32), jnp.asarray(1e4, jnp.float32)  # the default kl_beta_min / kl_beta_max


def test_kl_beta_rule():
    beta, target = jnp.asarray(1.0), jnp.asarray(0.01)
    assert float(adapt_kl_beta(beta, 0.001, target, LO, HI)) == 0.5   # d < d_targ / 1.5
    assert float(adapt_kl_beta(beta, 0.01, target, LO, HI)) == 1.0    # inside the band
    assert float(adapt_kl_beta(beta, 0.0067, target, LO, HI)) == 1.0  # just inside the lower edge (0.00667)
    assert float(adapt_kl_beta(beta, 0.0066, target, LO, HI)) == 0.5  # just below it
    assert float(adapt_kl_beta(beta, 0.016, target, LO, HI)) == 2.0   # d > 1.5 d_targ
    b = beta
    for d, expected in [(0.1, 2.0), (0.1, 4.0), (0.01, 4.0), (0.0, 2.0), (0.0, 1.0), (0.0, 0.5)]:
        b = adapt_kl_beta(b, d, target, LO, HI)
        assert float(b) == expected


def _beta_after(beta, kl, n, lo=LO, hi=HI, target=0.01):
    """beta after n updates that each measured mean KL `kl`, run as one compiled scan (like training)."""
    step = lambda b, _: (adapt_kl_beta(b, jnp.float32(kl), jnp.float32(target), lo, hi), None)  # noqa: E731
    return jax.jit(lambda b: jax.lax.scan(step, b, None, length=n)[0])(jnp.asarray(beta, jnp.float32))


def test_kl_beta_survives_long_tiny_kl_and_doubles_back():
    # Unbounded, ~126 halvings flush a float32 beta to exactly 0 on XLA:CPU, and 0 never doubles back.
    assert float(_beta_after(1.0, 1e-9, 5000, lo=jnp.float32(0.0))) == 0.0
    beta = _beta_after(1.0, 1e-9, 5000)
    assert float(beta) > 0 and beta == LO  # pinned at kl_beta_min exactly
    back = _beta_after(beta, 1.0, 20)
    assert back == jnp.minimum(LO * 2.0**20, HI) and float(back) > 100  # 20 doublings: 1e-4 * 2**20 = 104.86


def test_kl_beta_stops_at_max_and_halves_back():
    hi = jnp.float32(64.0)
    beta = _beta_after(1.0, 1.0, 5000, hi=hi)
    assert beta == hi and np.isfinite(float(beta))
    assert float(_beta_after(1.0, 1.0, 500, hi=jnp.float32(np.inf))) == np.inf  # what the bound prevents
    assert _beta_after(beta, 1e-9, 3, hi=hi) == hi / 8
    assert _beta_after(beta, 1e-9, 50, lo=jnp.float32(0.5), hi=hi) == 0.5


def test_kl_beta_bounds_are_elementwise_under_vmap():
    lo = jnp.array([1e-4, 1e-2, 1.0], jnp.float32)
    out = jax.vmap(lambda l: _beta_after(1.0, 1e-9, 300, lo=l))(lo)
    np.testing.assert_array_equal(out, lo)


def _setup(discrete=True, seed=0):
    spec = ActionSpec(True, 3, ()) if discrete else ActionSpec(False, 0, (2,), (-1.0, -1.0), (1.0, 1.0))
    net = ActorCritic(spec, (16,), (16,))
    key = jax.random.key(seed)
    obs = jax.random.normal(key, (32, 4))
    params = net.init(key, obs)
    dist, value = net.apply(params, obs)
    action = dist.sample(jax.random.key(seed + 1))
    adv = jax.random.normal(jax.random.key(seed + 2), (32,))
    batch = Batch(obs, action, dist.log_prob(action), value, adv, value + adv, dist)
    # Perturb params so that pi != pi_old.
    params2 = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(seed + 3), p.shape), params)
    return net, params, params2, batch


@pytest.mark.parametrize("discrete", [True, False])
def test_ppo_loss_ratio_one_policy_loss(discrete):
    net, params, _, batch = _setup(discrete)
    _, m = ppo_loss(params, net.apply, batch, HP, jnp.asarray(1.0), normalize_advantages=False)
    assert float(m["policy_loss"]) == pytest.approx(-float(batch.advantage.mean()), abs=1e-6)
    assert float(m["approx_kl"]) == pytest.approx(0.0, abs=1e-7)
    assert float(m["clip_fraction"]) == 0.0


@pytest.mark.parametrize("discrete", [True, False])
def test_objective_none_gradient_is_plain_surrogate(discrete):
    net, _, params, batch = _setup(discrete)
    hp = HP.replace(vf_coef=jnp.asarray(0.0), ent_coef=jnp.asarray(0.0))

    def plain(p):
        dist, _ = net.apply(p, batch.obs)
        return -jnp.mean(jnp.exp(dist.log_prob(batch.action) - batch.log_prob) * batch.advantage)

    g_ref = jax.grad(plain)(params)
    g = jax.grad(lambda p: ppo_loss(p, net.apply, batch, hp, jnp.asarray(1.0), objective="none", normalize_advantages=False)[0])(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g, g_ref)


@pytest.mark.parametrize("discrete", [True, False])
def test_kl_fixed_beta_zero_equals_none(discrete):
    net, _, params, batch = _setup(discrete)
    # kl_fixed's beta is the traced kl_beta hyperparameter (kl_adaptive's lives in the objective state).
    f = lambda obj, beta: jax.value_and_grad(lambda p: ppo_loss(p, net.apply, batch, HP.replace(kl_beta=jnp.float32(beta)), objective=obj)[0])(params)  # noqa: E731
    (l0, g0), (l1, g1) = f("none", 0.0), f("kl_fixed", 0.0)
    assert float(l0) == pytest.approx(float(l1))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8), g0, g1)
    # And a positive beta adds exactly beta * mean exact KL to the loss; so does kl_adaptive's state beta.
    (l2, _) = f("kl_fixed", 2.0)
    l3 = ppo_loss(params, net.apply, batch, HP, jnp.asarray(2.0), objective="kl_adaptive")[0]
    assert float(l3) == pytest.approx(float(l2), rel=1e-6)
    kl = jnp.mean(batch.old_dist.kl(net.apply(params, batch.obs)[0]))
    assert float(l2) == pytest.approx(float(l0 + 2.0 * kl), rel=1e-5)


def test_no_gradient_flows_into_advantages():
    net, params, _, batch = _setup(True)
    g = jax.grad(lambda adv: ppo_loss(params, net.apply, batch._replace(advantage=adv), HP, jnp.asarray(1.0))[0])(batch.advantage)
    np.testing.assert_array_equal(g, 0.0)
