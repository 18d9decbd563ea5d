#!/usr/bin/env python3
"""The floor of the log row of bench/bench.py: what moving bytes through a pipe into a file costs
on this machine when nothing else is done with them.

    python3 bench/pipe_floor.py [--mib 200] [--runs 5]

`cat DATA` (DATA: the 100-byte-line file bench.py makes in bench/.scratch) writes into

  direct  the log file itself, no pipe (what Horust does: the manager never sees the bytes);
  rw      a pipe (128 KiB, or 1 MiB) that this script drains with read(1 MiB) + write to the file:
          the least any manager that reads the pipe must do (two kernel copies, no user-space
          work at all — pypm additionally finds the newlines);
  splice  a pipe that this script moves to the file with splice(2) (one copy fewer in theory).

Reported per mode: median (min-max) wall time from starting `cat` until the file holds every byte,
and this script's own CPU time (user + system) over the same interval. Python's per-call overhead
is negligible at 1 MiB per call. Standard library only; Linux only (F_SETPIPE_SZ, splice).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (for the shared data file)

F_SETPIPE_SZ = 1031
CHUNK = 1 << 20


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def once(mode: str, pipe_size: int, data: str, out: str) -> tuple[float, float]:
    if os.path.exists(out):
        os.unlink(out)
    os.sync()  # no writeback of the previous run during this one
    flags = os.O_WRONLY | os.O_CREAT | (0 if mode == "splice" else os.O_APPEND)
    fd = os.open(out, flags, 0o640)
    c0, t0 = cpu(), time.perf_counter()
    if mode == "direct":
        subprocess.run(["cat", data], stdout=fd, check=True)
    else:
        r, w = os.pipe()
        fcntl.fcntl(w, F_SETPIPE_SZ, pipe_size)
        p = subprocess.Popen(["cat", data], stdout=w)
        os.close(w)
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            if mode == "splice":
                n = os.splice(r, fd, CHUNK)
            else:
                n = os.readv(r, [buf])
                done = 0
                while done < n:
                    done += os.write(fd, view[done:n])
            if n == 0:
                break
        p.wait()
        os.close(r)
    t1, c1 = time.perf_counter(), cpu()
    os.close(fd)
    return t1 - t0, c1 - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    data, _, _ = bench.data_file(args.mib)
    modes = [("direct", 0), ("rw", 128 << 10), ("rw", 1 << 20), ("splice", 128 << 10),
             ("splice", 1 << 20)]
    res: dict[tuple[str, int], list[tuple[float, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="pypm-pipe-floor-") as d:
        out = os.path.join(d, "out.log")
        for _ in range(args.runs):
            for m in modes:  # alternate, so drifts of the machine hit every mode alike
                res[m].append(once(m[0], m[1], data, out))
    print(f"{args.mib} MiB, {args.runs} runs, median (min-max)")
    print("| mode | pipe | wall (s) | reader CPU (s) |")
    print("|---|---|---|---|")
    for (mode, size), v in res.items():
        wall = [x[0] for x in v]
        c = [x[1] for x in v]
        pipe = "—" if mode == "direct" else f"{size >> 10} KiB"
        print(f"| {mode} | {pipe} | {statistics.median(wall):.3f} ({min(wall):.3f}–{max(wall):.3f})"
              f" | {statistics.median(c):.3f} ({min(c):.3f}–{max(c):.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
