#!/usr/bin/env python3
"""pypm roll benchmark: N instances behind one pypm-bound socket, and rolling restarts under load.

One command (Python 3 standard library; `wrk` for throughput, installed with apt-get if missing):

    python3 bench/roll.py [--quick] [--pypm PATH] [--restarts N] [--rate R] [--runs N]
                          [--out docs/benchmarks.md]

Without `--pypm`, pypm is built with `cargo build --release` and `target/release/pypm` is used.
gunicorn and uvicorn come from a venv this script owns, `bench/.scratch/venv` (git-ignored),
created with `pip install gunicorn uvicorn` unless it exists.

Servers (each in a fresh temp project, all on 127.0.0.1 and a free port):
  - uvicorn: `uvicorn app:app --fd 3 --no-access-log` with the raw ASGI app of
    `examples/uvicorn/app.py`, under pypm with `listen = ["tcp://127.0.0.1:PORT"]`;
    ready probe `log = "Uvicorn running on"`.
  - gunicorn: `gunicorn app:app --workers 1` (sync worker, no access log) with the WSGI app of
    `examples/gunicorn/app.py`, under pypm with the same `listen` (gunicorn takes the socket from
    LISTEN_FDS itself); ready probe `log = "Booting worker with pid"`; `HOME` is the temp project
    (gunicorn 27 puts its control socket under `~/.gunicorn`).
  - gunicorn HUP: the same app run directly, `gunicorn app:app --workers 2 --bind 127.0.0.1:PORT`
    (gunicorn binds the port itself), for its own `kill -HUP` reload.
pypm's apps use the default `stop_signal` (SIGTERM) and `stop_timeout` (10 s).

Measurements:
  1. throughput: `wrk -t2 -c50 -d10s http://127.0.0.1:PORT/` against 1 instance, then against 2
     instances, alternately, `--runs` times (default 3), each run under a freshly started pypm
     (1 s warm-up with wrk first); median and (min-max) of wrk's Requests/sec. uvicorn is
     measured twice, with keep-alive and with `-H "Connection: close"`; gunicorn's sync worker
     closes every connection anyway. For the 2-instance runs, the busier instance's share of
     the CPU time (utime+stime of the instance and its children) both used during the run.
     Then one uvicorn without pypm, keep-alive: binding `--port` itself, on an inherited TCP
     socket (`--fd 3`, as under pypm), and on an inherited socket with TCP_NODELAY set.
  2. rolls: a Python load generator (32 threads, a new TCP connection per request,
     `GET / HTTP/1.1` with `Connection: close`, paced to `--rate` requests/s in total, default
     500) runs throughout. After 1 s of warm-up and the steady-state window (measurement 4), the
     script does `--restarts` rolls (default 10): `pypm restart web`, then polls
     `pypm status --json` until both instances are `running` with pids that are not the old
     ones and every old pid has exited; then 1 s of load before the next roll, and 1 s after the
     last. Every request started in that window is classified:
       ok       - a complete `HTTP/1.1 200` response (Content-Length bytes of body);
       refused  - connect() got ECONNREFUSED;
       reset    - ECONNRESET or EPIPE at any step;
       EOF      - the server closed the connection before a complete response;
       timeout  - no complete response within 5 s (connect, send and receive together);
       other    - any other error or status (listed by name).
     Reported: the counts, the slowest successful request, p99 of successful requests, and the
     median roll time (restart command to roll done).
  3. gunicorn HUP: the same load and counts for `--restarts` `kill -HUP MASTER`, each waiting
     until the master has 2 workers, none of them an old one, and every old worker has exited.
  4. steady state: the same load for 10 s (3 s with --quick) before the first roll: p50, p99 and
     slowest request, and the failure count (expected 0).

Writes a Markdown section between `<!-- roll:begin -->` and `<!-- roll:end -->` in `--out`
(replacing only that section, appending it if the markers are absent); `bench/bench.py --out`
keeps that section when it rewrites the file.

Every process this script starts carries ROLLBENCH_MARKER=<session> in its environment; at the
end of each scenario (and on error or Ctrl-C) pypm is stopped with `pypm down` and any process
still carrying the marker is SIGKILLed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import loadavg, machine  # noqa: E402  (one description of the machine)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SCRATCH = os.path.join(HERE, ".scratch")
VENV = os.path.join(SCRATCH, "venv")
SESSION = f"rollbench-{os.getpid()}-{int(time.time())}"
MARK_VAR = "ROLLBENCH_MARKER"
BEGIN, END = "<!-- roll:begin -->", "<!-- roll:end -->"
KINDS = ["ok", "refused", "reset", "eof", "timeout"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sh_out(argv, merge=False) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return (r.stdout + (r.stderr if merge else "")).strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------------
# processes


def read_stat(pid):
    """(state, ppid) or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[1])


