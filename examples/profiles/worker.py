"""A stand-in worker: says which queue it serves, then waits for work that never comes."""
import sys
import time

queue = sys.argv[sys.argv.index("--queue") + 1] if "--queue" in sys.argv else "default"
print(f"worker for queue {queue!r} started", flush=True)
while True:
    time.sleep(60)
