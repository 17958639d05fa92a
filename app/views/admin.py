"""Admin-only model control; registered only when O2O_ADMIN_KEY is set."""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request
from pydantic import ValidationError

from app.http.errors import Problem, storage_or_503, unavailable
from app.http.openapi import documented
from app.http.params import validation_errors
from app.http.schemas import ModelActivate, ModelState, ProblemBody
from app.services import services
from app.storage.model_versions import activate, rollback
from recommender import ArtifactError, versions

bp = Blueprint("admin", __name__, url_prefix="/v1/admin")
_SECURITY = [{"bearer": []}]


@bp.before_request
def _require_admin():
    given = request.headers.get("Authorization", "")
    key = current_app.config["ADMIN_KEY"] or ""
    if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].encode(), key.encode()):
        raise Problem(
            401,
            "Admin key required: send Authorization: Bearer <O2O_ADMIN_KEY>.",
            headers={"WWW-Authenticate": "Bearer"},
        )


@bp.get("/model")
@documented(
    summary="The model version in use and those available",
    tags=["admin"],
    security=_SECURITY,
    responses={200: ModelState, 401: ProblemBody},
)
def model_state():
    """What this worker serves, and the artifact versions on disk."""
    svc = services()
    return jsonify(version=svc.models.version, available=versions(svc.models.root))


@bp.post("/model/activate")
@documented(
    summary="Switch every worker to a model version",
    body=ModelActivate,
    tags=["admin"],
    security=_SECURITY,
    responses={200: ModelState, 400: ProblemBody, 401: ProblemBody, 503: ProblemBody},
)
def model_activate():
    """Checks that the version loads, then publishes it; workers switch within MODEL_CHECK_S."""
    try:
        body = ModelActivate.model_validate(request.get_json(silent=True) or {})
    except ValidationError as exc:
        raise Problem(400, "Invalid body.", validation_errors(ModelActivate, exc)) from None
    svc = _need_redis()
    if body.version not in versions(svc.models.root):
        raise Problem(400, f"No artifact version {body.version!r}; see GET /v1/admin/model.")
    try:
        with storage_or_503("Redis unavailable; retry."):
            activate(svc.redis, svc.models.root, body.version)
    except ArtifactError as exc:
        raise Problem(400, f"Version {body.version!r} does not load: {exc}") from None
    return jsonify(version=body.version, available=versions(svc.models.root))


@bp.post("/model/rollback")
@documented(
    summary="Roll every worker back to the previous model version",
    tags=["admin"],
    security=_SECURITY,
    responses={200: ModelState, 400: ProblemBody, 401: ProblemBody, 503: ProblemBody},
)
def model_rollback():
    """The version activated before the current one."""
    svc = _need_redis()
    try:
        with storage_or_503("Redis unavailable; retry."):
            target = rollback(svc.redis, svc.models.root)
    except (ValueError, ArtifactError) as exc:
        raise Problem(400, str(exc)) from None
    return jsonify(version=target, available=versions(svc.models.root))


def _need_redis():
    svc = services()
    if svc.redis is None:
        raise unavailable("Redis is off: model switching needs it.")
    return svc
