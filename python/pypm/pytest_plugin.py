"""pytest plugin: the ``pypm_stack`` fixture runs a ``pypm.toml``'s apps for a test session.

Registered through the ``pytest11`` entry point of the wheel; it only adds a fixture and a marker,
so it costs nothing to a test suite that does not use them::

    import pytest

    @pytest.mark.pypm(config="tests/pypm.toml", apps=["web", "worker"])
    def test_home(pypm_stack):
        assert pypm_stack.status("web").instances[0].state is pypm.State.RUNNING

Each stack runs in a private ``state_dir`` under pytest's temporary directory (``$PYPM_STATE_DIR``),
so it never meets a supervisor the developer runs for the same file. The supervisor's environment
gets ``PYPM_PORT`` (a free port on 127.0.0.1, for the file's ``${PYPM_PORT}``) and
``PYPM_TEST_WORKER`` (pytest-xdist's worker id, or ``main``); the fixture's ``env`` has both. Scope: one stack per test
session and per (config, apps) pair, stopped when the session ends. With pytest-xdist every worker is its own session, so it starts its own stack, on its own port
and state_dir; to share one stack instead, start it before pytest (``pypm up -d``) and use
``pypm.Client`` in a session fixture of your own.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Dict, Generator, Iterator, List, Optional, Tuple

import pytest

from .client import Client
from .errors import PypmError

def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("pypm")
    group.addoption(
        "--pypm-config",
        default=None,
        help="pypm.toml for the pypm_stack fixture (default: the marker's, else the nearest)",
    )
    parser.addini("pypm_config", "pypm.toml for the pypm_stack fixture", default="")
    group.addoption(
        "--pypm-wait",
        default="60",
        help="seconds to wait for the stack's apps to be running/completed (default 60)",
    )


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "pypm(config=None, apps=None): which pypm.toml (and which of its apps) the "
        "pypm_stack fixture waits for",
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Stack:
    def __init__(self, config: Path, apps: Optional[List[str]], state_dir: Path, worker: str) -> None:
        env = {"PYPM_PORT": str(_free_port()), "PYPM_TEST_WORKER": worker}
        self.client = Client(config, state_dir=state_dir, env=env)
        self.apps = apps

    def start(self, wait: float) -> None:
        self.client.up(wait=f"{wait:g}s")
        self.client.wait_ready(self.apps, timeout=wait)

    def tails(self, n: int = 20) -> str:
        try:
            apps = sorted({i.app for i in self.client.status().instances})
        except PypmError as e:
            return f"(status unavailable: {e})"
        out = []
        for app in apps:
            if self.apps is not None and app not in self.apps:
                continue
            try:
                lines = self.client.logs(app, n)
            except PypmError as e:
                lines = [f"(logs unavailable: {e})"]
            out.append(f"--- {app}: last {n} lines ---")
            out.extend(lines)
        return "\n".join(out)

    def stop(self) -> None:
        try:
            self.client.down()
        except PypmError:
            pass


def _choose(request: Any) -> Tuple[Path, Optional[List[str]]]:
    """The file (a relative one is looked for from the test file's directory up to pytest's
    rootdir, then in the rootdir) and the apps to wait for."""
    marker = request.node.get_closest_marker("pypm")
    kwargs: Dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    cfg = (
        kwargs.get("config")
        or request.config.getoption("--pypm-config")
        or request.config.getini("pypm_config")
        or None
    )
    apps = kwargs.get("apps")
    chosen = list(apps) if apps is not None else None
    if cfg is None:
        return _nearest(request), chosen
    cfg_path = Path(str(cfg))
    if cfg_path.is_absolute():
        return cfg_path, chosen
    root = Path(str(request.config.rootpath)).absolute()
    start = Path(str(request.node.fspath)).absolute().parent
    for d in [start, *start.parents]:
        if (d / cfg_path).is_file():
            return d / cfg_path, chosen
        if d == root:
            break
    return root / cfg_path, chosen


def _nearest(request: Any) -> Path:
    """No file named: the nearest pypm.toml from the test file's directory (or $PYPM_CONFIG)."""
    from ._config import find_config

    return find_config(None, cwd=Path(str(request.node.fspath)).absolute().parent)


#: A Unix socket's path must fit in sun_path (108 bytes on Linux, 104 on macOS).
_MAX_SOCKET_PATH = 100
_SHORT_DIRS: List[Path] = []


def _state_dir(tmp_path_factory: Any) -> Path:
    """A private state_dir under pytest's tmp dir, or under /tmp when that path would make the
    control socket's path too long (deep tmp dirs, nested pytest runs)."""
    d = Path(tmp_path_factory.mktemp("pypm-state"))
    if len(str(d / "pypm.sock")) <= _MAX_SOCKET_PATH:
        return d
    short = Path(tempfile.mkdtemp(prefix="pypm-", dir="/tmp" if os.path.isdir("/tmp") else None))
    _SHORT_DIRS.append(short)
    return short


@pytest.fixture(scope="session")
def _pypm_stacks(tmp_path_factory: Any) -> Iterator[Dict[Tuple[str, Tuple[str, ...]], _Stack]]:
    stacks: Dict[Tuple[str, Tuple[str, ...]], _Stack] = {}
    yield stacks
    for s in stacks.values():
        s.stop()
    while _SHORT_DIRS:
        shutil.rmtree(_SHORT_DIRS.pop(), ignore_errors=True)


@pytest.fixture
def pypm_stack(request: Any, _pypm_stacks: Dict[Tuple[str, Tuple[str, ...]], _Stack],
               tmp_path_factory: Any) -> Iterator[Client]:
    """A :class:`pypm.Client` for a running stack: started once per session for each
    (file, apps) pair, in a private state_dir; stopped at the end of the session. A failing
    test's report gets the last log lines of the stack's apps."""
    path, apps = _choose(request)
    key = (str(path), tuple(apps or ()))
    stack = _pypm_stacks.get(key)
    if stack is None:
        state_dir = _state_dir(tmp_path_factory)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        stack = _Stack(path, apps, state_dir, worker)
        _pypm_stacks[key] = stack
        request.node._pypm_stack = stack
        stack.start(float(request.config.getoption("--pypm-wait")))
    request.node._pypm_stack = stack
    yield stack.client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    stack: Optional[_Stack] = getattr(item, "_pypm_stack", None)
    if stack is not None and report.when in ("setup", "call") and report.failed:
        report.sections.append(("pypm: app logs", stack.tails()))
