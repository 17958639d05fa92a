"""Request and response schemas. The OpenAPI spec and the parameter validation both come
from these models, so the documentation cannot drift from what the code accepts."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema, field_validator

from app.domain.stats import EventType, Surface

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")]
PriceLevel = Annotated[int, Field(ge=1, le=4)]
StoreField = Literal[
    "id",
    "name",
    "category",
    "lat",
    "lon",
    "distance_m",
    "merchant_id",
    "price_level",
    "rating",
    "tags",
    "opening_hours",
    "timezone",
    "open_now",
    "popularity",
    "phone",
    "website",
    "closed_until",
    "closure_reason",
]
STORE_FIELDS: tuple[str, ...] = StoreField.__args__


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NearbyQuery(_Query):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="Latitude in WGS84 degrees, -90 to 90.")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description="Longitude in WGS84 degrees, -180 to 180.")
    radius_m: float | None = Field(
        None,
        gt=0,
        le=100_000,
        allow_inf_nan=False,
        description="Search radius in metres, >0 and at most 100000. Without it, "
        "the nearest stores at any distance (sort=distance).",
    )
    limit: int = Field(20, ge=1, le=50, description="Page size, 1 to 50.")
    cursor: str | None = Field(
        None, min_length=1, max_length=2048, description="Opaque next_cursor from the previous page of the same query."
    )
    category: list[Slug] = Field(
        default_factory=list, description="Keep these categories (repeat or comma-separate), e.g. cafe."
    )
    exclude_category: list[Slug] = Field(default_factory=list, description="Drop these categories.")
    price: list[PriceLevel] = Field(default_factory=list, description="Keep these price levels, 1 to 4.")
    open_now: bool = Field(False, description="Only stores open now, in each store's own timezone.")
    open_at: datetime | None = Field(
        None,
        description="Only stores open at this ISO datetime (years 1900 to 2200); without an "
        "offset it is local time in each store's timezone.",
    )

    @field_validator("open_at")
    @classmethod
    def _open_at_in_range(cls, value: datetime | None) -> datetime | None:
        # Year 1 minus a time zone offset is before datetime.min (it was a 500).
        if value is not None and not 1900 <= value.year <= 2200:
            raise ValueError("must be between the years 1900 and 2200")
        return value

    min_rating: float | None = Field(
        None, ge=0, le=5, allow_inf_nan=False, description="Lowest rating, 0 to 5; unrated stores are dropped."
    )
    q: str | None = Field(
        None, min_length=1, max_length=100, description="Text in name, category or tags (case-insensitive)."
    )
    sort: Literal["distance", "rating", "popularity", "personalised"] = Field(
        "distance",
        description="distance (default), rating, popularity, or personalised (for the user of the "
        "Authorization: Bearer <user token>: the recommender's preference blended with distance; "
        "anonymous and unknown users get popular-nearby); ties by distance, then id.",
    )
    fields: list[StoreField] = Field(
        default_factory=list, description="Store fields to return; id, distance_m and impression_token always come."
    )


class DetailQuery(_Query):
    """No parameters: the signed-in user comes from the Authorization header."""


_IMPRESSION_TOKEN = (
    "Signed proof that this item was shown (surface, store, deal, viewer, rank, time; valid 24 h). "
    "Send it back with click, detail_view, directions, call and website events on this item."
)


class StoreOut(BaseModel):
    id: str
    name: str | None = None
    category: str | None = None
    lat: float | None = None
    lon: float | None = None
    distance_m: float | None = Field(None, description="Great-circle distance, metres (haversine).")
    merchant_id: str | None = None
    price_level: int | None = None
    rating: float | None = None
    tags: list[str] | None = None
    opening_hours: str | None = None
    timezone: str | None = None
    open_now: bool | None = Field(None, description="null when the store has no opening hours.")
    popularity: float | None = None
    phone: str | None = None
    website: str | None = None
    closed_until: str | None = Field(None, description="A temporary closure lasts until then (UTC); null: none.")
    closure_reason: str | None = None
    impression_token: str | None = Field(None, description=_IMPRESSION_TOKEN)


class NearbyResponse(BaseModel):
    stores: list[StoreOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")
    radius_m: float | None = Field(None, description="The radius applied (given or the ranked default).")
    evaluated_at: str = Field(description="The instant open_now was evaluated at (UTC, ISO 8601).")


class StoreDetail(StoreOut):
    next_open: str | None = Field(None, description="Next opening, ISO 8601 in the store's timezone.")
    next_close: str | None = Field(None, description="End of the current or next open period.")


class Live(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "loading"]
    waiting_for: list[Literal["index", "model"]]
    model_version: str | None = None


class Health(BaseModel):
    status: Literal["ok"]
    stores: int
    catalogue: str
    model_version: str | None = None
    redis: Literal["up", "down", "off"] = "off"
    deals: int = 0
    impressions_dropped: int = 0
    redis_memory: dict | None = Field(
        None, description="used_mb, max_mb and near_full (at 80 % of maxmemory; a full Redis refuses writes)."
    )


class FieldError(BaseModel):
    field: str
    message: str
    hint: str | None = None


class ProblemBody(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class EventIn(BaseModel):
    """One client event. ``event_id`` makes retries safe: the same id is counted once."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")
    type: EventType
    ts: datetime = Field(description="When it happened, ISO 8601; UTC if no offset.")
    store_id: str | None = Field(None, min_length=1, max_length=128)
    deal_id: str | None = Field(None, min_length=1, max_length=128)
    user_id: str | None = Field(None, min_length=1, max_length=128)
    anon_id: str | None = Field(None, min_length=1, max_length=128)
    surface: Surface | None = None
    rank: int | None = Field(None, ge=1, le=10_000)
    impression_token: str | None = Field(
        None,
        min_length=1,
        max_length=600,
        description="The impression_token of the item acted on: required for click, detail_view, directions, call "
        "and website; its surface and rank are the ones recorded.",
    )
    rating: int | None = Field(None, ge=1, le=5)
    text: str | None = Field(None, max_length=500, description="Review text, at most 500 characters.")
    amount: float | None = Field(None, ge=0, le=1e7, allow_inf_nan=False)


