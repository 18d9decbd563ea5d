#!/usr/bin/env python3
"""pypm at scale: 1,000 and 3,000 programs (issue 24) — start, RSS, status, reload-one, stop.

One command (Python 3 standard library only):

    python3 bench/scale.py [--pypm target/release/pypm] [--pypm-alt PATH] [--sizes 1000,3000]
                           [--runs 3] [--status-calls 20] [--status-gap 0.6] [--reloads 5]

Like bench/bench.py (whose /proc and proc-connector helpers it imports): every measurement
writes a fresh temporary project (`/tmp/psXXXXXXXX/pypm.toml`, `state_dir = ".p"`: the control
socket's path stays far below the 107 bytes a Unix socket allows) with N programs
`sleep 100000 0.<marker>` (GNU `sleep` sums its arguments; the marker, unique per invocation,
measurement and program, finds the children in /proc) and starts a fresh supervisor. With
`--pypm-alt`, the two binaries run alternately: run 1 of each size for each binary, then run 2,
..., the binaries' order rotated every run, so drifts of the shared machine hit both alike.
The open-files limit is raised to its hard limit first (the supervisor inherits it: every
program costs it a few descriptors).

Rows, per size N (medians over `--runs`, with min-max):

  start       `pypm up -d` (it returns once no instance is `starting`) from spawn to exit, then
              one `pypm status --json` that must show all N instances `running` (not timed);
              if some are not yet, status is polled and the end is the answer that shows them.
  RSS         VmRSS of the supervisor (pid from `state_dir/pypm.pid`) 2 s after `up -d`
              returned; `base` is the same binary with 1 program (measured in every run), and
              KB/app = (RSS(N) - base) / (N - 1).
  status      `pypm status` as a user runs it (table to /dev/null), spawn to exit, median of
              `--status-calls` calls spaced `--status-gap` s apart: more than the supervisor's
              500 ms CPU/memory cache, so each call pays its sample of /proc like an occasional
              user's does.
  reload-one  one app's `env` value edited in the file, then `pypm reload`: from spawning the
              command until the app's new process has exec'd (the kernel's timestamp of the
              EXEC event whose argv carries the app's marker, from the proc connector; without
              it, `pypm status APP --json` is polled until the pid changed and is `running`).
              `pypm status APP --json` then checks that the new pid runs. Median of
              `--reloads` edits per run.
  stop        `pypm down` from spawn to exit (it waits for the supervisor to stop everything and
              exit); then the supervisor's pid and every program must be gone (polled, so a
              `down` that returned early is charged until they are).

Whatever happens (error, Ctrl-C, SIGTERM), each project still running gets `pypm down`, then
every supervisor this script started (recorded by pid + start time) and every process carrying
this invocation's marker is SIGKILLed. The report is a markdown table on stdout (progress on
stderr): per binary, N = each size and the ratio of the largest size to the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the shared /proc and proc-connector helpers)
from bench import ProcEvents, log, mono_ns, posix_run, read_stat, scan  # noqa: E402

SLEEP = bench.SLEEP
SESSION = bench.SESSION
PE: ProcEvents | None = None
ENV_KEY = "SCALE_RELOAD"

# Everything to clean up: project dirs with a possibly running supervisor, and the supervisors'
# (pid, start time) as recorded when they were found.
LIVE: dict[str, str] = {}  # project dir -> binary
SUPERVISORS: set[tuple[int, int]] = set()


class Failed(RuntimeError):
    pass


class Project:
    def __init__(self, binary: str, n: int, seq: int):
        self.binary, self.n = binary, n
        self.dir = tempfile.mkdtemp(prefix="ps", dir="/tmp")
        self.file = os.path.join(self.dir, "pypm.toml")
        self.prefix = f"0.{SESSION}{seq:03d}"
        self.marks = [f"{self.prefix}{i:05d}" for i in range(n)]
        self.names = [f"a{i:05d}" for i in range(n)]
        # The app whose env the reload row edits: in the middle of the file.
        self.target = n // 2
        self.env_value = 0
        self.write()

    def write(self) -> None:
        lines = ["[pypm]", 'state_dir = ".p"', "watch_config = false", ""]
        for i, (name, mark) in enumerate(zip(self.names, self.marks)):
            lines.append(f"[apps.{name}]")
            lines.append(f'command = ["{SLEEP}", "100000", "{mark}"]')
            if i == self.target:
                lines.append(f'env = {{ {ENV_KEY} = "{self.env_value}" }}')
            lines.append("")
        tmp = self.file + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines))
        os.replace(tmp, self.file)

    def argv(self, *verb: str) -> list[str]:
        return [self.binary, *verb, "--config", self.file]

    def run(self, *verb: str) -> float:
        secs, rc = posix_run(self.argv(*verb), self.dir, os.environ.copy())
        if rc != 0:
            raise Failed(f"`pypm {' '.join(verb)}` exited {rc} (N = {self.n}, {self.dir})")
        return secs

    def status_json(self, app: str | None = None) -> dict:
        argv = self.argv("status", *([app] if app else []), "--json")
        out = subprocess.run(argv, cwd=self.dir, capture_output=True, timeout=60)
        if out.returncode != 0:
            raise Failed(f"`pypm status --json` exited {out.returncode}: {out.stderr.decode()[:300]}")
        return json.loads(out.stdout)

    def supervisor_pid(self) -> int | None:
        try:
            with open(os.path.join(self.dir, ".p", "pypm.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def all_running(report: dict, n: int) -> bool:
    rows = report.get("instances", [])
    return len(rows) == n and all(r["state"] == "running" and r["pid"] for r in rows)


def vmrss_kib(pid: int) -> int:
    kib = bench.vmrss_kib(pid)
    if not kib:
        raise Failed(f"no VmRSS for the supervisor (pid {pid})")
    return kib


def start(p: Project) -> tuple[float, int]:
    """Seconds from spawning `up -d` until all N are running; the supervisor's pid."""
    LIVE[p.dir] = p.binary
    t0 = time.perf_counter()
    up = p.run("up", "-d")
    end = t0 + up
    deadline = time.perf_counter() + 120
    while not all_running(p.status_json(), p.n):
        end = time.perf_counter()
        if end > deadline:
            raise Failed(f"not all {p.n} apps running 120 s after `up -d`")
    pid = p.supervisor_pid()
    st = read_stat(pid) if pid else None
    if st is None:
        raise Failed("no supervisor pid after `up -d`")
    SUPERVISORS.add((pid, st[3]))
    return end - t0, pid


