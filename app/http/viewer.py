"""Who is looking, and the impression tokens a response hands them."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, request

from app.domain.impression_tokens import Signer, viewer_of


def request_viewer(user_id: str | None, at: datetime) -> str:
    """A keyed hash of the signed-in user, else of the client address that day. Never a
    header the client picks (thirty X-Client-Ids once made thirty unique viewers)."""
    return viewer_of(current_app.config["SECRET_KEY"], user_id, request.remote_addr, at.date().isoformat())


def token_signer(surface: str, viewer: str, now: datetime) -> Signer:
    """Signs the impression tokens of this response's items (issued now, by the service clock)."""
    return Signer(current_app.config["SECRET_KEY"], surface, viewer, int(now.timestamp()))
