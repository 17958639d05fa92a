"""What the platform team sees: a request id on every request and log line, JSON logs, and
Prometheus metrics (``/metrics``) summed over every gunicorn worker.

Metrics use prometheus-client's multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set
(``gunicorn.conf.py`` sets it before the app is imported and wipes it at start-up): each
worker writes its samples to files there and ``/metrics`` reads them all. Without it (tests,
``flask run``), the process's own registry.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time

from flask import Flask, g, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

#: An incoming X-Request-ID is kept when it looks like one (else a new one is made).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

REQUESTS = Histogram(
    "o2o_request_seconds",
    "Time to answer a request, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RATE_LIMITED = Counter("o2o_rate_limited_total", "Requests refused with 429 by the rate limits.")
BREAKER_OPEN = Gauge("o2o_redis_breaker_open", "1 while a worker skips Redis after a failure.", multiprocess_mode="max")
IMPRESSIONS_BUFFERED = Gauge(
    "o2o_impressions_buffered", "Impression records waiting for the next flush.", multiprocess_mode="livesum"
)
IMPRESSIONS_DROPPED = Gauge(
    "o2o_impressions_dropped", "Impression records dropped since the worker started.", multiprocess_mode="livesum"
)
MODEL = Gauge("o2o_model_info", "1 for the model version a worker serves.", ["version"], multiprocess_mode="max")
INDEX_STORES = Gauge("o2o_index_stores", "Stores in the served index.", multiprocess_mode="max")


def init_app(app: Flask) -> None:
    @app.before_request
    def _start():
        given = request.headers.get("X-Request-ID", "")
        # Not uuid4: an id need not be secret, and reading the OS's random source costs a
        # syscall per request (milliseconds under load here); random reseeds after a fork.
        g.request_id = given if _REQUEST_ID.match(given) else f"{random.getrandbits(128):032x}"
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        rid = getattr(g, "request_id", None)
        if rid:
            response.headers["X-Request-ID"] = rid
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        elapsed = time.perf_counter() - getattr(g, "started", time.perf_counter())
        REQUESTS.labels(route, request.method, str(response.status_code)).observe(elapsed)
        if response.status_code == 429:
            RATE_LIMITED.inc()
        _sample_state(app)
        return response


def _sample_state(app: Flask) -> None:
    """The worker's state, as gauges (cheap: read at the end of each request)."""
    svc = app.extensions.get("o2o")
    if svc is None:
        return
    BREAKER_OPEN.set(0 if svc.breaker.closed else 1)
    IMPRESSIONS_BUFFERED.set(svc.impressions.buffered)
    IMPRESSIONS_DROPPED.set(svc.breaker.dropped)
    INDEX_STORES.set(len(svc.index))
    version = svc.models.version
    if version != getattr(svc, "_metric_version", None):
        if getattr(svc, "_metric_version", None):
            MODEL.labels(svc._metric_version).set(0)
        MODEL.labels(version or "none").set(1)
        svc._metric_version = version


def metrics_text() -> bytes:
    """Every worker's metrics in the Prometheus text format."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id inside a
    request, and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context():
            rid = getattr(g, "request_id", None)
            if rid:
                line["request_id"] = rid
                line["path"] = request.path
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


JsonFormatter.converter = time.gmtime  # type: ignore[assignment]  # UTC timestamps