def status_row(p: Project, calls: int, gap: float) -> float:
    times = []
    for _ in range(calls):
        time.sleep(gap)
        times.append(p.run("status"))
    return statistics.median(times)


def reload_one(p: Project) -> float:
    app, mark = p.names[p.target], p.marks[p.target].encode()
    old = p.status_json(app)["instances"][0]["pid"]
    p.env_value += 1
    p.write()
    new_pid = None
    if PE is not None:
        PE.drain()
        t0 = mono_ns()
        secs, rc = posix_run(p.argv("reload"), p.dir, os.environ.copy())
        if rc != 0:
            raise Failed(f"`pypm reload` exited {rc}")
        # The EXEC may have come before `reload` returned: the events wait in the socket.
        for what, ts, _a, tgid, _c, _d in PE.events(time.monotonic() + 30):
            if what == ProcEvents.EXEC and tgid != old and mark in bench.argv_marks(tgid, mark):
                new_pid, took = tgid, (ts - t0) / 1e9
                break
        if new_pid is None:
            raise Failed(f"no new process of `{app}` within 30 s of `pypm reload`")
    t0 = time.perf_counter()
    if PE is None:
        p.run("reload")
    deadline = time.perf_counter() + 30
    while True:
        row = p.status_json(app)["instances"][0]
        now = time.perf_counter()
        if row["state"] == "running" and row["pid"] and row["pid"] != old:
            if new_pid is not None and row["pid"] != new_pid:
                raise Failed(f"`{app}` runs pid {row['pid']}, not the exec'd {new_pid}")
            break
        if now > deadline:
            raise Failed(f"`{app}` not running a new pid within 30 s of `pypm reload`")
    return took if PE is not None else now - t0


def stop(p: Project, sup: int) -> float:
    sup_start = read_stat(sup)[3]
    kids = {pid: read_stat(pid) for pid in scan(p.prefix.encode())}
    kids = {pid: st[3] for pid, st in kids.items() if st}
    t0 = time.perf_counter()
    p.run("down")
    deadline = time.perf_counter() + 60
    while True:
        now = time.perf_counter()
        left = [(q, s) for q, s in [(sup, sup_start), *kids.items()] if bench.alive(q, s)]
        if not left:
            break
        if now > deadline:
            raise Failed(f"{len(left)} processes left 60 s after `pypm down`")
        time.sleep(0.0005)
    LIVE.pop(p.dir, None)
    return now - t0


def measure(binary: str, n: int, seq: int, opts) -> dict:
    res = {}
    p = Project(binary, n, seq)
    try:
        res["start"], sup = start(p)
        time.sleep(2)
        res["rss"] = vmrss_kib(sup)
        if n > 1:
            res["status"] = status_row(p, opts.status_calls, opts.status_gap)
            res["reload"] = statistics.median(reload_one(p) for _ in range(opts.reloads))
        res["stop"] = stop(p, sup)
    finally:
        if p.dir in LIVE:
            down(p.dir, binary)
        p.remove()
    return res


