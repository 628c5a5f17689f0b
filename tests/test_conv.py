"""conv_impl='patches' (purejaxppo.core.conv): the convolution as static-slice patches and one matmul equals
XLA's convolution (values and gradients, alone and vmapped over per-seed parameters), holds no convolution
primitive under vmap, and trains the same networks with the same parameters as conv_impl='xla'."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import ConfigError, PPOConfig, make_train
from purejaxppo.core.conv import PatchConv, conv_layer, patch_conv, same_pads
from purejaxppo.core.networks import make_network, network_options
from purejaxppo.envs.spaces import ActionSpec

# (H, W, C, F, kernel, stride, padding)
CASES = {
    "minatar_3x3_s1_same": (10, 10, 4, 8, 3, 1, "SAME"),
    "nature_8x8_s4_valid": (36, 36, 4, 8, 8, 4, "VALID"),
    "nature_4x4_s2_valid": (8, 8, 8, 16, 4, 2, "VALID"),
    "nature_3x3_s1_valid": (5, 5, 16, 8, 3, 1, "VALID"),
    "odd_3x3_s2_same": (11, 9, 3, 5, 3, 2, "SAME"),
    "odd_4x4_s2_same": (9, 7, 3, 5, 4, 2, "SAME"),
    "odd_5x2_s3_same": (13, 8, 2, 3, (5, 2), (3, 1), "SAME"),
}
TOL = dict(rtol=1e-5, atol=1e-5)


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def _xla_conv(x, kernel, bias, strides, padding):
    y = jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def _inputs(case, seeds=None):
    h, w, c, f, k, s, padding = case
    (kh, kw), strides = _pair(k), _pair(s)
    lead = () if seeds is None else (seeds,)
    kx, kk, kb = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (*lead, 3, h, w, c))
    kernel = jax.random.normal(kk, (*lead, kh, kw, c, f)) / np.sqrt(kh * kw * c)
    bias = jax.random.normal(kb, (*lead, f))
    return x, kernel, bias, strides, padding


def _value_and_grads(conv, strides, padding):
    """(output, d/dx, d/dkernel, d/dbias) of a fixed random projection of the output."""

    def loss(x, kernel, bias):
        y = conv(x, kernel, bias, strides, padding)
        r = jnp.cos(jnp.arange(y.size, dtype=jnp.float32).reshape(y.shape))
        return jnp.sum(y * r), y

    def run(x, kernel, bias):
        (_, y), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(x, kernel, bias)
        return (y, *grads)

    return run


def _primitives(jaxpr) -> set[str]:
    """Every primitive name in a jaxpr and the jaxprs nested in its equations (jit, custom_vjp, cond, ...)."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    names |= _primitives(sub)
    return names


def test_same_padding_is_xlas():
    for size in range(1, 14):
        for kernel in (1, 2, 3, 4, 5, 8):
            for stride in (1, 2, 3, 4):
                want = tuple(jax.lax.padtype_to_pads((size,), (kernel,), (stride,), "SAME")[0])
                assert same_pads(size, kernel, stride) == want, (size, kernel, stride)


@pytest.mark.parametrize("name", list(CASES))
def test_output_and_gradients_equal_xla_conv(name):
    x, kernel, bias, strides, padding = _inputs(CASES[name])
    got = jax.jit(_value_and_grads(patch_conv, strides, padding))(x, kernel, bias)
    want = jax.jit(_value_and_grads(_xla_conv, strides, padding))(x, kernel, bias)
    for what, g, w in zip(("output", "d/dx", "d/dkernel", "d/dbias"), got, want, strict=True):
        assert g.shape == w.shape, what
        np.testing.assert_allclose(g, w, **TOL, err_msg=what)


@pytest.mark.parametrize("name", ["minatar_3x3_s1_same", "nature_8x8_s4_valid", "odd_3x3_s2_same"])
def test_vmapped_over_seeds_equals_xla_and_has_no_convolution(name):
    x, kernel, bias, strides, padding = _inputs(CASES[name], seeds=3)
    patches = jax.jit(jax.vmap(_value_and_grads(patch_conv, strides, padding)))
    xla = jax.jit(jax.vmap(_value_and_grads(_xla_conv, strides, padding)))
    for what, g, w in zip(
        ("output", "d/dx", "d/dkernel", "d/dbias"), patches(x, kernel, bias), xla(x, kernel, bias), strict=True
    ):
        np.testing.assert_allclose(g, w, **TOL, err_msg=what)
    # each seed's kernel gradient is that seed's own (vmap did not mix the seeds)
    one = jax.jit(_value_and_grads(patch_conv, strides, padding))(x[1], kernel[1], bias[1])
    np.testing.assert_allclose(patches(x, kernel, bias)[2][1], one[2], **TOL)
    prims = _primitives(jax.make_jaxpr(patches)(x, kernel, bias))
    assert "conv_general_dilated" not in prims and "dot_general" in prims, prims
    assert "conv_general_dilated" in _primitives(jax.make_jaxpr(xla)(x, kernel, bias))  # the check can see one


