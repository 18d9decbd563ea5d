"""HTTP service on 127.0.0.1:$PORT (default 8000), standard library only.

GET /health -> 200 "ok"  (used by pypm's readiness probe)
GET /       -> what the `migrate` task wrote to quickstart.db
"""
import http.server
import os
import signal
import sqlite3
import sys

PORT = int(os.environ.get("PORT", "8000"))
DB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quickstart.db")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            self.reply(200, "ok\n")
        elif self.path == "/":
            try:
                with sqlite3.connect(DB) as db:
                    count, last = db.execute(
                        "SELECT COUNT(*), MAX(applied_at) FROM migrations"
                    ).fetchone()
            except sqlite3.OperationalError:  # migrate.py has not run
                self.reply(503, "no migrations table: run migrate.py first\n")
                return
            self.reply(200, "hello from pypm: {} migration run(s), last at {}\n".format(count, last))
        else:
            self.reply(404, "not found\n")

    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# pypm stops an app with SIGTERM: turn it into SystemExit so serve_forever()
# returns at once and the `finally` below closes the socket.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("web: listening on http://127.0.0.1:{}".format(PORT), flush=True)
try:
    server.serve_forever()
finally:
    server.server_close()
    print("web: stopped", flush=True)
