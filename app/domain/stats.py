"""Merchant statistics as figures: rates, the privacy threshold, changes, peer medians, CSV.

Pure functions over the per-day and per-period figure dicts that ``storage.stats`` reads.
"""

from __future__ import annotations

import csv
import io
from typing import Literal, get_args

import numpy as np

Surface = Literal["nearby", "recommended", "map", "detail"]
EventType = Literal["click", "detail_view", "redeem", "order", "review", "directions", "call", "website"]
SURFACES: tuple[str, ...] = get_args(Surface)
#: Surfaces that are local searches: they count toward the share-of-search denominator.
LOCAL_SURFACES = ("nearby", "recommended")

EVENT_FIELDS = {
    "clicks": "click",
    "detail_views": "detail_view",
    "directions": "directions",
    "calls": "call",
    "website": "website",
    "redemptions": "redeem",
    "orders": "order",
    "reviews": "review",
}
UNIQUE_FIELDS = ("unique_viewers", "unique_clickers", "unique_orderers", "unique_redeemers")
NUMERIC = (
    "impressions",
    "clicks",
    "detail_views",
    "directions",
    "calls",
    "website",
    "redemptions",
    "orders",
    "reviews",
    "order_amount",
    "unique_viewers",
    "local_search_share",
)


def finish(fig: dict, threshold: int) -> dict:
    """Derived rates, rank mean/median, and the privacy threshold on unique counts."""
    out = {k: v for k, v in fig.items() if not k.startswith("_")}
    imp, clicks = fig["impressions"], fig["clicks"]
    out["funnel"] = {
        "click_rate": _rate(clicks, imp),
        "redeem_rate": _rate(fig["redemptions"], clicks),
        "order_rate": _rate(fig["orders"], clicks),
        "people": {
            "click_rate": _rate(fig["unique_clickers"], fig["unique_viewers"]),
            "order_rate": _rate(fig["unique_orderers"], fig["unique_clickers"]),
        },
    }
    out["rank"] = {
        "mean": round(fig["_rank_sum"] / fig["_rank_n"], 3) if fig["_rank_n"] else None,
        "median": fig["_rank_median"],
    }
    out["local_search_share"] = _rate(fig["local_appeared"], fig["local_requests"])
    for k in UNIQUE_FIELDS:
        if 0 < out[k] < threshold:
            out[k] = f"<{threshold}"  # as Google does: small unique counts are not shown
    if any(isinstance(out[k], str) for k in UNIQUE_FIELDS):
        out["funnel"]["people"] = {"click_rate": None, "order_rate": None}
    return out


def _rate(a, b):
    return round(a / b, 4) if b else None


def change(current: dict, previous: dict) -> dict:
    """Relative change of each headline figure from the previous period (None: nothing before)."""
    out = {}
    for k in NUMERIC:
        a, b = current.get(k), previous.get(k)
        out[k] = round((a - b) / b, 4) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
    return out


def peer_median(peer_totals: list[dict]) -> dict:
    out = {}
    for k in NUMERIC:
        vals = [t[k] for t in peer_totals if isinstance(t.get(k), (int, float))]
        out[k] = round(float(np.median(vals)), 4) if vals else None
    return out


def viewer_cells(store_days: list[tuple[dict, dict]], threshold: int) -> tuple[list[dict], int]:
    """Impressions by cell, and the merged count of the rest.

    ``store_days``: per store and day, (impressions by cell, people by cell). A cell's
    impressions of one store-day are located only when at least ``threshold`` different
    people saw the store from there that day; the others (and viewers beyond the radius kept
    by name) go into one unlocated count. One person's many impressions never show a cell.
    """
    from app.domain.grid import FAR_CELL, cell_bounds

    located: dict[str, int] = {}
    other = 0
    for impressions, people in store_days:
        for cell, n in impressions.items():
            if cell == FAR_CELL or people.get(cell, 0) < threshold:
                other += n
            else:
                located[cell] = located.get(cell, 0) + n
    cells = [{"cell": cell, **cell_bounds(cell), "impressions": n} for cell, n in sorted(located.items())]
    return cells, other


_CSV_COLUMNS = [
    "store_id",
    "date",
    "impressions",
    *(f"impressions_{s}" for s in SURFACES),
    "unique_viewers",
    "clicks",
    "detail_views",
    "directions",
    "calls",
    "website",
    "redemptions",
    "orders",
    "order_amount",
    "reviews",
    "unique_clickers",
    "unique_orderers",
    "unique_redeemers",
    "click_rate",
    "redeem_rate",
    "order_rate",
    "rank_mean",
    "rank_median",
    "local_requests",
    "local_appeared",
    "local_search_share",
]


def to_csv(body: dict) -> str:
    """One row per store and day of a stats response body."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(_CSV_COLUMNS)
    for s in body["stores"]:
        for d in s["days"]:
            by, funnel = d["impressions_by_surface"], d["funnel"]
            w.writerow(
                [
                    s["store_id"],
                    d["date"],
                    d["impressions"],
                    *(by[x] for x in SURFACES),
                    d["unique_viewers"],
                    d["clicks"],
                    d["detail_views"],
                    d["directions"],
                    d["calls"],
                    d["website"],
                    d["redemptions"],
                    d["orders"],
                    d["order_amount"],
                    d["reviews"],
                    d["unique_clickers"],
                    d["unique_orderers"],
                    d["unique_redeemers"],
                    funnel["click_rate"],
                    funnel["redeem_rate"],
                    funnel["order_rate"],
                    d["rank"]["mean"],
                    d["rank"]["median"],
                    d["local_requests"],
                    d["local_appeared"],
                    d["local_search_share"],
                ]
            )
    return buf.getvalue()
