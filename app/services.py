"""Per-process services, built once by the factory and kept in ``app.extensions``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import current_app

from geo_index import LoadReport, StoreIndex

if TYPE_CHECKING:  # imported for the types only: these modules import this one
    import redis

    from app.domain.deal_book import DealBook
    from app.domain.edits import CatalogueEdits
    from app.storage.change_feed import ChangeFeed
    from app.storage.client import Breaker
    from app.storage.embedded import EmbeddedRedis
    from app.storage.impressions import ImpressionLog
    from app.storage.model_versions import ModelHolder

KEY = "o2o"


@dataclass
class Services:
    """What every request may use; built whole at start-up (before gunicorn forks with --preload)."""

    index: StoreIndex
    catalogue_report: LoadReport
    catalogue_name: str
    config: dict[str, Any]
    #: The service's clock: every "now" of a request comes from here (tests pin it with NOW).
    now: Callable[[], datetime]
    redis: redis.Redis | None  # None when Redis is turned off or did not start
    redis_server: EmbeddedRedis | None  # the embedded server this process started, if any
    breaker: Breaker
    impressions: ImpressionLog
    #: Merchants' edits applied in this process, over the catalogue and the deals file.
    edits: CatalogueEdits
    models: ModelHolder
    #: user_id -> stores they ordered at, from the base data (for "ordered_at" reasons).
    history: dict[str, set[str]] = field(default_factory=dict)
    #: The follower of the merchants' change log.
    changes: ChangeFeed | None = None

    @property
    def deals(self) -> DealBook:
        """The deal book: the deals file with every merchant edit, swapped whole on a deal
        edit (a request holding the old one finishes with it)."""
        return self.edits.book

    def catch_up(self) -> None:
        """Apply every merchant change logged so far, now (one short read): a merchant's own
        pages read their writes on any worker, without waiting for the follower thread."""
        if self.changes is not None:
            self.changes.poll()


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions[KEY]
