#!/usr/bin/env python3
"""pypm benchmark: pypm against supervisord, PM2 and Horust on the same machine, in the same run.

One command (Python 3 standard library only):

    python3 bench/bench.py [--quick] [--runs N] [--peers pypm,supervisord,pm2,horust]
                           [--scenarios all] [--pypm PATH] [--out docs/benchmarks.md]

Without `--pypm`, pypm is built as shipped with `packaging/build-release` (static-pie on Linux/glibc)
and `target/dist/pypm` is used.
Peers are installed into a scratch prefix this script owns (`bench/.scratch`, git-ignored):
supervisord with `pip install supervisor` into a venv, PM2 with `npm install pm2` (each PM2 run
gets its own `PM2_HOME` inside its temp project), Horust with `cargo install horust --root`.
A peer that cannot be installed is reported as such in the table.

One more, optional, manager: `floor` (`--peers pypm,floor`, not in the default list) is
bench/floor.c compiled with `cc -O2` into bench/.scratch (skipped with a note when there is no C
compiler): a minimal supervisor that blocks in `waitpid`, then `vfork` + `execv`s `sleep 100000
MARKER` again, the marker coming from an environment variable so its own cmdline does not carry
it. It takes part in scenario 3 only (its other cells are "—"); its row is the physical floor of
"SIGKILL -> new pid" on the machine (kernel exit, parent wake-up, fork, exec).

`--scenarios` (comma list, default `all`) runs a subset: `start` (1), `stop` (2), `idle` (4),
`status` (6), `reload` (7, command), `crash` (3), `logs` (5), `watch` (7, save file); `fleet` =
start,stop,idle,status,reload. Scenarios 2, 4, 6, 7 need a cold-started manager, so selecting
any of them also measures the cold start they ride on. `--quick`: N = 5 (one fleet for every
fleet row), one run, pypm only, 10 kills, 20 MiB of logs, 3 s idle; it is the CI smoke run.

Every run of every scenario writes a fresh temporary project (the manager's config file with
N programs) and starts a fresh manager. Programs are `sleep 100000 0.<marker>`: GNU `sleep`
sums its arguments, so the marker (unique per bench invocation, scenario and program) costs
nothing and lets the script find every child in /proc by its cmdline. Whatever happens (error,
Ctrl-C), each manager is stopped with its own stop command, then every process carrying this
invocation's marker and every manager process the script recorded (by pid + start time) is
SIGKILLed. Managers run alternately: run 1 of every manager, then run 2 of every manager, ...,
with the order rotated each run, so slow drifts of the shared machine hit everyone alike.

Timing. Latencies (scenarios 1, 2, 3, 7) are taken from the Linux proc connector when it is
available: a netlink socket (NETLINK_CONNECTOR, group CN_IDX_PROC, PROC_CN_MCAST_LISTEN, 8 MiB
receive buffer; needs CONFIG_PROC_EVENTS, and root before Linux 6.6) on which the kernel reports every FORK, EXEC
and EXIT with a CLOCK_MONOTONIC `timestamp_ns` taken when it happens. The script reads
`time.clock_gettime_ns(CLOCK_MONOTONIC)` just before its action (t0), drains stale events just
before that, then sleeps in recv() and reads the events; an end time is the kernel's timestamp
of the event, so how fast the script itself notices is irrelevant. This replaced /proc polling:
a poller in a tight loop occupies one of the 2 cores of the machine the figures come from and
competes with the manager for it (a 10-line C supervisor measured 1.9-2.8 ms median "SIGKILL ->
new pid" with the poller, 0.62-0.73 ms from kernel timestamps). At start the socket is checked
by spawning `sleep 0` and expecting its FORK and EXEC events, in our pid namespace, with
timestamps between our clock readings. If the socket cannot be opened, subscribed or checked
(no permission, no CONFIG_PROC_EVENTS, another pid namespace), or if PYPM_BENCH_POLL=1 is set (to test
this path), the script falls back to polling /proc (times with `time.perf_counter`, "child
exists" = a /proc entry whose cmdline carries the program's marker; loops sleep 0.5 ms between
scans unless said otherwise). The report says under the table which timing a run used
("Timing: ..."). An overflow of the receive buffer (ENOBUFS) during a measurement fails that
scenario with a clear error (scenario 3 drops that one sample, up to 5 times); overflows while
nothing is measured are drained and ignored. A kernel event costs the manager a few µs per
fork/exec/exit while the script listens; that is included in both modes alike.

"Exec of marker M" (event timing) = an EXEC event whose pid's /proc/PID/cmdline, read when the
event arrives, has an argument starting with M: the program `sleep 100000 M` has exec'd, not a
wrapper such as `sh -c "sleep 100000 M"` that carries M inside a longer argument.

Scenarios:

  1. cold start, N = 50 and N = 200: from spawning the manager's start command (`pypm up -d`,
     `supervisord -c F`, `pm2 start eco.json`, `horust --services-path D`) until all N children
     exist. Events: t0 = CLOCK_MONOTONIC before spawning; end = timestamp of the first EXEC of
     the N-th distinct marker (the latest of the N programs' first execs). Polling: until N
     marker-carrying /proc entries exist. The manager's own start-up is included (every manager
     starts from nothing).
  2. stop all, N = 200 (same manager as the N = 200 cold start, 1 s after it): from spawning the
     stop command (`pypm down`, `supervisorctl shutdown`, `pm2 kill`, SIGTERM to horust) until
     every child has exited. The children are the marker-carrying pids listed before the stop
     (with their start times; the ones already dead are left out). Events: end = timestamp of
     the EXIT event of the last of them (the kernel emits it as the process exits, before it
     becomes a zombie). Polling: until each /proc entry is gone or is a zombie, checked with its
     start time so a recycled pid is not mistaken for it.
  3. crash -> new pid: one program, restart delay set to the minimum each manager allows
     (pypm `restart_delay = "0"`, `min_uptime = "0"`, `max_restarts = 1000000`; supervisord
     `startsecs = 0`; PM2 `restart_delay = 0`, `min_uptime = 0`; Horust `backoff = "0s"`).
     40 times (10 in --quick): sleep a random 50-200 ms, drain events, t0 = CLOCK_MONOTONIC,
     SIGKILL the child; end = timestamp of the first EXEC of the marker by a pid other than the
     killed one. Reported: median and p95 of the 40 kill() -> new-pid latencies (per run; the
     table shows the median over runs), and where the time goes, as medians of three phases
     per kill: "kill -> old child gone" (t0 -> the EXIT event of the killed pid), "old child
     gone -> manager forks" (that EXIT -> the FORK event, by the killed child's parent, that
     created the pid which then exec'd the marker) and "fork -> exec" (that FORK -> the EXEC).
     When the exec'ing pid was not forked by that parent (e.g. a manager's intermediate
     process forked it) the last two phases are left out for that kill. Polling (no phases):
     list /proc, SIGKILL, then in a tight loop (no sleep) list /proc and read the cmdline of
     every pid not in the pre-kill listing until one carries the marker.
  4. idle: the N = 50 manager of scenario 1, 1 s after all children exist, sits idle for 30 s
     (3 s in --quick). CPU = delta of utime+stime (/proc/PID/stat, 1/CLK_TCK resolution) summed
     over the manager's own processes (the manager's root pid and its descendants that do not
     carry a marker); also the more precise sum of /proc/PID/task/*/schedstat run time. RSS =
     sum of VmRSS of those processes at the end of the idle period ("RSS 50 apps"); "RSS 200
     apps" is taken the same way 1 s after the N = 200 cold start.
  5. logs: one program `sh logger.sh MARKER` running `read x < FIFO; cat DATA; exec sleep
     100000 MARKER`. DATA is
     200 MiB (20 MiB in --quick) of 100-byte numbered lines. Once the child exists, the script
     opens FIFO for writing (t0), which releases `cat`; the end is when the size of the
     program's stdout log file(s) (pypm: `APP.out.log*`, with `log_max_size = "1G"` so nothing
     rotates) reaches the size of DATA (polled every 1 ms; timeout 120 s). Before t0 the script
     calls sync(2) and waits 0.5 s, so the writeback of an earlier run's 200 MiB does not land in
     this one. Reported: wall time,
     manager CPU (utime+stime delta over the same interval), lines lost (lines in DATA minus
     lines in the log files) and whether the log is byte-identical to DATA ("in order").
  6. status: with the N = 50 manager, after the idle period, 20 runs of the manager's status
     command (`pypm status --json`, `supervisorctl status`, `pm2 jlist`; Horust has none),
     spawned with posix_spawn, stdout/stderr to /dev/null; wall time from spawn to reap; median.
  7. reload: still with the N = 50 manager (pypm: `watch_config = false` here, so only the
     command applies it): rewrite the config with one more program, then spawn the manager's
     apply command (`pypm reload`, `supervisorctl update`, `pm2 start eco.json --only NEW`;
     Horust has none) and time until the new child exists: events, t0 = CLOCK_MONOTONIC just
     before spawning the command, end = timestamp of the first EXEC of the new marker; polling,
     tight loop as in 3.
     pypm only, in its own project with `watch_config = true` and 5 programs: rewrite the
     file in place with one more program and time from the write until the new child exists
     (events: t0 just before opening the file for writing, end = EXEC of the new marker); if
     none appears within 2 s the row says "not implemented".

Numbers are medians over runs with (min-max). On a small shared machine they are noisy; the
doc records the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import hashlib
import json
import os
import re
import platform
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SCRATCH = os.path.join(HERE, ".scratch")
TICK = os.sysconf("SC_CLK_TCK")
SLEEP = shutil.which("sleep") or "/bin/sleep"
SH = shutil.which("sh") or "/bin/sh"
LINE_BYTES = 100
# `--out` keeps the sections other scripts write between `<!-- NAME:begin -->` and
# `<!-- NAME:end -->` markers (bench/roll.py: `roll`, bench/reload.py: `reload`).
KEPT_SECTION = re.compile(r"<!-- (\w+):begin -->.*?<!-- \1:end -->", re.S)

# Marker shared by every child this invocation starts: "0.<SESSION><scenario seq><program>".
SESSION = str(random.randint(10_000_000, 99_999_999))
_seq = 0


def new_nonce() -> str:
    global _seq
    _seq += 1
    return f"{SESSION}{_seq:03d}"


def marker(nonce: str, i: int) -> str:
    return f"0.{nonce}{i:04d}"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# /proc helpers


def read_cmdline(pid) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def read_stat(pid):
    """(state, ppid, utime+stime ticks, starttime) or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(b")") + 2 :].split()
    return rest[0].decode(), int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[19])


