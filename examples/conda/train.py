"""A stand-in for a training job (standard library only): prints progress and
writes a small checkpoint file per epoch into ./checkpoints."""
import argparse
import json
import os
import signal
import sys
import time

# pypm stops apps with SIGTERM: exit at once, with the conventional 128 + 15.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
epochs = parser.parse_args().epochs

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")
os.makedirs(out, exist_ok=True)

# CONDA_DEFAULT_ENV is set by pypm when the app runs in a conda env.
print("train: python {} in env {}".format(sys.version.split()[0], os.environ.get("CONDA_DEFAULT_ENV")), flush=True)
loss = 1.0
for epoch in range(1, epochs + 1):
    time.sleep(0.5)  # pretend to work
    loss *= 0.9
    with open(os.path.join(out, "epoch-{:03d}.json".format(epoch)), "w") as f:
        json.dump({"epoch": epoch, "loss": round(loss, 4)}, f)
    print("train: epoch {}/{} loss {:.4f}".format(epoch, epochs, loss), flush=True)
print("train: done", flush=True)
