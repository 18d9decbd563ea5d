"""pypm: a declarative process supervisor for Python services, driven from Python.

The wheel installs the ``pypm`` command; this package speaks its control protocol::

    import pypm

    client = pypm.Client("pypm.toml")      # or: pypm.up("pypm.toml")
    client.wait_ready("web", timeout=30)
    for row in client.status().instances:
        print(row.name, row.state.value, row.pid)

``pypm.aio.Client`` is the asyncio twin; ``pytest`` gets the ``pypm_stack`` fixture from
:mod:`pypm.pytest_plugin`. See docs/python.md.
"""

from __future__ import annotations

from ._binary import find_binary
from ._config import find_config
from ._types import (
    ConfigError,
    Dependency,
    Event,
    Inspect,
    InspectLimits,
    InspectSpec,
    Instance,
    LastExit,
    Plan,
    PlanChange,
    ProbeInfo,
    RestartRecord,
    State,
    Status,
)
from .client import Client, up
from .errors import (
    InvalidConfig,
    NoSupervisor,
    NotFound,
    ProtocolError,
    PypmError,
    Timeout,
    Unavailable,
)

__all__ = [
    "Client",
    "ConfigError",
    "Dependency",
    "Event",
    "Inspect",
    "InspectLimits",
    "InspectSpec",
    "Instance",
    "InvalidConfig",
    "LastExit",
    "NoSupervisor",
    "NotFound",
    "Plan",
    "PlanChange",
    "ProbeInfo",
    "ProtocolError",
    "PypmError",
    "RestartRecord",
    "State",
    "Status",
    "Timeout",
    "Unavailable",
    "find_binary",
    "find_config",
    "up",
]
