"""Side-by-side PPO throughput: purejaxppo vs rejax and PureJaxRL, same hyperparameters, same machine, same run.

    python benchmarks/compare.py --quick                                   # CPU budgets, rejax only
    python benchmarks/compare.py --quick --purejaxrl ~/src/purejaxrl       # rejax and PureJaxRL (your checkout)
    python benchmarks/compare.py --envs cartpole gru --peers purejaxrl --purejaxrl ~/src/purejaxrl --seeds 1 8
    python benchmarks/compare.py --envs cnn --quick                        # ours only: CNN 8 vs 1 seeds, patches vs xla
    python benchmarks/compare.py --envs cartpole --seeds 1 64 256 1024 4096   # GPU sweep
    python benchmarks/compare.py --envs cartpole --num-envs 2048 --total-timesteps 10000000  # GPU, many envs

To regenerate benchmarks/results/speed_cpu.md (its "Side by side" table) from one run, on a quiet machine,
with a PureJaxRL checkout at PATH (`git clone https://github.com/luchris429/purejaxrl PATH`):

    python benchmarks/compare.py --quick --purejaxrl PATH --peers rejax purejaxrl --pairs 5 | tee /tmp/compare.md

(every row: cartpole at 1, 16 and 64 seeds; pendulum, breakout and gru at 1 and 8 seeds; cnn at 8 vs 1 seed;
budgets QUICK_STEPS; the table, the machine line, both peers' versions and the notes on what cannot match
are all in that output.)

Rows (`--envs`):
  cartpole  CartPole-v1, MLP 64-64 tanh, 4 envs x 128 steps: ours vs rejax and PureJaxRL (its ppo.py).
  pendulum  Pendulum-v1 with observation and reward normalization: ours vs rejax (PureJaxRL's ppo.py is
            discrete-only; its ppo_continuous_action.py is not wired here).
  breakout  Breakout-MinAtar, MLP 64-64 relu on the flattened grid (PureJaxRL's ppo.py has its 64-64 MLP
            fixed in its code; rejax 0.1.3's PPO has no CNN): ours vs rejax and PureJaxRL.
  gru       masked CartPole-v1 (cart position and pole angle only), Dense 128 relu -> GRU 128 -> 128-unit
            relu heads, 64 envs x 32 steps, minibatches of whole env sequences, annealed lr: ours
            (network gru, as configs/cartpole_masked_gru.yaml but relu, PureJaxRL's fixed activation) vs
            PureJaxRL's ppo_rnn.py on the same masked observations. rejax 0.1.3 has no recurrent PPO.
  cnn       ours only, configs/breakout_minatar.yaml (CNN): `--cnn-seeds` vmapped seeds vs 1 seed (total
            env-steps/s of all seeds), each with conv_impl 'patches' and 'xla', and patches vs xla.

Peers (`--peers`, default rejax, plus purejaxrl when --purejaxrl is given):
  rejax      installed from PyPI into its own virtualenv (default benchmarks/.venv-rejax, created on first
             use: `pip install rejax==0.1.3` plus this interpreter's jax version; or --rejax-python).
  purejaxrl  run from YOUR checkout of PureJaxRL (`--purejaxrl PATH`): nothing of its code is in this
             repository. Its worker imports PATH/purejaxrl/ppo.py or ppo_rnn.py and calls their
             make_train, in its own virtualenv (default benchmarks/.venv-purejaxrl, created on first use
             with this interpreter's jax, flax, optax, gymnax and numpy versions and distrax 0.1.9, whose
             tfp-nightly imports under jax 0.10.2; or --purejaxrl-python). Three adapters, no change to
             its code (benchmarks/_purejaxrl_worker.py): gymnax.make inside its module returns the env
             wrapped in a 5-value step (gymnax >= 1.0 returns 6); brax / navix, which its wrappers.py
             imports at the top for other wrappers, are empty placeholder modules when they do not import;
             and ppo_rnn.py's flax < 0.7.5 GRUCell calls (no `features`, a static initialize_carry) get
             today's GRUCell(features=128) and zeros through a view of flax.linen in its module.

Timing: each implementation runs in a long-lived worker process (benchmarks/_compare_worker.py). For
every row and seed count all programs compile first, each runs once untimed (warm-up), then the timed
calls alternate A B A B ... (A B C A B C ... with two peers) for `--pairs` pairs (default 5), so all see
the same machine load. Per pair, the throughput ratio A / B; the table reports the median of the pair
ratios with a percentile-bootstrap 95% CI over the pairs (purejaxppo.sweep.stats.bootstrap_ci, metric
median, 10,000 resamples, seed 0), each side's median env-steps/s, compile seconds
(`jit(...).lower(...).compile()`) and final returns. With 5 pairs the bootstrap of a median can only
land on observed ratios, so the interval is coarse; more pairs give a finer one.

Final return: purejaxppo and PureJaxRL: the mean training episode return over the last 10% of updates;
rejax: its own `evaluate` of the final policy (128 episodes, stochastic policy), untimed. All averaged
over seeds; comparable only between ours and PureJaxRL.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from _common import format_ratio, hardware_line

from purejaxppo.envs.wrappers import MASKS

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_compare_worker.py"
REJAX_VENV = HERE / ".venv-rejax"
PUREJAXRL_VENV = HERE / ".venv-purejaxrl"
DISTRAX_PIN = "distrax==0.1.9"  # with tfp-nightly, imports under jax 0.10.2 (checked 2026-12-02)

# Shared hyperparameters (every implementation gets exactly these). CartPole is our default config.
BASE = dict(gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
            hidden=[64, 64], activation="tanh", normalize_obs=False, normalize_reward=False, anneal_lr=False)
SPECS = {
    "cartpole": dict(BASE, env="CartPole-v1", total_timesteps=500_000, num_envs=4, num_steps=128, epochs=4,
                     minibatches=4, lr=2.5e-4),
    "pendulum": dict(BASE, env="Pendulum-v1", total_timesteps=1_000_000, num_envs=16, num_steps=128, epochs=10,
                     minibatches=8, lr=1e-3, gamma=0.95, ent_coef=0.0, normalize_obs=True, normalize_reward=True),
    # MLP on the flattened 10x10xC grid for all: PureJaxRL's ppo.py has 64-64 fixed; rejax 0.1.3 has no CNN.
    "breakout": dict(BASE, env="Breakout-MinAtar", total_timesteps=5_000_000, num_envs=64, num_steps=128, epochs=4,
                     minibatches=8, lr=5e-4, activation="relu"),
    # PureJaxRL's ppo_rnn.py: Dense 128 relu, GRU 128, 128-unit relu heads, fixed in its code.
    "gru": dict(BASE, env="masked/CartPole-v1", mask=list(MASKS["CartPole-v1"]), network="gru", rnn_size=128,
                rnn_torso=[128], hidden=[128], activation="relu", total_timesteps=500_000, num_envs=64,
                num_steps=32, epochs=4, minibatches=4, lr=1e-3, anneal_lr=True),
    "cnn": dict(config="configs/breakout_minatar.yaml", total_timesteps=10_000_000),
}
# cnn: one update a seed (64 envs x 128 steps): 8 seeds on XLA's grouped convolution run at ~500 env-steps/s on a
# 2-core CPU, so 4 updates a seed made the row's 5 pairs take ~45 minutes.
QUICK_STEPS = {"cartpole": 50_000, "pendulum": 65_536, "breakout": 65_536, "gru": 65_536, "cnn": 8_192}
DEFAULT_SEEDS = {"cartpole": [1, 16, 64], "pendulum": [1, 8], "breakout": [1, 8], "gru": [1, 8]}
PEERS = ("rejax", "purejaxrl")
PEER_ROWS = {"rejax": ("cartpole", "pendulum", "breakout"), "purejaxrl": ("cartpole", "breakout", "gru")}
LABELS = {"purejaxppo": "purejaxppo", "rejax": "rejax 0.1.3", "purejaxrl": "PureJaxRL"}
ROW_NAMES = {"cartpole": "CartPole-v1 (MLP 64-64 tanh)", "pendulum": "Pendulum-v1 (MLP 64-64 tanh)",
             "breakout": "Breakout-MinAtar (MLP 64-64 relu)", "gru": "masked CartPole-v1 (GRU 128)",
             "cnn": "Breakout-MinAtar (CNN, configs/breakout_minatar.yaml)"}
NOTES = [
    "What differs between the sides (all else is the row's one spec): rejax clips gradients element-wise with "
    "separate actor and critic Adams; ours and PureJaxRL clip by global norm with one Adam (eps 1e-5 for all).",
    "rejax and PureJaxRL treat truncation (CartPole's 500-step limit, Pendulum's 200) as termination "
    "(done = terminated | truncated through the 5-value adapter); ours bootstraps truncated episodes from "
    "V(final observation), its default.",
    "Ours runs with its own CPU settings (purejaxppo.cpu.configure: the unrolled threefry lowering in its "
    "process); the peers' processes inherit the same XLA_FLAGS only.",
    "rejax 0.1.3 cannot anneal the learning rate, so every row it is in runs a constant one; the gru row "
    "anneals on both sides (ours and PureJaxRL, the same linear schedule).",
    "Final returns: ours and PureJaxRL, training episodes of the last 10% of updates; rejax, its own "
    "evaluate of the final policy. Not a learning benchmark at these budgets.",
]


# --------------------------------------------------------------------------- pure parts (tested)
def run_order(tags: Sequence[str], pairs: int) -> list[str]:
    """The timed calls, in order: every program once per pair, in the order given: A B A B ... for two
    programs, A B C A B C ... for three. `pairs` >= 1. Returns `[pairs * len(tags)]` tags."""
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    if len(set(tags)) != len(tags) or not tags:
        raise ValueError(f"tags must be distinct and non-empty, got {list(tags)}")
    return [t for _ in range(pairs) for t in tags]


def pair_ratios(steps_a: int, seconds_a: Sequence[float], steps_b: int, seconds_b: Sequence[float]) -> list[float]:
    """Throughput ratio A / B of each pair: (steps_a / seconds_a[i]) / (steps_b / seconds_b[i]).

    steps_*: env steps of one call (all seeds); seconds_*: `[pairs]` wall seconds of the timed calls, the
    i-th of A and of B from the same pair (run back to back). Returns `[pairs]` floats."""
    if len(seconds_a) != len(seconds_b) or not seconds_a:
        raise ValueError(f"need as many timed calls of A as of B, got {len(seconds_a)} and {len(seconds_b)}")
    return [(steps_a / ta) / (steps_b / tb) for ta, tb in zip(seconds_a, seconds_b, strict=True)]


def throughput(steps: int, seconds: Sequence[float]) -> float:
    """Median env-steps/s over the timed calls of one program (`steps` env steps per call)."""
    return statistics.median(steps / s for s in seconds)


def peers_for(row: str, peers: Sequence[str]) -> list[str]:
    """The peers among `peers` that have an implementation matching the row's inputs, in `peers`' order."""
    return [p for p in peers if row in PEER_ROWS[p]]


def row_spec(row: str, quick: bool, total_timesteps: int | None, num_envs: int | None) -> dict:
    """SPECS[row] at the budget asked for (quick or explicit), with an explicit num_envs for MLP/GRU rows."""
    spec = dict(SPECS[row])
    if quick:
        spec["total_timesteps"] = QUICK_STEPS[row]
    if total_timesteps:
        spec["total_timesteps"] = total_timesteps
    if num_envs and "num_envs" in spec:
        spec["num_envs"] = num_envs
    return spec


# --------------------------------------------------------------------------- processes
def _pins(*names: str) -> list[str]:
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def ensure_venv(path: str | None, venv: Path, packages: list[str]) -> str:
    """The python of `path`, or of `venv`, created on first use with `packages`."""
    if path:
        return path
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"# creating {venv} ({' '.join(packages)})", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True)
    return str(py)


def git_commit(path: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"


class Worker:
    def __init__(self, impl: str, python: str, *args: str):
        self.impl = impl
        self.proc = subprocess.Popen([python, str(WORKER), impl, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=dict(os.environ), cwd=str(HERE.parent))

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.impl} worker died")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"{self.impl}: {out['error']}\n{out.get('traceback', '')}")
        return out

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


@dataclass
class Program:
    """One compiled program of one worker: `seeds` vmapped seeds of `spec`; its timings once run."""

    tag: str
    impl: str
    spec: dict
    seeds: int
    label: str
    info: dict = field(default_factory=dict)
    seconds: list = field(default_factory=list)
    final_return: float = float("nan")

    @property
    def steps(self) -> int:  # env steps of one call, all seeds
        return self.seeds * self.info["steps_per_seed"]


def time_group(programs: list[Program], workers: dict, pairs: int) -> None:
    """Compile all, one untimed call each, then `pairs` alternating rounds (run_order); fills the programs."""
    by_tag = {p.tag: p for p in programs}
    for p in programs:
        p.info = workers[p.impl].ask(cmd="setup", tag=p.tag, spec=p.spec, seeds=p.seeds)
    for p in programs:
        workers[p.impl].ask(cmd="run", tag=p.tag, returns=False)  # warm-up (first execution allocates)
    order = run_order([p.tag for p in programs], pairs)
    for i, tag in enumerate(order):
        p = by_tag[tag]
        last = i >= len(order) - len(programs)
        out = workers[p.impl].ask(cmd="run", tag=tag, returns=last)
        p.seconds.append(out["seconds"])
        if last:
            p.final_return = out["final_return"]
    for p in programs:
        workers[p.impl].ask(cmd="drop", tag=p.tag)


def table_row(row: str, seeds: str, a: Program, b: Program) -> str:
    ratio, pairs = format_ratio(pair_ratios(a.steps, a.seconds, b.steps, b.seconds))
    shape = f"{a.info['num_envs']} x {a.info['num_steps']}"
    steps = f"{a.info['steps_per_seed']:,}" + ("" if b.info["steps_per_seed"] == a.info["steps_per_seed"]
                                               else f" / {b.info['steps_per_seed']:,}")
    return (f"| {row} | {seeds} | {shape} | {steps} | {a.label} | {b.label} | {throughput(a.steps, a.seconds):,.0f} | "
            f"{throughput(b.steps, b.seconds):,.0f} | {ratio} | {pairs} | {a.info['compile_s']:.1f} / "
            f"{b.info['compile_s']:.1f} | {a.final_return:.1f} / {b.final_return:.1f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["cartpole", "pendulum", "breakout", "gru", "cnn"],
                   choices=sorted(SPECS), help="rows to run (see above)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="vmapped seed counts of every peer row (default: cartpole 1 16 64, others 1 8)")
    p.add_argument("--cnn-seeds", type=int, default=8, help="the cnn row: this many vmapped seeds vs 1 seed")
    p.add_argument("--pairs", "--rounds", dest="pairs", type=int, default=5,
                   help="timed A B pairs per row and seed count (default 5)")
    p.add_argument("--peers", nargs="+", choices=PEERS, default=None,
                   help="peers to compare with (default: rejax, and purejaxrl when --purejaxrl is given)")
    p.add_argument("--purejaxrl", default=None, metavar="PATH", help="your checkout of PureJaxRL (the git root)")
    p.add_argument("--quick", action="store_true",
                   help="CPU budgets (steps per seed): cartpole 50,000, pendulum, breakout and gru 65,536, cnn 32,768")
    p.add_argument("--total-timesteps", type=int, default=None, help="override every row's budget")
    p.add_argument("--num-envs", type=int, default=None, help="override every MLP / GRU row's num_envs")
    p.add_argument("--rejax-python", default=None,
                   help="python of a virtualenv with rejax (default: benchmarks/.venv-rejax)")
    p.add_argument("--purejaxrl-python", default=None,
                   help="python of a virtualenv with PureJaxRL's dependencies (default: benchmarks/.venv-purejaxrl)")
    args = p.parse_args()
    peers = args.peers if args.peers is not None else ["rejax"] + (["purejaxrl"] if args.purejaxrl else [])
    if "purejaxrl" in peers and not args.purejaxrl:
        p.error("--peers purejaxrl needs --purejaxrl PATH, a checkout of https://github.com/luchris429/purejaxrl")
    if args.pairs < 1:
        p.error("--pairs must be >= 1")
    if args.purejaxrl and not (Path(args.purejaxrl).expanduser() / "purejaxrl" / "ppo.py").is_file():
        p.error(f"--purejaxrl {args.purejaxrl}: no purejaxrl/ppo.py there (pass the git root of a PureJaxRL checkout)")

    import jax

    from purejaxppo.cpu import configure as configure_cpu

    configure_cpu()  # sets XLA_FLAGS before any JAX computation; every worker inherits it

    needed = {peer for row in args.envs for peer in peers_for(row, peers)}
    workers = {"purejaxppo": Worker("purejaxppo", sys.executable)}
    print(f"# purejaxppo {git_commit(HERE.parent)} — {hardware_line()}")
    if "rejax" in needed:
        py = ensure_venv(args.rejax_python, REJAX_VENV, ["rejax==0.1.3", f"jax=={jax.__version__}"])
        workers["rejax"] = Worker("rejax", py)
        print("# rejax 0.1.3 (PyPI) through FiveTupleEnv (gymnax 1.0's 6-value step -> 5 values)")
    if "purejaxrl" in needed:
        root = Path(args.purejaxrl).expanduser().resolve()
        pins = [f"jax=={jax.__version__}", *_pins("flax", "optax", "gymnax", "numpy"), DISTRAX_PIN]
        py = ensure_venv(args.purejaxrl_python, PUREJAXRL_VENV, pins)
        workers["purejaxrl"] = Worker("purejaxrl", py, str(root))
        print(f"# PureJaxRL {git_commit(root)} (the user's checkout {root}), its ppo.py / ppo_rnn.py unchanged, "
              "through FiveTupleEnv (masked: MaskedFiveTupleEnv); brax / navix placeholders where not installed")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"# {args.pairs} alternating pairs per row; env-steps/s count every env step of every seed (median over "
          "the pairs); ratio = A / B env-steps/s, median of the pair ratios [percentile-bootstrap 95% CI over pairs]")
    print("| row | seeds | envs x steps | steps/seed | A | B | A env-steps/s | B env-steps/s | "
          "A / B: median [95% CI] | pair ratios | compile s (A / B) | final return (A / B) |")
    print("|---|---:|---|---:|---|---|---:|---:|---|---|---|---|", flush=True)
    skipped = []
    try:
        for row in args.envs:
            spec = row_spec(row, args.quick, args.total_timesteps, args.num_envs)
            if row == "cnn":
                n = args.cnn_seeds
                progs = {(impl, s): Program(f"{impl}{s}", "purejaxppo", dict(spec, conv_impl=impl), s,
                                            f"{impl}, {s} seed{'s' if s > 1 else ''}")
                         for impl in ("patches", "xla") for s in (n, 1)}
                time_group(list(progs.values()), workers, args.pairs)
                for a, b, seeds in ((("patches", n), ("patches", 1), f"{n} vs 1"),
                                    (("xla", n), ("xla", 1), f"{n} vs 1"),
                                    (("patches", n), ("xla", n), str(n)), (("patches", 1), ("xla", 1), "1")):
                    print(table_row(ROW_NAMES[row], seeds, progs[a], progs[b]), flush=True)
                continue
            row_peers = peers_for(row, peers)
            skipped += [f"{row}: no {LABELS[q]} implementation with matching inputs"
                        for q in peers if q not in row_peers]
            if not row_peers:
                continue
            for seeds in args.seeds or DEFAULT_SEEDS[row]:
                ours = Program("ours", "purejaxppo", spec, seeds, LABELS["purejaxppo"])
                others = [Program(q, q, spec, seeds, LABELS[q]) for q in row_peers]
                time_group([ours, *others], workers, args.pairs)
                for other in others:
                    print(table_row(ROW_NAMES[row], str(seeds), ours, other), flush=True)
    finally:
        for w in workers.values():
            w.close()
    print()
    for line in NOTES + [f"Not run: {s}." for s in skipped]:
        print(f"* {line}")


if __name__ == "__main__":
    main()
