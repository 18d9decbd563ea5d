"""Exceptions raised by :mod:`pypm`, one per kind of failure of the control protocol."""

from __future__ import annotations

from typing import Optional


class PypmError(Exception):
    """Base class of every pypm error. ``code`` is the exit code the CLI would use."""

    code: int = 1

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NoSupervisor(PypmError):
    """No supervisor runs for this file (the CLI's exit code 3)."""

    code = 3


class InvalidConfig(PypmError):
    """The file is invalid; nothing was changed. ``line``/``column`` are 1-based when known."""

    def __init__(
        self, message: str, line: Optional[int] = None, column: Optional[int] = None
    ) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class NotFound(PypmError):
    """No app of that name in the file."""


class Unavailable(PypmError):
    """The supervisor is shutting down, or busy past the deadline."""


class ProtocolError(PypmError):
    """The supervisor answered something this client does not understand (e.g. another
    protocol version: the message names both)."""


class Timeout(PypmError, TimeoutError):
    """No answer, or the awaited condition did not hold, within the timeout."""