class RedemptionIn(BaseModel):
    """A redemption (with ``deal_id``) or an order (without), as the merchant's point of sale saw it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    redemption_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="The point of sale's own id: sending it again changes nothing (the quota moves once).",
    )
    store_id: str = Field(min_length=1, max_length=128, description="One of the merchant's stores.")
    deal_id: str | None = Field(None, min_length=1, max_length=128, description="The deal redeemed; omit for an order.")
    amount: float | None = Field(None, ge=0, le=1e7, allow_inf_nan=False, description="What the customer paid.")
    user_token: str | None = Field(
        None, min_length=1, max_length=4096, description="The customer's user token (e.g. from a QR code in the app)."
    )
    impression_token: str | None = Field(
        None,
        min_length=1,
        max_length=600,
        description="The impression_token of the deal or store the customer redeemed from: its surface and rank are "
        "recorded with the redemption (attribution).",
    )
    ts: datetime = Field(description="When it happened, ISO 8601; UTC if no offset.")


class RedemptionOut(BaseModel):
    redemption_id: str
    status: Literal["recorded", "duplicate"]
    store_id: str
    deal_id: str | None
    quota_left: int | None = Field(description="Redemptions left on the deal; null: unlimited or no deal.")


class EventBatch(BaseModel):
    """Up to 500 events. Each is validated and reported on its own."""

    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=500)


class RawEventBatch(BaseModel):
    """What the view parses first: the envelope, leaving each event to be judged alone."""

    model_config = ConfigDict(extra="forbid")
    events: list[Any] = Field(min_length=1, max_length=500)


class EventResult(BaseModel):
    index: int
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    errors: list[FieldError] | None = None


class EventsResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]


class RecommendedQuery(_Query):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="Latitude in WGS84 degrees, -90 to 90.")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description="Longitude in WGS84 degrees, -180 to 180.")
    radius_m: float | None = Field(
        None,
        gt=0,
        le=100_000,
        allow_inf_nan=False,
        description="Only deals at stores within this many metres; without it, "
        "deals at the nearest stores that have any.",
    )
    limit: int = Field(20, ge=1, le=50, description="Page size, 1 to 50.")
    cursor: str | None = Field(None, min_length=1, max_length=2048, description="next_cursor of the previous page.")
    category: list[Slug] = Field(default_factory=list, description="Only stores of these categories.")
    explain: bool = Field(False, description="Add machine-readable reasons and the score's parts.")


class DealOut(BaseModel):
    deal_id: str
    store_id: str
    store_name: str
    category: str
    title: str
    discount_pct: float
    starts_at: str
    ends_at: str
    distance_m: float
    score: float
    open_now: bool | None
    opens_at: str | None = Field(None, description="Next opening when the store is closed now.")
    quota_left: int | None = None
    impression_token: str = Field(description=_IMPRESSION_TOKEN)
    reasons: list[dict] | None = Field(
        None,
        description=(
            "With explain=true: objects with 'because' = ordered_at, matches_taste:<category>, popular_nearby, "
            "close_by, new_store or score. The score reason has model 'two_stage' (base + the feature groups' "
            "contributions in parts = score) or 'blend' (preference_term + distance_weight * distance_term = score)."
        ),
    )


class RecommendedResponse(BaseModel):
    deals: list[DealOut]
    next_cursor: str | None
    model_version: str | None


class ModelActivate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")


class ModelState(BaseModel):
    version: str | None
    available: list[str]


class StatsQuery(_Query):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)
    from_: date = Field(alias="from", description="First day (YYYY-MM-DD, the stores' local dates).")
    to: date = Field(description="Last day, inclusive; at most 366 days after from.")
    store_id: str | None = Field(
        None, min_length=1, max_length=128, description="One of the merchant's stores; default all of them."
    )
    surface: Surface | None = Field(None, description="Impressions and viewers of one surface only.")
    format: Literal["json", "csv"] = Field("json", description="csv: the daily rows as CSV (or send Accept: text/csv).")


Count = int | str  # a number, or "<5" under the privacy threshold


class StoreStats(BaseModel):
    store_id: str
    name: str
    category: str
    days: list[dict]
    totals: dict
    previous: dict
    change: dict
    peers: dict


class StatsResponse(BaseModel):
    """Daily figures per store; unique counts under the threshold read "<N"."""

    merchant_id: str
    from_: str = Field(alias="from")
    to: str
    surface: str | None
    privacy_threshold: int
    local_radius_m: float
    stores: list[StoreStats]


class ViewerCell(BaseModel):
    cell: str
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float
    impressions: int


class ViewersResponse(BaseModel):
    merchant_id: str
    cell_deg: float
    privacy_threshold: int
    cells: list[ViewerCell]
    other: int = Field(
        description="Impressions not located: from a cell where fewer than privacy_threshold different people saw "
        "the store that day, or from beyond 10 km."
    )


def _parse_bbox(value):
    if isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [p.strip() for p in str(value).split(",")]
    if len(parts) != 4:
        raise ValueError("bbox needs 4 numbers: minLon,minLat,maxLon,maxLat")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise ValueError("bbox values must be numbers") from None
    if not all(math.isfinite(n) for n in nums):
        raise ValueError("bbox values must be finite")
    min_lon, min_lat, max_lon, max_lat = nums
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise ValueError("bbox longitudes must be within -180..180 (minLon > maxLon crosses the antimeridian)")
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise ValueError("bbox latitudes must be within -90..90")
    if min_lat > max_lat:
        raise ValueError("bbox minLat must not exceed maxLat")
    return (min_lon, min_lat, max_lon, max_lat)


BBox = Annotated[
    tuple[float, float, float, float],
    BeforeValidator(_parse_bbox),
    WithJsonSchema({"type": "string", "pattern": r"^[^,]+,[^,]+,[^,]+,[^,]+$", "example": "24.90,60.15,24.98,60.19"}),
]


class MapQuery(_Query):
    bbox: BBox = Field(description="minLon,minLat,maxLon,maxLat in WGS84; minLon > maxLon crosses the antimeridian.")
    zoom: int = Field(ge=0, le=22, description="Map zoom 0-22; from 17 on, stores come one by one.")
    category: list[Slug] = Field(default_factory=list, description="Keep these categories.")
    exclude_category: list[Slug] = Field(default_factory=list, description="Drop these categories.")
    price: list[PriceLevel] = Field(default_factory=list, description="Keep these price levels, 1 to 4.")
    open_now: bool = Field(False, description="Only stores open now, in each store's timezone.")
    min_rating: float | None = Field(None, ge=0, le=5, allow_inf_nan=False, description="Lowest rating, 0 to 5.")
    q: str | None = Field(None, min_length=1, max_length=100, description="Text in name, category or tags.")
    has_deals: bool = Field(False, description="Only stores with a deal running now.")


class LeavesQuery(_Query):
    limit: int = Field(50, ge=1, le=500, description="Stores per page, 1 to 500.")
    offset: int = Field(0, ge=0, le=10_000_000, description="Stores to skip.")


class GeoFeature(BaseModel):
    type: Literal["Feature"]
    geometry: dict
    properties: dict = Field(
        description="A store point has id, name, category, price_level, rating, has_deal, open_now and, on "
        "/v1/map/stores, impression_token; a cluster has cluster, cluster_id, count and has_deal."
    )


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection (RFC 7946)."""

    type: Literal["FeatureCollection"]
    features: list[GeoFeature]
    total: int | None = None
    truncated: bool | None = None


