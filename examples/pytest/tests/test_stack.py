"""Integration tests against the stack of ../pypm.toml, run by the pypm_stack fixture."""
import time
import urllib.request

import pytest

import pypm

pytestmark = pytest.mark.pypm(config="pypm.toml", apps=["web", "worker"])


def url(stack: pypm.Client, path: str) -> str:
    return f"http://127.0.0.1:{stack.env['PYPM_PORT']}{path}"


def test_web_answers(pypm_stack: pypm.Client) -> None:
    with urllib.request.urlopen(url(pypm_stack, "/hello"), timeout=5) as r:
        assert r.status == 200
        assert r.read() == b"hello from web\n"


def test_every_app_runs(pypm_stack: pypm.Client) -> None:
    status = pypm_stack.status()
    assert {i.app for i in status.instances} == {"web", "worker"}
    assert all(i.state is pypm.State.RUNNING for i in status.instances)


def test_worker_does_work(pypm_stack: pypm.Client) -> None:
    deadline = time.monotonic() + 10
    while not any("job" in line for line in pypm_stack.logs("worker", 5)):
        assert time.monotonic() < deadline, "the worker logged no job within 10 s"
        time.sleep(0.1)


def test_restart_rolls_the_worker(pypm_stack: pypm.Client) -> None:
    before = pypm_stack.status("worker").instances[0].pid
    pypm_stack.restart("worker")
    deadline = time.monotonic() + 10
    while True:
        row = pypm_stack.status("worker").instances[0]
        if row.pid not in (None, before) and row.state is pypm.State.RUNNING:
            break
        assert time.monotonic() < deadline, f"worker not restarted: {row}"
        time.sleep(0.05)
