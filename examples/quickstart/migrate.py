"""One-shot task: create or update a small SQLite database, then exit 0.

`web.py` reads the database to show that this task ran first.
"""
import os
import signal
import sqlite3
import sys
import time

# Exit promptly (code 143 = 128 + SIGTERM) if pypm stops us mid-run.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

# The file lives next to this script (pypm runs apps in the file's directory).
DB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quickstart.db")

with sqlite3.connect(DB) as db:
    db.execute("CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, applied_at TEXT)")
    db.execute(
        "INSERT INTO migrations (applied_at) VALUES (?)",
        (time.strftime("%Y-%m-%dT%H:%M:%S"),),
    )
    (count,) = db.execute("SELECT COUNT(*) FROM migrations").fetchone()

print("migrate: {} migration run(s) recorded in {}".format(count, DB), flush=True)