def down(proj: str, binary: str) -> None:
    try:
        subprocess.run([binary, "down", "--config", os.path.join(proj, "pypm.toml")],
                       cwd=proj, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pass
    LIVE.pop(proj, None)


def cleanup() -> None:
    for proj, binary in list(LIVE.items()):
        down(proj, binary)
        shutil.rmtree(proj, ignore_errors=True)
    for pid, st in SUPERVISORS:
        if bench.alive(pid, st):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for pid in scan(f"0.{SESSION}".encode()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def cell(vals: list[float], scale: float, digits: int) -> str:
    if not vals:
        return "—"
    m = statistics.median(vals) * scale
    s = f"{m:.{digits}f}"
    if len(vals) > 1:
        s += f" ({min(vals) * scale:.{digits}f}–{max(vals) * scale:.{digits}f})"
    return s


ROWS = [
    # key, label, scale, digits, target
    ("start", "`up -d` → all running (s)", 1, 2, ""),
    ("start_per_app", "… per app (ms)", 1e3, 3, "≤ 0.6"),
    ("rss", "supervisor RSS (MB)", 1 / 1024, 1, ""),
    ("kb_per_app", "… per app above the 1-app base (KB)", 1, 1, "≤ 6"),
    ("status", "`status` (ms)", 1e3, 1, "≤ 10 at 3,000"),
    ("reload", "reload-one: env edit + `reload` → new pid (ms)", 1e3, 1, "≤ 30"),
    ("stop", "`down` → all gone (s)", 1, 3, "≤ 0.3 at 3,000"),
]


def table(results: dict, binaries: list[tuple[str, str]], sizes: list[int]) -> str:
    lo, hi = min(sizes), max(sizes)
    head = ["row (median, min–max)"]
    for label, _ in binaries:
        head += [f"{label} N={s:,}" for s in sizes]
        if len(sizes) > 1:
            head.append(f"{label} {hi:,}/{lo:,}")
    head.append("issue 24 target")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, name, scale, digits, target in ROWS:
        cells = [name]
        for label, _ in binaries:
            for s in sizes:
                cells.append(cell(results[label][s].get(key, []), scale, digits))
            if len(sizes) > 1:
                a = results[label][lo].get(key, [])
                b = results[label][hi].get(key, [])
                ratio = statistics.median(b) / statistics.median(a) if a and b and statistics.median(a) else None
                cells.append(f"{ratio:.2f}×" if ratio is not None else "—")
        cells.append(target + (" (≤ 3.3× ratio)" if len(sizes) > 1 else ""))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Details: the module docstring (head bench/scale.py).")
    ap.add_argument("--pypm", default="target/release/pypm", help="pypm binary (default %(default)s)")
    ap.add_argument("--pypm-alt", help="a second pypm binary, run alternately with the first")
    ap.add_argument("--sizes", default="1000,3000", help="comma list of program counts (default %(default)s)")
    ap.add_argument("--runs", type=int, default=3, help="runs per size and binary (default %(default)s)")
    ap.add_argument("--status-calls", type=int, default=20, help="status calls per run (default %(default)s)")
    ap.add_argument("--status-gap", type=float, default=0.6,
                    help="seconds between status calls; > 0.5 defeats the supervisor's sample cache (default %(default)s)")
    ap.add_argument("--reloads", type=int, default=5, help="reload-one edits per run (default %(default)s)")
    opts = ap.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",") if s]
    binaries = [("pypm", os.path.abspath(opts.pypm))]
    if opts.pypm_alt:
        binaries.append(("pypm-alt", os.path.abspath(opts.pypm_alt)))
    for _, b in binaries:
        if not os.access(b, os.X_OK):
            log(f"error: `{b}` is not an executable (build it with `cargo build --release`)")
            return 2

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    need = 4 * max(sizes) + 64
    if want < need:
        log(f"warning: open-files limit {want} < {need}: the largest size may fail")

    global PE
    try:
        PE = ProcEvents()
        timing = "reload-one from the proc connector's EXEC timestamps"
    except OSError as e:
        PE = None
        timing = f"reload-one by polling `pypm status APP --json` (no proc connector: {e})"
    # Ctrl-C and SIGTERM both end in the cleanup below (SIGINT too when started in the
    # background, where it arrives ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    results = {label: {s: {} for s in sizes} for label, _ in binaries}
    load0 = open("/proc/loadavg").read().split()[:3]
    seq = 0
    try:
        for run in range(opts.runs):
            order = binaries[run % len(binaries):] + binaries[:run % len(binaries)]
            for label, binary in order:
                seq += 1
                base = measure(binary, 1, seq, opts)["rss"]
                for s in sizes:
                    seq += 1
                    log(f"run {run + 1}/{opts.runs}: {label} N={s}")
                    r = measure(binary, s, seq, opts)
                    r["start_per_app"] = r["start"] / s
                    r["kb_per_app"] = (r["rss"] - base) / (s - 1)
                    for k, v in r.items():
                        results[label][s].setdefault(k, []).append(v)
                    log("  " + ", ".join(f"{k} {v:.4g}" for k, v in r.items()) + f" (base RSS {base} KiB)")
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        cleanup()
        if PE is not None:
            PE.close()
    load1 = open("/proc/loadavg").read().split()[:3]
    print(table(results, binaries, sizes))
    print()
    for label, b in binaries:
        print(f"- {label}: `{b}`")
    print(f"- {timing}; {opts.runs} runs; status: median of {opts.status_calls} calls "
          f"{opts.status_gap} s apart; {os.cpu_count()} CPUs; load average "
          f"{' '.join(load0)} before, {' '.join(load1)} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