def alive(pid: int) -> bool:
    st = read_stat(pid)
    return st is not None and st[0] != "Z"


def children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            st = read_stat(p)
            if st and st[1] == pid and st[0] != "Z":
                out.append(int(p))
    return out


def marked() -> list[int]:
    needle = f"{MARK_VAR}={SESSION}".encode()
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    out.append(int(p))
        except OSError:
            pass
    return out


def kill_marked() -> int:
    n = 0
    for p in marked():
        try:
            os.kill(p, signal.SIGKILL)
            n += 1
        except OSError:
            pass
    return n


def env_marked(**extra) -> dict:
    env = dict(os.environ)
    env.pop("PYPM_CONFIG", None)
    env[MARK_VAR] = SESSION
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------
# setup


def build_pypm(path: str | None) -> str:
    if path:
        return os.path.abspath(path)
    log("cargo build --release")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    target = os.path.join(REPO, os.environ.get("CARGO_TARGET_DIR") or "target")
    return os.path.join(target, "release", "pypm")


def ensure_venv() -> None:
    if os.path.exists(os.path.join(VENV, "bin", "gunicorn")) and \
            os.path.exists(os.path.join(VENV, "bin", "uvicorn")):
        return
    log(f"creating {VENV} (pip install gunicorn uvicorn)")
    os.makedirs(SCRATCH, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "--disable-pip-version-check",
                    "-q", "gunicorn", "uvicorn"], check=True)


def ensure_wrk() -> str:
    w = shutil.which("wrk")
    if w:
        return w
    log("wrk not found: apt-get install -y wrk")
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    w = shutil.which("wrk")
    if not w:
        raise SystemExit("wrk is not installed and `apt-get install -y wrk` failed")
    return w


# ---------------------------------------------------------------------------------------------
# load generator


REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: rollbench\r\nConnection: close\r\n\r\n"


