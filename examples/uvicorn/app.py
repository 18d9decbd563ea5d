"""A raw ASGI app (no framework): GET /health -> "ok", anything else -> a greeting."""
import os


async def app(scope, receive, send):
    if scope["type"] != "http":  # ignore "lifespan" and "websocket" scopes
        return
    if scope["path"] == "/health":
        body = b"ok\n"
    else:
        body = "{} from instance {} (pid {})\n".format(
            os.environ.get("APP_GREETING", "hello"),
            os.environ.get("PYPM_INSTANCE", "?"),
            os.getpid(),
        ).encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
