"""The synchronous client: :class:`Client` and :func:`up`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from . import _proto
from ._binary import find_binary
from ._config import PathLike, dirs, find_config
from ._types import Event, Inspect, Instance, Plan, State, Status
from .errors import NoSupervisor, ProtocolError, PypmError, Timeout

DEFAULT_TIMEOUT = 10.0


def _secs(wait: Union[float, str, None]) -> Optional[str]:
    if wait is None:
        return None
    return wait if isinstance(wait, str) else f"{float(wait):g}s"


def settled(instances: Iterable[Instance], apps: Optional[Sequence[str]] = None) -> bool:
    """Every chosen instance is ``running`` and ready, or ``completed``."""
    chosen = [i for i in instances if apps is None or i.app in apps]
    return bool(chosen) and all(
        (i.state is State.RUNNING and i.ready) or i.state is State.COMPLETED for i in chosen
    )


def failed_of(instances: Iterable[Instance], apps: Optional[Sequence[str]] = None) -> List[Instance]:
    return [i for i in instances if (apps is None or i.app in apps) and i.state is State.FAILED]


class Client:
    """Speaks the control protocol to the supervisor of one ``pypm.toml``.

    ``config`` is found as the CLI finds it (the argument, else ``$PYPM_CONFIG``, else the nearest
    ``pypm.toml``); ``state_dir`` overrides the file's ``[pypm] state_dir`` (and is passed to the
    binary as ``$PYPM_STATE_DIR``); ``env`` is added to the environment of the binary it runs
    (``up``, ``down``, ``logs``). Every call waits at most ``timeout`` seconds.

    >>> import pypm
    >>> client = pypm.Client("examples/quickstart/pypm.toml")   # doctest: +SKIP
    >>> [(i.name, i.state.value) for i in client.status().instances]   # doctest: +SKIP
    [('migrate', 'completed'), ('web', 'running'), ('worker', 'running')]
    """

    def __init__(
        self,
        config: Optional[PathLike] = None,
        state_dir: Optional[PathLike] = None,
        timeout: float = DEFAULT_TIMEOUT,
        env: Optional[Dict[str, str]] = None,
    ) -> None:
        self.config: Path = find_config(config)
        #: Extra environment for the binary this client runs (``up`` passes it to the supervisor,
        #: hence to the apps and to ``${VAR}`` in the file).
        self.env: Dict[str, str] = dict(env or {})
        self._state_dir_override = None if state_dir is None else str(Path(state_dir).absolute())
        self.state_dir, self.log_dir = dirs(self.config, self._state_dir_override)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"pypm.Client({str(self.config)!r})"

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "pypm.sock"

    # -- the protocol -------------------------------------------------------------------------

    def _request(self, cmd: str, timeout: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
        t = self.timeout if timeout is None else timeout
        data = _proto.encode(cmd, self.config, **fields)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(max(t, 0.001))
            try:
                s.connect(str(self.socket_path))
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
                raise NoSupervisor(f"no supervisor is running for {self.config}") from None
            buf = bytearray()
            try:
                s.sendall(data)
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                # The supervisor accepted (or its socket still queued us) and then died: no
                # answer at all means there is no supervisor any more, not a protocol fault.
                raise NoSupervisor(f"the supervisor for {self.config} went away") from None
            buf += chunk
            while chunk and not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > _proto.MAX_FRAME:
                    raise ProtocolError(f"an answer larger than {_proto.MAX_FRAME} bytes")
        except socket.timeout:
            raise Timeout(f"no answer from the supervisor within {t:g}s") from None
        except OSError as e:
            if isinstance(e, PypmError):
                raise
            raise ProtocolError(f"cannot talk to the supervisor on {self.socket_path}: {e}") from e
        finally:
            s.close()
        if not buf:
            raise NoSupervisor(f"the supervisor for {self.config} went away")
        return _proto.decode(bytes(buf))

    def ping(self) -> Dict[str, Any]:
        """The supervisor's pid, its file and its HTTP address (``pid``, ``config_file``, ``http``)."""
        return _proto.expect(self._request("ping"), "pong")

    def is_running(self) -> bool:
        """Whether a supervisor answers for this file."""
        try:
            self.ping()
            return True
        except PypmError:
            return False

    def status(self, app: Optional[str] = None) -> Status:
        """Every instance (or one app's), as ``pypm status --json``."""
        return Status.from_json(_proto.expect(self._request("status", app=app), "status"))

    def inspect(self, app: str) -> Inspect:
        """One app's resolved spec, limits, instances and restart history."""
        return Inspect.from_json(_proto.expect(self._request("inspect", app=app), "inspect"))

    def plan(self) -> Plan:
        """What applying the file now would change (nothing is changed)."""
        return Plan.from_json(_proto.expect(self._request("plan"), "plan"))

    def reload(self) -> str:
        """Applies the file now; returns the supervisor's summary. Raises
        :class:`~pypm.errors.InvalidConfig` (nothing changed) when the file is invalid."""
        return str(_proto.expect(self._request("reload"), "done").get("message", ""))

    def restart(self, app: Optional[str] = None) -> str:
        """Rolls one app's instances (every app's with ``None``)."""
        return str(_proto.expect(self._request("restart", app=app), "done").get("message", ""))

    def wait_ready(
        self, app: Union[str, Sequence[str], None] = None, timeout: float = 60.0
    ) -> Status:
        """Waits until every instance (of ``app``) is ``running`` and ready, or ``completed``.
        Raises :class:`~pypm.errors.PypmError` if one is ``failed``, :class:`Timeout` after
        ``timeout`` seconds."""
        apps = [app] if isinstance(app, str) else (list(app) if app is not None else None)
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            st = Status.from_json(_proto.expect(self._request("status", light=True), "status"))
            bad = failed_of(st.instances, apps)
            if bad:
                raise PypmError(
                    "failed: " + ", ".join(f"{i.name} ({i.reason or 'failed'})" for i in bad)
                )
            if settled(st.instances, apps):
                return st
            if time.monotonic() >= deadline:
                raise Timeout(f"not ready within {timeout:g}s:\n{st}")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    # -- through the binary -------------------------------------------------------------------

    def _env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        if self._state_dir_override is not None:
            env["PYPM_STATE_DIR"] = self._state_dir_override
        return env

    def _run(self, *args: str, timeout: Optional[float] = None) -> "subprocess.CompletedProcess[str]":
        cmd = [find_binary(), "--config", str(self.config), *args]
        try:
            return subprocess.run(
                cmd, env=self._env(), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise Timeout(f"`{' '.join(cmd)}` did not finish within {timeout}s") from None

    def up(self, wait: Union[float, str] = 60.0) -> Status:
        """Starts the supervisor detached (``pypm up -d``), or applies the file to the running one,
        and returns once nothing is starting. Raises :class:`PypmError` (with the CLI's output)
        if an instance ends ``failed``."""
        w = _secs(wait) or "60s"
        r = self._run("up", "-d", "--wait", w, timeout=_wait_secs(w) + 30)
        if r.returncode != 0:
            raise PypmError((r.stderr or r.stdout).strip(), r.returncode)
        return self.status()

    def down(self, timeout: float = 120.0) -> None:
        """Stops every app in reverse dependency order, then the supervisor (``pypm down``)."""
        r = self._run("down", timeout=timeout)
        if r.returncode not in (0,):
            raise PypmError((r.stderr or r.stdout).strip(), r.returncode)

    def logs(self, app: str, n: int = 20) -> List[str]:
        """The last ``n`` lines of an app's stdout and stderr, as ``pypm logs APP -n N``."""
        r = self._run("logs", app, "-n", str(n), timeout=self.timeout)
        if r.returncode != 0:
            raise _cli_error(r)
        return r.stdout.splitlines()

    def follow_logs(self, app: str, n: int = 0) -> Iterator[str]:
        """Yields an app's log lines as they are written (``pypm logs APP -f``: across rotation),
        after the last ``n``. Closing the iterator stops following."""
        cmd = [find_binary(), "--config", str(self.config), "logs", app, "-f", "-n", str(n)]
        proc = subprocess.Popen(
            cmd, env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                yield line.rstrip("\n")
            err = proc.stderr.read() if proc.stderr is not None else ""
            if proc.wait() != 0:
                raise PypmError(err.strip() or f"pypm logs exited {proc.returncode}", proc.returncode)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for f in (proc.stdout, proc.stderr):
                if f is not None:
                    f.close()

    def events(
        self, from_start: bool = False, idle_timeout: Optional[float] = None
    ) -> Iterator[Event]:
        """Yields the events of ``state_dir/events.jsonl`` as they are appended (only new ones
        unless ``from_start``), following the file across rotation. Stops after ``idle_timeout``
        seconds without an event when given."""
        path = self.state_dir / "events.jsonl"
        f = None
        ino = None
        pending = b""
        last = time.monotonic()
        try:
            while True:
                if f is None:
                    try:
                        f = open(path, "rb")
                        ino = os.fstat(f.fileno()).st_ino
                        if not from_start:
                            f.seek(0, os.SEEK_END)
                        from_start = True  # a rotated-in file is read from its start
                    except FileNotFoundError:
                        f = None
                got = f.readline() if f is not None else b""
                if got:
                    pending += got
                    if pending.endswith(b"\n"):
                        line, pending = pending, b""
                        try:
                            yield Event.from_json(json.loads(line))
                        except ValueError:
                            pass
                        last = time.monotonic()
                    continue
                # At the end: rotated (another file at the path) or truncated?
                if f is not None:
                    try:
                        st = os.stat(path)
                        if st.st_ino != ino or st.st_size < f.tell():
                            f.close()
                            f = None
                            continue
                    except FileNotFoundError:
                        pass
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                time.sleep(0.05)
        finally:
            if f is not None:
                f.close()


def _wait_secs(w: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for u in ("ms", "s", "m", "h"):
        if w.endswith(u):
            try:
                return float(w[: -len(u)]) * units[u]
            except ValueError:
                break
    try:
        return float(w)
    except ValueError:
        return 60.0


def _cli_error(r: "subprocess.CompletedProcess[str]") -> PypmError:
    msg = (r.stderr or r.stdout).strip()
    if r.returncode == 3:
        return NoSupervisor(msg)
    if "no app" in msg or "unknown app" in msg:
        from .errors import NotFound

        return NotFound(msg, r.returncode)
    return PypmError(msg, r.returncode)


def up(
    config: Optional[PathLike] = None,
    detach: bool = True,
    wait: Union[float, str] = 60.0,
    state_dir: Optional[PathLike] = None,
    env: Optional[Dict[str, str]] = None,
) -> Union[Client, "subprocess.Popen[bytes]"]:
    """Starts a supervisor for ``config`` with the bundled binary.

    ``detach=True`` (default): ``pypm up -d``, waiting up to ``wait`` until nothing is starting;
    returns a :class:`Client` for it. ``detach=False``: runs ``pypm up`` in the foreground as a
    child process and returns its :class:`subprocess.Popen` (stop it with ``terminate()``).
    """
    client = Client(config, state_dir=state_dir, env=env)
    if detach:
        client.up(wait)
        return client
    return subprocess.Popen(
        [find_binary(), "--config", str(client.config), "up"], env=client._env()
    )
