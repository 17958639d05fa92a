"""Versions as ETags, and the If-Match precondition that keeps two editors from silently
overwriting each other (RFC 9110: 412 when stale, 428 when missing)."""

from __future__ import annotations

import re

from flask import request

from app.http.errors import Problem

IF_MATCH = {
    "If-Match": {
        "description": "The ETag this change is based on (from the last GET or write); a stale one gets 412.",
        "required": True,
    }
}
_TAG = re.compile(r'^\s*(?:W/)?"(\d{1,9})"\s*$')


def etag(version: int) -> str:
    return f'"{int(version)}"'


def required_version() -> int:
    """The version named by If-Match; 428 without one, 400 for one this service never issued."""
    header = request.headers.get("If-Match")
    if header is None:
        raise Problem(
            428,
            "Send If-Match with the ETag of the version you are changing (from GET or the last write), "
            "so that a change made meanwhile by someone else is not overwritten.",
        )
    match = _TAG.match(header)
    if not match:
        raise Problem(400, f'If-Match {header[:40]!r} is not an ETag of this API; they look like "3".')
    return int(match[1])


def stale(current: int) -> Problem:
    return Problem(
        412,
        f"Changed meanwhile: the current version is {etag(current)}. Reload it, reapply your change, and send "
        "the new ETag as If-Match.",
        headers={"ETag": etag(current)},
    )
