"""Golden runs: small trainings whose every metric and final parameter is stored, to catch refactors that
change results.

XLA:CPU's rounding depends on the CPU it compiles for (vector width, FMA, the LLVM tuning of the
micro-architecture) and on jaxlib's version, so one stored file cannot be bit-exact on every machine. Each
reference therefore records the *fingerprint* of the machine that wrote it (`fingerprint()`: jaxlib, CPU
vendor/family/model and SIMD flags) and lives in `tests/data/golden/<fingerprint id>.npz`:

* a reference whose fingerprint is this machine's is compared **bit for bit** (every metric of every update,
  a SHA-256 of every final parameter array);
* every other reference is compared with a tight tolerance (`RTOL`/`ATOL` on the metrics, on the parameters'
  sums, absolute sums and a strided sample of their values): rounding differences between CPUs stay far
  below it over these few updates, a change of the algorithm (another minibatch order, loss, normaliser,
  initialisation, ...) does not.

`python -m tests.golden` (from the repo root) writes this machine's reference from the current code;
`python -m tests.golden --check` compares without writing (what tests/test_golden.py does, with a summary of
the largest differences). Commit a new file when a change is meant to move results (say why in the commit),
or to add a machine kind.

History: the first file was written by the code before the agent/objective refactor and rewritten when
recurrent PPO changed the update's batch layout ([T, N] sequences; feed-forward = sequences of length 1),
which moved the feed-forward runs by last-bit rounding only. At other sizes (e.g. 16 seeds) the
masked-logits guard of Categorical changes last-bit rounding of the entropy gradient;
benchmarks/bit_identity.py and benchmarks/results/interfaces.md have the details.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import platform
import subprocess
import sys

import jax
import numpy as np

from purejaxppo import PPOConfig, make_train

DIR = pathlib.Path(__file__).resolve().parent / "data" / "golden"
SMALL = dict(num_envs=4, num_steps=32, num_minibatches=2, update_epochs=2)
# Across CPUs (Intel AVX-512 vs AMD AVX2, jaxlib 0.10.2) these runs differ by at most ~1e-6 relative on any
# metric or parameter statistic (measured: see benchmarks/results/golden.md); an algorithmic change moves
# them by 1e-3 or more.
RTOL = 1e-4
ATOL = 1e-6
SAMPLE = 64  # values of each parameter array stored for the tolerance comparison (evenly strided)

CASES = {
    "cartpole": PPOConfig(env="CartPole-v1", total_timesteps=4 * 32 * 3, normalize_obs=True, eval_every=2,
                          eval_episodes=2, **SMALL),
    "pendulum": PPOConfig(env="Pendulum-v1", total_timesteps=4 * 32 * 3, normalize_obs=True, normalize_reward=True,
                          **SMALL),
    "pendulum_tanh": PPOConfig(env="Pendulum-v1", total_timesteps=4 * 32 * 2, action_handling="tanh", **SMALL),
    "kl_adaptive": PPOConfig(env="CartPole-v1", total_timesteps=4 * 32 * 3, objective="kl_adaptive",
                             use_target_kl=True, target_kl=0.001, **SMALL),
    "breakout_cnn": PPOConfig(env="Breakout-MinAtar", total_timesteps=4 * 32 * 2, network="cnn", **SMALL),
    "masked_cartpole_gru": PPOConfig(env="masked/CartPole-v1", total_timesteps=4 * 32 * 3, network="gru", rnn_size=16,
                                     rnn_torso=(16,), actor_hidden=(16,), critic_hidden=(16,), normalize_obs=True,
                                     **SMALL),
}
FAST_CASE = "cartpole"  # the case the fast test tier runs; the slow tier runs them all

_SIMD = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512cd",
         "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "asimd", "sve", "sve2")


def fingerprint() -> dict[str, str]:
    """What XLA:CPU's rounding depends on: jaxlib's version and the CPU it compiles for (LLVM picks the host
    micro-architecture from vendor/family/model and the instruction sets from the SIMD flags)."""
    info: dict[str, str] = {}
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "cpu family", "model", "flags", "Features", "CPU implementer", "CPU part"):
                info.setdefault(key, value.strip())
    except OSError:  # not Linux: the processor string is all we have
        info["processor"] = platform.processor()
    flags = set(info.pop("flags", "").split()) | set(info.pop("Features", "").split())
    import jaxlib

    return {"jaxlib": jaxlib.__version__, "machine": platform.machine(), **info,
            "simd": " ".join(f for f in _SIMD if f in flags)}


def fingerprint_id(fp: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:12]


def run_case(cfg: PPOConfig) -> dict[str, np.ndarray]:
    """Train 2 vmapped seeds; every metric [seeds, updates] and, per parameter array, its SHA-256 (bit-exact),
    float64 sum and absolute sum, and `SAMPLE` evenly strided values (for the tolerance comparison)."""
    out = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.key(7), 2))
    flat = {f"metrics/{k}": np.asarray(v) for k, v in out.metrics.items()}
    for path, leaf in jax.tree_util.tree_flatten_with_path(out.state.params)[0]:
        leaf = np.ascontiguousarray(np.asarray(leaf))
        name = "params/" + jax.tree_util.keystr(path, simple=True, separator="/")
        flat[name + "/sha256"] = np.asarray(hashlib.sha256(leaf.tobytes()).hexdigest())
        flat[name + "/sum"] = np.asarray(leaf.astype(np.float64).sum())
        flat[name + "/abs_sum"] = np.asarray(np.abs(leaf.astype(np.float64)).sum())
        values = leaf.reshape(-1)
        flat[name + "/sample"] = values[:: max(1, values.size // SAMPLE)][:SAMPLE]
    return flat


def references() -> dict[str, np.lib.npyio.NpzFile]:
    """Every stored reference, by fingerprint id."""
    return {p.stem: np.load(p) for p in sorted(DIR.glob("*.npz"))}


def stored_case(ref, name: str) -> dict[str, np.ndarray]:
    return {k[len(name) + 1:]: ref[k] for k in ref.files if k.startswith(name + "/")}


def compare(name: str, got: dict[str, np.ndarray], want: dict[str, np.ndarray], *, exact: bool,
            ref_label: str) -> list[str]:
    """The differences between a run and a stored one, as messages (empty: they agree). `exact`: bit for bit;
    otherwise within RTOL/ATOL. A metric or parameter on one side only is a difference (added or removed);
    statistics that an older reference lacks (abs_sum, sample) are skipped."""
    problems = []
    shape = {k for k in got if k.startswith("metrics/") or k.endswith("/sha256")}  # what the run consists of
    shape_want = {k for k in want if k.startswith("metrics/") or k.endswith("/sha256")}
    if shape != shape_want:
        missing, extra = sorted(shape_want - shape), sorted(shape - shape_want)
        problems.append(f"{name}: keys differ from {ref_label}: missing {missing[:5]}, new {extra[:5]}")
    for k in sorted(set(got) & set(want)):
        g, w = got[k], want[k]
        if k.endswith("/sha256"):
            if exact and g != w:
                stem = k[: -len("/sha256")]
                problems.append(f"{name}: {stem} is not bit-identical to {ref_label} "
                                f"(sum {got.get(stem + '/sum')} vs {want.get(stem + '/sum')})")
            continue
        if exact:
            if g.dtype != w.dtype or g.shape != w.shape or g.tobytes() != w.tobytes():
                diff = np.abs(g.astype(np.float64) - w) if g.shape == w.shape else np.inf
                problems.append(f"{name}: {k} is not bit-identical to {ref_label}: max |diff| {np.nanmax(diff):.3g}")
        elif not np.allclose(g, w, rtol=RTOL, atol=ATOL, equal_nan=True):
            diff = np.abs(g.astype(np.float64) - w)
            problems.append(f"{name}: {k} differs from {ref_label} beyond rtol={RTOL}, atol={ATOL}: max |diff| "
                            f"{np.max(diff):.3g} (got {np.ravel(g)[:4]}, want {np.ravel(w)[:4]})")
    return problems


def max_relative_differences(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, float]:
    """Largest |got - want| / max(|want|, ATOL) per key (not hashes): how far apart two machines' runs are."""
    out = {}
    for k in sorted(set(got) & set(want)):
        if k.endswith("/sha256"):
            continue
        w = want[k].astype(np.float64)
        out[k] = float(np.max(np.abs(got[k] - w) / np.maximum(np.abs(w), ATOL), initial=0.0))
    return out


