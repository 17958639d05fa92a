"""The Flask application factory: settings, then named steps that wire the parts."""

from __future__ import annotations

import logging

from flask import Flask

log = logging.getLogger("app")


def create_app(config: dict | None = None) -> Flask:
    """Build the app: defaults, then ``O2O_*`` environment, then ``config`` overrides."""
    from app.config import DEFAULTS, from_environment
    from app.http.jsonio import OrjsonProvider
    from app.secrets import resolve_secrets
    from app.wiring import build_services

    app = Flask(__name__)
    app.json_provider_class = OrjsonProvider
    app.json = OrjsonProvider(app)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(from_environment())
    app.config.from_mapping(config or {})
    _configure_logging(app)
    resolve_secrets(app.config)  # before anything signs; refuses a weak production start
    build_services(app)  # index, Redis, deals, model: once per process, before gunicorn forks
    register_blueprints(app)
    register_error_handlers(app)
    register_request_guards(app)
    return app


def register_blueprints(app: Flask) -> None:
    from app.views import (
        admin,
        deals,
        events,
        merchant_deals,
        merchant_stores,
        merchants,
        meta,
        pages,
        redemptions,
        stores,
    )
    from app.views import map as map_views

    app.register_blueprint(meta.bp)
    app.register_blueprint(stores.bp)
    app.register_blueprint(deals.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(merchants.bp)
    app.register_blueprint(redemptions.bp)
    app.register_blueprint(merchant_deals.bp)
    app.register_blueprint(merchant_stores.bp)
    app.register_blueprint(map_views.bp)
    app.register_blueprint(pages.bp)
    if app.config["ADMIN_KEY"]:  # admin endpoints are off unless a key is configured
        app.register_blueprint(admin.bp)


def register_request_guards(app: Flask) -> None:
    """The client address behind trusted proxies, shared rate limits, explicit CORS."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    from app.http import cors, observability, ratelimit
    from app.services import services

    hops = app.config["TRUSTED_PROXIES"]
    if hops > 0:  # only as many X-Forwarded-For hops as there are proxies we run
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    observability.init_app(app)  # first: the request id exists before any other hook logs
    ratelimit.init_app(app)
    cors.init_app(app)

    @app.before_request
    def _start_process_threads():
        # Each worker watches the embedded server from its first request on (threads do
        # not survive gunicorn's fork) and starts it again if it dies.
        svc = services()
        if svc.redis_server is not None:
            svc.redis_server.supervise()
        if svc.changes is not None:  # follow merchants' edits from this worker's first request
            svc.changes.ensure_started()


def register_error_handlers(app: Flask) -> None:
    from app.http.errors import register_error_handlers as register

    register(app)


def _configure_logging(app: Flask) -> None:
    """JSON lines with the request id (LOG_FORMAT=json, the default), or plain text; left
    alone when the process already logs somewhere (pytest, an embedding program)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    if app.config["LOG_FORMAT"] == "json":
        from app.http.observability import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
