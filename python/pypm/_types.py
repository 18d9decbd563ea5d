"""Typed mirrors of the control protocol's answers (schema/protocol.schema.json).

Every dataclass here lists the fields of its Rust twin in src/control/protocol.rs;
python/tests/test_schema.py fails when the two differ.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


class State(str, enum.Enum):
    """The eight states of an instance (SPEC §3)."""

    WAITING = "waiting"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"
    BACKOFF = "backoff"
    FAILED = "failed"


@dataclass(frozen=True)
class LastExit:
    """How an instance's process last ended. ``at`` is RFC 3339."""

    code: Optional[int]
    signal: Optional[str]
    at: str

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "LastExit":
        return cls(code=d.get("code"), signal=d.get("signal"), at=str(d.get("at", "")))


@dataclass(frozen=True)
class Instance:
    """One instance: a row of ``pypm status`` (Rust: ``Row``)."""

    name: str
    app: str
    instance: int
    state: State
    pid: Optional[int]
    uptime_secs: Optional[float]
    restarts: int
    cpu_percent: Optional[float]
    memory_bytes: Optional[int]
    ready: bool
    reason: Optional[str]
    last_exit: Optional[LastExit]

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Instance":
        le = d.get("last_exit")
        return cls(
            name=d["name"],
            app=d["app"],
            instance=int(d["instance"]),
            state=State(d["state"]),
            pid=d.get("pid"),
            uptime_secs=d.get("uptime_secs"),
            restarts=int(d.get("restarts", 0)),
            cpu_percent=d.get("cpu_percent"),
            memory_bytes=d.get("memory_bytes"),
            ready=bool(d.get("ready", False)),
            reason=d.get("reason"),
            last_exit=LastExit.from_json(le) if le else None,
        )


@dataclass(frozen=True)
class ConfigError:
    """The file's error while it is invalid (Rust: ``ConfigErrorInfo``)."""

    message: str
    line: Optional[int]
    column: Optional[int]

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ConfigError":
        return cls(message=d["message"], line=d.get("line"), column=d.get("column"))


@dataclass(frozen=True)
class Status:
    """``pypm status --json`` (Rust: ``StatusReport``)."""

    config_file: str
    config_error: Optional[ConfigError]
    instances: List[Instance] = field(default_factory=list)
    #: The profiles the supervisor applies (``[profiles.NAME]``), in order.
    profiles: List[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Status":
        ce = d.get("config_error")
        return cls(
            config_file=d["config_file"],
            config_error=ConfigError.from_json(ce) if ce else None,
            instances=[Instance.from_json(r) for r in d.get("instances", [])],
            profiles=list(d.get("profiles", [])),
        )

    def app(self, name: str) -> List[Instance]:
        """The instances of one app."""
        return [i for i in self.instances if i.app == name]

    def __str__(self) -> str:
        rows = [f"{'NAME':<16} {'STATE':<10} {'PID':>7}  READY"]
        for i in self.instances:
            pid = str(i.pid) if i.pid is not None else "-"
            rows.append(f"{i.name:<16} {i.state.value:<10} {pid:>7}  {'yes' if i.ready else 'no'}")
        return "\n".join(rows)


@dataclass(frozen=True)
class PlanChange:
    """One change applying the file would make: ``verb`` is ``start``, ``stop``, ``restart``,
    ``scale N → M`` or ``reschedule``."""

    app: str
    verb: str
    reason: str

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "PlanChange":
        return cls(app=d["app"], verb=d["verb"], reason=d["reason"])


@dataclass(frozen=True)
class Plan:
    """``pypm plan --json`` (Rust: ``PlanReport``)."""

    config_file: str
    running: bool
    changes: List[PlanChange] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Plan":
        return cls(
            config_file=d["config_file"],
            running=bool(d["running"]),
            changes=[PlanChange.from_json(c) for c in d.get("changes", [])],
        )


@dataclass(frozen=True)
class Inspect:
    """``pypm inspect APP --json`` (Rust: ``InspectReport``): ``spec`` and ``limits`` as JSON."""

    app: str
    spec: Dict[str, Any]
    limits: Dict[str, Any]
    instances: List[Instance]
    restart_history: List[Dict[str, Any]]

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Inspect":
        return cls(
            app=d["app"],
            spec=dict(d.get("spec") or {}),
            limits=dict(d.get("limits") or {}),
            instances=[Instance.from_json(r) for r in d.get("instances", [])],
            restart_history=list(d.get("restart_history") or []),
        )


@dataclass(frozen=True)
class Event:
    """One line of ``state_dir/events.jsonl``."""

    ts: str
    event: str
    app: Optional[str]
    instance: Optional[int]
    pid: Optional[int]
    detail: str

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Event":
        return cls(
            ts=str(d.get("ts", "")),
            event=str(d.get("event", "")),
            app=d.get("app"),
            instance=d.get("instance"),
            pid=d.get("pid"),
            detail=str(d.get("detail", "")),
        )


#: Which dataclass mirrors which definition of schema/protocol.schema.json.
MIRRORS: Dict[str, type] = {
    "Row": Instance,
    "LastExit": LastExit,
    "ConfigErrorInfo": ConfigError,
    "StatusReport": Status,
    "PlanChange": PlanChange,
    "PlanReport": Plan,
    "InspectReport": Inspect,
}
