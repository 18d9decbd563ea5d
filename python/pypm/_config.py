"""Finding the file and its state_dir/log_dir, as the CLI does (SPEC §1)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


def find_config(config: Optional[PathLike] = None, cwd: Optional[PathLike] = None) -> Path:
    """``config`` if given, else ``$PYPM_CONFIG``, else the nearest ``pypm.toml`` in ``cwd`` or a
    parent. Raises :class:`FileNotFoundError` when there is none."""
    here = Path(cwd) if cwd is not None else Path.cwd()
    if config is not None:
        return (here / Path(config)).absolute()
    env = os.environ.get("PYPM_CONFIG")
    if env:
        return (here / env).absolute()
    for d in [here, *here.parents]:
        p = d / "pypm.toml"
        if p.is_file():
            return p.absolute()
    raise FileNotFoundError(f"no pypm.toml in {here} or a parent (and no $PYPM_CONFIG)")


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: str) -> str:
    return _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)


def _pypm_table(text: str) -> Dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            table = tomllib.loads(text).get("pypm", {})
            return table if isinstance(table, dict) else {}
        except tomllib.TOMLDecodeError:
            pass  # read leniently below, as the CLI does for an invalid file
    # Python < 3.11 has no TOML reader: the two keys needed are plain strings in `[pypm]`.
    out: Dict[str, Any] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[] \t")
            continue
        if section != "pypm":
            continue
        m = re.match(r"""^(state_dir|log_dir)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')""", line)
        if m:
            out[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


def dirs(config: Path, state_dir: Optional[PathLike] = None) -> "tuple[Path, Path]":
    """(state_dir, log_dir) of ``config``; ``state_dir`` overrides the file's."""
    try:
        table = _pypm_table(config.read_text(encoding="utf-8"))
    except OSError:
        table = {}
    base = config.parent
    if state_dir is None and os.environ.get("PYPM_STATE_DIR"):
        state_dir = os.environ["PYPM_STATE_DIR"]
    sd = (
        base / Path(state_dir)
        if state_dir is not None
        else base / _expand(str(table.get("state_dir", ".pypm")))
    )
    ld = table.get("log_dir")
    log_dir = base / _expand(str(ld)) if ld is not None else sd / "logs"
    return sd.absolute(), log_dir.absolute()
