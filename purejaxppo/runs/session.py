"""`RunSession`: one session of a run in its locked folder, chunk by chunk.

After every chunk the chunk's metric rows are written (metrics.jsonl fsynced
first), then a full-state checkpoint, then run.json. Everything the session
needs comes in three values: where it starts (`Start`: the Train, state and
bookkeeping), how it runs (`RunOptions`) and the compiled programs it may
reuse (`ProgramCache`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.core.precision import precision_info
from purejaxppo.parallel import gather
from purejaxppo.runs.build import cache_token
from purejaxppo.runs.checkpoints import CheckpointManager, atomic_write_bytes
from purejaxppo.runs.chunks import ProgramCache
from purejaxppo.runs.files import checkpoint_meta, device_info, now, save_info, versions, write_error, write_json
from purejaxppo.runs.folder import CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, RUN_FILE, make_head
from purejaxppo.runs.identity import RUN_ID, config_yaml_text
from purejaxppo.runs.mesh import (
    DeferredInterrupt,
    Peers,
    place_hparams,
    place_run,
    replicated,
    resolve_mesh_shape,
    to_canonical,
)
from purejaxppo.runs.options import RunOptions
from purejaxppo.runs.progress import ProgressReporter
from purejaxppo.runs.result import RunInterrupted, RunResult
from purejaxppo.runs.start import Start
from purejaxppo.runs.writers import JsonlWriter, TensorBoardWriter, WandbWriter, metric_rows


@dataclasses.dataclass
class Progress:
    """What the chunk loop carries from one chunk to the next."""

    state: Any
    done: int  # updates done (and checkpointed)
    diverged_seeds: list
    prev_diverged: np.ndarray  # the seeds' diverged flags before the next chunk
    host: Any = None  # the state in the single-device layout [S, ...] (what checkpoints hold); `state` itself
    # off a mesh, else purejaxppo.runs.mesh.to_canonical(state)
    mesh: Any = None
    run_s: float = 0.0  # seconds spent running chunks (not compiling, not writing)


class RunSession:
    """One session of a run: from `st` (new or resumed) to the target update, in the locked `run_dir`."""

    def __init__(
        self,
        st: Start,
        run_dir: Path,
        options: RunOptions,
        *,
        peers: Peers,
        cache: ProgramCache,
        t_start: float,
    ):
        self.st, self.run_dir, self.options, self.peers, self.cache = st, run_dir, options, peers, cache
        self.t_start = t_start
        self.manager = CheckpointManager(run_dir / CHECKPOINT_DIR)
        self.resumed = bool(options.resume)
        config = st.config
        self.target = config.num_updates if options.stop_after is None else min(config.num_updates, options.stop_after)
        self.use_progress = options.progress != "off" and config.log_every > 0
        self.chunk_len = max(1, min(st.checkpoint_every, config.num_updates))

    # ---------------------------------------------------------------- the session, top to bottom

    def run(self) -> RunResult:
        st, options = self.st, self.options
        mesh_shape = resolve_mesh_shape(
            options.mesh,
            num_seeds=st.num_seeds,
            config=st.config,
            device_count=jax.device_count(),
            process_count=jax.process_count(),
        )
        if self.resumed and st.start >= self.target:
            return self._nothing_to_do()
        if self.resumed:
            assert st.checkpoint is not None
            make_head(self.run_dir, st.start, self.manager.list(), options.log, atomic_write_bytes)
            options.log(
                f"resuming {self.run_dir} from {st.checkpoint.name} "
                f"(update {st.start}/{st.config.num_updates}, {st.num_seeds} seed(s))"
            )
        self.session = self._open_session(mesh_shape)
        self.writers = self._open_writers()
        compiled, relay, hp, stop_flag, run, compile_s = self._compile(mesh_shape)
        reporter = self._reporter()
        if relay is not None:
            relay.target = reporter
        return self._loop(compiled, relay, hp, stop_flag, run, reporter, compile_s)

    def _nothing_to_do(self) -> RunResult:
        """Leave run.json (status, sessions) exactly as it is."""
        st, stop_after, n = self.st, self.options.stop_after, self.st.config.num_updates
        why = f" (--stop-after {stop_after})" if stop_after is not None and stop_after < n else ""
        self.options.log(f"nothing to do: {self.run_dir} is already at update {st.start} of {n}{why}")
        self.peers.nothing_to_do()
        return RunResult(
            self.run_dir, st.config, st.state, st.start, st.start >= n, 0.0, 0.0, 0.0, status="nothing to do"
        )

    def _compile(self, mesh_shape: dict | None):
        """Send the followers the header and start state, place the run (on a mesh), compile one chunk."""
        st, options = self.st, self.options
        header = dict(
            config=st.config.to_dict(),
            source=st.source.to_json(),
            num_seeds=st.num_seeds,
            seed=st.seed,
            chunk_len=self.chunk_len,
            use_progress=self.use_progress,
            stop_on_diverge=options.on_diverge == "stop",
            mesh=mesh_shape,
            runs=None if st.runs is None else st.runs.to_json(),
        )
        self.peers.send_header(header, st.state)
        train, state, hp, mesh = st.train, st.state, st.hp, None
        stop_flag = jnp.asarray(options.on_diverge == "stop")
        if mesh_shape is not None:  # the same chunk on every device of the mesh (purejaxppo.runs.mesh)
            train, mesh, state = place_run(st.train, header, st.state)
            hp, stop_flag = place_hparams(mesh, hp), replicated(mesh, np.asarray(options.on_diverge == "stop"))
        t0 = time.perf_counter()
        token = cache_token(train, st.source)
        compiled, relay = self.cache.chunk(
            train, token, self.chunk_len, st.num_seeds, self.use_progress, state, hp, mesh
        )
        compile_s = time.perf_counter() - t0
        where = (
            ""
            if mesh_shape is None
            else (
                f" on a mesh of seed={mesh_shape['seed']} x data={mesh_shape['data']} devices"
                f" ({jax.process_count()} process(es))"
            )
        )
        options.log(
            f"compiled one chunk of {self.chunk_len} updates x {st.num_seeds} seed(s){where} in {compile_s:.1f}s"
        )
        diverged = np.asarray(st.state.diverged)
        run = Progress(state, st.start, np.flatnonzero(diverged).tolist(), diverged, host=st.state, mesh=mesh)
        return compiled, relay, hp, stop_flag, run, compile_s

    def _reporter(self) -> ProgressReporter | None:
        """The progress bar or lines; it starts after compiling, so its clock and steps/s cover training only."""
        st, options = self.st, self.options
        if not self.use_progress:
            return None
        config = st.config
        if options.reporter is not None:
            options.reporter.stage(config.num_updates, config.batch_size, st.num_seeds, initial_update=st.start)
            return options.reporter
        return ProgressReporter(
            config.num_updates,
            config.batch_size,
            st.num_seeds,
            initial_update=st.start,
            style=options.progress,
            desc=config.env,
            file=options.progress_file,
        )

    def _loop(self, compiled, relay, hp, stop_flag, run: Progress, reporter, compile_s: float) -> RunResult:
        st, options, peers = self.st, self.options, self.peers
        say = reporter.write if reporter is not None else options.log
        status, error = "interrupted", None
        interrupt = DeferredInterrupt(peers.count > 1, say)
        try:
            if reporter is not None:
                reporter.start()
            while run.done < self.target and not (run.diverged_seeds and options.on_diverge == "stop"):
                n = min(self.chunk_len, self.target - run.done)
                interrupt.check(peers)
                peers.plan(n)
                metrics, ran = self._run_chunk(compiled, relay, run, hp, n, stop_flag)
                path = self._save_chunk(run, metrics, ran)
                diverged = self._note_divergence(run, metrics, ran, say)
                self._report_checkpoint(path, run, metrics, ran, diverged, reporter, say)
            peers.plan(0)
            done_all = run.done >= st.config.num_updates
            status = "diverged" if run.diverged_seeds else "finished" if done_all else "stopped"
        except KeyboardInterrupt:
            interrupt.restore()
            found = self.manager.list()
            raise RunInterrupted(
                self.run_dir, found[-1][1] if found else None, found[-1][0] if found else None
            ) from None
        except BaseException as e:
            status, error = "failed", " ".join(str(e).split())[:500] or type(e).__name__
            raise
        finally:
            interrupt.restore()
            self._close(relay, reporter if reporter is not options.reporter else None)
            wall, sps = self._end_session(run, status, error, compile_s)
        return RunResult(
            self.run_dir,
            st.config,
            run.host,
            run.done,
            run.done >= st.config.num_updates,
            compile_s,
            wall,
            sps,
            reporter.calls if reporter is not None else 0,
            reporter.reports if reporter is not None else [],
            status=status,
            diverged_seeds=run.diverged_seeds,
            diverged_at_update=st.run_info.get("diverged_at_update"),
        )

    # ---------------------------------------------------------------- pieces

    def _open_session(self, mesh_shape: dict | None) -> dict:
        """Write config.yaml and run.json (with a new session appended, status running); returns that session."""
        import yaml

        st, config = self.st, self.st.config
        body = yaml.safe_dump(config.to_dict(), sort_keys=False)
        atomic_write_bytes(self.run_dir / CONFIG_FILE, config_yaml_text(body, st.run_info.get(RUN_ID)).encode())
        command = self.options.command
        session = {"started": now(), "start_update": st.start, "command": list(command) if command else None}
        st.run_info.update(
            versions=versions(),
            device=device_info(),
            matmul_precision=precision_info(config),
            env=config.env,
            num_seeds=st.num_seeds,
            seed=st.seed,
            seed_keys=f"jax.random.split(jax.random.key({st.seed}), {st.num_seeds})",
            num_updates=config.num_updates,
            batch_size=config.batch_size,
            checkpoint_every=self.chunk_len,
            log_every=config.log_every,
            status="running",
            mesh=mesh_shape,
            processes=jax.process_count(),
        )
        st.run_info.pop("error", None)
        st.run_info.setdefault("sessions", []).append(session)
        write_json(self.run_dir / RUN_FILE, st.run_info)
        return session

    def _open_writers(self) -> list:
        options = self.options
        writers: list[Any] = [JsonlWriter(self.run_dir / METRICS_FILE)]
        if options.tensorboard:
            writers.append(TensorBoardWriter(self.run_dir / "tensorboard"))
        if options.wandb_project:
            writers.append(WandbWriter(options.wandb_project, self.run_dir, self.st.config, self.resumed))
        return writers

    def _run_chunk(self, compiled, relay, run: Progress, hp, n: int, stop_flag) -> tuple[dict, int]:
        """Run up to `n` updates; returns the chunk's metrics (on the host) and how many updates ran
        (fewer than `n` when stopped at a divergence)."""
        t0 = time.perf_counter()
        if run.mesh is None:
            run.state, metrics = compiled(run.state, hp, jnp.int32(n), stop_flag)
            metrics = jax.device_get(metrics)
            run.host = run.state
        else:  # the followers run the same two collectives after the chunk (purejaxppo.runs.follower)
            run.state, metrics = compiled(run.state, hp, replicated(run.mesh, np.int32(n)), stop_flag)
            metrics = gather(metrics)
            run.host = to_canonical(run.state)
        if relay is not None:
            jax.effects_barrier()  # this chunk's progress reports are printed before its checkpoint line
        run.run_s += time.perf_counter() - t0
        return metrics, int(np.max(np.asarray(run.host.update_step))) - run.done

    def _save_chunk(self, run: Progress, metrics: dict, ran: int) -> Path:
        """The chunk's metric rows to every writer, then the checkpoint that covers them; returns its path.
        A failed write is a RunWriteError that says what is intact."""
        st, config = self.st, self.st.config
        labels = None if st.runs is None else st.runs.labels
        rows = metric_rows(
            metrics, run.done, ran, config.log_every, config.num_updates, config.batch_size, run.prev_diverged, labels
        )
        run.prev_diverged = np.asarray(run.host.diverged)
        try:
            for w in self.writers:
                w.write(rows)
            run.done += ran
            jsonl = next(w for w in self.writers if isinstance(w, JsonlWriter))
            meta = checkpoint_meta(
                config,
                run.done,
                st.num_seeds,
                st.seed,
                self.chunk_len,
                st.runs,
                run_id=st.run_info.get(RUN_ID),
                metrics_sha256=jsonl.hexdigest(),
                source=st.source.to_json(),
            )
            return self.manager.save(run.host, meta, run.done)
        except OSError as e:
            raise write_error(e, self.run_dir, self.manager) from None

    def _note_divergence(self, run: Progress, metrics: dict, ran: int, say) -> np.ndarray:
        """Record (and on the first one, announce) seeds that diverged in the chunk; returns the chunk's flags [S]."""
        run_info, on_diverge = self.st.run_info, self.options.on_diverge
        per_update = np.asarray(metrics["diverged"])[:, :ran]
        diverged = per_update.max(axis=1) > 0
        if diverged.any() and not run.diverged_seeds:
            first = int(np.argmax(per_update.max(axis=0) > 0)) + run.done - ran + 1
            run.diverged_seeds = np.flatnonzero(diverged).tolist()
            run_info.update(diverged_seeds=run.diverged_seeds, diverged_at_update=first)
            say(
                f"DIVERGED: seed(s) {run.diverged_seeds} produced non-finite numbers at update {first}; their "
                "parameters are frozen at the last finite values"
                + (
                    " — stopping (checkpointed; --on-diverge continue trains the other seeds on)"
                    if on_diverge == "stop"
                    else " — continuing (--on-diverge continue)"
                )
            )
        elif diverged.any():
            run.diverged_seeds = sorted(set(run.diverged_seeds) | set(np.flatnonzero(diverged).tolist()))
            run_info.update(diverged_seeds=run.diverged_seeds)
        return diverged

    def _report_checkpoint(self, path: Path, run: Progress, metrics, ran, diverged, reporter, say) -> None:
        """Say the checkpoint (in the bar, or as a line) and record it in run.json."""
        st = self.st
        ret = np.asarray(metrics["episode_return"])[:, ran - 1]
        if reporter is not None and reporter.style == "bar":
            reporter.set_note(f"ckpt {run.done}")  # shown in the bar instead of a line per checkpoint
        else:
            say(
                f"checkpoint {path.name}: update {run.done}/{st.config.num_updates}, return {ret.mean():.1f}"
                + (f" [{ret.min():.1f}, {ret.max():.1f}]" if st.num_seeds > 1 else "")
                + (f", DIVERGED seeds {np.flatnonzero(diverged).tolist()}" if diverged.any() else "")
            )
        # Wall time so far, so a session killed without cleanup (SIGKILL, a lost node) still counts up to
        # its last checkpoint; _end_session overwrites it with the session's full time.
        self.session.update(end_update=run.done, wall_time_s=round(time.perf_counter() - self.t_start, 3))
        st.run_info.update(status="running", last_checkpoint=path.name)
        try:
            write_json(self.run_dir / RUN_FILE, st.run_info)
        except OSError as e:
            raise write_error(e, self.run_dir, self.manager) from None

    def _close(self, relay, reporter) -> None:
        """Flush and detach the progress callback, close the bar and every writer (a writer's failure only warns)."""
        if relay is not None:
            jax.effects_barrier()
            relay.target = None
        if reporter is not None:
            reporter.close()
        for w in self.writers:
            try:
                w.close()
            except Exception as e:  # a writer's own failure must not hide the run's
                self.options.log(f"warning: closing a metrics writer failed ({type(e).__name__}: {e})")

    def _end_session(self, run: Progress, status: str, error: str | None, compile_s: float) -> tuple[float, float]:
        """run.json at the end of a session: this session's times, the status, totals over all sessions, the
        error if any. Returns (wall seconds, env steps per second)."""
        st, config, run_info = self.st, self.st.config, self.st.run_info
        wall = time.perf_counter() - self.t_start
        sps = (run.done - st.start) * config.batch_size * st.num_seeds / run.run_s if run.run_s > 0 else 0.0
        self.session.update(
            ended=now(),
            end_update=run.done,
            status=status,
            wall_time_s=round(wall, 3),
            compile_time_s=round(compile_s, 3),
            run_time_s=round(run.run_s, 3),
            env_steps_per_s=round(sps, 1),
        )
        run_info.update(
            status=status,
            update=run.done,
            wall_time_s=round(sum(s.get("wall_time_s", 0.0) for s in run_info["sessions"]), 3),
            compile_time_s=round(sum(s.get("compile_time_s", 0.0) for s in run_info["sessions"]), 3),
        )
        if error:
            run_info["error"] = error
        save_info(self.run_dir / RUN_FILE, run_info, self.options.log)
        return wall, sps
