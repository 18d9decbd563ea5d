"""A tiny HTTP app on 127.0.0.1:$PORT: GET /health -> "ok"."""
import http.server
import os
import signal
import sys

PORT = int(os.environ["PORT"])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok\n"
        elif self.path == "/hello":
            body = b"hello from web\n"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print("web:", fmt % args, flush=True)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(f"web: listening on http://127.0.0.1:{PORT}", flush=True)
server.serve_forever()
