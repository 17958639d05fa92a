"""Who is looking: the viewer id that impressions carry, from the request."""

from __future__ import annotations

from datetime import datetime

from flask import request

from app.storage.impressions import viewer_id


def request_viewer(user_id: str | None, at: datetime) -> str:
    """The user, else a daily-salted hash of the X-Client-Id header or the client address."""
    return viewer_id(user_id, request.headers.get("X-Client-Id"), request.remote_addr, at.date().isoformat())