def one_request(port: int, timeout: float) -> tuple[str, float]:
    """(kind, latency in s) of one request on a new connection."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    kind = None
    buf = b""
    try:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.settimeout(max(0.001, deadline - time.perf_counter()))
        s.sendall(REQ)
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise socket.timeout()
            s.settimeout(left)
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except ConnectionRefusedError:
        kind = "refused"
    except (ConnectionResetError, BrokenPipeError):
        kind = "reset"
    except socket.timeout:
        kind = "timeout"
    except OSError as e:
        kind = "other:" + (os.strerror(e.errno) if e.errno else type(e).__name__)
    finally:
        s.close()
    t1 = time.perf_counter()
    if kind is None:
        head, sep, body = buf.partition(b"\r\n\r\n")
        if not sep:
            kind = "eof"
        else:
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if m and len(body) < int(m.group(1)):
                kind = "eof"
            elif head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"):
                kind = "ok"
            else:
                kind = "other:status " + head.split(b"\r\n", 1)[0].decode(errors="replace")
    return kind, t1 - t0


class Load:
    """`threads` threads, each opening a new connection per request, paced to `rate` req/s in
    total (open loop per thread: a late thread catches up, but never by more than 0.5 s).
    Each request is recorded as (phase, start time, kind, latency)."""

    def __init__(self, port: int, rate: float, threads: int = 32, timeout: float = 5.0):
        self.port, self.rate, self.n, self.timeout = port, rate, threads, timeout
        self.phase = "warmup"
        self.stopping = threading.Event()
        self.records: list[list] = [[] for _ in range(threads)]
        self.threads = []

    def start(self) -> "Load":
        t0 = time.perf_counter() + 0.05
        period = self.n / self.rate
        for i in range(self.n):
            th = threading.Thread(target=self._run, args=(i, t0 + i / self.rate, period),
                                  daemon=True)
            th.start()
            self.threads.append(th)
        return self

    def _run(self, i: int, nxt: float, period: float) -> None:
        rec = self.records[i]
        while not self.stopping.is_set():
            now = time.perf_counter()
            if nxt > now:
                time.sleep(nxt - now)
            phase = self.phase
            start = time.perf_counter()
            kind, lat = one_request(self.port, self.timeout)
            rec.append((phase, start, kind, lat))
            nxt += period
            if time.perf_counter() - nxt > 0.5:
                nxt = time.perf_counter()

    def stop(self) -> list[tuple]:
        self.stopping.set()
        for th in self.threads:
            th.join(timeout=self.timeout + 2)
        return [r for rec in self.records for r in rec]


def pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def summarize(records: list[tuple], phase: str) -> dict:
    rs = [r for r in records if r[0] == phase]
    counts: dict[str, int] = {k: 0 for k in KINDS}
    other: dict[str, int] = {}
    for _, _, kind, _ in rs:
        if kind in counts:
            counts[kind] += 1
        else:
            other[kind] = other.get(kind, 0) + 1
    lat = sorted(r[3] for r in rs if r[2] == "ok")
    span = (max(r[1] for r in rs) - min(r[1] for r in rs)) if len(rs) > 1 else 0.0
    return {
        "requests": len(rs), "counts": counts, "other": other,
        "p50": pct(lat, 0.50) * 1000, "p99": pct(lat, 0.99) * 1000,
        "max": (lat[-1] * 1000) if lat else float("nan"),
        "rate": len(rs) / span if span else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# servers


UVICORN_APP = os.path.join(REPO, "examples", "uvicorn", "app.py")
GUNICORN_APP = os.path.join(REPO, "examples", "gunicorn", "app.py")


def server_def(kind: str) -> dict:
    if kind == "uvicorn":
        return {"app": UVICORN_APP,
                "command": [os.path.join(VENV, "bin", "uvicorn"), "app:app", "--fd", "3",
                            "--no-access-log"],
                "ready": "Uvicorn running on"}
    return {"app": GUNICORN_APP,
            "command": [os.path.join(VENV, "bin", "gunicorn"), "app:app", "--workers", "1"],
            "ready": "Booting worker with pid"}


class PypmProject:
    """A temp project with one app `web` of `instances` instances of `kind` on `port`."""

    def __init__(self, pypm: str, kind: str, instances: int, port: int):
        self.pypm, self.port = pypm, port
        self.proj = tempfile.mkdtemp(prefix=f"pypm-roll-{kind}-")
        d = server_def(kind)
        shutil.copy(d["app"], os.path.join(self.proj, "app.py"))
        conf = "\n".join([
            "[pypm]", 'state_dir = ".pypm"', 'log_dir = ".pypm/logs"', "watch_config = false", "",
            "[apps.web]",
            "command = " + json.dumps(d["command"]),
            f"instances = {instances}",
            f'listen = ["tcp://127.0.0.1:{port}"]',
            "env = { HOME = " + json.dumps(self.proj) + " }",
            "",
            "[apps.web.ready]",
            "log = " + json.dumps(d["ready"]),
            'interval = "100ms"',
            'timeout = "30s"',
            "",
        ])
        self.config = os.path.join(self.proj, "pypm.toml")
        with open(self.config, "w") as f:
            f.write(conf)
        self.env = env_marked()

    def cmd(self, *args, check=True, timeout=120) -> subprocess.CompletedProcess:
        r = subprocess.run([self.pypm, *args, "--config", self.config], cwd=self.proj,
                           env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"pypm {' '.join(args)} exited {r.returncode}: "
                               f"{r.stdout.strip()} {r.stderr.strip()}\n{self.log_tail()}")
        return r

    def log_tail(self, n=20) -> str:
        try:
            with open(os.path.join(self.proj, ".pypm", "logs", "pypm.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def up(self) -> None:
        self.cmd("up", "-d", "--wait", "60s")
        wait_http(self.port, 30)

    def rows(self) -> list[dict]:
        r = self.cmd("status", "--json")
        return [row for row in json.loads(r.stdout)["instances"] if row["app"] == "web"]

    def pids(self) -> list[int]:
        return [row["pid"] for row in self.rows() if row["pid"]]

    def roll(self, timeout=120.0) -> float:
        """`pypm restart web`, then waits until the roll is done; returns its duration."""
        old = self.pids()
        t0 = time.perf_counter()
        self.cmd("restart", "web")
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            rows = self.rows()
            if rows and all(r["state"] == "running" and r["pid"] and r["pid"] not in old
                            for r in rows) and not any(alive(p) for p in old):
                return time.perf_counter() - t0
            time.sleep(0.02)
        raise RuntimeError(f"roll not done within {timeout} s: {self.rows()}\n{self.log_tail()}")

    def down(self) -> None:
        try:
            self.cmd("down", check=False, timeout=60)
        except Exception as e:  # noqa: BLE001 - cleanup must go on
            log(f"  pypm down failed: {e}")
        n = kill_marked()
        if n:
            log(f"  killed {n} leftover process(es)")
        shutil.rmtree(self.proj, ignore_errors=True)


class GunicornHup:
    """gunicorn run directly with 2 workers, binding the port itself."""

    def __init__(self, port: int):
        self.port = port
        self.proj = tempfile.mkdtemp(prefix="pypm-roll-hup-")
        shutil.copy(GUNICORN_APP, os.path.join(self.proj, "app.py"))
        self.out = open(os.path.join(self.proj, "gunicorn.log"), "wb")
        self.p = subprocess.Popen(
            [os.path.join(VENV, "bin", "gunicorn"), "app:app", "--workers", "2",
             "--bind", f"127.0.0.1:{port}"],
            cwd=self.proj, env=env_marked(HOME=self.proj), stdin=subprocess.DEVNULL,
            stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)

    def up(self) -> None:
        wait_http(self.port, 30)
        deadline = time.time() + 30
        while len(children(self.p.pid)) < 2 and time.time() < deadline:
            time.sleep(0.05)

    def roll(self, timeout=120.0) -> float:
        old = children(self.p.pid)
        t0 = time.perf_counter()
        os.kill(self.p.pid, signal.SIGHUP)
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            now = children(self.p.pid)
            if len(now) == 2 and not set(now) & set(old) and not any(alive(p) for p in old):
                return time.perf_counter() - t0
            time.sleep(0.02)
        raise RuntimeError(f"HUP reload not done within {timeout} s")

    def down(self) -> None:
        try:
            self.p.send_signal(signal.SIGTERM)
            self.p.wait(timeout=30)
        except Exception as e:  # noqa: BLE001
            log(f"  gunicorn stop failed: {e}")
        n = kill_marked()
        if n:
            log(f"  killed {n} leftover process(es)")
        self.p.wait()
        self.out.close()
        shutil.rmtree(self.proj, ignore_errors=True)


def wait_http(port: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if one_request(port, 2.0)[0] == "ok":
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


# ---------------------------------------------------------------------------------------------
# scenarios


def wrk_rps(wrk: str, port: int, secs: int, close: bool) -> tuple[float, str]:
    hdr = ["-H", "Connection: close"] if close else []
    out = sh_out([wrk, "-t2", "-c50", f"-d{secs}s", *hdr, f"http://127.0.0.1:{port}/"])
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    errs = re.search(r"Socket errors:.*|Non-2xx.*", out)
    return (float(m.group(1)) if m else float("nan")), (errs.group(0) if errs else "")


def cpu_ticks(pid: int) -> int:
    """utime+stime of `pid` and its live children (a gunicorn master and its worker)."""
    tot = 0
    for p in [pid] + children(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                rest = f.read().rsplit(b")", 1)[1].split()
            tot += int(rest[11]) + int(rest[12])
        except (OSError, IndexError, ValueError):
            pass
    return tot


def throughput(pypm: str, wrk: str, kind: str, close: bool, runs: int, secs: int) -> dict:
    """{1: [req/s], 2: [req/s], "share": [CPU share of the busier of the 2 instances]}."""
    res: dict = {1: [], 2: [], "share": []}
    for run in range(runs):
        order = [1, 2] if run % 2 == 0 else [2, 1]
        for n in order:
            port = free_port()
            proj = PypmProject(pypm, kind, n, port)
            try:
                proj.up()
                wrk_rps(wrk, port, 1, close)  # warm-up
                pids = proj.pids()
                before = [cpu_ticks(p) for p in pids]
                rps, errs = wrk_rps(wrk, port, secs, close)
                used = [cpu_ticks(p) - b for p, b in zip(pids, before)]
                res[n].append(rps)
                if n == 2 and sum(used) > 0:
                    res["share"].append(max(used) / sum(used))
                log(f"  {kind} x{n} run {run + 1}: {rps:.0f} req/s, CPU ticks per instance "
                    f"{used} {errs}")
            finally:
                proj.down()
    return res


FD_HELPER = """
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if sys.argv[1] == "nodelay":
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.bind(("127.0.0.1", int(sys.argv[2])))
s.listen(1024)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.execv(sys.argv[3], sys.argv[3:])
"""


def uvicorn_fd(wrk: str, runs: int, secs: int) -> dict[str, list[float]]:
    """One uvicorn, no pypm, keep-alive wrk: bound by uvicorn (`--port`), on an inherited TCP
    socket (`--fd 3`, as under pypm), and on an inherited socket with TCP_NODELAY set."""
    res: dict[str, list[float]] = {"port": [], "fd": [], "nodelay": []}
    uv = os.path.join(VENV, "bin", "uvicorn")
    for run in range(runs):
        for how in res:
            port = free_port()
            proj = tempfile.mkdtemp(prefix="pypm-roll-fd-")
            shutil.copy(UVICORN_APP, os.path.join(proj, "app.py"))
            if how == "port":
                argv = [uv, "app:app", "--port", str(port), "--no-access-log"]
            else:
                argv = [sys.executable, "-c", FD_HELPER, how, str(port), uv, "app:app", "--fd",
                        "3", "--no-access-log"]
            p = subprocess.Popen(argv, cwd=proj, env=env_marked(), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            try:
                wait_http(port, 30)
                wrk_rps(wrk, port, 1, False)
                rps, _ = wrk_rps(wrk, port, secs, False)
                res[how].append(rps)
                log(f"  uvicorn {how} run {run + 1}: {rps:.0f} req/s")
            finally:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                shutil.rmtree(proj, ignore_errors=True)
    return res


def rolls(server, rate: float, restarts: int, steady: float, label: str) -> dict:
    load = None
    times: list[float] = []
    try:
        server.up()
        load = Load(server.port, rate).start()
        time.sleep(1.0)
        load.phase = "steady"
        time.sleep(steady)
        load.phase = "roll"
        for i in range(restarts):
            times.append(server.roll())
            log(f"  {label}: roll {i + 1}/{restarts} done in {times[-1]:.2f} s")
            time.sleep(1.0)
        load.phase = "after"
    finally:
        records = load.stop() if load else []
        server.down()
    out = {"steady": summarize(records, "steady"), "roll": summarize(records, "roll"),
           "roll_times": times}
    r = out["roll"]
    log(f"  {label}: {r['requests']} requests at {r['rate']:.0f}/s, {r['counts']} {r['other']}, "
        f"slowest ok {r['max']:.1f} ms; steady p50 {out['steady']['p50']:.2f} ms "
        f"p99 {out['steady']['p99']:.2f} ms")
    return out


# ---------------------------------------------------------------------------------------------
# report


def fmt_med(vals: list[float]) -> str:
    if not vals:
        return "—"
    med = statistics.median(vals)
    if len(vals) == 1:
        return f"{med:.0f}"
    return f"{med:.0f} ({min(vals):.0f}–{max(vals):.0f})"


def ms(v: float) -> str:
    if v != v:  # nan
        return "—"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def section(cmd, started, load_before, load_after, tput, fdres, roll_res, args, versions,
            failures) -> str:
    L = [BEGIN, "## Shared socket and rolling restarts", "",
         "Made by `bench/roll.py` (Python standard library, plus `wrk`); its docstring defines "
         "every measurement precisely. pypm binds `tcp://127.0.0.1:PORT` once and passes it to "
         "each instance as fd 3; the kernel spreads connections across instances. A roll "
         "(`pypm restart web`) starts a new instance, waits for its `log` ready probe, then "
         "sends SIGTERM to an old one, one instance at a time.", "",
         "### Command", "", "```sh", cmd, "```", "",
         f"Run on {started.strftime('%Y-%m-%d %H:%M UTC')}; load average before {load_before}, "
         f"after {load_after} (2 cores shared with other work: the load generator, wrk and the "
         "servers all compete for them).", ""]
    if tput:
        L += ["### Throughput through the shared socket", "",
              f"`wrk -t2 -c50 -d{args.secs}s` on `/` (uvicorn also with `-H 'Connection: close'`), "
              f"median (min–max) of {args.runs} run(s) per cell, each under a freshly started "
              "pypm; 1 and 2 instances alternate. The last column is the busier instance's "
              "share of the CPU time both instances used during the 2-instance runs (50 % = "
              "even spread).", "",
              "| server | 1 instance (req/s) | 2 instances (req/s) | 2 / 1 | busier instance |",
              "|---|---|---|---|---|"]
        for kind, res in tput.items():
            a, b = res.get(1, []), res.get(2, [])
            ratio = (f"{statistics.median(b) / statistics.median(a):.2f}×"
                     if a and b and statistics.median(a) else "—")
            share = (f"{100 * statistics.median(res['share']):.0f} %" if res.get("share")
                     else "—")
            L.append(f"| {kind} | {fmt_med(a)} | {fmt_med(b)} | {ratio} | {share} |")
        L += ["", "wrk needs CPU on the same 2 cores, so 2 instances cannot reach 2× here.", "",
              "pypm sets `TCP_NODELAY` on the TCP sockets it binds. Without it, `uvicorn --fd 3` "
              "is slow on keep-alive connections: uvicorn wraps the fd as `socket.fromfd(fd, "
              "AF_UNIX, ...)`, so asyncio never sets `TCP_NODELAY` on the connections it accepts, "
              "and a response written in two `send()`s waits for the client's delayed ACK (~40 ms); "
              "the table below measures exactly that. With keep-alive the kernel spreads wrk's 50 "
              "connections once, when they are accepted; with `Connection: close` it spreads every "
              "request.", ""]
    if fdres:
        L += ["One uvicorn without pypm, same wrk (keep-alive), median (min–max) req/s:", "",
              "| uvicorn binds `--port` | `--fd 3`, inherited TCP socket | `--fd 3`, socket with "
              "`TCP_NODELAY` set before `listen()` |", "|---|---|---|",
              f"| {fmt_med(fdres['port'])} | {fmt_med(fdres['fd'])} | "
              f"{fmt_med(fdres['nodelay'])} |", "",
              "Linux copies `TCP_NODELAY` from a listening socket to the sockets it accepts, so "
              "a supervisor that sets it on the sockets it binds gives `uvicorn --fd` its normal "
              "keep-alive speed (systemd's `NoDelay=` does the same).", ""]
    if roll_res:
        L += [f"### Failed requests during {args.restarts} rolling restarts at ~{args.rate:.0f} "
              "requests/s", "",
              "New connection per request (32 client threads); every request started between "
              "the first restart command and 1 s after the last roll finished is counted. "
              "Two instances (gunicorn: 2 workers) in every row.", "",
              "| scenario | requests (rate) | ok | refused | reset | EOF | timeout | other "
              "| slowest ok (ms) | p99 ok (ms) | roll time, median (s) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for label, r in roll_res.items():
            s = r["roll"]
            c = s["counts"]
            other = sum(s["other"].values())
            other_s = str(other) + (" (" + ", ".join(f"{k}: {v}" for k, v in s["other"].items())
                                    + ")" if other else "")
            L.append(f"| {label} | {s['requests']} ({s['rate']:.0f}/s) | {c['ok']} | "
                     f"{c['refused']} | {c['reset']} | {c['eof']} | {c['timeout']} | {other_s} | "
                     f"{ms(s['max'])} | {ms(s['p99'])} | "
                     f"{statistics.median(r['roll_times']):.2f} |")
        L += ["", f"### Steady state at the same load ({args.steady:.0f} s before the first roll)",
              "",
              "| server | requests | failed | p50 (ms) | p99 (ms) | slowest (ms) |",
              "|---|---|---|---|---|---|"]
        for label, r in roll_res.items():
            s = r["steady"]
            failed = s["requests"] - s["counts"]["ok"]
            L.append(f"| {label} | {s['requests']} | {failed} | {ms(s['p50'])} | "
                     f"{ms(s['p99'])} | {ms(s['max'])} |")
        L.append("")
    if failures:
        L += ["Failures during the run:", ""] + [f"- {f}" for f in failures] + [""]
    L += ["### Machine and versions", ""] + machine()
    L += [f"- {k}: {v}" for k, v in versions.items()]
    L += ["", END]
    return "\n".join(L) + "\n"


def write_section(path: str, text: str) -> None:
    try:
        with open(path) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# Benchmarks\n"
    i, j = doc.find(BEGIN), doc.find(END)
    if i >= 0 and j > i:
        doc = doc[:i] + text.rstrip("\n") + doc[j + len(END):]
        if not doc.endswith("\n"):
            doc += "\n"
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(doc)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="2 restarts, 1 throughput run of 3 s, 3 s steady state")
    ap.add_argument("--pypm", help="use this pypm binary instead of building one")
    ap.add_argument("--restarts", type=int, default=None, help="rolls per scenario (default 10)")
    ap.add_argument("--rate", type=float, default=500.0, help="requests/s during rolls")
    ap.add_argument("--runs", type=int, default=None, help="wrk runs per cell (default 3)")
    ap.add_argument("--only", default="throughput,uvicorn,gunicorn,hup",
                    help="comma list of: throughput, uvicorn, gunicorn, hup")
    ap.add_argument("--out", help="write the roll section of this Markdown file")
    args = ap.parse_args()
    q = args.quick
    args.restarts = args.restarts or (2 if q else 10)
    args.runs = args.runs or (1 if q else 3)
    args.secs = 3 if q else 10
    args.steady = 3.0 if q else 10.0
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    pypm = build_pypm(args.pypm)
    ensure_venv()
    wrk = ensure_wrk() if "throughput" in only else None
    versions = {
        "pypm": sh_out([pypm, "--version"]) + " (git "
        + sh_out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]) + ")",
        "gunicorn": sh_out([os.path.join(VENV, "bin", "gunicorn"), "--version"]),
        "uvicorn": sh_out([os.path.join(VENV, "bin", "uvicorn"), "--version"]),
    }
    if wrk:
        versions["wrk"] = sh_out([wrk, "-v"], merge=True).splitlines()[0]

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    load_before = loadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    tput: dict[str, dict] = {}
    fdres: dict[str, list[float]] = {}
    roll_res: dict[str, dict] = {}
    failures: list[str] = []
    try:
        if "throughput" in only:
            for kind, close in (("uvicorn", False), ("uvicorn", True), ("gunicorn", False)):
                label = f"{kind}, " + ("`Connection: close`" if close else "keep-alive")
                if kind == "gunicorn":
                    label = "gunicorn (sync worker: closes every connection)"
                log(f"throughput: {label}")
                try:
                    tput[label] = throughput(pypm, wrk, kind, close, args.runs, args.secs)
                except Exception as e:  # noqa: BLE001 - report and go on
                    failures.append(f"throughput {label}: {e}")
                    log(f"  FAILED: {e}")
            log("throughput: one uvicorn without pypm, --port vs --fd 3 vs --fd 3 + TCP_NODELAY")
            try:
                fdres = uvicorn_fd(wrk, args.runs, args.secs)
            except Exception as e:  # noqa: BLE001
                failures.append(f"uvicorn --fd: {e}")
                log(f"  FAILED: {e}")
        plan = [("uvicorn", "pypm, uvicorn ×2", lambda p: PypmProject(pypm, "uvicorn", 2, p)),
                ("gunicorn", "pypm, gunicorn ×2", lambda p: PypmProject(pypm, "gunicorn", 2, p)),
                ("hup", "gunicorn `kill -HUP` (2 workers, no pypm)", lambda p: GunicornHup(p))]
        for key, label, make in plan:
            if key not in only:
                continue
            log(f"rolls: {label}")
            try:
                roll_res[label] = rolls(make(free_port()), args.rate, args.restarts,
                                        args.steady, label)
            except Exception as e:  # noqa: BLE001
                failures.append(f"{label}: {e}")
                log(f"  FAILED: {e}")
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        kill_marked()
        return 130
    finally:
        kill_marked()

    cmd = "python3 bench/roll.py " + " ".join(sys.argv[1:])
    text = section(cmd.strip(), started, load_before, loadavg(), tput, fdres, roll_res, args,
                   versions, failures)
    print(text)
    if args.out:
        write_section(args.out, text)
        log(f"wrote the roll section of {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
