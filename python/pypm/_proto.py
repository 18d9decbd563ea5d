"""The control protocol's framing, shared by the sync and async clients: one JSON object per
line over ``state_dir/pypm.sock``, every frame carrying ``v`` (src/control/protocol.rs)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Optional

from .errors import InvalidConfig, NotFound, ProtocolError, PypmError, Unavailable

VERSION = 1
MAX_FRAME = 4 * 1024 * 1024

_LOCATION = re.compile(r"-->\s+.*?:(\d+):(\d+)")


def encode(cmd: str, config: Optional[Path], **fields: Any) -> bytes:
    frame: Dict[str, Any] = {"v": VERSION}
    if config is not None:
        frame["config"] = str(config)
    frame["cmd"] = cmd
    frame.update(fields)
    return (json.dumps(frame) + "\n").encode()


def decode(line: bytes) -> Dict[str, Any]:
    """The answer as a dict with ``kind``; an error frame raises its exception."""
    if not line:
        raise ProtocolError("the connection closed without an answer")
    try:
        frame = json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"the supervisor sent something that is not JSON: {e}") from None
    if not isinstance(frame, dict):
        raise ProtocolError("the supervisor's answer is not a JSON object")
    kind = frame.get("kind")
    if kind == "error":
        raise error_of(frame)
    v = frame.get("v")
    if v != VERSION:
        raise ProtocolError(
            f"the supervisor speaks protocol version {v}, this client speaks {VERSION}; "
            "restart it with `pypm down` then `pypm up -d`"
        )
    return frame


def error_of(frame: Dict[str, Any]) -> PypmError:
    message = str(frame.get("message", "error"))
    code = int(frame.get("code", 1))
    cause = frame.get("cause", "failed")
    if cause == "not_found":
        return NotFound(message, code)
    if cause == "invalid":
        m = _LOCATION.search(message)
        line, col = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        return InvalidConfig(message, line, col)
    if cause == "unavailable":
        return Unavailable(message, code)
    # `other_file`: the supervisor on this state_dir runs another file (a supervisor from before
    # that kind said so with code 3 alone).
    if cause == "other_file" or code == 3:
        from .errors import NoSupervisor

        return NoSupervisor(message)
    return PypmError(message, code)


def expect(frame: Dict[str, Any], kind: str) -> Dict[str, Any]:
    if frame.get("kind") != kind:
        raise ProtocolError(f"expected a `{kind}` answer, got `{frame.get('kind')}`")
    return frame
