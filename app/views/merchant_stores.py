"""Merchants' store details (hours, price level, tags, a temporary closure, phone, website)
and the audit log of every change a merchant's keys made."""

from __future__ import annotations

import numpy as np
from flask import Blueprint, jsonify, request

from app.domain import edits as domain_edits
from app.domain.clock import iso_z
from app.http import changes
from app.http.auth import require_merchant
from app.http.errors import Problem, field_error, storage_or_503, unavailable
from app.http.etags import IF_MATCH, etag, required_version, stale
from app.http.openapi import documented
from app.http.schemas import Changes, MerchantStore, MerchantStores, ProblemBody, StorePatch
from app.services import Services, services
from app.storage import merchant_writes
from app.views.stores import store_rows

bp = Blueprint("merchant_stores", __name__, url_prefix="/v1/merchants")
_SECURITY = [{"bearer": []}]
_MERCHANT = {
    "description": "The merchant; a key reads and changes only its own stores.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}
_PATH = {
    "merchant_id": _MERCHANT,
    "store_id": {
        "description": "One of the merchant's stores.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
}
_ERRORS = {400: ProblemBody, 401: ProblemBody, 403: ProblemBody, 404: ProblemBody, 503: ProblemBody}
_UNAVAILABLE = "Store details cannot be changed right now; retry."


@bp.get("/<merchant_id>/stores")
@documented(
    summary="The merchant's stores as customers see them, each with its version",
    path={"merchant_id": _MERCHANT},
    tags=["merchant self-service"],
    security=_SECURITY,
    responses={200: MerchantStores, 401: ProblemBody, 403: ProblemBody},
)
def list_stores(merchant_id: str):
    svc = services()
    require_merchant(svc, merchant_id)
    index = svc.index
    own = index.stores_of(merchant_id)
    svc.catch_up()
    rows = store_rows(index, own, None, svc.now(), ())
    for row in rows:
        row["version"] = svc.edits.version(f"store:{row['id']}")
    rows.sort(key=lambda row: (row["name"], row["id"]))
    return jsonify(merchant_id=merchant_id, stores=rows)


@bp.get("/<merchant_id>/stores/<store_id>")
@documented(
    summary="One of the merchant's stores as customers see it, with its ETag",
    path=_PATH,
    tags=["merchant self-service"],
    security=_SECURITY,
    etag=True,
    responses={200: MerchantStore, **_ERRORS},
)
def get_store(merchant_id: str, store_id: str):
    svc = services()
    require_merchant(svc, merchant_id)
    pos = _own_store(svc, merchant_id, store_id)
    return _answer(svc, pos, store_id)


@bp.patch("/<merchant_id>/stores/<store_id>")
@documented(
    summary="Change a store's hours, price level, tags, closure, phone or website (If-Match required)",
    body=StorePatch,
    path=_PATH,
    headers=IF_MATCH,
    tags=["merchant self-service"],
    security=_SECURITY,
    etag=True,
    responses={200: MerchantStore, 412: ProblemBody, 428: ProblemBody, 429: ProblemBody, **_ERRORS},
)
def patch_store(merchant_id: str, store_id: str):
    """Only the fields sent change; null clears one (``"closure": null`` reopens). Position,
    category and name are the catalogue's: sending them is a 400 that says how to get them
    changed. Live in search, store detail, map and deals on every worker within a second."""
    svc = services()
    require_merchant(svc, merchant_id)
    pos = _own_store(svc, merchant_id, store_id)
    expected = required_version()
    body = request.get_json(silent=True)
    if isinstance(body, dict):
        fixed = [f for f in domain_edits.CATALOGUE_FIELDS if f in body]
        if fixed:
            raise Problem(
                400,
                "These store fields are not the merchant's to change here.",
                [field_error(f, "comes from the store catalogue", domain_edits.CATALOGUE_HINT) for f in fixed],
            )
    patch, errors = changes.parse_change(StorePatch, "store change", "opening_hours", "e.g. Mo-Fr 08:00-18:00")
    if errors:
        raise Problem(400, "Invalid store change.", errors)
    sent = patch.model_dump(mode="json", include=patch.model_fields_set)
    if patch.closure is not None:
        sent["closure"] = {"closed_until": iso_z(patch.closure.closed_until), "reason": patch.closure.reason}
    if svc.redis is None:
        raise unavailable("Changing stores needs Redis, which is off.")
    entity = f"store:{store_id}"
    with storage_or_503(_UNAVAILABLE):
        state = merchant_writes.current(svc.redis, entity) or domain_edits.store_state(svc.index, pos)
        if state["version"] != expected:
            raise stale(state["version"])
    new = {**{k: v for k, v in state.items() if k != "version"}, **sent}
    changes.record(svc, merchant_id, entity, expected, new, "edit", sent)
    return _answer(svc, pos, store_id)


@bp.get("/<merchant_id>/changes")
@documented(
    summary="Who changed what and when: the merchant's deal and store changes, newest first",
    path={"merchant_id": _MERCHANT},
    tags=["merchant self-service"],
    security=_SECURITY,
    responses={200: Changes, 400: ProblemBody, 401: ProblemBody, 403: ProblemBody, 503: ProblemBody},
)
def list_changes(merchant_id: str):
    """Each change names the key that made it by key id (never the key), the fields changed
    and the version it made. ``limit`` (1-200, default 50) and ``before`` (a change_id) page."""
    svc = services()
    require_merchant(svc, merchant_id)
    limit = request.args.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= 200:
        raise Problem(400, "Invalid query.", [field_error("limit", "an integer from 1 to 200")])
    before = request.args.get("before")
    if before is not None and not _is_change_id(before):
        raise Problem(400, "Invalid query.", [field_error("before", "a change_id from a previous page")])
    if svc.redis is None:
        raise unavailable("The change log needs Redis, which is off.")
    with storage_or_503("The change log cannot be read right now; retry."):
        page, next_before = merchant_writes.audit_page(svc.redis, merchant_id, before, int(limit))
    return jsonify(merchant_id=merchant_id, changes=page, next_before=next_before)


def _own_store(svc: Services, merchant_id: str, store_id: str) -> int:
    pos = svc.index.position(store_id)
    if pos is None:
        raise Problem(404, f"No store {store_id[:128]!r} in the catalogue.")
    if svc.index.column("merchant_id")[pos] != merchant_id:
        raise Problem(403, f"Store {store_id[:128]!r} is another merchant's.")
    return pos


def _answer(svc: Services, pos: int, store_id: str):
    svc.catch_up()
    (row,) = store_rows(svc.index, np.array([pos]), None, svc.now(), ())
    row["version"] = svc.edits.version(f"store:{store_id}")
    resp = jsonify(row)
    resp.headers["ETag"] = etag(row["version"])
    return resp


def _is_change_id(text: str) -> bool:
    ms, _, seq = text.partition("-")
    return ms.isdigit() and seq.isdigit() and len(text) <= 41
