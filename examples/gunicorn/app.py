"""A tiny WSGI app: GET /health -> "ok", anything else -> which instance answered."""
import os


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/health":
        body = b"ok\n"
    else:
        # PYPM_INSTANCE is set by pypm: 0 or 1 here, so you can see the load spread.
        body = "hello from instance {} (pid {})\n".format(
            os.environ.get("PYPM_INSTANCE", "?"), os.getpid()
        ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
