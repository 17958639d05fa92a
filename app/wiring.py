"""Factory steps that build the per-process services; each returns what it built."""

from __future__ import annotations

import logging
import os
import time
from functools import partial

import numpy as np
import pandas as pd
from flask import Flask

from app.domain.clock import clock_from_setting
from app.domain.deal_book import DealBook
from app.domain.edits import CatalogueEdits
from app.services import KEY, Services
from app.storage import merchant_writes, scripts
from app.storage.change_feed import ChangeFeed
from app.storage.client import STORAGE_ERRORS, Breaker, client, on_cluster
from app.storage.embedded import EmbeddedRedis
from app.storage.impressions import ImpressionLog
from app.storage.model_versions import ModelHolder
from geo_index import LoadReport, StoreIndex
from geo_index.prebuilt import load_index
from recommender.signals import store_signals

log = logging.getLogger("app")


def build_services(app: Flask) -> Services:
    """The index, Redis, the deal book and the model, wired into one ``Services``."""
    cfg = app.config
    index, report = build_store_index(cfg)
    r, server = connect_redis(cfg)
    breaker = Breaker()
    models = ModelHolder(cfg["ARTIFACTS"], cfg["MODEL_CHECK_S"], _catalogue_rows(index), partial(serve_signals, index))
    models.load_initial(r)
    edits, last_change = replay_edits(r, index, DealBook.from_file(cfg["DEALS"], index))
    svc = Services(
        index=index,
        catalogue_report=report,
        catalogue_name=os.path.basename(cfg["CATALOGUE"]),
        config=cfg,
        now=clock_from_setting(cfg["NOW"]),
        redis=r,
        redis_server=server,
        breaker=breaker,
        impressions=ImpressionLog(
            r, breaker, index, cfg["STATS_LOCAL_RADIUS_M"], cfg["STREAM_MAXLEN"], enabled=cfg["IMPRESSIONS"]
        ),
        edits=edits,
        models=models,
        history=_base_history(cfg["BASE_ORDERS"]),
    )
    svc.changes = ChangeFeed(r, edits.apply, last_change)
    app.extensions[KEY] = svc
    return svc


def replay_edits(r, index: StoreIndex, book: DealBook) -> tuple[CatalogueEdits, str]:
    """Merchants' edits (kept in Redis) over the catalogue and deals just loaded: a restart or
    a new catalogue file keeps them. Returns them and the change-log id to follow from."""
    edits = CatalogueEdits(index, book)
    if r is None:
        return edits, "0-0"
    try:
        last_id, states = merchant_writes.snapshot(r)
    except STORAGE_ERRORS as exc:  # the feed replays the whole log once Redis answers
        log.error("merchants' edits not loaded (%s); they apply once Redis answers", exc)
        return edits, "0-0"
    n = edits.apply(states)
    log.info("merchants' edits: %d stores and deals replayed over the catalogue", n)
    return edits, last_id


def build_store_index(cfg) -> tuple[StoreIndex, LoadReport]:
    """The catalogue's index: memory-mapped from its prebuilt folder (built and saved by the
    first start), shared through the page cache by every worker and instance on the disk."""
    path = cfg["CATALOGUE"]
    t0 = time.perf_counter()
    loaded = load_index(
        path,
        cache_root=cfg["INDEX_CACHE"],
        strict=cfg["CATALOGUE_STRICT"],
        default_timezone=cfg["DEFAULT_TIMEZONE"],
        default_merchant_id=cfg["DEFAULT_MERCHANT_ID"],
    )
    if not loaded.report.ok:
        log.warning("catalogue loaded leniently:\n%s", loaded.report.summary())
    log.info(
        "catalogue %s: %d stores, index %s in %.2f s%s",
        os.path.basename(path),
        len(loaded.index),
        loaded.source,
        time.perf_counter() - t0,
        f" ({loaded.folder})" if loaded.folder else "",
    )
    return loaded.index, loaded.report


def connect_redis(cfg):
    """(client, embedded server): REDIS_URL if given (``none`` turns Redis off), else the embedded server."""
    url = cfg["REDIS_URL"]
    if url and url.lower() == "none":
        log.warning("Redis turned off: events answer 503, impressions are dropped")
        return None, None
    server = None
    if not url:
        try:
            server = EmbeddedRedis(os.path.join(cfg["DATA_DIR"], "redis"), cfg["REDIS_MAXMEMORY_MB"]).start()
        except (RuntimeError, OSError) as exc:
            log.error("embedded Redis did not start (%s): serving without it", exc)
            return None, None
        url = server.url
    # The embedded server is one server; REDIS_CLUSTER (a bool from the environment, None: ask) for the rest.
    r = client(url, cfg["REDIS_TIMEOUT_S"], cluster=False if server is not None else cfg["REDIS_CLUSTER"])
    if on_cluster(r):
        try:
            scripts.preload(r)
        except STORAGE_ERRORS as exc:
            log.error("scripts not loaded on the cluster (%s)", exc)
        log.info("Redis Cluster at %s: %d primaries", url, len(r.get_primaries()))
    return r, server


def _catalogue_rows(index: StoreIndex):
    """store ids -> catalogue dicts, for stores the model never saw."""

    def rows(store_ids):
        out = []
        for sid in store_ids:
            pos = index.position(sid)
            if pos is not None:
                rec = index.record(pos)
                rec["store_id"] = rec.pop("id")
                out.append(rec)
        return out

    return rows


def serve_signals(index: StoreIndex, scorer) -> None:
    """The loop's signals of a newly active model (popularity, ratings recomputed by the
    retraining job) become the stores' served popularity and rating; a model without them
    leaves the catalogue's values."""
    index.clear_signals()
    stage = scorer.second_stage
    if stage is None:
        return
    signals = store_signals(stage)
    # Shown to people: a rating to two decimals, a popularity to four (the float32 the model
    # keeps them in would print as 3.5028109550476074).
    for name, decimals in (("popularity", 4), ("rating", 2)):
        n = index.set_signal(name, signals["store_id"], np.round(np.asarray(signals[name], dtype=np.float64), decimals))
        log.info("model %s: %s of %d stores from the loop", scorer.version, name, n)


def _base_history(path: str | None) -> dict:
    """user -> stores they ordered at, from the base data (for "ordered_at" reasons)."""
    if not path or not os.path.exists(path):
        return {}
    frame = pd.read_csv(path, usecols=["user_id", "store_id"], dtype=str)
    return {u: set(g) for u, g in frame.groupby("user_id")["store_id"]}
