"""Every method of pypm.Client against the real binary."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import threading
from pathlib import Path

import pytest

import pypm
from pypm import _proto
from conftest import names, wait_for


def test_status_is_typed(running: pypm.Client) -> None:
    st = running.status()
    assert isinstance(st, pypm.Status)
    assert names(st.instances) == ["noisy", "once", "ticker"]
    by = {i.name: i for i in st.instances}
    assert by["ticker"].state is pypm.State.RUNNING
    assert isinstance(by["ticker"].pid, int)
    assert by["once"].state is pypm.State.COMPLETED
    assert by["once"].last_exit is not None and by["once"].last_exit.code == 0
    assert st.config_error is None
    assert [i.name for i in running.status("ticker").instances] == ["ticker"]
    assert "ticker" in str(st)


def test_inspect_plan_reload_restart(running: pypm.Client) -> None:
    info = running.inspect("ticker")
    assert info.app == "ticker"
    assert info.spec is not None and info.spec.argv[0].endswith("sh")
    assert info.limits is not None and info.limits.nice.startswith("0: ")
    assert running.plan().changes == []
    text = running.config.read_text().replace('echo once done', 'echo once again')
    running.config.write_text(text)
    plan = running.plan()
    assert [(c.app, c.verb) for c in plan.changes] == [("once", "restart")]
    assert running.reload()
    assert running.plan().changes == []
    pid = running.status("ticker").instances[0].pid
    assert "ticker" in running.restart("ticker")
    wait_for(
        "a new ticker pid",
        lambda: (i := running.status("ticker").instances[0]).pid not in (None, pid)
        and i.state is pypm.State.RUNNING,
    )


def test_wait_ready_for_one_app(running: pypm.Client) -> None:
    st = running.wait_ready("ticker", timeout=10)
    assert st.app("ticker")[0].state is pypm.State.RUNNING


def test_logs_and_follow_logs_across_rotation(running: pypm.Client) -> None:
    wait_for("ticker's lines", lambda: len(running.logs("ticker", 3)) == 3)
    assert all(line.startswith("tick ") for line in running.logs("ticker", 3))
    # noisy rotates its 4K log many times a second: following sees consecutive numbers.
    it = running.follow_logs("noisy")
    seen = [int(line.split("-")[1]) for line in itertools.islice(it, 400)]
    it.close()
    assert seen == list(range(seen[0], seen[0] + len(seen))), "a line lost or repeated"
    rotated = sorted(p.name for p in running.log_dir.glob("noisy.out.log*"))
    assert "noisy.out.log.1" in rotated


def test_events_stream(running: pypm.Client) -> None:
    events = running.events(from_start=True, idle_timeout=2)
    first = [e for e in itertools.islice(events, 3)]
    events.close()
    assert first[0].event == "started"
    got: list = []
    t = threading.Thread(
        target=lambda: got.extend(itertools.islice(running.events(idle_timeout=10), 1))
    )
    t.start()
    wait_for("the events reader to open the file", lambda: True)
    running.restart("ticker")
    t.join(15)
    assert got and got[0].app == "ticker"


def test_no_supervisor(project: Path) -> None:
    client = pypm.Client(project / "pypm.toml")
    with pytest.raises(pypm.NoSupervisor) as e:
        client.status()
    assert e.value.code == 3
    assert not client.is_running()


def test_another_files_supervisor_is_no_supervisor() -> None:
    # A supervisor for another file on the same state_dir: `other_file`, exit code 3 (and one
    # from before that kind: code 3 alone).
    for frame in (
        {"kind": "error", "message": "m", "code": 3, "cause": "other_file"},
        {"kind": "error", "message": "m", "code": 3},
    ):
        e = _proto.error_of(frame)
        assert isinstance(e, pypm.NoSupervisor) and e.code == 3, frame


def test_unknown_app(running: pypm.Client) -> None:
    with pytest.raises(pypm.NotFound):
        running.inspect("nope")
    with pytest.raises(pypm.NotFound):
        running.restart("nope")


def test_invalid_file_changes_nothing(running: pypm.Client) -> None:
    before = names(running.status().instances)
    running.config.write_text(running.config.read_text() + "\n[apps.bad]\ncommand = 3\n")
    with pytest.raises(pypm.InvalidConfig) as e:
        running.reload()
    assert e.value.line is not None and e.value.line > 10
    assert e.value.column is not None
    st = running.status()
    assert names(st.instances) == before
    assert st.config_error is not None


def test_supervisor_killed_mid_stream(running: pypm.Client) -> None:
    it = running.follow_logs("ticker")
    assert next(it).startswith("tick")
    pid = running.ping()["pid"]
    os.kill(int(pid), signal.SIGKILL)
    wait_for("the supervisor to be gone", lambda: not running.is_running())
    with pytest.raises(pypm.NoSupervisor):
        running.status()
    it.close()  # the follower is stopped, not left behind


def fake_supervisor(state_dir: Path, answer: bytes) -> socket.socket:
    state_dir.mkdir(parents=True, exist_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(state_dir / "pypm.sock"))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        if answer:
            conn.sendall(answer)
        else:
            conn.recv(1)  # never answers; the client times out
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_protocol_version_mismatch_names_both(project: Path) -> None:
    srv = fake_supervisor(project / ".pypm", b'{"v":99,"kind":"pong","pid":1,"config_file":"x"}\n')
    try:
        with pytest.raises(pypm.ProtocolError) as e:
            pypm.Client(project / "pypm.toml").ping()
        assert "99" in str(e.value) and "1" in str(e.value)
    finally:
        srv.close()


def test_supervisor_dying_before_it_answers_is_no_supervisor(project: Path) -> None:
    # A listening socket whose owner dies closes (or resets) the queued connection with no answer:
    # that is "no supervisor", whichever of the two the kernel does.
    for reset in (False, True):
        state = project / ".pypm"
        state.mkdir(parents=True, exist_ok=True)
        (state / "pypm.sock").unlink(missing_ok=True)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(state / "pypm.sock"))
        srv.listen(1)

        def serve(srv: socket.socket = srv, reset: bool = reset) -> None:
            conn, _ = srv.accept()
            if reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            else:
                conn.recv(65536)
            conn.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            with pytest.raises(pypm.NoSupervisor):
                pypm.Client(project / "pypm.toml", timeout=5).status()
        finally:
            t.join(5)
            srv.close()


def test_timeout_is_bounded(project: Path) -> None:
    srv = fake_supervisor(project / ".pypm", b"")
    try:
        client = pypm.Client(project / "pypm.toml", timeout=0.3)
        with pytest.raises(pypm.Timeout):
            client.status()
    finally:
        srv.close()


def test_private_state_dir(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    private = tmp_path_factory.mktemp("private")
    client = pypm.up(project / "pypm.toml", state_dir=private, wait="30s")
    assert isinstance(client, pypm.Client)
    try:
        assert (private / "pypm.sock").exists()
        assert not pypm.Client(project / "pypm.toml").is_running()
        assert client.status().instances
    finally:
        client.down()


def test_config_lookup(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert pypm.Client().config == project / "pypm.toml"
    monkeypatch.setenv("PYPM_CONFIG", str(project / "other.toml"))
    assert pypm.Client().config == project / "other.toml"
    monkeypatch.delenv("PYPM_CONFIG")
    monkeypatch.chdir("/")
    with pytest.raises(FileNotFoundError):
        pypm.Client()
