"""GPU/TPU readiness without a GPU: the library's programs lower for `cuda` and `tpu` with nothing CPU-only in them.

Each program is exported with `jax.export.export(jax.jit(f), platforms=(platform,))` from shapes alone
(`jax.ShapeDtypeStruct`s; no accelerator is needed to lower for one), and its StableHLO
(`Exported.mlir_module()`) is checked for

* CPU-only custom calls: a `stablehlo.custom_call @target` whose target names the CPU (`*cpu*`), LAPACK
  (`lapack_*`, what `jnp.linalg` becomes on CPU) or DUCC (`ducc_*`, CPU FFTs);
* host callbacks: a custom call to a Python callback (`*callback*`), or host transfers
  (`stablehlo.send` / `recv` / `infeed` / `outfeed`, how a TPU reaches the host);
* effects: none (`jax.debug.callback` and `io_callback` would leave one).

`jax.export` also refuses, on its own, custom calls without a compatibility guarantee and any lowering that
holds host callbacks, so a successful export is itself part of the check.

Programs: the whole train function (`make_train` vmapped over 2 seeds), one chunk program of the run layer
(`purejaxppo.runs.chunks.make_chunk_fn`, as `train_run` compiles it, progress off), the data-parallel train and
chunk on a ("seed", "data") = 2 x 2 mesh (a `jax.sharding.AbstractMesh`: no devices are needed; the module must
hold the data axis' all-reduces), Breakout-MinAtar's CNN with both `conv_impl`s, and the masked-CartPole GRU.

The detection is not vacuous: the same train function lowered for `cpu` shows LAPACK's QR (the orthogonal
initializer; on `cuda` it is cuSOLVER's, on `tpu` XLA's `Qr`), and programs that do call the host (the chunk
with live progress through `jax.debug.callback`, an EnvPool env stepped through `io_callback`) show the
callback when lowered for the local platform. Lowered for another platform they are refused while lowering:
a Python callback is registered with the backend client of the platform it runs on, and this process has none
for `cuda` / `tpu` (ValueError "the platform for the specified backend cpu is different from the lowering
platform cuda"). So EnvPool envs and live progress are host-stepped by design; everything else is
device-only. Found on jax 0.10.2 (CPU): no CPU-only custom call and no host callback in any program below for
either platform; the only custom calls are the QR kernels of the orthogonal initializer.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import AbstractMesh, NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxppo import PPOConfig, make_train
from purejaxppo.parallel import make_sharded_train
from purejaxppo.runs.chunks import make_chunk_fn, state_template

PLATFORMS = ("cuda", "tpu")
SEEDS = 2
CHUNK = 2  # updates per chunk program
TINY = dict(num_envs=4, num_steps=8, total_timesteps=64, num_minibatches=2, update_epochs=1)
CARTPOLE = PPOConfig(env="CartPole-v1", **TINY)
NETWORKS = {
    "cnn-patches": PPOConfig(env="Breakout-MinAtar", network="cnn", conv_impl="patches", **TINY),
    "cnn-xla": PPOConfig(env="Breakout-MinAtar", network="cnn", conv_impl="xla", **TINY),
    # configs/cartpole_masked_gru.yaml's shape (GRU on masked CartPole, shared core), at tiny widths
    "gru": PPOConfig(env="masked/CartPole-v1", network="gru", rnn_size=8, rnn_torso=[8], rnn_shared_core=True,
                     actor_hidden=[8], critic_hidden=[8], **TINY),
}

_CUSTOM_CALL = re.compile(r'stablehlo\.custom_call\s+@([\w$.\-]+)|call_target_name\s*=\s*"([^"]+)"')
_HOST_TRANSFER = re.compile(r"\bstablehlo\.(send|recv|infeed|outfeed)\b")
_CPU_ONLY = re.compile(r"cpu|^lapack_|^ducc", re.I)
# A callback that could not be lowered for a platform this process has no backend for (jax 0.10.2's words).
_CALLBACK_REFUSED = "different from the lowering platform"


# ----------------------------------------------------------------------------- detection helpers


def custom_call_targets(module_text: str) -> set[str]:
    """The `call_target_name`s of every `stablehlo.custom_call` in a StableHLO module's text (pretty or generic)."""
    return {a or b for a, b in _CUSTOM_CALL.findall(module_text)}


