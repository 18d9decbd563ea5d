"""Background worker: logs a line every 2 seconds until pypm stops it."""
import signal
import sys
import time

# pypm stops an app with SIGTERM. Turning it into SystemExit interrupts the
# sleep at once and runs the `finally` below: a clean, prompt exit with code 0.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

n = 0
try:
    while True:
        n += 1
        print("worker: tick {}".format(n), flush=True)
        time.sleep(2)
finally:
    print("worker: stopping cleanly after {} tick(s)".format(n), flush=True)
