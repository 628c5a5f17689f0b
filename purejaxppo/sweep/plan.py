"""A sweep's plan: `plan_sweep` expands a `SweepSpec` into its settings (`Setting`) and splits them into
programs (`Group`, one per combination of the static fields' values), checking every setting's config and
every group's memory before anything is compiled (see `purejaxppo.sweep.spec` for the spec itself)."""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from purejaxppo.core.config import HPARAM_FIELDS, PPOConfig
from purejaxppo.errors import ConfigError
from purejaxppo.sweep.parts import format_value

if TYPE_CHECKING:
    from purejaxppo.sweep.spec import SweepSpec


@dataclasses.dataclass(frozen=True)
class Setting:
    """One combination of the varied fields' values; `group` is the program it runs in."""

    id: int
    values: dict[str, Any]
    group: int

    def label(self) -> str:
        return ", ".join(f"{k}={format_value(v)}" for k, v in self.values.items())


@dataclasses.dataclass(frozen=True)
class Group:
    """One compiled program of a sweep: the settings that share the static fields' values."""

    id: int
    static: dict[str, Any]
    config: PPOConfig
    settings: tuple[Setting, ...]

    @property
    def dir_name(self) -> str:
        return f"g{self.id}"

    def run_axis(self, seeds: int):
        """The group's runs (settings x seeds, seeds fastest) as a `RunAxis`."""
        from purejaxppo.runs.axis import RunAxis

        hps, index, labels = [], [], []
        for st in self.settings:
            traced = {k: v for k, v in st.values.items() if k in HPARAM_FIELDS}
            hp = {n: traced.get(n, getattr(self.config, n)) for n in HPARAM_FIELDS}
            for s in range(seeds):
                hps.append(hp)
                index.append(s)
                labels.append({"setting": st.id, "seed": s})
        return RunAxis.build(seeds, index, hps, labels)


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    spec: SweepSpec
    settings: tuple[Setting, ...]
    groups: tuple[Group, ...]

    @property
    def num_runs(self) -> int:
        return len(self.settings) * self.spec.seeds


def expand_settings(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every setting's {varied field: value}: the grid's product (last field fastest), each crossed with the
    listed points (in order), each crossed with the `random` draws of the ranges (drawn once, in order, from
    `default_rng(sweep_seed)`)."""
    rng = np.random.default_rng(spec.sweep_seed)
    draws = [{n: r.draw(rng) for n, r in spec.ranges.items()} for _ in range(spec.random)] or [{}]
    names = list(spec.grid)
    out = []
    for combo in itertools.product(*(spec.grid[n] for n in names)):
        for point in spec.points or ({},):
            for d in draws:
                out.append({**dict(zip(names, combo, strict=True)), **point, **d})
    return out


def plan_sweep(
    spec: SweepSpec, *, check_memory: bool = True, mesh: dict | None = None, device_count: int | None = None
) -> SweepPlan:
    """Settings and groups of `spec`, every setting's config validated and every group's memory estimated
    (ConfigError / purejaxppo.core.resources.ResourceError naming the setting or group). Traces each group's
    program shapes (`jax.eval_shape`); compiles nothing."""
    values = expand_settings(spec)
    static_names = [n for n in spec.varied if n not in HPARAM_FIELDS]
    groups: dict[tuple, list[Setting]] = {}
    settings = []
    for i, vals in enumerate(values):
        try:
            spec.base.replace(**vals)
        except ValueError as e:
            label = ", ".join(f"{k}={format_value(v)}" for k, v in vals.items())
            raise ConfigError(f"sweep setting {i} ({label}): {e}") from None
        key = tuple((n, vals[n]) for n in static_names)
        g = list(groups).index(key) if key in groups else len(groups)
        st = Setting(i, vals, g)
        groups.setdefault(key, []).append(st)
        settings.append(st)
    out = []
    for g, (key, members) in enumerate(groups.items()):
        static = dict(key)
        out.append(Group(g, static, spec.base.replace(**static), tuple(members)))
    plan = SweepPlan(spec, tuple(settings), tuple(out))
    if check_memory:
        _check_groups(plan, mesh, device_count)
    return plan


def _check_groups(plan: SweepPlan, mesh: dict | None, device_count: int | None) -> None:
    import jax

    from purejaxppo.runs.build import build_train, source_of
    from purejaxppo.runs.chunks import check_run_fits
    from purejaxppo.runs.mesh import resolve_mesh_shape

    devices = jax.device_count() if device_count is None else device_count
    for g in plan.groups:
        where = f"sweep program {g.id}" + (
            f" ({', '.join(f'{k}={format_value(v)}' for k, v in g.static.items())})" if g.static else ""
        )
        runs = len(g.settings) * plan.spec.seeds
        try:
            train = build_train(g.config, source_of(None, plan.spec.build))
            check_run_fits(train, runs)
            resolve_mesh_shape(
                mesh, num_seeds=runs, config=g.config, device_count=devices, process_count=jax.process_count()
            )
        except ValueError as e:
            msg = str(e)
            if "memory" in msg:
                msg += (
                    f"; this program runs {len(g.settings)} setting(s) x {plan.spec.seeds} seed(s) = {runs} runs "
                    "at once: fewer seeds, fewer values of the traced fields, or split the sweep"
                )
            raise type(e)(f"{where}: {msg}") from None
