"""The asyncio twin of :class:`pypm.Client`: the same methods, as coroutines and async iterators.

>>> import asyncio, pypm.aio
>>> async def main() -> None:
...     client = pypm.aio.Client("examples/quickstart/pypm.toml")
...     print(await client.status())
>>> asyncio.run(main())   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Union

from . import _proto
from ._binary import find_binary
from ._config import PathLike
from ._types import Event, Inspect, Plan, Status
from .client import DEFAULT_TIMEOUT, _cli_error, _secs, _wait_secs, failed_of, settled
from .client import Client as _SyncClient
from .errors import NoSupervisor, ProtocolError, PypmError, Timeout

__all__ = ["Client"]


class Client:
    """Async client for the supervisor of one ``pypm.toml`` (see :class:`pypm.Client`)."""

    def __init__(
        self,
        config: Optional[PathLike] = None,
        state_dir: Optional[PathLike] = None,
        timeout: float = DEFAULT_TIMEOUT,
        env: Optional[Dict[str, str]] = None,
    ) -> None:
        self._sync = _SyncClient(config, state_dir=state_dir, timeout=timeout, env=env)
        self.env = self._sync.env
        self.config: Path = self._sync.config
        self.state_dir: Path = self._sync.state_dir
        self.timeout = timeout

    async def _request(
        self, cmd: str, timeout: Optional[float] = None, **fields: Any
    ) -> Dict[str, Any]:
        t = self.timeout if timeout is None else timeout
        data = _proto.encode(cmd, self.config, **fields)

        async def talk() -> bytes:
            try:
                reader, writer = await asyncio.open_unix_connection(
                    str(self._sync.socket_path), limit=_proto.MAX_FRAME + 1
                )
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
                raise NoSupervisor(f"no supervisor is running for {self.config}") from None
            try:
                writer.write(data)
                await writer.drain()
                try:
                    return await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as e:
                    return e.partial
                except asyncio.LimitOverrunError:
                    raise ProtocolError(f"an answer larger than {_proto.MAX_FRAME} bytes") from None
            finally:
                writer.close()
                try:
                    await writer.wait_closed()
                except OSError:
                    pass

        try:
            line = await asyncio.wait_for(talk(), timeout=max(t, 0.001))
        except asyncio.TimeoutError:
            raise Timeout(f"no answer from the supervisor within {t:g}s") from None
        except (ConnectionResetError, BrokenPipeError):
            raise NoSupervisor(f"the supervisor for {self.config} went away") from None
        except OSError as e:
            raise ProtocolError(f"cannot talk to the supervisor: {e}") from e
        if not line:
            raise NoSupervisor(f"the supervisor for {self.config} went away")
        return _proto.decode(line)

    async def ping(self) -> Dict[str, Any]:
        return _proto.expect(await self._request("ping"), "pong")

    async def is_running(self) -> bool:
        try:
            await self.ping()
            return True
        except PypmError:
            return False

    async def status(self, app: Optional[str] = None) -> Status:
        return Status.from_json(_proto.expect(await self._request("status", app=app), "status"))

    async def inspect(self, app: str) -> Inspect:
        return Inspect.from_json(_proto.expect(await self._request("inspect", app=app), "inspect"))

    async def plan(self) -> Plan:
        return Plan.from_json(_proto.expect(await self._request("plan"), "plan"))

    async def reload(self) -> str:
        return str(_proto.expect(await self._request("reload"), "done").get("message", ""))

    async def restart(self, app: Optional[str] = None) -> str:
        frame = await self._request("restart", app=app)
        return str(_proto.expect(frame, "done").get("message", ""))

    async def wait_ready(
        self, app: Union[str, Sequence[str], None] = None, timeout: float = 60.0
    ) -> Status:
        apps = [app] if isinstance(app, str) else (list(app) if app is not None else None)
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            frame = await self._request("status", light=True)
            st = Status.from_json(_proto.expect(frame, "status"))
            bad = failed_of(st.instances, apps)
            if bad:
                raise PypmError(
                    "failed: " + ", ".join(f"{i.name} ({i.reason or 'failed'})" for i in bad)
                )
            if settled(st.instances, apps):
                return st
            if time.monotonic() >= deadline:
                raise Timeout(f"not ready within {timeout:g}s:\n{st}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _run(self, *args: str, timeout: Optional[float] = None) -> "tuple[int, str, str]":
        proc = await asyncio.create_subprocess_exec(
            find_binary(), "--config", str(self.config), *args,
            env=self._sync._env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise Timeout(f"`pypm {' '.join(args)}` did not finish within {timeout}s") from None
        return proc.returncode or 0, out.decode(), err.decode()

    async def up(self, wait: Union[float, str] = 60.0) -> Status:
        w = _secs(wait) or "60s"
        code, out, err = await self._run("up", "-d", "--wait", w, timeout=_wait_secs(w) + 30)
        if code != 0:
            raise PypmError((err or out).strip(), code)
        return await self.status()

    async def down(self, timeout: float = 120.0) -> None:
        code, out, err = await self._run("down", timeout=timeout)
        if code != 0:
            raise PypmError((err or out).strip(), code)

    async def logs(self, app: str, n: int = 20) -> List[str]:
        code, out, err = await self._run("logs", app, "-n", str(n), timeout=self.timeout)
        if code != 0:
            import subprocess

            raise _cli_error(subprocess.CompletedProcess([], code, out, err))
        return out.splitlines()

    async def follow_logs(self, app: str, n: int = 0) -> AsyncIterator[str]:
        proc = await asyncio.create_subprocess_exec(
            find_binary(), "--config", str(self.config), "logs", app, "-f", "-n", str(n),
            env=self._sync._env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                yield line.decode().rstrip("\n")
            code = await proc.wait()
            if code != 0:
                err = await proc.stderr.read() if proc.stderr is not None else b""
                raise PypmError(err.decode().strip() or f"pypm logs exited {code}", code)
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()

    async def events(
        self, from_start: bool = False, idle_timeout: Optional[float] = None
    ) -> AsyncIterator[Event]:
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
                        from_start = True
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
                await asyncio.sleep(0.05)
        finally:
            if f is not None:
                f.close()
