"""Hand-placed stores with known great-circle distances."""

from __future__ import annotations

import math

import pandas as pd

from geo_index.geodesy import EARTH_RADIUS_M

#: Metres per degree of great circle on the service's sphere.
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180

HELSINKI = (60.1699, 24.9384)


def store(store_id, lat, lon, category="cafe", **extra) -> dict:
    row = {
        "store_id": store_id,
        "merchant_id": extra.pop("merchant_id", "m-1"),
        "name": extra.pop("name", store_id),
        "category": category,
        "lat": lat,
        "lon": lon,
        "timezone": extra.pop("timezone", "Europe/Helsinki"),
    }
    row.update(extra)
    return row


def hand_placed() -> pd.DataFrame:
    """Stores due north of Helsinki centre at exact great-circle distances, plus edge cases.

    ``n100`` is 100 m north, ``n250`` 250 m, ... (a meridian arc of d metres is d / M_PER_DEG
    degrees of latitude). Two stores share a position to test the store_id tie-break.
    """
    lat0, lon0 = HELSINKI
    rows = [
        store(
            "n100",
            lat0 + 100 / M_PER_DEG,
            lon0,
            "cafe",
            price_level=1,
            rating=4.5,
            opening_hours="Mo-Su 08:00-20:00",
            tags="coffee|wifi",
        ),
        store(
            "n250",
            lat0 + 250 / M_PER_DEG,
            lon0,
            "restaurant",
            price_level=3,
            rating=3.9,
            opening_hours="Mo-Su 18:00-02:00",
            tags="pizza",
        ),
        store("n400a", lat0 + 400 / M_PER_DEG, lon0, "bar", price_level=2, rating=4.8, opening_hours="off"),
        store("n400b", lat0 + 400 / M_PER_DEG, lon0, "cafe", price_level=2, rating=4.8),
        store(
            "n1000",
            lat0 + 1000 / M_PER_DEG,
            lon0,
            "clothes",
            price_level=4,
            rating=2.0,
            opening_hours="24/7",
            popularity=50,
        ),
        store("n5000", lat0 + 5000 / M_PER_DEG, lon0, "cafe", popularity=10, name="Far Cafe"),
        store("east-of-180", 0.0, -179.9995, "cafe", timezone="Pacific/Fiji"),
        store("west-of-180", 0.0, 179.9990, "bar", timezone="Pacific/Fiji"),
        store("pole", 89.9999, 45.0, "cafe", timezone="UTC"),
        store("pole-other-side", 89.9998, -135.0, "bar", timezone="UTC"),
    ]
    frame = pd.DataFrame(rows)
    frame["tags"] = frame["tags"].fillna("")
    frame["opening_hours"] = frame["opening_hours"].fillna("")
    return frame
