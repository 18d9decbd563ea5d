#!/usr/bin/env python3
"""One app printing a line per write at full speed (an unbuffered Python `print(i)` loop) beside
a quiet one printing a timestamp every 50 ms: the log pump's CPU, the quiet line's latency to
its file, and the chatty app's throughput (issue 24's "print()-per-line" row).

    python3 bench/chatty.py [--secs 5] [--runs 3] BINARY [BINARY...]

Binaries run alternately, `--runs` times each; medians are printed. The pump's CPU is the
`pypm-logs` thread's utime+stime; the latency is read time minus the line's own timestamp,
the file followed every 0.5 ms (so 0.5 ms of it is this reader's)."""
import argparse, glob, os, statistics, subprocess, sys, tempfile, time

CHATTY = "import itertools\nfor i in itertools.count():\n    print(i)\n"
QUIET = "import time\nwhile True:\n    print(f'{time.time():.6f}', flush=True)\n    time.sleep(0.05)\n"


def run(binary, secs):
    d = tempfile.mkdtemp(prefix="pypm-chatty-")
    for name, text in (("chatty.py", CHATTY), ("quiet.py", QUIET)):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    with open(os.path.join(d, "pypm.toml"), "w") as f:
        f.write('[apps.chatty]\ncommand = "python3 chatty.py"\nlog_max_size = "50M"\nlog_max_files = 2\n\n'
                '[apps.quiet]\ncommand = "python3 quiet.py"\n')
    cfg = os.path.join(d, "pypm.toml")
    subprocess.run([binary, "--config", cfg, "up", "-d"], check=True, capture_output=True)
    try:
        time.sleep(1.5)
        pid = int(open(os.path.join(d, ".pypm/pypm.pid")).read())

        def pump_ticks():
            for t in glob.glob(f"/proc/{pid}/task/*"):
                if open(t + "/comm").read().strip() == "pypm-logs":
                    f = open(t + "/stat").read().rsplit(")", 1)[1].split()
                    return int(f[11]) + int(f[12])
            return 0

        log = os.path.join(d, ".pypm/logs/quiet.out.log")
        t0, c0 = time.time(), pump_ticks()
        lat, buf = [], ""
        with open(log) as f:
            f.seek(0, 2)
            end = t0 + secs
            while time.time() < end:
                chunk = f.read()
                now = time.time()
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split("\n")
                    for line in lines:
                        try:
                            lat.append(now - float(line))
                        except ValueError:
                            pass
                time.sleep(0.0005)
        t1, c1 = time.time(), pump_ticks()
    finally:
        subprocess.run([binary, "--config", cfg, "down"], capture_output=True)
    chatty = sum(1 for p in glob.glob(os.path.join(d, ".pypm/logs/chatty.out.log*")) for _ in open(p))
    subprocess.run(["rm", "-rf", d])
    lat.sort()
    hz = os.sysconf("SC_CLK_TCK")
    return {
        "pump_cpu_pct": 100 * (c1 - c0) / hz / (t1 - t0),
        "quiet_p50_ms": 1000 * lat[len(lat) // 2],
        "quiet_p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "chatty_lines_per_s": chatty / (t1 - t0 + 1.5),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    results = {b: [] for b in a.binaries}
    for r in range(a.runs):
        for b in a.binaries:
            res = run(b, a.secs)
            results[b].append(res)
            print(f"run {r + 1}/{a.runs} {b}: " + ", ".join(f"{k}={v:.1f}" for k, v in res.items()), flush=True)
    print("\n| binary | pump CPU (% of a core) | quiet line p50 / p99 (ms) | chatty lines/s |\n|---|---|---|---|")
    for b, rs in results.items():
        med = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
        print(f"| `{b}` | {med['pump_cpu_pct']:.0f} | {med['quiet_p50_ms']:.1f} / {med['quiet_p99_ms']:.1f} | {med['chatty_lines_per_s']:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