# ------------------------------------------------------------------ merchant self-service
_DEAL_TITLE = Field(min_length=1, max_length=120, description="What the customer sees, e.g. 'Lunch -20 %'.")
_DISCOUNT = Field(ge=1, le=90, allow_inf_nan=False, description="Discount in percent, 1 to 90.")
_VALID_HOURS = Field(
    None,
    min_length=1,
    max_length=256,
    description="When in the day the deal holds, OpenStreetMap opening_hours syntax in the store's time zone, "
    "e.g. 'Mo-Fr 11:00-14:00' for lunch only; omit for whenever the store is open.",
)
_TAGS = Field(None, max_length=10, description="Up to 10 tags, lowercase slugs, e.g. lunch.")


class DealIn(BaseModel):
    """A new deal at one of the merchant's stores."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    store_id: str = Field(min_length=1, max_length=128, description="One of the merchant's stores.")
    title: str = _DEAL_TITLE
    discount_pct: float = _DISCOUNT
    starts_at: datetime = Field(description="Start, ISO 8601; UTC if no offset.")
    ends_at: datetime = Field(description="End (exclusive), after starts_at; UTC if no offset.")
    quota: int = Field(ge=1, le=10_000_000, description="Redemptions allowed in all, at least 1.")
    per_user_limit: int | None = Field(None, ge=1, le=1000, description="Redemptions allowed per customer.")
    valid_hours: str | None = _VALID_HOURS
    tags: list[Slug] | None = _TAGS


class DealPatch(BaseModel):
    """Fields to change; the others keep their values. ``status`` pauses or resumes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str | None = Field(None, min_length=1, max_length=120, description="What the customer sees.")
    discount_pct: float | None = Field(None, ge=1, le=90, allow_inf_nan=False, description="1 to 90.")
    starts_at: datetime | None = Field(None, description="Start, ISO 8601.")
    ends_at: datetime | None = Field(None, description="End (exclusive), after starts_at.")
    quota: int | None = Field(None, ge=1, le=10_000_000, description="At least 1.")
    per_user_limit: int | None = Field(None, ge=1, le=1000, description="Redemptions per customer.")
    valid_hours: str | None = _VALID_HOURS
    tags: list[Slug] | None = _TAGS
    status: Literal["active", "paused"] | None = Field(
        None, description="paused: out of every list until active again."
    )