def schedstat_ns(pid) -> int:
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def vmrss_kib(pid) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pids() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def scan(needle: bytes) -> dict[int, bytes]:
    out = {}
    for p in pids():
        c = read_cmdline(p)
        if c and needle in c:
            out[p] = c
    return out


def alive(pid: int, start: int) -> bool:
    st = read_stat(pid)
    return st is not None and st[3] == start and st[0] != "Z"


class Watcher:
    """Finds children carrying a marker, reading only the cmdlines of pids that are new."""

    def __init__(self, needle: bytes):
        self.needle = needle
        self.baseline = pids()
        self.found: dict[int, bytes] = {}
        for p in self.baseline:
            c = read_cmdline(p)
            if c and needle in c:
                self.found[p] = c

    def rebase(self) -> None:
        self.baseline = pids()

    def poll(self) -> None:
        for p in pids() - self.baseline:
            if p in self.found:
                continue
            c = read_cmdline(p)
            # A forked child that has not exec'd yet shows its parent's cmdline: read it again
            # next time rather than remembering it as "not ours".
            if c and self.needle in c:
                self.found[p] = c

    def count(self, needle: bytes | None = None) -> int:
        if needle is None:
            return len(self.found)
        return sum(1 for c in self.found.values() if needle in c)

    def wait_count(self, n: int, timeout: float, pause: float = 0.0005) -> float | None:
        deadline = time.perf_counter() + timeout
        while True:
            self.poll()
            now = time.perf_counter()
            if len(self.found) >= n:
                return now
            if now > deadline:
                return None
            if pause:
                time.sleep(pause)

    def wait_marker(self, needle: bytes, exclude: set[int], timeout: float) -> tuple[float, int] | None:
        """Tight loop until a pid not in `exclude` carries `needle`."""
        deadline = time.perf_counter() + timeout
        full_after = time.perf_counter() + 0.5
        while True:
            self.poll()
            now = time.perf_counter()
            for p, c in self.found.items():
                if needle in c and p not in exclude and os.path.exists(f"/proc/{p}"):
                    return now, p
            if now > full_after:
                # pid_max may be small: a recycled pid number would hide in the baseline.
                for p, c in scan(needle).items():
                    if p not in exclude:
                        return time.perf_counter(), p
                full_after = now + 0.1
            if now > deadline:
                return None


# ---------------------------------------------------------------------------------------------
# kernel proc connector: fork/exec/exit events with CLOCK_MONOTONIC timestamps


def mono_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class ProcEventsOverflow(RuntimeError):
    """The socket's receive buffer overflowed (ENOBUFS): events were lost."""


