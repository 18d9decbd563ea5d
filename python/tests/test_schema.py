"""The dataclasses mirror schema/protocol.schema.json, which the Rust side derives from its types
(src/control/protocol.rs: a field added there changes the schema, and this test fails until the
dataclass has it too)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, List

import pypm
from pypm._types import MIRRORS

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schema" / "protocol.schema.json"
#: An ``inspect`` answer as the supervisor sends it (the Rust side round-trips it byte for byte).
INSPECT_WIRE = ROOT / "src" / "control" / "protocol" / "inspect.wire.json"


def mismatches(schema: Dict[str, Any]) -> List[str]:
    defs = schema["$defs"]
    out = []
    for name, cls in MIRRORS.items():
        props = set(defs[name].get("properties", {}))
        fields = {f.name for f in dataclasses.fields(cls)}
        if props != fields:
            out.append(
                f"{cls.__name__} (Rust {name}): missing {sorted(props - fields)}, "
                f"extra {sorted(fields - props)}"
            )
    return out


def load() -> Dict[str, Any]:
    return json.loads(SCHEMA.read_text())


def test_dataclasses_mirror_the_protocol() -> None:
    assert mismatches(load()) == []


def test_a_field_added_in_rust_is_caught() -> None:
    schema = copy.deepcopy(load())
    schema["$defs"]["Row"]["properties"]["threads"] = {"type": "integer"}
    assert mismatches(schema) == ["Instance (Rust Row): missing ['threads'], extra []"]


def test_states_are_the_protocols() -> None:
    # The Rust side serialises State in snake_case; SPEC §3 names eight.
    assert [s.value for s in pypm.State] == [
        "waiting", "starting", "running", "stopping", "stopped", "completed", "backoff", "failed",
    ]
    assert [s.value for s in pypm.State] == load()["$defs"]["State"]["enum"]


def test_error_kinds_are_known() -> None:
    kinds = load()["$defs"]["ErrorKind"]
    values = {v.get("const") for v in kinds.get("oneOf", [])} | set(kinds.get("enum", []))
    assert values == {"failed", "not_found", "invalid", "unavailable", "other_file"}


def test_an_inspect_answer_decodes_into_the_typed_mirror() -> None:
    info = pypm.Inspect.from_json(json.loads(INSPECT_WIRE.read_text()))
    assert info.spec is not None and info.limits is not None
    assert info.spec.ready == pypm.ProbeInfo(
        check={"http": "http://127.0.0.1:18765/"}, interval_secs=0.5, timeout_secs=60.0, failures=1
    )
    assert info.spec.depends_on == [pypm.Dependency(app="db", condition="started")]
    assert info.spec.env["DB_PASSWORD"] == "***"
    assert info.limits.user is None and info.limits.nice == "5: setpriority before exec"
    assert info.restart_history[0].instance == 0
    assert info.instances[0].state is pypm.State.RUNNING
