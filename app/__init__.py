"""The Flask application factory: settings, then named steps that wire the parts."""
from __future__ import annotations

import logging
import os

from flask import Flask

log = logging.getLogger("app")


def create_app(config: dict | None = None) -> Flask:
    """Build the app: defaults, then ``O2O_*`` environment, then ``config`` overrides."""
    from app.config import DEFAULTS, from_environment
    from app.http.jsonio import OrjsonProvider

    app = Flask(__name__)
    app.json_provider_class = OrjsonProvider
    app.json = OrjsonProvider(app)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(from_environment())
    app.config.from_mapping(config or {})
    _configure_logging(app)
    build_store_index(app)
    connect_services(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_request_guards(app)
    return app


def build_store_index(app: Flask) -> None:
    """Load the catalogue once per process (before gunicorn forks, with --preload)."""
    import time

    from geo_index import StoreIndex, load_catalogue

    from app.services import KEY, Services

    path = app.config["CATALOGUE"]
    t0 = time.perf_counter()
    frame, report = load_catalogue(path, strict=app.config["CATALOGUE_STRICT"],
                                   default_timezone=app.config["DEFAULT_TIMEZONE"],
                                   default_merchant_id=app.config["DEFAULT_MERCHANT_ID"])
    if not report.ok:
        log.warning("catalogue loaded leniently:\n%s", report.summary())
    index = StoreIndex(frame)
    log.info("catalogue %s: %d stores indexed in %.2f s", os.path.basename(path), len(index),
             time.perf_counter() - t0)
    app.extensions[KEY] = Services(index=index, catalogue_report=report,
                                   catalogue_name=os.path.basename(path), config=app.config)


def connect_services(app: Flask) -> None:
    """Redis (embedded or REDIS_URL), the deal book and the model in use."""
    from app.services import KEY
    from app.wiring import connect_redis, load_deals_and_model

    svc = app.extensions[KEY]
    connect_redis(app, svc)
    load_deals_and_model(app, svc)


def register_blueprints(app: Flask) -> None:
    from app.views import admin, deals, events, merchants, meta, pages, stores
    from app.views import map as map_views

    app.register_blueprint(meta.bp)
    app.register_blueprint(stores.bp)
    app.register_blueprint(deals.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(merchants.bp)
    app.register_blueprint(map_views.bp)
    app.register_blueprint(pages.bp)
    if app.config["ADMIN_KEY"]:  # admin endpoints are off unless a key is configured
        app.register_blueprint(admin.bp)


def register_request_guards(app: Flask) -> None:
    """Shared rate limits and explicit CORS for the widget's public reads."""
    from app.http import cors
    from app.http import ratelimit

    ratelimit.init_app(app)
    cors.init_app(app)


def register_error_handlers(app: Flask) -> None:
    from app.http.errors import register_error_handlers as register

    register(app)


def _configure_logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