def test_patchconv_module_is_nn_conv():
    """The same parameters (names, shapes, initial values) and outputs as flax's nn.Conv, extra batch dims too."""
    x = jax.random.normal(jax.random.key(1), (2, 3, 9, 9, 4))
    init = nn.initializers.orthogonal(np.sqrt(2.0))
    mods = [
        cls(6, (4, 4), strides=(2, 2), padding="SAME", kernel_init=init, name="Conv_0") for cls in (PatchConv, nn.Conv)
    ]
    # jitted: eagerly, every op of the inits and the two forward passes compiles on its own
    (vp, vx) = [jax.jit(m.init)(jax.random.key(0), x) for m in mods]
    jax.tree.map(np.testing.assert_array_equal, vp, vx)
    assert vp["params"]["kernel"].shape == (4, 4, 4, 6) and vp["params"]["bias"].shape == (6,)
    yp, yx = jax.jit(mods[0].apply)(vp, x), jax.jit(mods[1].apply)(vx, x)
    assert yp.shape == yx.shape == (2, 3, 5, 5, 6)
    np.testing.assert_allclose(yp, yx, **TOL)
    with pytest.raises(ValueError, match="padding"):
        PatchConv(2, 3, padding="CIRCULAR").init(jax.random.key(0), x)
    with pytest.raises(ConfigError, match="conv_impl"):
        conv_layer("cudnn", 2, 3, kernel_init=init, name="Conv_0")


def test_config_field():
    assert PPOConfig().conv_impl == "patches" and PPOConfig(conv_impl="xla").conv_impl == "xla"
    assert "conv_impl" in PPOConfig.describe()
    with pytest.raises(ConfigError, match="conv_impl"):
        PPOConfig(conv_impl="cudnn")


@pytest.mark.parametrize(
    "obs,network",
    [
        (jax.ShapeDtypeStruct((10, 10, 4), jnp.float32), "cnn"),
        (jax.ShapeDtypeStruct((4, 84, 84), jnp.uint8), "auto"),
        (jax.ShapeDtypeStruct((10, 10, 4), jnp.float32), "gru"),
        (
            {"image": jax.ShapeDtypeStruct((6, 6, 2), jnp.float32), "vec": jax.ShapeDtypeStruct((3,), jnp.float32)},
            "cnn",
        ),
    ],
    ids=["minatar_cnn", "atari_nature_cnn", "gru_torso", "dict_obs_encoder"],
)
def test_networks_have_the_same_parameter_tree_either_way(obs, network):
    spec = ActionSpec(True, 6, ())
    trees = []
    for impl in ("patches", "xla"):
        net = make_network(obs, spec, **network_options(PPOConfig(network=network, conv_impl=impl)))
        batch = jax.tree.map(lambda s: jax.ShapeDtypeStruct((2, *s.shape), s.dtype), obs)
        args = (net.initial_carry(2), batch) if network == "gru" else (batch,)
        params = jax.eval_shape(net.init, jax.random.key(0), *args)["params"]
        trees.append(jax.tree_util.tree_map_with_path(lambda p, a: (jax.tree_util.keystr(p), a.shape), params))
    assert trees[0] == trees[1]
    assert any("Conv_0" in path for path, _ in jax.tree.leaves(trees[0], is_leaf=lambda t: isinstance(t, tuple)))


def test_breakout_minatar_trains_to_the_same_parameters_either_way():
    cfg = PPOConfig(
        env="Breakout-MinAtar",
        network="cnn",
        num_envs=4,
        num_steps=8,
        num_minibatches=2,
        update_epochs=1,
        total_timesteps=4 * 8 * 2,
        actor_hidden=(32,),
        critic_hidden=(32,),
    )
    trains = {impl: make_train(cfg.replace(conv_impl=impl)) for impl in ("patches", "xla")}
    out = {impl: jax.jit(train)(jax.random.key(0)) for impl, train in trains.items()}
    a, b = out["patches"].state.params, out["xla"].state.params
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert jax.tree.map(jnp.shape, a) == jax.tree.map(jnp.shape, b)
    assert "Conv_0" in a["params"]["actor_torso"]
    jax.tree.map(lambda p, q: np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-6), a, b)
    # the whole training program of vmapped seeds holds no convolution with patches
    keys = jax.random.split(jax.random.key(0), 2)
    assert "conv_general_dilated" not in _primitives(jax.make_jaxpr(jax.vmap(trains["patches"]))(keys))
