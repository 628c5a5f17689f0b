"""One error hierarchy: purejaxppo raises its own errors (`PureJaxPPOError` and subclasses) on purpose; the
CLI prints those as one line (exit 2) and lets anything else, a bug, keep its traceback, with a note on the run
folder."""

import ast
import builtins
import pathlib

import pytest

import purejaxppo
from purejaxppo import errors
from purejaxppo.runs.checkpoints import CheckpointManager
from purejaxppo.cli import main
from tests.runs_helpers import CHUNK, SEEDS, SET_ARGS

PACKAGE = pathlib.Path(purejaxppo.__file__).parent
BUILTIN_OF = {
    errors.ConfigError: ValueError,
    errors.BuildError: ValueError,
    errors.EnvError: ValueError,
    errors.ExtraMissingError: ImportError,
    errors.EnvUnavailableError: RuntimeError,
    errors.DivergedError: FloatingPointError,
    errors.RunError: ValueError,
    errors.RunWriteError: ValueError,
    errors.CheckpointError: ValueError,
    errors.ResourceError: ValueError,
}


def test_every_error_is_a_purejaxppo_error_and_keeps_its_builtin_base():
    public = {getattr(purejaxppo, n) for n in purejaxppo.__all__ if n.endswith("Error")}
    assert public == set(BUILTIN_OF) | {errors.PureJaxPPOError}
    for cls, base in BUILTIN_OF.items():
        assert issubclass(cls, errors.PureJaxPPOError) and issubclass(cls, base), cls
    # the old import paths still name the same classes
    from purejaxppo.runs.checkpoints import CheckpointError
    from purejaxppo.core.resources import ResourceError
    from purejaxppo.runs import RunError, RunWriteError

    assert (CheckpointError, ResourceError, RunError, RunWriteError) == (
        errors.CheckpointError, errors.ResourceError, errors.RunError, errors.RunWriteError)


def test_the_package_raises_no_bare_builtin_error():
    """A user-facing error is one of ours; a raised built-in would be shown as a bug. (AttributeError in a module
    `__getattr__` is Python's protocol, not an error message; a TypeError about PPOConfig's own field
    declarations is a bug in purejaxppo, raised at import, never by user input.)"""
    allowed = {
        ("sweep/__init__.py", "AttributeError"),
        ("core/config.py", "TypeError"),
        ("core/config_fields.py", "TypeError"),
    }
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = exc.id if isinstance(exc, ast.Name) else None
                if name and isinstance(getattr(builtins, name, None), type) and (rel, name) not in allowed:
                    if name != "KeyboardInterrupt":
                        found.append(f"{rel}:{node.lineno} raise {name}")
    assert not found, found


def test_a_purejaxppo_error_is_one_line_and_exit_2(capsys, tmp_path):
    assert main(["train", "--set", "num_envs=many", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("purejaxppo: error: ") and err.count("\n") == 1 and "num_envs" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("exc", [KeyError("boom"), ValueError("an internal ValueError")])
def test_an_internal_error_keeps_its_traceback_and_says_what_the_folder_holds(monkeypatch, tmp_path, exc):
    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr("purejaxppo.runs.chunks.ProgramCache.chunk", broken)
    monkeypatch.delenv("PUREJAXPPO_TRACEBACK", raising=False)
    with pytest.raises(type(exc)) as info:
        main(["train", *SET_ARGS, "--seeds", str(SEEDS), "--out", str(tmp_path / "r"), "--progress", "off"])
    assert info.value is exc  # not turned into a one-line message
    assert any("holds no checkpoint yet" in n and str(tmp_path / "r") in n for n in info.value.__notes__)


def test_a_bug_after_a_checkpoint_says_the_folder_is_intact_and_resume_finishes(monkeypatch, tmp_path, capsys):
    calls = []
    save = CheckpointManager.save

    def save_then_break(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyError("injected")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(CheckpointManager, "save", save_then_break)
    run = tmp_path / "r"
    args = ["train", *SET_ARGS, "--seeds", str(SEEDS), "--checkpoint-every", str(CHUNK), "--progress", "off"]
    with pytest.raises(KeyError) as info:
        main([*args, "--out", str(run)])
    note = " ".join(info.value.__notes__)
    assert f"intact up to its newest checkpoint ckpt-{CHUNK:08d}.msgpack (update {CHUNK})" in note
    assert f"purejaxppo train --resume {run}" in note
    monkeypatch.setattr(CheckpointManager, "save", save)
    assert main(["train", "--resume", str(run), "--progress", "off"]) == 0