class MerchantDeal(BaseModel):
    deal_id: str
    store_id: str
    title: str
    discount_pct: float
    starts_at: str
    ends_at: str
    quota: int | None = Field(description="Redemptions allowed in all; null: unlimited (a file deal).")
    per_user_limit: int | None = None
    valid_hours: str | None = None
    tags: list[str]
    status: Literal["active", "paused", "ended"]
    version: int = Field(description="Changes so far; the ETag is this number in quotes.")
    redeemed: int = Field(description="Redemptions recorded so far.")
    quota_left: int | None = None
    live: bool = Field(description="Shown to customers now: active, inside its window and valid hours.")


class MerchantDeals(BaseModel):
    merchant_id: str
    deals: list[MerchantDeal]


class Closure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    closed_until: datetime = Field(description="Closed until then, ISO 8601; UTC if no offset.")
    reason: str | None = Field(None, max_length=200, description="Shown to customers, e.g. 'Renovation'.")


class StorePatch(BaseModel):
    """Store details a merchant may change; position, category and name come from the catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    opening_hours: str | None = Field(
        None, min_length=1, max_length=512, description="OpenStreetMap opening_hours syntax, e.g. 'Mo-Fr 08:00-18:00'."
    )
    price_level: PriceLevel | None = Field(None, description="1 to 4.")
    tags: list[Slug] | None = _TAGS
    closure: Closure | None = Field(None, description="A temporary closure; null ends it.")
    phone: str | None = Field(
        None,
        max_length=32,
        pattern=r"^\+?[0-9 ()\-]{3,31}$",
        description="Digits, spaces, () and -, e.g. +358 9 123 456.",
    )
    website: str | None = Field(None, max_length=256, pattern=r"^https?://[^\s<>\"']+$", description="An http(s) URL.")


class MerchantStore(StoreOut):
    version: int = Field(description="Merchant changes so far; the ETag is this number in quotes.")


class MerchantStores(BaseModel):
    merchant_id: str
    stores: list[MerchantStore]


class Change(BaseModel):
    change_id: str
    entity: str = Field(description="deal:<deal_id> or store:<store_id>.")
    version: int
    action: Literal["create", "update", "pause", "resume", "end", "edit"]
    at: str = Field(description="When, by the service clock (UTC).")
    merchant_id: str
    key_id: str = Field(description="Which key made it (the start of its digest; 'admin' for the platform key).")
    fields: dict = Field(description="The fields changed, with their new values.")


class Changes(BaseModel):
    merchant_id: str
    changes: list[Change]
    next_before: str | None = Field(description="Pass as before for older changes; null at the oldest.")
