"""A worker that does a unit of work every 0.2 s and says so on stdout."""
import signal
import sys
import time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
n = 0
while True:
    n += 1
    print(f"worker: job {n} done", flush=True)
    time.sleep(0.2)
