"""Health, the OpenAPI document and its docs page."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, render_template

from app.http.openapi import build_spec, documented
from app.http.schemas import Health, Live, Ready
from app.services import services

log = logging.getLogger("app")

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
@documented(summary="Liveness and what is loaded", tags=["meta"], responses={200: Health})
def healthz():
    """Up, with the catalogue size and the model version in use."""
    svc = services()
    svc.models.maybe_reload(svc.redis)
    return jsonify(
        status="ok",
        stores=len(svc.index),
        catalogue=svc.catalogue_name,
        model_version=svc.models.version,
        redis=_redis_state(svc),
        deals=len(svc.deals),
        impressions_dropped=svc.breaker.dropped,
        redis_memory=_redis_memory(svc),
    )


#: Share of Redis's maxmemory at which health warns: writes fail (503) when it is full.
MEMORY_WARNING = 0.8


def _redis_memory(svc) -> dict | None:
    """Used and maximum memory, and whether it is near full (None when unknown)."""
    if svc.redis is None or not svc.breaker.closed:
        return None
    try:
        info = svc.redis.info("memory")
    except Exception as exc:  # noqa: BLE001 - health must answer
        svc.breaker.failed(exc, "health check")
        return None
    if info and all(isinstance(v, dict) for v in info.values()):  # a cluster: the fullest node speaks
        info = max(info.values(), key=lambda n: int(n.get("used_memory", 0)) / max(int(n.get("maxmemory", 0)), 1))
    used, cap = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    near = bool(cap) and used >= MEMORY_WARNING * cap
    if near:
        log.warning("Redis memory at %.0f%% of maxmemory: writes will fail when it is full", 100 * used / cap)
    return {"used_mb": round(used / 2**20, 1), "max_mb": round(cap / 2**20, 1) if cap else None, "near_full": near}


def _redis_state(svc) -> str:
    if svc.redis is None:
        return "off"
    if not svc.breaker.closed:
        return "down"
    try:
        svc.redis.ping()
        return "up"
    except Exception as exc:  # noqa: BLE001 - any failure means down, and health must answer
        svc.breaker.failed(exc, "health check")
        return "down"


@bp.get("/readyz")
@documented(
    summary="Readiness: the index and the model are loaded (503 while they are not)",
    tags=["meta"],
    responses={200: Ready, 503: Ready},
)
def readyz():
    """For a load balancer or Kubernetes: send traffic only once this worker serves the
    catalogue and, when there are model artifacts, a model. Redis being down does not make
    it unready: search, the map and the fallback ranking work without it."""
    svc = services()
    waiting = []
    if len(svc.index) == 0:
        waiting.append("index")
    if svc.models.version is None and svc.models.available():
        waiting.append("model")
    body = {
        "status": "ready" if not waiting else "loading",
        "waiting_for": waiting,
        "model_version": svc.models.version,
    }
    return jsonify(body), 200 if not waiting else 503


@bp.get("/metrics")
@documented(
    summary="Prometheus metrics of every worker (text exposition format)",
    tags=["meta"],
    responses={200: ("text/plain", "Request latency by route and status, breaker, impressions, model, index, 429s")},
)
def metrics():
    from app.http.observability import metrics_text

    return current_app.response_class(metrics_text(), mimetype="text/plain; version=0.0.4")


@bp.get("/livez")
@documented(summary="Liveness only: the process answers", tags=["meta"], responses={200: Live})
def livez():
    """No dependencies touched: for load balancers, and the trivial baseline of the benchmarks."""
    return jsonify(status="ok")


@bp.get("/openapi.json")
@documented(
    summary="This API's OpenAPI 3.1 document",
    tags=["meta"],
    responses={200: ("application/json", "The OpenAPI document")},
)
def openapi_json():
    """Generated from the code's schemas at start-up."""
    return jsonify(_spec())


@bp.get("/docs")
@documented(summary="Human-readable API docs", tags=["meta"], responses={200: ("text/html", "Docs page")})
def docs():
    """The OpenAPI document rendered as a page, with no external scripts."""
    return render_template("docs.html", spec=_spec())


def _spec() -> dict:
    ext = current_app.extensions
    if "o2o.openapi" not in ext:
        ext["o2o.openapi"] = build_spec(current_app)
    return ext["o2o.openapi"]
