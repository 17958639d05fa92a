"""Per-process services, built once by the factory and kept in ``app.extensions``."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from geo_index import LoadReport, StoreIndex

KEY = "o2o"


@dataclass
class Services:
    """What every request may use; built at start-up (before gunicorn forks with --preload)."""

    index: StoreIndex
    catalogue_report: LoadReport
    catalogue_name: str
    config: dict = field(default_factory=dict)
    redis: object | None = None           # redis.Redis, or None when turned off
    redis_server: object | None = None    # the embedded server we started, if any
    breaker: object | None = None         # app.storage.client.Breaker for best-effort writes
    impressions: object | None = None     # app.storage.impressions.ImpressionLog
    deals: object | None = None           # app.domain.deal_book.DealBook
    models: object | None = None          # app.storage.model_versions.ModelHolder
    history: dict = field(default_factory=dict)  # user_id -> stores ordered at (base data)
    extra: dict = field(default_factory=dict)


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions[KEY]
