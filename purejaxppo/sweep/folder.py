"""A sweep folder's file names and its saved state: the spec in sweep.yaml and each group's progress.

Shared by `runner` (which writes the folder) and `report_io` (which reads it back for the report), so that
neither imports the other for it. The layout is described in `purejaxppo.sweep.runner`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from purejaxppo.errors import RunError
from purejaxppo.sweep.spec import SweepSpec

SPEC_FILE = "sweep.yaml"
RUN_FILE = "run.json"
GROUPS_DIR = "groups"
REPORT_FILES = ("sweep.md", "sweep.json")


def read_saved(sweep_dir: str | os.PathLike) -> tuple[SweepSpec, dict]:
    """(the spec, the whole sweep.yaml: spec, settings, groups) saved in a sweep folder."""
    import yaml

    path = Path(sweep_dir) / SPEC_FILE
    if not path.is_file():
        raise RunError(f"{sweep_dir} is not a sweep folder: it has no {SPEC_FILE} (start one with purejaxppo sweep)")
    try:
        data = yaml.safe_load(path.read_text())
        spec = data["spec"]
    except (yaml.YAMLError, TypeError, KeyError) as e:
        raise RunError(f"{path} is not a sweep file this version wrote ({type(e).__name__}: {e}); restore it") from None
    return SweepSpec.from_dict(spec, source=str(path)), data


def group_state(group_dir: Path) -> tuple[str, int]:
    """(status, update) of a group's run folder: ("new", 0) when it holds no checkpoint yet."""
    from purejaxppo.runs.checkpoints import CheckpointManager
    from purejaxppo.runs.folder import CHECKPOINT_DIR

    found = CheckpointManager(group_dir / CHECKPOINT_DIR).list() if group_dir.is_dir() else []
    if not found:
        return "new", 0
    info = {}
    try:
        info = json.loads((group_dir / "run.json").read_text())
    except (OSError, ValueError):
        pass
    return str(info.get("status", "stopped")), int(found[-1][0])
