"""The errors purejaxppo raises on purpose, under one base: `PureJaxPPOError`.

Each says what is wrong and how to fix it, naming the field, flag, file or extra concerned. The command line
prints a `PureJaxPPOError` as one line (`purejaxppo: error: ...`, exit status 2); any other exception is a bug
(ours or an env's) and keeps its traceback. Each class also derives from the built-in exception that fits it
(`ValueError`, `ImportError`, ...), so code that catches those keeps working.

    PureJaxPPOError
    ├── ConfigError          a config field, hyperparameter, argument, flag, mesh, sweep spec       (ValueError)
    │   └── BuildError       a builder (--build module:function) cannot be imported or returns no fitting Train
    ├── EnvError             an unknown env name, an env without the gymnax API, an env the tool cannot use (ValueError)
    ├── ExtraMissingError    an optional package is not installed: names the extra                 (ImportError)
    ├── EnvUnavailableError     an env could not be made: it needs data from the network, offline     (RuntimeError)
    ├── DivergedError        training produced NaN/inf                                             (FloatingPointError)
    ├── RunError             a run folder: exists, missing, in use, another run's files            (ValueError)
    │   └── RunWriteError    writing a run file failed (disk full, read-only, permissions)
    ├── CheckpointError      a checkpoint is missing, corrupt, or does not match the run           (ValueError)
    └── ResourceError        a run does not fit the device's memory                               (ValueError)
"""

from __future__ import annotations


class PureJaxPPOError(Exception):
    """Base of every error purejaxppo raises on purpose (a problem the user can fix, with the fix)."""


class ConfigError(PureJaxPPOError, ValueError):
    """Bad input: a config field, traced hyperparameter, argument, command-line flag, mesh, sweep spec or
    statistics input (named, with what is allowed)."""


class BuildError(ConfigError):
    """A builder (`--build module:function`, `train_run(..., build=...)`) cannot be imported or called, or
    returns something other than a Train of the config it was given, or one whose state does not fit the run."""


class EnvError(PureJaxPPOError, ValueError):
    """An unknown env name (with close matches), an env without the gymnax API, or an env a tool cannot use."""


class ExtraMissingError(PureJaxPPOError, ImportError):
    """An optional package is missing: the message names the extra to install (`pip install 'purejaxppo[X]'`)."""


class EnvUnavailableError(PureJaxPPOError, RuntimeError):
    """An env could not be made by its library: typically data it fetches from the network on first use (offline)."""


class DivergedError(PureJaxPPOError, FloatingPointError):
    """Training produced non-finite losses or parameters (params frozen at the last finite values)."""


class RunError(PureJaxPPOError, ValueError):
    """A user-facing problem with a run folder (exists, missing, in use, mismatched)."""


class RunWriteError(RunError):
    """Writing a run file failed (disk full, read-only, permissions); says what is intact and how to continue."""


class CheckpointError(PureJaxPPOError, ValueError):
    """A checkpoint is missing, corrupt, or does not match the run's config."""


class ResourceError(PureJaxPPOError, ValueError):
    """A run does not fit the device (memory), with the estimate and the fix."""
