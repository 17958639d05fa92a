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
    extra: dict = field(default_factory=dict)


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions[KEY]
