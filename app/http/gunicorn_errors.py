"""gunicorn's own error answers as problem+json, like every answer of the app.

gunicorn refuses some requests before the app sees them: a request line over
``limit_request_line`` (414), too many or too large headers (431), a line or header that
is not HTTP (400), and it answers 500 when the app's WSGI call itself fails. It writes
those as a small HTML page through ``gunicorn.util.write_error``, its one writer for them
(``Worker.handle_error``). ``install()``, called by each worker once it has loaded the
app (``post_worker_init`` in gunicorn.conf.py), replaces that function with one that
writes the same status as an RFC 9457 body that says what to fix. gunicorn is pinned in
the lock; ``tests/test_operations.py`` checks the answers through a real gunicorn, so an
upgrade that moves the writer fails there.
"""

from __future__ import annotations

import json

from gunicorn import util

from app.http.errors import PROBLEM_MIME, problem_body

#: What to do about each status gunicorn answers with; gunicorn's own message (which names
#: the limit, or the part it could not parse) goes before it.
_FIX = {
    400: "Send a well-formed HTTP/1.1 request line and headers.",
    403: "The request was refused before it reached the service.",
    414: "Send a shorter request line (method, path, query and version): fewer or shorter query parameters.",
    417: "Drop the Expect header or send 'Expect: 100-continue'.",
    431: "Send fewer or smaller headers.",
    500: "Internal error; it has been logged.",
    501: "Send the body without a Transfer-Encoding, or as chunked.",
}
#: gunicorn's message can quote the client's bytes: a bounded part of them is enough.
_MESSAGE_CHARS = 200


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error``'s signature and job, with a problem+json body."""
    fix = _FIX.get(status_int, "")
    message = mesg if len(mesg) <= _MESSAGE_CHARS else mesg[:_MESSAGE_CHARS] + "..."
    detail = f"{message}. {fix}" if message and status_int != 500 else fix or message
    body = json.dumps(problem_body(status_int, detail, title=reason)).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: {PROBLEM_MIME}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    util.write_error = write_problem
