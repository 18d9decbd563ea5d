"""Typed mirrors of the control protocol's answers (schema/protocol.schema.json).

Every dataclass here lists the fields of its Rust twin in src/control/protocol.rs;
python/tests/test_schema.py fails when the two differ.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union


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


#: What a probe checks, as the protocol sends it: ``{"http": URL}``, ``{"tcp": ADDR}``,
#: ``{"exec": [ARGV]}``, ``{"log": REGEX}`` or ``"notify"`` (Rust: ``ProbeCheckInfo``).
ProbeCheck = Union[str, Dict[str, Any]]


@dataclass(frozen=True)
class ProbeInfo:
    """A ``ready`` or ``health`` probe (Rust: ``ProbeInfo``)."""

    check: ProbeCheck
    interval_secs: float
    #: Ready: the overall deadline. Health: one attempt's limit.
    timeout_secs: float
    #: Health: consecutive failures before a restart.
    failures: int

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ProbeInfo":
        return cls(
            check=d["check"],
            interval_secs=float(d["interval_secs"]),
            timeout_secs=float(d["timeout_secs"]),
            failures=int(d.get("failures", 1)),
        )


@dataclass(frozen=True)
class Dependency:
    """One ``depends_on`` entry: ``condition`` is ``started``, ``ready`` or ``completed``."""

    app: str
    condition: str

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Dependency":
        return cls(app=d["app"], condition=d["condition"])


@dataclass(frozen=True)
class InspectSpec:
    """One app as the supervisor resolved it, durations in seconds (Rust: ``InspectSpec``)."""

    argv: List[str]
    interpreter: Optional[str]
    #: How the interpreter was chosen (SPEC §3).
    rule: Optional[str]
    environment: Optional[str]
    cwd: str
    #: ``service`` or ``task``.
    kind: str
    enabled: bool
    instances: int
    #: The env files' variables, then ``env``'s; values of keys that look secret are ``***``.
    env: Dict[str, str]
    env_file: List[str]
    depends_on: List[Dependency]
    #: ``always``, ``on-failure`` or ``never``.
    restart: str
    restart_delay_secs: float
    restart_delay_max_secs: float
    max_restarts: int
    restart_window_secs: float
    min_uptime_secs: float
    success_exit_codes: List[int]
    #: A signal name, e.g. ``SIGTERM``.
    stop_signal: str
    stop_timeout_secs: float
    listen: List[str]
    revision: Optional[str]
    ready: Optional[ProbeInfo]
    health: Optional[ProbeInfo]
    log_dir: str
    log_timestamps: bool

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "InspectSpec":
        ready, health = d.get("ready"), d.get("health")
        return cls(
            argv=list(d["argv"]),
            interpreter=d.get("interpreter"),
            rule=d.get("rule"),
            environment=d.get("environment"),
            cwd=d["cwd"],
            kind=d["kind"],
            enabled=bool(d["enabled"]),
            instances=int(d["instances"]),
            env=dict(d.get("env") or {}),
            env_file=list(d.get("env_file") or []),
            depends_on=[Dependency.from_json(x) for x in d.get("depends_on") or []],
            restart=d["restart"],
            restart_delay_secs=float(d["restart_delay_secs"]),
            restart_delay_max_secs=float(d["restart_delay_max_secs"]),
            max_restarts=int(d["max_restarts"]),
            restart_window_secs=float(d["restart_window_secs"]),
            min_uptime_secs=float(d["min_uptime_secs"]),
            success_exit_codes=[int(c) for c in d.get("success_exit_codes") or []],
            stop_signal=d["stop_signal"],
            stop_timeout_secs=float(d["stop_timeout_secs"]),
            listen=list(d.get("listen") or []),
            revision=d.get("revision"),
            ready=ProbeInfo.from_json(ready) if ready else None,
            health=ProbeInfo.from_json(health) if health else None,
            log_dir=d["log_dir"],
            log_timestamps=bool(d.get("log_timestamps", False)),
        )


@dataclass(frozen=True)
class InspectLimits:
    """Each limit's value and how it is enforced, ``None`` when not set (Rust: ``InspectLimits``)."""

    memory_max: Optional[str]
    cpu_max: Optional[str]
    nofile: Optional[str]
    nice: str
    user: Optional[str]

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "InspectLimits":
        return cls(
            memory_max=d.get("memory_max"),
            cpu_max=d.get("cpu_max"),
            nofile=d.get("nofile"),
            nice=str(d.get("nice", "")),
            user=d.get("user"),
        )


@dataclass(frozen=True)
class RestartRecord:
    """One restart of an instance; ``at`` is RFC 3339 (Rust: ``RestartRecord``)."""

    at: str
    instance: int
    reason: str

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "RestartRecord":
        return cls(at=str(d["at"]), instance=int(d["instance"]), reason=str(d["reason"]))


@dataclass(frozen=True)
class Inspect:
    """``pypm inspect APP --json`` (Rust: ``InspectReport``). ``spec`` and ``limits`` are ``None``
    only for an app the supervisor no longer has."""

    app: str
    spec: Optional[InspectSpec]
    limits: Optional[InspectLimits]
    instances: List[Instance]
    restart_history: List[RestartRecord]

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Inspect":
        spec, limits = d.get("spec"), d.get("limits")
        return cls(
            app=d["app"],
            spec=InspectSpec.from_json(spec) if spec else None,
            limits=InspectLimits.from_json(limits) if limits else None,
            instances=[Instance.from_json(r) for r in d.get("instances", [])],
            restart_history=[RestartRecord.from_json(h) for h in d.get("restart_history") or []],
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
    "InspectSpec": InspectSpec,
    "InspectLimits": InspectLimits,
    "ProbeInfo": ProbeInfo,
    "Dependency": Dependency,
    "RestartRecord": RestartRecord,
}