def cpu_only_targets(targets: set[str]) -> set[str]:
    """The custom-call targets that exist only on CPU: anything naming the CPU, LAPACK or DUCC (CPU FFT)."""
    return {t for t in targets if _CPU_ONLY.search(t)}


def host_callbacks(module_text: str) -> list[str]:
    """Every way the module reaches the host: Python-callback custom calls (`xla_ffi_python_cpu_callback`,
    `xla_ffi_python_gpu_callback`, ...) and host transfers (`send`/`recv`/`infeed`/`outfeed`, TPU's callbacks)."""
    calls = sorted(t for t in custom_call_targets(module_text) if "callback" in t.lower())
    return calls + sorted(set(_HOST_TRANSFER.findall(module_text)))


def export_for(platform: str, fn, *args) -> jax.export.Exported:
    """`fn` (jitted) exported for `platform` from the shapes of `args` (arrays or ShapeDtypeStructs)."""
    return jax.export.export(fn, platforms=(platform,))(*args)


def assert_device_only(exported: jax.export.Exported, platform: str) -> set[str]:
    """Assert an exported program has no CPU-only custom call, no host callback and no effect; returns its
    custom-call targets (for the caller's own checks)."""
    assert exported.platforms == (platform,)
    text = exported.mlir_module()
    targets = custom_call_targets(text)
    assert not cpu_only_targets(targets), f"CPU-only custom calls lowered for {platform}: {cpu_only_targets(targets)}"
    assert not host_callbacks(text), f"host callbacks lowered for {platform}: {host_callbacks(text)}"
    assert exported.ordered_effects == () and exported.unordered_effects == ()
    return targets


def local_callback_lowering(fn, *args) -> list[str]:
    """Host callbacks of `fn` lowered for this process' own platform (where callbacks can lower)."""
    return host_callbacks(fn.trace(*args).lower().as_text())


def assert_host_stepped(fn, *args) -> None:
    """For a program that calls the host: the callback shows when lowered for this process' platform (so
    `host_callbacks` detects it), and exporting it for cuda/tpu is refused: while lowering, when this process
    has no backend client of that platform to register the callback with, else by jax.export itself."""
    assert local_callback_lowering(fn, *args)
    for platform in PLATFORMS:
        # ValueError (_CALLBACK_REFUSED) without a backend of `platform`; with one (a GPU machine, for cuda) the
        # lowering works, its callback is the local one checked above, and jax.export refuses to serialize it.
        with pytest.raises((ValueError, NotImplementedError), match=f"{_CALLBACK_REFUSED} {platform}|host_callbacks"):
            export_for(platform, fn, *args)


# ----------------------------------------------------------------------------- programs


def seed_keys(num_seeds: int = SEEDS, sharding=None) -> jax.ShapeDtypeStruct:
    keys = jax.random.split(jax.random.key(0), num_seeds)
    return jax.ShapeDtypeStruct(keys.shape, keys.dtype, sharding=sharding)


@functools.cache
def vmapped_train(config: PPOConfig):
    """`jit(vmap(make_train(config)))`, built once per config for all platforms."""
    return jax.jit(jax.vmap(make_train(config)))


def chunk_program(config: PPOConfig, reporter=None):
    """(the run layer's jitted chunk program, its argument shapes): `chunk(states[S], hp, n, stop)` of
    `make_chunk_fn`, with the progress callback compiled in iff `reporter` is given."""
    train = make_train(config)
    fn = make_chunk_fn(train, CHUNK, reporter, 1 if reporter else 0)
    args = (state_template(train, SEEDS, 0), jax.eval_shape(config.hparams),
            jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((), jnp.bool_))
    return fn, args


