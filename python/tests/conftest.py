"""Fixtures for the client's tests: a real supervisor (the binary of $PYPM_BIN, else the wheel's,
else PATH) for a small file in a temporary directory, stopped and cleaned up after each test."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

import pypm

FILE = textwrap.dedent(
    """
    [pypm]
    watch_config = false

    [apps.ticker]
    command = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done"]

    [apps.once]
    kind = "task"
    command = ["sh", "-c", "echo once done"]

    [apps.noisy]
    command = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; sleep 0.002; done"]
    log_max_size = "4K"
    log_max_files = 2
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A directory with pypm.toml; whatever supervisor a test starts there is stopped after it."""
    (tmp_path / "pypm.toml").write_text(FILE)
    yield tmp_path
    client = pypm.Client(tmp_path / "pypm.toml")
    try:
        client.down(timeout=30)
    except pypm.PypmError:
        pass
    pidfile = client.state_dir / "pypm.pid"
    if pidfile.exists():  # a test that killed the supervisor: its apps die with it (PDEATHSIG)
        try:
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


@pytest.fixture
def running(project: Path) -> pypm.Client:
    client = pypm.up(project / "pypm.toml", wait="30s")
    assert isinstance(client, pypm.Client)
    client.wait_ready(timeout=30)
    return client


def wait_for(what: str, cond: Callable[[], object], timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def names(rows: List[pypm.Instance]) -> List[str]:
    return sorted(r.name for r in rows)
