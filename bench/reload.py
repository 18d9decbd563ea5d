#!/usr/bin/env python3
"""Reconciliation benchmarks for pypm (issue 2 and issue 4 figures).

Scenarios, each with fresh temporary projects whose apps are `sleep` programs carrying a unique
marker in argv (so every process can be found and killed at the end):

1. `pypm check` on a 500-app file (every tenth app starts a dependency chain): wall time of the
   CLI process, median of 20.
2. Save to pid: with a supervisor running a 5-app file, append a new app to `pypm.toml` (a plain
   write, as an editor would) and time from the write until the new app's process exists in
   /proc, polling as fast as possible. Includes pypm's 100 ms debounce. Median and max of 20.
3. Reload of a 500-app file where one app changed (its `env` value): the supervisor's own time
   for the reload (parse, validate, resolve, diff, apply), read from its log line
   `reload took X ms`, median of 10; plus the wall time of `pypm reload` for the same change.

Usage: python3 bench/reload.py [--pypm PATH] [--quick] [--out docs/benchmarks.md]
With --out, the results replace the section between `<!-- reload:begin -->` and
`<!-- reload:end -->` of that file (appended if absent).
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pids_with(needle: bytes) -> set:
    out = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    out.add(int(d))
        except OSError:
            pass
    return out


def write_apps(path: str, n: int, mark: str, chains: bool = False, extra: str = "") -> None:
    parts = []
    for i in range(n):
        dep = f'depends_on = ["a{i - 1}"]\n' if chains and i % 10 else ""
        parts.append(f'[apps.a{i}]\ncommand = ["sleep", "100000", "{mark}-a{i}"]\nenv = {{ N = "{i}" }}\n{dep}')
    with open(path, "w") as f:
        f.write("\n".join(parts) + extra)


def run(pypm: str, args: list, cwd: str) -> float:
    t = time.perf_counter()
    subprocess.run([pypm, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def cleanup(pypm: str, proj: str, mark: str) -> None:
    subprocess.run([pypm, "down"], cwd=proj, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    for pid in pids_with(mark.encode()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def bench_check(pypm: str, runs: int) -> float:
    proj = tempfile.mkdtemp(prefix="pypm-bench-check-")
    try:
        write_apps(os.path.join(proj, "pypm.toml"), 500, "chk", chains=True)
        times = [run(pypm, ["check"], proj) for _ in range(runs)]
        return statistics.median(times) * 1000
    finally:
        shutil.rmtree(proj, ignore_errors=True)


def bench_save(pypm: str, runs: int) -> tuple:
    proj = tempfile.mkdtemp(prefix="pypm-bench-save-")
    mark = f"pypmsave{os.getpid()}"
    path = os.path.join(proj, "pypm.toml")
    times = []
    try:
        write_apps(path, 5, mark)
        subprocess.run([pypm, "up", "-d"], cwd=proj, stdout=subprocess.DEVNULL, check=True)
        for k in range(runs):
            needle = f"{mark}-new{k}".encode()
            with open(path, "a") as f:
                t0 = time.perf_counter()
                f.write(f'\n[apps.new{k}]\ncommand = ["sleep", "100000", "{mark}-new{k}"]\n')
            deadline = t0 + 5
            while not pids_with(needle):
                if time.perf_counter() > deadline:
                    raise RuntimeError("the new app did not start within 5 s of the save")
            times.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.25)  # let the next save be a separate change, not a debounced burst
        return statistics.median(times), max(times)
    finally:
        cleanup(pypm, proj, mark)
        shutil.rmtree(proj, ignore_errors=True)


def bench_reload_500(pypm: str, runs: int) -> tuple:
    proj = tempfile.mkdtemp(prefix="pypm-bench-r500-")
    mark = f"pypmr500{os.getpid()}"
    path = os.path.join(proj, "pypm.toml")
    wall = []
    try:
        # watch_config off: only `pypm reload` applies, so each change is measured exactly once.
        write_apps(path, 500, mark)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write("[pypm]\nwatch_config = false\n\n" + text)
        subprocess.run([pypm, "up", "-d", "--wait", "120s"], cwd=proj, stdout=subprocess.DEVNULL, check=True)
        log = os.path.join(proj, ".pypm", "pypm.log")
        for k in range(runs):
            with open(path) as f:
                text = f.read()
            text = re.sub(r'N = "250[^"]*"', f'N = "250-{k}"', text)
            with open(path, "w") as f:
                f.write(text)
            wall.append(run(pypm, ["reload"], proj) * 1000)
        with open(log) as f:
            took = [float(m) for m in re.findall(r"reload took ([0-9.]+) ms", f.read())]
        return statistics.median(took[-runs:]), statistics.median(wall)
    finally:
        cleanup(pypm, proj, mark)
        shutil.rmtree(proj, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
    ap.add_argument("--pypm", default=os.path.join(target, "release", "pypm"))
    ap.add_argument("--quick", action="store_true", help="few runs, for a smoke check")
    ap.add_argument("--out", help="write the results section into this Markdown file")
    a = ap.parse_args()
    a.pypm = os.path.abspath(a.pypm)
    if not os.path.exists(a.pypm):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    n = 3 if a.quick else 20
    check_ms = bench_check(a.pypm, n)
    save_med, save_max = bench_save(a.pypm, n)
    took, wall = bench_reload_500(a.pypm, 3 if a.quick else 10)
    load = open("/proc/loadavg").read().split()[0]
    section = f"""<!-- reload:begin -->
## Reconciliation (issue 2, issue 4)

`python3 bench/reload.py --out docs/benchmarks.md` on {time.strftime('%Y-%m-%d')}, `nproc` = {os.cpu_count()}, load average {load} at the end.

| scenario | pypm | target |
|---|---|---|
| `pypm check`, 500 apps (wall, median of {n}) | {check_ms:.1f} ms | well under 100 ms |
| save the file → new app's pid exists (median of {n}, includes the 100 ms debounce) | {save_med:.0f} ms (max {save_max:.0f}) | < 150 ms |
| reload of a 500-app file, one app changed: supervisor work (median) | {took:.1f} ms | < 50 ms |
| the same, `pypm reload` wall time | {wall:.1f} ms | |
<!-- reload:end -->"""
    print(section)
    if a.out:
        try:
            with open(a.out) as f:
                doc = f.read()
        except FileNotFoundError:
            doc = "# Benchmarks\n"
        pat = re.compile(r"<!-- reload:begin -->.*?<!-- reload:end -->", re.S)
        doc = pat.sub(lambda _: section, doc) if pat.search(doc) else doc.rstrip("\n") + "\n\n" + section + "\n"
        with open(a.out, "w") as f:
            f.write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