@functools.cache
def plain_chunk_program(config: PPOConfig):
    """`chunk_program(config)` (progress off), built once per config for all platforms: a new chunk function
    would be traced again (the trace, not the lowering, is most of an export's time)."""
    return chunk_program(config)


@functools.cache
def mesh_programs():
    """The data-parallel programs on an abstract 2 x 2 ("seed", "data") mesh: the whole sharded train and the run
    layer's chunk on the mesh, each with its argument shapes (the layouts `train_run` places them in)."""
    mesh = AbstractMesh((2, 2), ("seed", "data"))
    strain = make_sharded_train(CARTPOLE, mesh, num_seeds=SEEDS)
    keys = seed_keys(sharding=NamedSharding(mesh, P("seed")))
    on = lambda spec: lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=NamedSharding(mesh, spec))  # noqa: E731
    state = jax.tree.map(on(P("seed", "data")), jax.eval_shape(strain.init, keys))
    rep = on(P())
    hp = jax.tree.map(rep, jax.eval_shape(CARTPOLE.hparams))
    n, stop = rep(jax.ShapeDtypeStruct((), jnp.int32)), rep(jax.ShapeDtypeStruct((), jnp.bool_))
    chunk = make_chunk_fn(strain.train, CHUNK, None, 0, mesh=mesh)
    return {"train": (jax.jit(strain), (keys,)), "chunk": (chunk, (state, hp, n, stop))}


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("platform", PLATFORMS)
def test_train_function_lowers_device_only(platform):
    assert_device_only(export_for(platform, vmapped_train(CARTPOLE), seed_keys()), platform)


def test_cpu_only_detection_is_not_vacuous():
    """Lowered for cpu, the same train function holds LAPACK's QR, and the helper names it."""
    text = export_for("cpu", vmapped_train(CARTPOLE), seed_keys()).mlir_module()
    assert {t for t in cpu_only_targets(custom_call_targets(text)) if t.startswith("lapack_")}
    assert not host_callbacks(text)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_run_layer_chunk_program_lowers_device_only(platform):
    fn, args = plain_chunk_program(CARTPOLE)
    assert_device_only(export_for(platform, fn, *args), platform)


@pytest.mark.parametrize("program", ["train", "chunk"])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_data_parallel_programs_lower_device_only_with_the_data_axis_collectives(platform, program):
    fn, args = mesh_programs()[program]
    exported = export_for(platform, fn, *args)
    assert_device_only(exported, platform)
    assert exported.nr_devices == 4
    text = exported.mlir_module()
    assert "all_reduce" in text  # the data axis' gradient / statistics averages are in the program


@pytest.mark.parametrize("network", sorted(NETWORKS))
@pytest.mark.parametrize("platform", PLATFORMS)
def test_conv_and_recurrent_networks_lower_device_only(platform, network):
    exported = export_for(platform, vmapped_train(NETWORKS[network]), seed_keys())
    assert_device_only(exported, platform)
    convolutions = exported.mlir_module().count("stablehlo.convolution")
    if network == "cnn-patches":
        assert convolutions == 0  # static slices and one matmul (purejaxppo.core.conv.PatchConv)
    elif network == "cnn-xla":
        assert convolutions > 0  # lax convolutions, native on both accelerators


def test_live_progress_is_a_host_callback_and_is_detected():
    """The chunk with live progress (`jax.debug.callback`) reaches the host: found locally, refused for cuda/tpu."""
    fn, args = chunk_program(CARTPOLE, reporter=lambda *a: None)
    assert_host_stepped(fn, *args)


def test_envpool_envs_are_host_stepped():
    """An EnvPool env steps through `io_callback`: found locally, refused for cuda/tpu (host-stepped by design)."""
    pytest.importorskip("envpool")
    from purejaxppo.envs.envpool_host import POOLS

    before = set(POOLS.pools)
    assert_host_stepped(vmapped_train(PPOConfig(env="envpool/CartPole-v1", **TINY)), seed_keys())
    assert set(POOLS.pools) == before  # lowering starts no EnvPool