class ProcEvents:
    """Netlink proc connector (NETLINK_CONNECTOR, group CN_IDX_PROC); needs CONFIG_PROC_EVENTS,
    and root before Linux 6.6. `events()` yields (what, timestamp_ns, a, b, c, d) where the timestamp is
    the kernel's CLOCK_MONOTONIC time of the event and a-d are the first four u32 of event_data:
    FORK: parent_pid, parent_tgid, child_pid, child_tgid; EXEC: pid, tgid; EXIT: pid, tgid,
    exit_code, exit_signal."""

    NETLINK_CONNECTOR = 11
    CN_IDX_PROC = CN_VAL_PROC = 1
    NLMSG_DONE = 3
    LISTEN, IGNORE = 1, 2
    NONE, FORK, EXEC, EXIT = 0, 1, 2, 0x80000000
    SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
    RCVBUF = 8 << 20

    def __init__(self):
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, self.NETLINK_CONNECTOR)
        try:
            s.bind((0, self.CN_IDX_PROC))  # EPERM when not root (before Linux 6.6)
            try:  # past net.core.rmem_max needs CAP_NET_ADMIN
                s.setsockopt(socket.SOL_SOCKET, self.SO_RCVBUFFORCE, self.RCVBUF)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RCVBUF)
            self.s = s
            self.portid = s.getsockname()[0]
            self._ctl(self.LISTEN)
            self.self_test()
        except BaseException:
            s.close()
            raise

    def _ctl(self, op: int) -> None:
        # nlmsghdr + cn_msg{idx, val, seq, ack, len, flags} + enum proc_cn_mcast_op
        msg = struct.pack("=IIIIHHI", self.CN_IDX_PROC, self.CN_VAL_PROC, 0, 0, 4, 0, op)
        self.s.send(struct.pack("=IHHII", 16 + len(msg), self.NLMSG_DONE, 0, 0, self.portid) + msg)

    def self_test(self) -> None:
        """Spawns `sleep 0` and checks that its FORK and EXEC events arrive, name the pid we know
        (same pid namespace) and carry timestamps between our clock readings."""
        t0 = mono_ns()
        pid = os.posix_spawn(SLEEP, [SLEEP, "0"], os.environ)
        os.waitpid(pid, 0)
        t1 = mono_ns()
        seen = set()
        for what, ts, _a, b, c, d in self.events(time.monotonic() + 2):
            if (what == self.FORK and d == pid and c == pid) or (what == self.EXEC and b == pid):
                if not t0 <= ts <= t1:
                    raise OSError(f"event timestamp {ts} outside [{t0}, {t1}]: not CLOCK_MONOTONIC")
                seen.add(what)
                if len(seen) == 2:
                    return
        raise OSError("no fork/exec event for a test child within 2 s (other pid namespace?)")

    def close(self) -> None:
        try:
            self._ctl(self.IGNORE)
        except OSError:
            pass
        self.s.close()

    def drain(self) -> None:
        """Drops every queued event (and a past overflow: it concerns events before now)."""
        self.s.settimeout(0.0)  # non-blocking (with a timeout, recv would wait first)
        while True:
            try:
                self.s.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise

    def events(self, deadline: float):
        """Events until `deadline` (time.monotonic()); several may come in one datagram."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.s.settimeout(left)
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    raise ProcEventsOverflow(
                        "proc connector: receive buffer overflow (ENOBUFS), events lost") from None
                raise
            off = 0
            while off + 16 <= len(data):
                ln, typ = struct.unpack_from("=IH", data, off)
                if ln < 16:
                    break
                if typ == self.NLMSG_DONE and ln >= 16 + 20 + 32:
                    idx, val = struct.unpack_from("=II", data, off + 16)
                    if idx == self.CN_IDX_PROC and val == self.CN_VAL_PROC:
                        what, _cpu, ts = struct.unpack_from("=IIQ", data, off + 36)
                        yield (what, ts) + struct.unpack_from("=IIII", data, off + 52)
                off += (ln + 3) & ~3


PE: ProcEvents | None = None  # set by main() when the proc connector works
TIMING = "/proc polling"


def argv_marks(pid: int, needle: bytes) -> list[bytes]:
    """The arguments of `pid` that start with `needle` (whole arguments: `sh -c "sleep 1 0.M"`
    carries the marker inside an argument and does not count, the `sleep` it runs does)."""
    c = read_cmdline(pid)
    if not c:
        return []
    return [a for a in c.split(b"\0") if a.startswith(needle)]


def wait_execs(needle: bytes, n: int, deadline: float) -> dict[bytes, tuple[int, int]]:
    """Reads events until `n` distinct markers starting with `needle` have been exec'd:
    {marker: (pid, exec timestamp_ns)} of the first exec of each; fewer on timeout."""
    found: dict[bytes, tuple[int, int]] = {}
    for what, ts, _a, tgid, _c, _d in PE.events(deadline):
        if what != ProcEvents.EXEC:
            continue
        for mk in argv_marks(tgid, needle):
            if mk not in found:
                found[mk] = (tgid, ts)
        if len(found) >= n:
            break
    return found


def wait_exits(left: set[int], deadline: float) -> int | None:
    """Reads events until every pid in `left` has an EXIT event; the last one's timestamp."""
    left = set(left)
    last = None
    for what, ts, pid, _b, _c, _d in PE.events(deadline):
        if what == ProcEvents.EXIT and pid in left:
            left.discard(pid)
            last = ts
            if not left:
                return last
    return None


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in pids():
        st = read_stat(p)
        if st:
            children.setdefault(st[1], []).append(p)
    out, todo = set(), [root]
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(children.get(p, []))
    return out


# ---------------------------------------------------------------------------------------------
# programs and managers


class Program:
    def __init__(self, name: str, argv: list[str], mark: str):
        self.name, self.argv, self.mark = name, argv, mark


def sleeper(name: str, mark: str) -> Program:
    return Program(name, [SLEEP, "100000", mark], mark)


def shell_quote(s: str) -> str:
    if s and all(c.isalnum() or c in "/._-+=:," for c in s):
        return s
    return "'" + s.replace("'", "'\"'\"'") + "'"


def posix_run(argv: list[str], cwd: str, env: dict) -> tuple[float, int]:
    """Wall time of a command from spawn to reap, with output discarded."""
    fa = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0),
    ]
    old = os.getcwd()
    os.chdir(cwd)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
        _, status = os.waitpid(pid, 0)
        t1 = time.perf_counter()
    finally:
        os.chdir(old)
    return t1 - t0, os.waitstatus_to_exitcode(status)


