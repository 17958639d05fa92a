"""Every error leaves as one RFC 9457 problem+json body.

``{"type", "title", "status", "detail", "errors": [{"field", "message", "hint"}]}``;
server errors hide their details unless DEBUG_ERRORS is set.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from http import HTTPStatus

from flask import Flask, current_app, json
from werkzeug.exceptions import HTTPException

from app.storage.client import STORAGE_ERRORS

log = logging.getLogger(__name__)

PROBLEM_MIME = "application/problem+json"


class Problem(Exception):
    """Raise from any view to answer with a problem body."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict] | None = None,
        title: str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.title = title
        self.headers = headers or {}


#: Seconds a client is told to wait before retrying a 503.
RETRY_AFTER_S = 5


def unavailable(detail: str) -> Problem:
    """503 with Retry-After: a dependency (Redis) is down or turned off; retrying is safe."""
    return Problem(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)})


@contextmanager
def storage_or_503(detail: str):
    """Turn a Redis failure inside the block into ``unavailable(detail)``."""
    try:
        yield
    except STORAGE_ERRORS:
        raise unavailable(detail) from None


def field_error(field: str, message: str, hint: str | None = None) -> dict:
    item = {"field": field, "message": message}
    if hint:
        item["hint"] = hint
    return item


def problem_body(status: int, detail: str, errors=None, title=None) -> dict:
    """The RFC 9457 body: the app's answers and gunicorn's own (``app.http.gunicorn_errors``)."""
    body = {
        "type": f"https://o2o.example/problems/{status}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return body


def problem_response(status: int, detail: str, errors=None, title=None, headers=None):
    body = problem_body(status, detail, errors, title)
    resp = current_app.response_class(json.dumps(body), status=status, mimetype=PROBLEM_MIME)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem):
        return problem_response(exc.status, exc.detail, exc.errors, exc.title, exc.headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        detail = {
            404: "No such resource. See /openapi.json for the endpoints.",
            405: "Method not allowed on this path. See /openapi.json for the allowed methods.",
            413: "Request body too large.",
        }.get(exc.code, exc.description)
        headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
        return problem_response(exc.code or 500, detail, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        detail = (
            f"{type(exc).__name__}: {exc}"
            if current_app.config["DEBUG_ERRORS"]
            else "Internal error; it has been logged."
        )
        return problem_response(500, detail)