def main(argv: list[str]) -> None:
    from purejaxppo.cpu import configure

    configure()  # the settings the test session uses (tests/conftest.py)
    fp = fingerprint()
    fid = fingerprint_id(fp)
    got = {name: run_case(cfg) for name, cfg in CASES.items()}
    for ref_id, ref in references().items():
        exact = ref_id == fid
        worst = {name: max(max_relative_differences(got[name], stored_case(ref, name)).values(), default=0.0)
                 for name in CASES}
        problems = [p for name in CASES for p in compare(name, got[name], stored_case(ref, name), exact=exact,
                                                          ref_label=ref_id)]
        print(f"{ref_id} ({'this machine' if exact else 'other machine'}: {json.loads(str(ref['fingerprint']))}): "
              f"{'agrees' if not problems else f'{len(problems)} difference(s)'}; largest relative difference "
              + ", ".join(f"{n} {v:.2g}" for n, v in worst.items()))
        for p in problems[:10]:
            print("  " + p)
    if "--check" in argv:
        return
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    DIR.mkdir(parents=True, exist_ok=True)
    data = {f"{name}/{k}": v for name, case in got.items() for k, v in case.items()}
    path = DIR / f"{fid}.npz"
    np.savez_compressed(path, commit=np.asarray(commit), fingerprint=np.asarray(json.dumps(fp, sort_keys=True)),
                        **data)
    print(f"wrote {path} ({len(data)} arrays, commit {commit[:10]}, fingerprint {fp})")


if __name__ == "__main__":
    main(sys.argv[1:])
