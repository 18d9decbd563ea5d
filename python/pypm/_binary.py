"""The ``pypm`` binary this package runs for what the control socket cannot do (up, down, logs)."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path


def find_binary() -> str:
    """``$PYPM_BIN``, else the ``pypm`` the wheel installed next to this interpreter (its scripts
    directory), else ``pypm`` on ``PATH``."""
    env = os.environ.get("PYPM_BIN")
    if env:
        return env
    candidates = []
    for scheme_dir in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        if scheme_dir:
            candidates.append(Path(scheme_dir) / "pypm")
    user = sysconfig.get_path("scripts", f"{os.name}_user") if os.name == "posix" else None
    if user:
        candidates.append(Path(user) / "pypm")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("pypm")
    if found:
        return found
    raise FileNotFoundError(
        "the pypm binary was not found: install the pypm wheel, put pypm on PATH, or set $PYPM_BIN"
    )
