"""Factory steps that build the per-process services beyond the store index."""
from __future__ import annotations

import logging
import os

import pandas as pd

log = logging.getLogger("app")


def connect_redis(app, svc) -> None:
    """REDIS_URL if given (``none`` turns Redis off), else the embedded server."""
    from app.storage.impressions import ImpressionLog
    from app.storage.client import Breaker, EmbeddedRedis, client

    svc.breaker = Breaker()
    svc.impressions = ImpressionLog(svc, app.config["STREAM_MAXLEN"])
    url = app.config["REDIS_URL"]
    if url and url.lower() == "none":
        log.warning("Redis turned off: events answer 503, impressions are dropped")
        return
    if not url:
        try:
            svc.redis_server = EmbeddedRedis(os.path.join(app.config["DATA_DIR"], "redis")).start()
        except (RuntimeError, OSError) as exc:
            log.error("embedded Redis did not start (%s): serving without it", exc)
            return
        url = svc.redis_server.url
    svc.redis = client(url, app.config["REDIS_TIMEOUT_S"])


def load_deals_and_model(app, svc) -> None:
    from app.domain.deal_book import DealBook
    from app.storage.model_versions import ModelHolder

    svc.deals = DealBook.from_file(app.config["DEALS"], svc.index)
    index = svc.index

    def catalogue_rows(store_ids):
        rows = []
        for sid in store_ids:
            pos = index.position(sid)
            if pos is not None:
                rec = index.record(pos)
                rec["store_id"] = rec.pop("id")
                rows.append(rec)
        return rows

    svc.models = ModelHolder(app.config["ARTIFACTS"], app.config["MODEL_CHECK_S"], catalogue_rows)
    svc.models.load_initial(svc.redis)
    svc.history = _base_history(app.config["BASE_ORDERS"])


def _base_history(path: str | None) -> dict:
    """user -> stores they ordered at, from the base data (for "ordered_at" reasons)."""
    if not path or not os.path.exists(path):
        return {}
    frame = pd.read_csv(path, usecols=["user_id", "store_id"], dtype=str)
    return {u: set(g) for u, g in frame.groupby("user_id")["store_id"]}
