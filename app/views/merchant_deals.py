"""Merchants' deals: create, list, change, pause and end them with the merchant's key.

Every write is versioned (``ETag``; a change needs ``If-Match``), logged with the key id
that made it, and live on every worker within about a second (``storage.change_feed``);
this worker applies it before answering, so a client reads its own write.
"""

from __future__ import annotations

import secrets

import numpy as np
from flask import Blueprint, current_app, jsonify

from app.domain import edits as domain_edits
from app.domain.clock import iso_z
from app.http import changes
from app.http.auth import require_merchant
from app.http.errors import Problem, field_error, storage_or_503, unavailable
from app.http.etags import IF_MATCH, etag, required_version, stale
from app.http.openapi import documented
from app.http.schemas import DealIn, DealPatch, MerchantDeal, MerchantDeals, ProblemBody
from app.services import Services, services
from app.storage import merchant_writes
from app.storage.events import read_user_state

bp = Blueprint("merchant_deals", __name__, url_prefix="/v1/merchants")
_SECURITY = [{"bearer": []}]
_PATH = {
    "merchant_id": {
        "description": "The merchant; a key reads and changes only its own deals.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    "deal_id": {
        "description": "A deal_id from the list.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
}
_ERRORS = {400: ProblemBody, 401: ProblemBody, 403: ProblemBody, 503: ProblemBody}
_UNAVAILABLE = "Deals cannot be changed right now; retry."
_HOURS_HINT = "OpenStreetMap opening_hours syntax, e.g. Mo-Fr 11:00-14:00"


@bp.post("/<merchant_id>/deals")
@documented(
    summary="Start a deal at one of the merchant's stores",
    body=DealIn,
    path=_PATH,
    tags=["merchant self-service"],
    security=_SECURITY,
    etag=True,
    responses={201: MerchantDeal, 409: ProblemBody, 429: ProblemBody, **_ERRORS},
)
def create_deal(merchant_id: str):
    """201 with the deal, its new ``deal_id`` and ETag; it is in nearby, map and recommended
    deals on every worker within about a second."""
    svc = services()
    require_merchant(svc, merchant_id)
    deal, errors = changes.parse_change(DealIn, "deal", "valid_hours", _HOURS_HINT)
    errors += [field_error(f, m) for f, m in _store_problems(svc, merchant_id, deal.store_id)]
    svc.catch_up()
    book, cap = svc.deals, current_app.config["MERCHANT_OPEN_DEALS"]
    open_deals = int(np.count_nonzero(book.status[_merchant_rows(svc, merchant_id)] != "ended"))
    if open_deals >= cap:
        raise Problem(
            409, f"Merchant {merchant_id!r} has {open_deals} deals that have not ended, the limit; end some first."
        )
    state = {
        "deal_id": "dl-" + secrets.token_hex(8),
        "merchant_id": merchant_id,
        **deal.model_dump(mode="json"),
        "starts_at": iso_z(deal.starts_at),
        "ends_at": iso_z(deal.ends_at),
        "tags": list(deal.tags or []),
        "status": "active",
    }
    errors += [field_error(f, m) for f, m in domain_edits.deal_problems(state)]
    if errors:
        raise Problem(400, "Invalid deal.", errors)
    fields = {k: v for k, v in state.items() if k != "deal_id"}
    changes.record(svc, merchant_id, f"deal:{state['deal_id']}", 0, state, "create", fields)
    return _answer(svc, merchant_id, state["deal_id"], 201)


@bp.get("/<merchant_id>/deals")
@documented(
    summary="The merchant's deals with live quota and redemptions",
    path={"merchant_id": _PATH["merchant_id"]},
    tags=["merchant self-service"],
    security=_SECURITY,
    responses={200: MerchantDeals, 401: ProblemBody, 403: ProblemBody, 503: ProblemBody},
)
def list_deals(merchant_id: str):
    """Every deal at the merchant's stores, files' and its own, ended ones included (newest
    end first): redemptions so far, quota left, and whether customers see it now."""
    svc = services()
    require_merchant(svc, merchant_id)
    svc.catch_up()
    book = svc.deals
    rows = sorted(_merchant_rows(svc, merchant_id).tolist(), key=lambda i: (book.ends[i], book.ids[i]), reverse=True)
    return jsonify(merchant_id=merchant_id, deals=_rows_json(svc, book, rows))


@bp.get("/<merchant_id>/deals/<deal_id>")
@documented(
    summary="One of the merchant's deals, with its ETag",
    path=_PATH,
    tags=["merchant self-service"],
    security=_SECURITY,
    etag=True,
    responses={200: MerchantDeal, 404: ProblemBody, **_ERRORS},
)
def get_deal(merchant_id: str, deal_id: str):
    svc = services()
    require_merchant(svc, merchant_id)
    svc.catch_up()
    _own_row(svc, merchant_id, deal_id)
    return _answer(svc, merchant_id, deal_id, 200)


@bp.patch("/<merchant_id>/deals/<deal_id>")
@documented(
    summary="Change, pause or resume a deal (If-Match required)",
    body=DealPatch,
    path=_PATH,
    headers=IF_MATCH,
    tags=["merchant self-service"],
    security=_SECURITY,
    etag=True,
    responses={
        200: MerchantDeal,
        404: ProblemBody,
        409: ProblemBody,
        412: ProblemBody,
        428: ProblemBody,
        429: ProblemBody,
        **_ERRORS,
    },
)
def patch_deal(merchant_id: str, deal_id: str):
    """Only the fields sent change (null clears per_user_limit, valid_hours or tags).
    ``{"status": "paused"}`` takes the deal out of every list until ``"active"`` again."""
    svc = services()
    require_merchant(svc, merchant_id)
    expected = required_version()
    svc.catch_up()
    state = _own_state(svc, merchant_id, deal_id)
    patch, errors = changes.parse_change(DealPatch, "deal change", "valid_hours", _HOURS_HINT)
    sent = patch.model_dump(mode="json", include=patch.model_fields_set)
    for name in ("title", "discount_pct", "starts_at", "ends_at", "quota", "status"):
        if name in sent and sent[name] is None:
            raise Problem(400, "Invalid deal change.", [field_error(name, "cannot be null")])
    for name in ("starts_at", "ends_at"):
        if name in sent:
            sent[name] = iso_z(getattr(patch, name))
    if state["status"] == "ended":
        raise Problem(409, f"Deal {deal_id!r} has ended; its history stays. Start a new deal instead.")
    new = {**state, **sent, "tags": list(sent.get("tags", state.get("tags")) or [])}
    errors += [field_error(f, m) for f, m in domain_edits.deal_problems(new)]
    if errors:
        raise Problem(400, "Invalid deal change.", errors)
    action = "update"
    if set(sent) == {"status"}:
        action = {"paused": "pause", "active": "resume"}[sent["status"]]
    changes.record(svc, merchant_id, f"deal:{deal_id}", expected, new, action, sent)
    return _answer(svc, merchant_id, deal_id, 200)


@bp.delete("/<merchant_id>/deals/<deal_id>")
@documented(
    summary="End a deal (If-Match required); its history and statistics stay",
    path=_PATH,
    headers=IF_MATCH,
    tags=["merchant self-service"],
    security=_SECURITY,
    etag=True,
    responses={200: MerchantDeal, 404: ProblemBody, 412: ProblemBody, 428: ProblemBody, 429: ProblemBody, **_ERRORS},
)
def end_deal(merchant_id: str, deal_id: str):
    """The deal leaves every list at once and cannot be resumed; its redemptions, statistics
    and change history are kept, and the list still shows it as ended."""
    svc = services()
    require_merchant(svc, merchant_id)
    expected = required_version()
    svc.catch_up()
    state = _own_state(svc, merchant_id, deal_id)
    if state["status"] != "ended":
        ended = {**state, "status": "ended"}
        changes.record(svc, merchant_id, f"deal:{deal_id}", expected, ended, "end", {"status": "ended"})
    elif expected != state["version"]:
        raise stale(state["version"])
    return _answer(svc, merchant_id, deal_id, 200)


# ---------------------------------------------------------------------------- helpers
def _merchant_rows(svc: Services, merchant_id: str) -> np.ndarray:
    """Rows of the deal book at the merchant's stores."""
    book = svc.deals
    return np.flatnonzero(svc.index.column("merchant_id")[book.store_pos] == merchant_id)


def _store_problems(svc: Services, merchant_id: str, store_id: str) -> list[tuple[str, str]]:
    pos = svc.index.position(store_id)
    if pos is None or svc.index.column("merchant_id")[pos] != merchant_id:
        return [("store_id", f"{store_id[:128]!r} is not one of merchant {merchant_id!r}'s stores")]
    return []


def _own_row(svc: Services, merchant_id: str, deal_id: str) -> int:
    book = svc.deals
    i = book.by_id.get(deal_id)
    if i is None:
        raise Problem(404, f"No deal {deal_id[:128]!r}. Deal ids come from GET /v1/merchants/{{merchant_id}}/deals.")
    if svc.index.column("merchant_id")[book.store_pos[i]] != merchant_id:
        raise Problem(403, f"Deal {deal_id[:128]!r} is at another merchant's store.")
    return i


def _own_state(svc: Services, merchant_id: str, deal_id: str) -> dict:
    """The deal's whole current state: the last write's, else the deals file's (version 0)."""
    i = _own_row(svc, merchant_id, deal_id)
    if svc.redis is None:
        raise unavailable("Changing deals needs Redis, which is off.")
    with storage_or_503(_UNAVAILABLE):
        state = merchant_writes.current(svc.redis, f"deal:{deal_id}")
    if state is None:  # a deal of the deals file, never changed
        state = {**svc.deals.row(i), "merchant_id": merchant_id, "version": 0}
    return state


def _answer(svc: Services, merchant_id: str, deal_id: str, status: int):
    book = svc.deals
    i = book.by_id[deal_id]
    (row,) = _rows_json(svc, book, [i])
    resp = jsonify(row)
    resp.status_code = status
    resp.headers["ETag"] = etag(row["version"])
    if status == 201:
        resp.headers["Location"] = f"/v1/merchants/{merchant_id}/deals/{deal_id}"
    return resp


def _rows_json(svc: Services, book, rows: list[int]) -> list[dict]:
    """The deals as their merchant sees them: redemptions so far and whether customers see them now."""
    used: dict = {}
    if svc.redis is not None and rows:
        with storage_or_503("Deals cannot be read right now; retry."):
            _redeemed, used, _stores = read_user_state(svc.redis, None, [book.ids[i] for i in rows])
    live = set(book.active(svc.now()).tolist())
    out = []
    for i in rows:
        row = book.row(i)
        redeemed = used.get(row["deal_id"], 0)
        row["redeemed"] = redeemed
        row["quota_left"] = None if row["quota"] is None else max(row["quota"] - redeemed, 0)
        row["live"] = i in live and (row["quota_left"] is None or row["quota_left"] > 0)
        out.append(row)
    return out
