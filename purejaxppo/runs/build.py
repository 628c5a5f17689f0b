"""How a run's `Train` is made again later: by config alone, by an importable builder, or not at all.

A run started from `make_train(config)` is rebuilt from its config. A run of a
user's own env, network or objective names a *builder*: `"module:function"`,
where `function(config)` returns `make_train(config, env=..., network_factory=...,
objective=...)`. The builder is recorded in run.json and every checkpoint, so
resume, load, eval, render, `--processes` workers and sweeps rebuild the same
`Train` without the caller naming it again. A `Train` object handed to
`train_run` without a builder works for that call; later ones must hand it in
again (the folder records that it needs one).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from purejaxppo.core.config import PPOConfig
from purejaxppo.core.pbt import PBTConfig, PBTTrain, make_pbt_train
from purejaxppo.core.train import Train, make_train
from purejaxppo.errors import BuildError
from purejaxppo.runs.files import config_diff, describe_diff

# How the run's Train was made (run.json "train", checkpoint metadata "train").
FROM_CONFIG, FROM_BUILDER, FROM_OBJECT = "config", "builder", "object"


@dataclasses.dataclass(frozen=True)
class TrainSource:
    """How a run's Train is (re)built: `kind` is FROM_CONFIG, FROM_BUILDER (with `build`) or FROM_OBJECT."""

    kind: str = FROM_CONFIG
    build: str | None = None
    pbt: str | None = None  # population-based training (purejaxppo.core.pbt.PBTConfig.to_text): the Train is wrapped

    def to_json(self) -> dict:
        out: dict = {"train": self.kind, "build": self.build}
        if self.pbt is not None:
            out["pbt"] = json.loads(self.pbt)
        return out

    @classmethod
    def from_json(cls, meta: dict) -> TrainSource:
        """From run.json or checkpoint metadata (written before builders existed: from config)."""
        build = meta.get("build")
        pbt = meta.get("pbt")
        pbt_text = None if pbt is None else PBTConfig.from_json(pbt, source="run metadata").to_text()
        return cls(meta.get("train") or (FROM_BUILDER if build else FROM_CONFIG), build, pbt_text)


def check_build_spec(build: str) -> tuple[str, str]:
    """`"module:function"` -> (module, function); a BuildError says the form otherwise."""
    if not isinstance(build, str) or build.count(":") != 1 or not all(build.split(":")):
        raise BuildError(
            f"--build {build}: a builder is 'module:function' (e.g. --build my_project.envs:build_train), "
            "where function(config) returns purejaxppo.make_train(config, ...)"
        )
    module, function = build.split(":")
    return module, function


def resolve_builder(build: str) -> Callable[[PPOConfig], Train]:
    """Import the builder `"module:function"`. The module is looked up on sys.path, then in the current
    directory (where the `purejaxppo` command was started), as `python -m` would."""
    module_name, function = check_build_spec(build)
    try:
        module = _import(module_name)
    except ImportError as e:
        raise BuildError(
            f"--build {build}: cannot import module {module_name!r} ({e}); run from the folder that holds it or "
            "add that folder to PYTHONPATH"
        ) from None
    fn = getattr(module, function, None)
    if not callable(fn):
        raise BuildError(f"--build {build}: module {module_name!r} has no function {function!r}")
    return fn


def _import(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        top = module_name.split(".")[0]
        if e.name != top or cwd in sys.path or "" in sys.path:
            raise
        sys.path.insert(0, cwd)  # a console script's sys.path lacks the working directory; `python -m` has it
        return importlib.import_module(module_name)


def call_builder(build: str, config: PPOConfig) -> Train:
    """`function(config)` of the builder, checked: a Train of exactly this config."""
    fn = resolve_builder(build)
    train = fn(config)
    if not isinstance(train, Train):
        raise BuildError(
            f"--build {build}: the builder returned {type(train).__name__}, not the Train of "
            "purejaxppo.make_train(config, ...)"
        )
    if train.config != config:
        raise BuildError(
            f"--build {build}: the builder returned a Train of another config ({_differences(config, train)}); "
            "it must pass on the config it is given: make_train(config, ...)"
        )
    return train


def _differences(config: PPOConfig, train: Train) -> str:
    """How a Train's config differs from the one expected (field: expected -> the Train's)."""
    return describe_diff(config_diff(config, train.config))


def build_train(config: PPOConfig, source: TrainSource, given: Train | None = None, *, what: str = "run") -> Train:
    """The Train of a run: `given` (a Train object from the caller), else rebuilt from `source`; a population-based
    training run's (`source.pbt`) wrapped by purejaxppo.core.pbt.make_pbt_train."""
    train = _build_base(config, source, given, what)
    if source.pbt is not None:
        pbt = PBTConfig.from_json(source.pbt, source=what)
        if not (isinstance(train, PBTTrain) and train.pbt == pbt):
            train = make_pbt_train(train, pbt)
    return train


def _build_base(config: PPOConfig, source: TrainSource, given: Train | None, what: str) -> Train:
    if given is not None:
        if given.config != config:
            raise BuildError(
                f"the Train given for this {what} has another config than the run's ({_differences(config, given)})"
            )
        return given
    if source.kind == FROM_BUILDER and source.build:
        return call_builder(source.build, config)
    if source.kind == FROM_OBJECT:
        raise BuildError(
            f"this {what} was trained from a Train object given to train_run, which cannot be rebuilt from the "
            "run folder: pass the same Train again (train_run(train, run_dir, resume=True), "
            "load_run(run_dir, train=train)), or name a builder (--build module:function, build=...)"
        )
    return make_train(config)


def source_of(train_or_config: Any, build: str | None, pbt: PBTConfig | None = None) -> TrainSource:
    """The source a new run records: a builder if named, else an object if a Train was given, else the config;
    with the population-based training settings `pbt` (or those of a PBTTrain given)."""
    if pbt is None and isinstance(train_or_config, PBTTrain):
        pbt = train_or_config.pbt
    pbt_text = None if pbt is None else pbt.to_text()
    if build is not None:
        check_build_spec(build)
        return TrainSource(FROM_BUILDER, build, pbt_text)
    return TrainSource(FROM_OBJECT if isinstance(train_or_config, Train) else FROM_CONFIG, None, pbt_text)


def cache_token(train: Train, source: TrainSource) -> Any:
    """What, besides the config and run settings, decides a Train's compiled programs: the builder and the
    objective object for rebuilt Trains (so re-registering an objective under the same name compiles anew),
    the Train object itself for one given by the caller."""
    if source.kind == FROM_OBJECT:
        return ("object", train)
    return (source.kind, source.build, source.pbt, train.objective, train.data_axis, train.data_shards)