class Manager:
    """One manager under test in one temp project. Subclasses write its config and commands."""

    name = "?"
    has_status = True
    has_reload = True

    def __init__(self, proj: str):
        self.proj = proj
        self.env = dict(os.environ)
        self.env.pop("PYPM_CONFIG", None)
        self.procs: dict[int, int] = {}  # manager pids seen -> start time, for the final kill
        self.started = False
        self.popen = None

    # config
    def write(self, programs: list[Program], fast_restart=False, watch=False) -> None:
        raise NotImplementedError

    def log_files(self, prog: Program) -> list[str]:
        raise NotImplementedError

    # commands
    def start_argv(self) -> list[str]:
        raise NotImplementedError

    def stop_argv(self) -> list[str] | None:
        raise NotImplementedError

    def status_argv(self) -> list[str] | None:
        return None

    def reload_argv(self, new: Program) -> list[str] | None:
        return None

    def root_pid(self) -> int | None:
        raise NotImplementedError

    def spawn_start(self) -> None:
        self.started = True
        self.popen = subprocess.Popen(
            self.start_argv(), cwd=self.proj, env=self.env,
            stdin=subprocess.DEVNULL, stdout=open(os.path.join(self.proj, "start.out"), "wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_root(self, timeout=30.0) -> int:
        deadline = time.time() + timeout
        while time.time() < deadline:
            p = self.root_pid()
            if p and read_stat(p):
                return p
            time.sleep(0.005)
        raise RuntimeError(f"{self.name}: manager pid not found in {self.proj}")

    def own_pids(self, needle: bytes) -> list[int]:
        root = self.wait_root()
        out = []
        skip = set()
        for p in sorted(descendants(root)):
            c = read_cmdline(p) or b""
            if needle in c:
                skip |= descendants(p)
        for p in descendants(root):
            if p in skip:
                continue
            st = read_stat(p)
            if st:
                self.procs[p] = st[3]
                out.append(p)
        return out

    def cpu(self, own: list[int]) -> tuple[float, int]:
        ticks, ns = 0, 0
        for p in own:
            st = read_stat(p)
            if st:
                ticks += st[2]
            ns += schedstat_ns(p)
        return ticks / TICK, ns

    def rss_mib(self, own: list[int]) -> float:
        return sum(vmrss_kib(p) for p in own) / 1024

    def stop(self) -> None:
        argv = self.stop_argv()
        if argv:
            subprocess.run(argv, cwd=self.proj, env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def spawn_stop(self):
        argv = self.stop_argv()
        return subprocess.Popen(argv, cwd=self.proj, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cleanup(self, needle: bytes) -> None:
        if self.started:
            try:
                r = self.root_pid()
                if r and read_stat(r):
                    self.stop()
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                log(f"  {self.name}: stop failed: {e}")
        for p in scan(needle):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        for p, start in self.procs.items():
            st = read_stat(p)
            if st and st[3] == start and st[0] != "Z":
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        if self.popen is not None:
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


class Pypm(Manager):
    name = "pypm"
    binary = ""

    def write(self, programs, fast_restart=False, watch=False):
        lines = ["[pypm]", 'state_dir = ".pypm"', 'log_dir = ".pypm/logs"',
                 f"watch_config = {'true' if watch else 'false'}", ""]
        for p in programs:
            lines.append(f"[apps.{p.name}]")
            lines.append("command = " + json.dumps(p.argv))
            lines.append('log_max_size = "1G"')
            if fast_restart:
                lines += ['restart_delay = "0"', 'min_uptime = "0"', "max_restarts = 1000000"]
            lines.append("")
        with open(os.path.join(self.proj, "pypm.toml"), "w") as f:
            f.write("\n".join(lines))

    def log_files(self, prog):
        d = os.path.join(self.proj, ".pypm", "logs")
        try:
            names = os.listdir(d)
        except OSError:
            return []
        base = f"{prog.name}.out.log"
        rotated = sorted((n for n in names if n.startswith(base + ".")),
                         key=lambda n: -int(n.rsplit(".", 1)[1]))
        return [os.path.join(d, n) for n in rotated + ([base] if base in names else [])]

    def cfg(self):
        return ["--config", os.path.join(self.proj, "pypm.toml")]

    def start_argv(self):
        return [self.binary, "up", "-d"] + self.cfg()

    def stop_argv(self):
        return [self.binary, "down"] + self.cfg()

    def status_argv(self):
        return [self.binary, "status", "--json"] + self.cfg()

    def reload_argv(self, new):
        return [self.binary, "reload"] + self.cfg()

    def root_pid(self):
        try:
            with open(os.path.join(self.proj, ".pypm", "pypm.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None


class PypmAlt(Pypm):
    """A second pypm build (`--pypm-alt PATH`), e.g. the musl binary of the wheel against the
    glibc one, run alternately with the first like any peer."""
    name = "pypm-alt"
    binary = ""


class Supervisord(Manager):
    name = "supervisord"
    venv = os.path.join(SCRATCH, "venv")

    def write(self, programs, fast_restart=False, watch=False):
        os.makedirs(os.path.join(self.proj, "logs"), exist_ok=True)
        conf = f"""[unix_http_server]
file={self.proj}/supervisor.sock

[supervisord]
logfile={self.proj}/supervisord.log
pidfile={self.proj}/supervisord.pid
childlogdir={self.proj}/logs
nodaemon=false

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{self.proj}/supervisor.sock
"""
        for p in programs:
            conf += f"""
[program:{p.name}]
command={' '.join(shell_quote(a) for a in p.argv)}
autorestart=true
startsecs=0
startretries=1000000
stopwaitsecs=10
stdout_logfile={self.proj}/logs/{p.name}.out.log
stdout_logfile_maxbytes=0
stderr_logfile={self.proj}/logs/{p.name}.err.log
stderr_logfile_maxbytes=0
"""
        with open(os.path.join(self.proj, "supervisord.conf"), "w") as f:
            f.write(conf)

    def log_files(self, prog):
        p = os.path.join(self.proj, "logs", f"{prog.name}.out.log")
        return [p] if os.path.exists(p) else []

    def conf(self):
        return ["-c", os.path.join(self.proj, "supervisord.conf")]

    def start_argv(self):
        return [os.path.join(self.venv, "bin", "supervisord")] + self.conf()

    def ctl(self, *a):
        return [os.path.join(self.venv, "bin", "supervisorctl")] + self.conf() + list(a)

    def stop_argv(self):
        return self.ctl("shutdown")

    def status_argv(self):
        return self.ctl("status")

    def reload_argv(self, new):
        return self.ctl("update")

    def root_pid(self):
        try:
            with open(os.path.join(self.proj, "supervisord.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None


class Pm2(Manager):
    name = "pm2"
    home = os.path.join(SCRATCH, "pm2")

    def __init__(self, proj):
        super().__init__(proj)
        self.env["PM2_HOME"] = os.path.join(proj, "pm2home")
        self.env["PM2_DISABLE_VERSION_CHECK"] = "true"

    def write(self, programs, fast_restart=False, watch=False):
        apps = []
        for p in programs:
            apps.append({
                "name": p.name, "script": p.argv[0], "args": p.argv[1:], "interpreter": "none",
                "exec_mode": "fork", "autorestart": True, "restart_delay": 0,
                "min_uptime": 0 if fast_restart else 1000, "max_restarts": 1000000,
                "kill_timeout": 10000, "merge_logs": True,
                "out_file": os.path.join(self.proj, "logs", f"{p.name}.out.log"),
                "error_file": os.path.join(self.proj, "logs", f"{p.name}.err.log"),
            })
        with open(os.path.join(self.proj, "eco.json"), "w") as f:
            json.dump({"apps": apps}, f)

    def log_files(self, prog):
        p = os.path.join(self.proj, "logs", f"{prog.name}.out.log")
        return [p] if os.path.exists(p) else []

    def pm2(self, *a):
        return [shutil.which("node") or "node",
                os.path.join(self.home, "node_modules", "pm2", "bin", "pm2")] + list(a)

    def start_argv(self):
        return self.pm2("start", os.path.join(self.proj, "eco.json"))

    def stop_argv(self):
        return self.pm2("kill")

    def status_argv(self):
        return self.pm2("jlist")

    def reload_argv(self, new):
        return self.pm2("start", os.path.join(self.proj, "eco.json"), "--only", new.name)

    def root_pid(self):
        try:
            with open(os.path.join(self.proj, "pm2home", "pm2.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None


class Foreground(Manager):
    """A manager with no stop command: the process the script started is stopped with SIGTERM."""

    def stop_argv(self):
        return None

    def root_pid(self):
        return self.popen.pid if self.popen else None

    def stop(self):
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def spawn_stop(self):
        self.popen.send_signal(signal.SIGTERM)
        return None


class Horust(Foreground):
    name = "horust"
    has_status = False
    has_reload = False
    binary = os.path.join(SCRATCH, "horust", "bin", "horust")

    def write(self, programs, fast_restart=False, watch=False):
        d = os.path.join(self.proj, "services")
        os.makedirs(d, exist_ok=True)
        os.makedirs(os.path.join(self.proj, "logs"), exist_ok=True)
        for p in programs:
            cmd = " ".join(shell_quote(a) for a in p.argv)
            with open(os.path.join(d, f"{p.name}.toml"), "w") as f:
                f.write(f"""command = {json.dumps(cmd)}
stdout = {json.dumps(os.path.join(self.proj, 'logs', p.name + '.out.log'))}
stderr = {json.dumps(os.path.join(self.proj, 'logs', p.name + '.err.log'))}
[restart]
strategy = "always"
backoff = "0s"
attempts = 0
[termination]
wait = "10s"
""")

    def log_files(self, prog):
        p = os.path.join(self.proj, "logs", f"{prog.name}.out.log")
        return [p] if os.path.exists(p) else []

    def start_argv(self):
        return [self.binary, "--services-path", os.path.join(self.proj, "services")]


class Floor(Foreground):
    """bench/floor.c: blocking waitpid + vfork + execv, the floor of "SIGKILL -> new pid"."""

    name = "floor"
    has_status = False
    has_reload = False
    source = os.path.join(HERE, "floor.c")
    binary = os.path.join(SCRATCH, "floor")

    def write(self, programs, fast_restart=False, watch=False):
        if len(programs) != 1 or programs[0].argv[:2] != [SLEEP, "100000"]:
            raise RuntimeError("floor runs exactly one `sleep 100000 MARKER` program")
        self.env["PYPM_BENCH_FLOOR_MARK"] = programs[0].mark

    def log_files(self, prog):
        return []

    def start_argv(self):
        return [self.binary, SLEEP]  # SIGTERM: it kills its child, then exits


MANAGERS = {"pypm": Pypm, "pypm-alt": PypmAlt, "supervisord": Supervisord, "pm2": Pm2,
            "horust": Horust, "floor": Floor}
# Scenarios a manager takes part in (default: all).
ONLY = {"floor": {"crash"}}
FLEET = ["start", "stop", "idle", "status", "reload"]
SCENARIOS = FLEET + ["crash", "logs", "watch"]


# ---------------------------------------------------------------------------------------------
# installation


def install(name: str) -> tuple[bool, str]:
    """Installs a peer into the scratch prefix; returns (ok, version or reason)."""
    os.makedirs(SCRATCH, exist_ok=True)
    try:
        if name == "pypm-alt":
            if not PypmAlt.binary:
                return False, "needs --pypm-alt PATH"
            return True, sh_out([PypmAlt.binary, "--version"])
        if name == "supervisord":
            v = Supervisord.venv
            if not os.path.exists(os.path.join(v, "bin", "supervisord")):
                log("installing supervisor into " + v)
                subprocess.run([sys.executable, "-m", "venv", v], check=True)
                subprocess.run([os.path.join(v, "bin", "pip"), "install", "-q", "supervisor"],
                               check=True)
            out = subprocess.run([os.path.join(v, "bin", "supervisord"), "--version"],
                                 capture_output=True, text=True, check=True).stdout.strip()
            return True, "supervisord " + out
        if name == "pm2":
            pkg = os.path.join(Pm2.home, "node_modules", "pm2", "package.json")
            if not os.path.exists(pkg):
                log("installing pm2 into " + Pm2.home)
                os.makedirs(Pm2.home, exist_ok=True)
                subprocess.run(["npm", "install", "--no-audit", "--no-fund", "pm2"],
                               cwd=Pm2.home, check=True)
            with open(pkg) as f:
                v = json.load(f)["version"]
            node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
            return True, f"pm2 {v} (node {node.strip()})"
        if name == "horust":
            if not os.path.exists(Horust.binary):
                log("installing horust (cargo install) into " + SCRATCH + "/horust")
                subprocess.run(["cargo", "install", "horust", "--root",
                                os.path.join(SCRATCH, "horust")], check=True)
            # horust has no --version: cargo's install record names it.
            try:
                with open(os.path.join(SCRATCH, "horust", ".crates.toml")) as f:
                    for line in f:
                        if line.startswith('"horust '):
                            return True, "horust " + line.split()[1]
            except OSError:
                pass
            return True, "horust (version unknown)"
        if name == "floor":
            cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
            if not cc:
                return False, "no C compiler (cc) to build bench/floor.c"
            if (not os.path.exists(Floor.binary)
                    or os.path.getmtime(Floor.binary) < os.path.getmtime(Floor.source)):
                log(f"compiling {Floor.source} -> {Floor.binary}")
                subprocess.run([cc, "-O2", "-o", Floor.binary, Floor.source], check=True)
            ccv = sh_out([cc, "--version"]).splitlines()
            return True, "bench/floor.c, " + (f"built with {ccv[0]}" if ccv else "cc -O2")
    except (OSError, subprocess.CalledProcessError, KeyError, ValueError) as e:
        return False, f"install failed: {e}"
    return False, "unknown manager"


def build_pypm(path: str | None) -> str:
    if path:
        return os.path.abspath(path)
    # The binary as shipped (static-pie on Linux/glibc): see packaging/build-release.
    log("packaging/build-release")
    out = subprocess.run([os.path.join(REPO, "packaging", "build-release"), "--quiet"],
                         cwd=REPO, check=True, stdout=subprocess.PIPE, text=True).stdout
    return os.path.join(REPO, out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# scenarios


class Session:
    """A temp project + a manager, cleaned up on exit whatever happens."""

    def __init__(self, cls, tag: str):
        self.proj = tempfile.mkdtemp(prefix=f"pypm-bench-{tag}-")
        self.m = cls(self.proj)
        self.nonce = new_nonce()
        self.needle = ("0." + self.nonce).encode()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.m.cleanup(self.needle)
        shutil.rmtree(self.proj, ignore_errors=True)
        return False

    def programs(self, n: int) -> list[Program]:
        return [sleeper(f"a{i:04d}", marker(self.nonce, i)) for i in range(n)]


def sc_fleet(cls, n: int, res: dict, opts, small: bool, big: bool) -> None:
    """Cold start N; RSS; `small`: also idle, status, reload (each if selected); `big`: also stop
    (if selected).

    Results are filed as the 50-program rows (`small`) and the 200-program rows (`big`)."""
    sk, bk = ("50" if small else ""), ("200" if big else "")
    sel = opts.sel
    with Session(cls, f"{cls.name}-{n}") as s:
        m = s.m
        progs = s.programs(n)
        m.write(progs)
        key = sk or bk  # quick mode runs one fleet for both: file it under the 50 rows
        w = None
        if PE:
            PE.drain()
            t0 = mono_ns()
            m.spawn_start()
            got = wait_execs(s.needle, n, time.monotonic() + 60)
            if len(got) < n:
                raise RuntimeError(f"{m.name}: only {len(got)} of {n} children after 60 s")
            res[f"up{key}"] = (max(ts for _p, ts in got.values()) - t0) / 1e9
        else:
            w = Watcher(s.needle)
            t0 = time.perf_counter()
            m.spawn_start()
            t1 = w.wait_count(n, 60)
            if t1 is None:
                raise RuntimeError(f"{m.name}: only {w.count()} of {n} children after 60 s")
            res[f"up{key}"] = t1 - t0
        time.sleep(1)
        own = m.own_pids(s.needle)
        if small and "idle" in sel:
            c0, ns0 = m.cpu(own)
            time.sleep(opts.idle)
            own = m.own_pids(s.needle)
            c1, ns1 = m.cpu(own)
            res["idle_cpu"] = c1 - c0
            res["idle_sched_ms"] = (ns1 - ns0) / 1e6
        res[f"rss{key}"] = m.rss_mib(own)
        if small and "status" in sel and m.status_argv():
            times = []
            for _ in range(20):
                dt, rc = posix_run(m.status_argv(), m.proj, m.env)
                times.append(dt)
            res["status"] = statistics.median(times) * 1000
        if small and "reload" in sel and m.has_reload:
            new = sleeper("added", marker(s.nonce, 9999))
            m.write(progs + [new])
            argv = m.reload_argv(new)
            popen = lambda: subprocess.Popen(  # noqa: E731
                argv, cwd=m.proj, env=m.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if PE:
                mk = new.mark.encode()
                PE.drain()
                t0 = mono_ns()
                p = popen()
                got = wait_execs(mk, 1, time.monotonic() + 10)
                p.wait()
                if not got:
                    raise RuntimeError(f"{m.name}: the added program did not start")
                res["reload"] = (got[mk][1] - t0) / 1e6
            else:
                w.rebase()
                t0 = time.perf_counter()
                p = popen()
                r = w.wait_marker(new.mark.encode(), set(), 10)
                p.wait()
                if r is None:
                    raise RuntimeError(f"{m.name}: the added program did not start")
                res["reload"] = (r[0] - t0) * 1000
        if big and "stop" in sel:
            kids = {}
            for p in (scan(s.needle) if PE else w.found):
                st = read_stat(p)
                if st:
                    kids[p] = st[3]
            if PE:
                PE.drain()
                left = {p for p, st in kids.items() if alive(p, st)}
                if not left:
                    raise RuntimeError(f"{m.name}: no child alive before the stop")
                t0 = mono_ns()
                stopper = m.spawn_stop()
                t1 = wait_exits(left, time.monotonic() + 60)
                if t1 is None:
                    n_left = sum(1 for p, st in kids.items() if alive(p, st))
                    raise RuntimeError(f"{m.name}: {n_left} children left 60 s after stop")
                res["down200"] = (t1 - t0) / 1e9
            else:
                t0 = time.perf_counter()
                stopper = m.spawn_stop()
                deadline = t0 + 60
                left = dict(kids)
                while left and time.perf_counter() < deadline:
                    left = {p: st for p, st in left.items() if alive(p, st)}
                    if left:
                        time.sleep(0.0005)
                if left:
                    raise RuntimeError(f"{m.name}: {len(left)} children left 60 s after stop")
                res["down200"] = time.perf_counter() - t0
            if stopper is not None:
                stopper.wait(timeout=60)


def find_marked(needle: bytes, exclude: set[int], timeout: float) -> int | None:
    """A live pid not in `exclude` with an argument starting with `needle` (/proc scan)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in scan(needle):
            st = read_stat(p)
            if p not in exclude and st and st[0] != "Z" and argv_marks(p, needle):
                return p
        time.sleep(0.01)
    return None


def nan_median(vals: list[float]) -> float:
    vals = [v for v in vals if v == v]
    return statistics.median(vals) if vals else float("nan")


def sc_crash(cls, res: dict, kills: int) -> None:
    with Session(cls, f"{cls.name}-crash") as s:
        m = s.m
        prog = sleeper("crashy", marker(s.nonce, 0))
        m.write([prog], fast_restart=True)
        needle = prog.mark.encode()
        lat = []
        if PE:
            PE.drain()
            m.spawn_start()
            got = wait_execs(needle, 1, time.monotonic() + 30)
            if not got:
                raise RuntimeError(f"{m.name}: crash program did not start")
            pid = got[needle][0]
            phases: list[tuple[float, float, float]] = []
            lost = 0
            nan = float("nan")
            while len(lat) < kills:
                time.sleep(random.uniform(0.05, 0.2))
                st = read_stat(pid)
                parent = st[1] if st else None  # the manager, for its FORK event
                PE.drain()
                t0 = mono_ns()
                os.kill(pid, signal.SIGKILL)
                t_exit, forks, new = None, {}, None
                try:
                    for what, ts, a, b, c, d in PE.events(time.monotonic() + 10):
                        if what == ProcEvents.EXIT and a == pid:
                            t_exit = ts
                        elif what == ProcEvents.FORK and c == d and b == parent:
                            forks[d] = ts  # a new process (not a thread) of the manager
                        elif what == ProcEvents.EXEC and b != pid and argv_marks(b, needle):
                            new = (b, ts)
                            break
                except ProcEventsOverflow as e:
                    lost += 1
                    log(f"  {m.name} crash: {e}; sample dropped")
                    if lost > 5:
                        raise
                    pid = find_marked(needle, {pid}, 10)
                    if pid is None:
                        raise RuntimeError(f"{m.name}: no new pid 10 s after SIGKILL") from None
                    continue
                if new is None:
                    raise RuntimeError(f"{m.name}: no new pid 10 s after SIGKILL")
                t_fork = forks.get(new[0])
                lat.append((new[1] - t0) / 1e6)
                phases.append((
                    (t_exit - t0) / 1e6 if t_exit is not None else nan,
                    (t_fork - t_exit) / 1e6 if t_fork is not None and t_exit is not None else nan,
                    (new[1] - t_fork) / 1e6 if t_fork is not None else nan,
                ))
                pid = new[0]
            for i, k in enumerate(("crash_kill_exit", "crash_exit_fork", "crash_fork_exec")):
                res[k] = nan_median([p[i] for p in phases])
        else:
            w = Watcher(s.needle)
            m.spawn_start()
            if w.wait_count(1, 30) is None:
                raise RuntimeError(f"{m.name}: crash program did not start")
            pid = next(iter(w.found))
            for _ in range(kills):
                time.sleep(random.uniform(0.05, 0.2))
                w.found = {p: c for p, c in w.found.items() if p == pid}
                w.rebase()
                t0 = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                r = w.wait_marker(needle, {pid}, 10)
                if r is None:
                    raise RuntimeError(f"{m.name}: no new pid 10 s after SIGKILL")
                lat.append((r[0] - t0) * 1000)
                pid = r[1]
        lat.sort()
        res["crash_med"] = statistics.median(lat)
        res["crash_p95"] = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
        res["crash_max"] = lat[-1]


def data_file(mib: int) -> tuple[str, int, str]:
    """A file of `mib` MiB of 100-byte numbered lines; (path, lines, sha256)."""
    os.makedirs(SCRATCH, exist_ok=True)
    path = os.path.join(SCRATCH, f"lines-{mib}MiB.txt")
    lines = mib * 1024 * 1024 // LINE_BYTES
    meta = path + ".sha256"
    if not (os.path.exists(path) and os.path.exists(meta)
            and os.path.getsize(path) == lines * LINE_BYTES):
        log(f"writing {path}")
        h = hashlib.sha256()
        with open(path + ".tmp", "wb") as f:
            for start in range(0, lines, 65536):
                chunk = "".join(f"{i:0{LINE_BYTES - 1}d}\n"
                                for i in range(start, min(lines, start + 65536))).encode()
                h.update(chunk)
                f.write(chunk)
        os.replace(path + ".tmp", path)
        with open(meta, "w") as f:
            f.write(h.hexdigest())
    with open(meta) as f:
        return path, lines, f.read().strip()


def sc_logs(cls, res: dict, mib: int) -> None:
    data, nlines, digest = data_file(mib)
    size = nlines * LINE_BYTES
    with Session(cls, f"{cls.name}-logs") as s:
        m = s.m
        fifo = os.path.join(s.proj, "go.fifo")
        os.mkfifo(fifo)
        mark = marker(s.nonce, 0)
        # A script file keeps `$` out of the managers' command lines (Horust expands `$VAR`).
        script = os.path.join(s.proj, "logger.sh")
        with open(script, "w") as f:
            f.write(f"read x < {shell_quote(fifo)}\ncat {shell_quote(data)}\n"
                    f"exec {SLEEP} 100000 {mark}\n")
        prog = Program("logger", [SH, script, mark], mark)
        m.write([prog])
        w = Watcher(s.needle)
        m.spawn_start()
        if w.wait_count(1, 30) is None:
            raise RuntimeError(f"{m.name}: log program did not start")
        # Write back whatever earlier runs left dirty (their 200 MiB logs), so that writeback
        # does not compete with this run's writes: each manager starts on a quiet disk.
        os.sync()
        time.sleep(0.5)
        own = m.own_pids(s.needle)
        c0, _ = m.cpu(own)
        t0 = time.perf_counter()
        with open(fifo, "w") as f:
            f.write("go\n")
        deadline = t0 + 120
        while True:
            total = 0
            for p in m.log_files(prog):
                try:
                    total += os.path.getsize(p)
                except OSError:
                    pass
            now = time.perf_counter()
            if total >= size or now > deadline:
                break
            time.sleep(0.001)
        own = m.own_pids(s.needle)
        c1, _ = m.cpu(own)
        res["logs_wall"] = now - t0
        res["logs_cpu"] = c1 - c0
        h = hashlib.sha256()
        count = 0
        for p in m.log_files(prog):
            with open(p, "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
                    count += b.count(b"\n")
        res["logs_lost"] = nlines - count
        res["logs_ordered"] = 1.0 if h.hexdigest() == digest else 0.0
        if total < size:
            res["logs_timeout"] = 1.0


def sc_watch(cls, res: dict) -> None:
    # `cls`, not `Pypm`: with --pypm-alt each build is measured (this row measured the first
    # binary twice before 2026-12-07).
    with Session(cls, "pypm-watch") as s:
        m = s.m
        progs = s.programs(5)
        m.write(progs, watch=True)
        new = sleeper("added", marker(s.nonce, 9999))
        if PE:
            PE.drain()
            m.spawn_start()
            if len(wait_execs(s.needle, 5, time.monotonic() + 30)) < 5:
                raise RuntimeError("pypm: watch project did not start")
            time.sleep(0.3)
            mk = new.mark.encode()
            PE.drain()
            t0 = mono_ns()
            m.write(progs + [new], watch=True)
            got = wait_execs(mk, 1, time.monotonic() + 2)
            res["watch"] = (got[mk][1] - t0) / 1e6 if got else float("nan")
            return
        w = Watcher(s.needle)
        m.spawn_start()
        if w.wait_count(5, 30) is None:
            raise RuntimeError("pypm: watch project did not start")
        time.sleep(0.3)
        w.rebase()
        t0 = time.perf_counter()
        m.write(progs + [new], watch=True)
        r = w.wait_marker(new.mark.encode(), set(), 2)
        res["watch"] = (r[0] - t0) * 1000 if r else float("nan")


# ---------------------------------------------------------------------------------------------
# report

ROWS = [
    # key, label, unit, scale, target (pypm), lower is better
    ("up50", "cold start, 50 programs", "s", 1, None),
    ("up200", "cold start, 200 programs", "s", 1, "≤ 0.25 s (issue 3: < 0.5 s)"),
    ("down200", "stop all, 200 programs", "s", 1, "≤ 0.1 s"),
    ("crash_med", "SIGKILL → new pid, median", "ms", 1, "≤ 1.5 ms (issue 3: < 5 ms)"),
    ("crash_p95", "SIGKILL → new pid, p95", "ms", 1, "≤ 3 ms"),
    ("crash_kill_exit", "crash phases: kill → old child gone, median", "ms", 1, None),
    ("crash_exit_fork", "crash phases: old child gone → manager forks, median", "ms", 1, None),
    ("crash_fork_exec", "crash phases: fork → exec, median", "ms", 1, None),
    ("idle_cpu", "idle CPU, 50 programs (utime+stime)", "s", 1, "≤ 0.005 s / 30 s"),
    ("idle_sched_ms", "idle CPU, 50 programs (schedstat)", "ms", 1, None),
    ("rss50", "manager RSS, 50 programs", "MiB", 1, "≤ 5 MiB (issue 3: < 8 MiB)"),
    ("rss200", "manager RSS, 200 programs", "MiB", 1, None),
    ("logs_wall", "logs: wall time", "s", 1, "≤ 0.15 s"),
    ("logs_cpu", "logs: manager CPU", "s", 1, "≤ 0.1 s"),
    ("logs_lost", "logs: lines lost", "", 1, "0"),
    ("logs_ordered", "logs: log byte-identical to the input", "", 1, "yes"),
    ("status", "status command, 50 programs", "ms", 1, "≤ 2 ms (issue 3: < 5 ms)"),
    ("reload", "add program + reload command → running", "ms", 1, "≤ 5 ms"),
    ("watch", "add program + save file → running", "ms", 1, None),
]


# The scenario (as --scenarios names it) each row belongs to; rows of scenarios not run are left
# out of the table, and so are the crash phases when the timing is /proc polling.
ROW_SCENARIO = {"up50": "start", "up200": "start", "down200": "stop", "idle_cpu": "idle",
                "idle_sched_ms": "idle", "rss50": "idle", "rss200": "start", "status": "status",
                "reload": "reload", "watch": "watch"}


def row_shown(key: str, results: dict, sel: set[str]) -> bool:
    if any(results.get(m, {}).get(key) for m in results):
        return True
    if key.startswith("crash_") and key not in ("crash_med", "crash_p95"):
        return PE is not None and "crash" in sel
    scen = ROW_SCENARIO.get(key) or key.split("_")[0]
    return scen in sel


def fmt(v: float) -> str:
    if v != v:
        return "n/a"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a >= 0.01:
        return f"{v:.3f}"
    return f"{v:.4f}"


def cell(vals: list[float]) -> str:
    vals = [v for v in vals if v == v]
    if not vals:
        return "—"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(vals))}–{fmt(max(vals))})"


def table(results: dict, managers: list[str], notes: dict, idle: float, log_mib: int,
          sel: set[str]) -> str:
    head = ["scenario", "target (pypm)"]
    for m in managers:
        head.append(m)
        if m != "pypm":
            head.append(f"{m}/pypm")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit, _scale, target in ROWS:
        if not row_shown(key, results, sel):
            continue
        label = label.replace("idle CPU", f"idle CPU over {idle:g} s").replace(
            "logs:", f"logs {log_mib} MiB:")
        name = f"{label} ({unit})" if unit else label
        row = [name, target or ""]
        base = [v for v in results.get("pypm", {}).get(key, []) if v == v]
        for m in managers:
            vals = results.get(m, {}).get(key, [])
            if m in notes:
                row.append(notes[m])
            elif key == "logs_ordered" and vals:
                row.append("yes" if all(v == 1 for v in vals) else
                           f"no in {sum(1 for v in vals if v != 1)} of {len(vals)} runs")
            elif key == "watch" and m == "pypm" and vals and all(v != v for v in vals):
                row.append("not implemented (no new pid within 2 s)")
            else:
                row.append(cell(vals))
            if m != "pypm":
                pv = [v for v in vals if v == v]
                if pv and base and statistics.median(base) > 0 and key not in (
                        "logs_lost", "logs_ordered"):
                    row.append(f"{statistics.median(pv) / statistics.median(base):.2f}×")
                else:
                    row.append("")
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def sh_out(argv) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine() -> list[str]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return [f"- CPUs (`nproc`): {os.cpu_count()} — {cpu}",
            f"- kernel: {platform.system()} {platform.release()} ({platform.machine()})",
            f"- memory: {mem}", f"- Python {platform.python_version()}"]


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 5, 1 run, pypm only, short idle")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--peers", default="pypm,supervisord,pm2,horust",
                    help="managers to compare (also: floor, see the docstring)")
    ap.add_argument("--pypm", help="use this pypm binary instead of building one")
    ap.add_argument("--pypm-alt", help="a second pypm binary, run alternately with the first as "
                    "the manager `pypm-alt` (e.g. the wheel's musl build against glibc)")
    ap.add_argument("--out", help="write the report (Markdown) to this file; its "
                    "`<!-- roll:begin -->` / `<!-- reload:begin -->` sections are kept")
    ap.add_argument("--idle", type=float, default=None, help="idle seconds (default 30, quick 3)")
    ap.add_argument("--scenarios", default="all",
                    help="comma list of " + ", ".join(SCENARIOS) + "; `fleet` = "
                    + ",".join(FLEET) + " (default: all)")
    args = ap.parse_args()

    args.sel = set()
    for name in (x.strip() for x in args.scenarios.split(",")):
        if name == "all":
            args.sel |= set(SCENARIOS)
        elif name == "fleet":
            args.sel |= set(FLEET)
        elif name in SCENARIOS:
            args.sel.add(name)
        elif name:
            ap.error(f"unknown scenario `{name}` (expected all, fleet, {', '.join(SCENARIOS)})")
    if not args.sel:
        ap.error("--scenarios selects nothing")

    if args.quick:
        args.runs, managers, sizes, kills, log_mib = 1, ["pypm"], [5], 10, 20
        args.idle = args.idle or 3.0
    else:
        managers = [m.strip() for m in args.peers.split(",") if m.strip()]
        if "pypm" not in managers:
            managers.insert(0, "pypm")
        if args.pypm_alt and "pypm-alt" not in managers:
            managers.insert(1, "pypm-alt")
        sizes, kills, log_mib = [50, 200], 40, 200
        args.idle = args.idle or 30.0
    for m in managers:
        if m not in MANAGERS:
            ap.error(f"unknown manager `{m}` (expected {', '.join(MANAGERS)})")

    Pypm.binary = build_pypm(args.pypm)
    PypmAlt.binary = os.path.abspath(args.pypm_alt) if args.pypm_alt else ""
    versions = {"pypm": sh_out([Pypm.binary, "--version"]) + " (git "
                + sh_out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]) + ")"}
    notes: dict[str, str] = {}
    for m in managers[1:]:
        ok, v = install(m)
        if ok:
            versions[m] = v
        else:
            notes[m] = f"not installed: {v}"
            log(f"{m}: {v}")
    active = [m for m in managers if m not in notes]
    if "logs" in args.sel and (any(m != "pypm" for m in active) or not args.quick):
        data_file(log_mib)

    global PE, TIMING
    if os.environ.get("PYPM_BENCH_POLL", "") not in ("", "0"):
        TIMING = "/proc polling (forced by PYPM_BENCH_POLL)"
    else:
        try:
            PE = ProcEvents()
            TIMING = "kernel proc-connector timestamps"
        except OSError as e:
            TIMING = f"/proc polling (proc connector unavailable: {e})"
    log("timing: " + TIMING)

    load_before = loadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    results: dict[str, dict[str, list[float]]] = {m: {} for m in managers}
    failures: list[str] = []

    def record(m: str, res: dict) -> None:
        for k, v in res.items():
            results[m].setdefault(k, []).append(v)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        for run in range(args.runs):
            order = active[run % len(active):] + active[: run % len(active)]
            for m in order:
                cls = MANAGERS[m]
                log(f"run {run + 1}/{args.runs}: {m}")
                res: dict[str, float] = {}
                sel = args.sel & ONLY.get(m, args.sel)
                steps = []
                if args.quick:
                    if sel & set(FLEET):
                        steps.append(("fleet", lambda: sc_fleet(cls, 5, res, args, True, True)))
                else:
                    if sel & {"start", "idle", "status", "reload"}:
                        steps.append(("fleet50",
                                      lambda: sc_fleet(cls, 50, res, args, True, False)))
                    if sel & {"start", "stop"}:
                        steps.append(("fleet200",
                                      lambda: sc_fleet(cls, 200, res, args, False, True)))
                if "crash" in sel:
                    steps.append(("crash", lambda: sc_crash(cls, res, kills)))
                if "logs" in sel:
                    steps.append(("logs", lambda: sc_logs(cls, res, log_mib)))
                if m in ("pypm", "pypm-alt") and "watch" in sel:
                    steps.append(("watch", lambda: sc_watch(cls, res)))
                if not steps:
                    continue
                for name, fn in steps:
                    try:
                        fn()
                    except KeyboardInterrupt:
                        raise
                    except Exception as e:  # noqa: BLE001 - report and go on
                        failures.append(f"{m} {name} (run {run + 1}): {e}")
                        log(f"  FAILED {m} {name}: {e}")
                log("  " + ", ".join(f"{k}={fmt(v)}" for k, v in res.items()))
                record(m, res)
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        for p in scan(("0." + SESSION).encode()):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        return 130
    finally:
        for p in scan(("0." + SESSION).encode()):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if PE:
            PE.close()

    tbl = table(results, managers, notes, args.idle, log_mib, args.sel)
    if args.quick:
        tbl = tbl.replace(" 200 programs", " 5 programs").replace(" 50 programs", " 5 programs")
    timing = "Timing: " + TIMING + "."
    print(tbl)
    print("\n" + timing)
    if failures:
        print("\nFailures:\n" + "\n".join(f"- {f}" for f in failures))
    cmd = "python3 bench/bench.py " + " ".join(sys.argv[1:])
    if args.out:
        doc = [
            "# Benchmarks",
            "",
            "pypm against other process managers on the same machine, in the same run, made by "
            "`bench/bench.py` (Python standard library only). The scenarios are defined precisely "
            "in the script's docstring; in short: programs are `sleep`, every run starts a fresh "
            "manager in a fresh temp project, managers run alternately, and each cell is the "
            "median over runs with (min–max). `peer/pypm` > 1 means pypm is faster or lighter.",
            "",
            "## Command",
            "",
            "```sh",
            cmd.strip(),
            "```",
            "",
            f"Run on {started.strftime('%Y-%m-%d %H:%M UTC')}, {args.runs} run(s) per manager; "
            f"load average before {load_before}, after {loadavg()}.",
            "",
            "## Results",
            "",
            tbl,
            "",
            timing,
            "",
        ]
        if failures:
            doc += ["Failures during the run:", ""] + [f"- {f}" for f in failures] + [""]
        doc += ["## Machine", ""] + machine() + ["", "## Versions", ""]
        doc += [f"- {k}: {v}" for k, v in versions.items()]
        doc += [f"- {m}: {n}" for m, n in notes.items()]
        doc += [
            "",
            "## Caveats",
            "",
            "- The machine is small (2 cores) and shared with other work; numbers are noisy. "
            "Rerun the command to check a figure before relying on it.",
            "- utime+stime in /proc/PID/stat counts in ticks (1/" + str(TICK) + " s), too coarse "
            "for idle CPU; the schedstat row sums the run time of the manager's threads in ns.",
            "- Horust has no status or reload command; it redirects a program's stdout straight "
            "to the log file (no pipe through the manager), so its log row measures `cat` alone.",
            "- With kernel proc-connector timestamps (see \"Timing\" under the table) the script "
            "sleeps in recv() while it measures and the end times come from the kernel, so it "
            "does not compete with the managers for the 2 cores. With /proc polling (fallback) it "
            "does: crash and reload use a tight loop (~1.5-2 ms added on this machine), the "
            "others pause 0.5 ms between scans.",
        ]
        if "floor" in managers:
            doc.append("- The `floor` column is bench/floor.c, a minimal C supervisor (blocking "
                       "waitpid + vfork + execv, crash scenario only): the physical floor of "
                       "\"SIGKILL → new pid\" on this machine.")
        doc.append("")
        # Keep the sections other scripts write (between their markers) at the end, unchanged.
        kept = ""
        try:
            with open(args.out) as f:
                old = f.read()
            kept = "\n".join(m.group(0) for m in KEPT_SECTION.finditer(old))
            kept = kept + "\n" if kept else ""
        except OSError:
            pass
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write("\n".join(doc))
            if kept:
                f.write("\n" + kept)
        log(f"wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
