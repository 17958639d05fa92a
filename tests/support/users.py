"""Signed-in users for tests: user tokens minted the way scripts.users mints them."""

from __future__ import annotations

from app.http.users import mint


def as_user(app, user_id: str | None, ttl_s: int = 3600) -> dict:
    """Request headers that sign ``user_id`` in to ``app`` (none for an anonymous user)."""
    if user_id is None:
        return {}
    now = app.extensions["o2o"].now()  # the service's clock, which the token is checked against
    return {"Authorization": "Bearer " + mint(app.config, user_id, now, ttl_s)}


def shown(client, store_id: str, headers: dict | None = None) -> str:
    """The impression token of ``store_id`` as its detail view hands it out (a fresh one each call)."""
    r = client.get(f"/v1/stores/{store_id}", headers=headers or {})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["impression_token"]
