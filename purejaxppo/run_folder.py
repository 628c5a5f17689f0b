"""Moved to `purejaxppo.runs.folder`; this name is that very module (so attributes patched here reach it)."""

import sys

from purejaxppo.runs import folder as _folder

sys.modules[__name__] = _folder
