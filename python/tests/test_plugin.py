"""The pytest plugin, run in a nested pytest (pytester): a stack, the marker, and a failing test's
report carrying the apps' last log lines."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

FILE = textwrap.dedent(
    """
    [apps.echoer]
    command = ["sh", "-c", "echo hello-from-echoer; exec sleep 1000 0.4242"]

    [apps.other]
    command = ["sh", "-c", "exec sleep 1000"]
    """
)


def entry_point_installed() -> bool:
    from importlib.metadata import entry_points

    eps = entry_points()
    group = eps.select(group="pytest11") if hasattr(eps, "select") else eps.get("pytest11", [])
    return any(ep.value == "pypm.pytest_plugin" for ep in group)


def test_stack_marker_and_failure_report(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pypm=FILE)
    pytester.makepyfile(
        test_it=textwrap.dedent(
            """
            import time
            import pytest
            import pypm

            @pytest.mark.pypm(config="pypm.toml", apps=["echoer"])
            def test_running(pypm_stack):
                assert pypm_stack.status("echoer").instances[0].state is pypm.State.RUNNING
                assert "PYPM_PORT" in pypm_stack.env

            @pytest.mark.pypm(config="pypm.toml", apps=["echoer"])
            def test_fails(pypm_stack):
                deadline = time.monotonic() + 10
                while not pypm_stack.logs("echoer", 5) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert False, "on purpose"
            """
        )
    )
    # Installed from the wheel, the plugin loads through its entry point; from a checkout
    # (PYTHONPATH=python) it is named.
    args = [] if entry_point_installed() else ["-p", "pypm.pytest_plugin"]
    result = pytester.runpytest_subprocess(*args, "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*pypm: app logs*", "*hello-from-echoer*"])
    # The session's stack was stopped: none of its processes is left.
    import subprocess

    left = subprocess.run(["pgrep", "-f", "sleep 1000 0.4242"], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"left running: {left.stdout}"


def test_deep_tmp_dirs_get_a_short_state_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    from pypm.pytest_plugin import _MAX_SOCKET_PATH, _SHORT_DIRS, _state_dir

    class Deep:
        def mktemp(self, name: str) -> str:
            d = tmp_path_factory.mktemp("x" * 60) / ("y" * 60)
            d.mkdir()
            return str(d)

    d = _state_dir(Deep())
    assert len(str(d / "pypm.sock")) <= _MAX_SOCKET_PATH
    assert d in _SHORT_DIRS
    _SHORT_DIRS.remove(d)
    d.rmdir()
